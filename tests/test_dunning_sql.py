"""The daily run's SQL path agrees with calendar.evaluate (the rules as every page reads them), on random accounts."""
from datetime import date, timedelta

from hypothesis import HealthCheck, given, settings, strategies as st
from sqlalchemy import select

from portal.domain import runs
from portal.domain.dunning.calendar import RANK, evaluate, next_look
from portal.domain.dunning.daily import start_daily_run
from portal.domain.dunning.facts import load_facts
from portal.extensions import db
from portal.models import Account, AuditEvent, CustomerClass, Invoice

BASE = date(2030, 1, 1)
accounts = st.lists(st.tuples(
    st.sampled_from(["active", "limited", "suspended"]),  # the stored state
    st.integers(0, 3),  # the class (3: none)
    # due dates on the classes' step days (and the days around them) as often as anywhere else
    st.lists(st.tuples(st.one_of(st.sampled_from([-10, -9, -8, -7, -6, -5, -4, -3, -1, 0]), st.integers(-40, 10)),
                       st.sampled_from([0, 400, 4900]), st.sampled_from([0, 0, 300])),
             max_size=4),  # invoices: due in days from the run's day, amount, paid so far
), min_size=1, max_size=12)
CLASSES = [(0, 0, 1), (5, 9, 1), (None, 4, 500), (7, None, 1)]  # limit after, suspend after, least amount


class Days:
    counter = 0


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=accounts)
def test_the_sql_path_does_what_the_calendar_says(ctx, data):
    Days.counter += 1
    day = BASE + timedelta(days=Days.counter * 3)
    classes = []
    for i, (limit, suspend, least) in enumerate(CLASSES):
        cls = CustomerClass(name=f"SQL path {Days.counter}-{i}", limit_after_days=limit, suspend_after_days=suspend,
                            least_amount_cents=least)
        db.session.add(cls)
        classes.append(cls)
    db.session.flush()
    # every example also holds an account on each class's step days (and the day before and after each)
    steps = {offset + shift for limit, suspend, _least in CLASSES for offset in (limit, suspend) if offset is not None
             for shift in (-1, 0, 1)}
    boundary = [("active", i, [(-offset, 4900, 0)]) for i in range(3) for offset in sorted(steps)]
    ids = []
    for n, (status, class_index, invoices) in enumerate(boundary + data):
        account = Account(number=f"S{Days.counter:04d}{n:03d}", name="SQL path", email="s@example.test",
                          status=status, status_source="dunning" if status != "active" else None,
                          customer_class_id=classes[class_index].id if class_index < 3 else None, settings={},
                          version=1, dunning_next_on=day)
        db.session.add(account)
        db.session.flush()
        ids.append(account.id)
        for seq, (due_in, amount, paid) in enumerate(invoices, 1):
            if amount == 0:
                continue
            db.session.add(Invoice(account_id=account.id, seq=seq, amount_cents=amount, paid_cents=min(paid, amount - 1),
                                   due_date=day + timedelta(days=due_in)))
    db.session.commit()
    before = {aid: (row, facts) for aid, (row, facts) in load_facts(ids).items()}
    run = start_daily_run(None, day, enqueue=False)
    runs.process_run(run.id, worker_name="test", poll=0)
    db.session.expire_all()
    for aid, (row, facts) in before.items():
        view = evaluate(facts, day)
        expected = view.target if RANK[view.target] > RANK[row.status] else row.status
        account = db.session.get(Account, aid)
        assert account.status == expected, (row, facts)
        assert account.dunning_next_on == next_look(facts, day), (row, facts)
        events = db.session.execute(select(AuditEvent.action, AuditEvent.reason_note).where(
            AuditEvent.account_id == aid, AuditEvent.actor_run_id == run.id)).all()
        assert [action for action, _note in events] == ([expected] if expected != row.status else [])
        if events:  # the note names exactly the invoices behind it
            assert events[0][1] == "Overdue invoices: " + ", ".join(f"#{s}" for s in sorted(view.overdue_seqs))
