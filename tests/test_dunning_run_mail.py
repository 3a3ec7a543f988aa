"""The daily run's emails: a suspension holds the members' pending mail and emails the managers, who are not held."""
from datetime import date, timedelta

from sqlalchemy import select

from portal.domain import runs
from portal.domain.dunning.daily import start_daily_run
from portal.extensions import db
from portal.models import Account, OutboxEmail

DAY = date(2026, 12, 1)


def test_a_suspension_holds_the_members_mail_but_not_the_managers_notice(app, make):
    cls = make.customer_class(limit_after_days=15, suspend_after_days=20)
    suspended, limited = make.account(customer_class_id=cls), make.account(customer_class_id=cls)
    make.invoice(suspended, due_date=DAY - timedelta(days=25))
    make.invoice(limited, due_date=DAY - timedelta(days=16))
    people = {aid: (make.user("account_manager", aid), make.user("user", aid)) for aid in (suspended, limited)}
    with app.app_context():
        for aid, (_manager, member) in people.items():
            db.session.get(Account, aid).dunning_next_on = DAY
            db.session.add(OutboxEmail(account_id=aid, user_id=member.id, kind="reminder", to_addr=member.email,
                                       subject="Reminder", body="A reminder", status="pending", attempts=0))
        db.session.commit()
        run = start_daily_run(None, DAY, enqueue=False)
        runs.process_run(run.id, worker_name="test", poll=0)
        mail = {(row.account_id, row.user_id, row.kind): row.status for row in db.session.scalars(select(OutboxEmail))}
        assert db.session.get(Account, suspended).status == "suspended"
        assert db.session.get(Account, limited).status == "limited"
    (s_manager, s_member), (l_manager, l_member) = people[suspended], people[limited]
    assert mail == {(suspended, s_member.id, "reminder"): "held",  # members' mail waits while suspended
                    (suspended, s_manager.id, "dunning_suspended"): "pending",
                    (limited, l_member.id, "reminder"): "pending",  # a limitation holds nothing
                    (limited, l_manager.id, "dunning_limited"): "pending"}
