"""The dunning schedule's reference calendars, replayed day by day through the domain and the daily run.

Each day: the daily run of that day (on the run engine, processed in this process), then the record
as the account page, the list and `flask account show` read it. SQLite and PostgreSQL both.
"""
import json
from datetime import date, timedelta

import pytest
from sqlalchemy import func, select

from portal.domain import runs
from portal.domain.billing import ledger
from portal.domain.dunning import overrides
from portal.domain.dunning.daily import start_daily_run
from portal.domain.dunning.status import record
from portal.domain.errors import InvalidTransition, ValidationFailed
from portal.domain.runs import PeriodAlreadyRun
from portal.extensions import db
from portal.models import Account, AuditEvent, Invoice, OutboxEmail, User

AUG31 = date(2026, 8, 31)


def day(month, dom):
    return date(2026, month, dom)


@pytest.fixture
def admin(ctx, make):
    return db.session.get(User, make.user("super_admin").id)


@pytest.fixture
def standard(make):
    return make.customer_class("Standard", limit_after_days=15, suspend_after_days=20)


@pytest.fixture
def overdue_account(ctx, make, standard, admin):
    """An account in the class (limit after 15 days, suspend after 20), one $49.00 invoice due Aug 31."""
    account_id = make.account(customer_class_id=standard)
    make.user("account_manager", account_id=account_id)
    ledger.add_invoice(admin, account_id, "49.00", AUG31, as_of=day(8, 1))
    return account_id


def run_day(on):
    """The daily run of one day, processed here as a sweeps worker would."""
    run = start_daily_run(None, on, enqueue=False)
    result = runs.process_run(run.id, worker_name="test", poll=0)
    assert result["status"] == "done", result
    return result


def replay(account_id, first, last, actions=None):
    """Run each day from first to last; return {day: (label, service, pending_action, pending_date)}."""
    seen, current = {}, first
    while current <= last:
        (actions or {}).get(current, lambda: None)()
        run_day(current)
        db.session.expire_all()
        rec = record(db.session.get(Account, account_id), current)
        seen[current] = (rec["label"], rec["service"], rec["pending_action"], rec["pending_date"])
        current += timedelta(days=1)
    return seen


def test_a_class_limits_on_day_15_and_suspends_on_day_20(overdue_account):
    seen = replay(overdue_account, day(8, 30), day(9, 22))
    assert seen[day(8, 31)][:2] == ("Active", "full")
    assert seen[day(9, 1)] == ("Limitation pending", "full", "limitation", "2026-09-15")
    assert seen[day(9, 14)][:2] == ("Limitation pending", "full")
    assert seen[day(9, 15)] == ("Limited", "limited", "suspension", "2026-09-20")
    assert seen[day(9, 19)][:2] == ("Limited", "limited")
    assert seen[day(9, 20)] == ("Suspended", "suspended", None, None)
    assert seen[day(9, 22)][:2] == ("Suspended", "suspended")
    events = db.session.execute(select(AuditEvent.action, AuditEvent.created_at).where(
        AuditEvent.account_id == overdue_account, AuditEvent.action.in_(("limited", "suspended")))
        .order_by(AuditEvent.id)).all()
    assert [(a, c.date()) for a, c in events] == [("limited", day(9, 15)), ("suspended", day(9, 20))]
    kinds = db.session.scalars(select(OutboxEmail.kind).where(OutboxEmail.account_id == overdue_account)
                               .order_by(OutboxEmail.id)).all()
    assert kinds == ["dunning_limited", "dunning_suspended"]


def test_b_a_suspension_shifted_to_sep_30_holds_off_every_restriction(overdue_account, admin):
    def shift():
        overrides.shift(admin, overdue_account, suspension_date=day(9, 30), reason_note="Promised to pay",
                        as_of=day(9, 10))

    seen = replay(overdue_account, day(9, 10), day(10, 1), actions={day(9, 10): shift})
    assert seen[day(9, 15)] == ("Service limitation delayed", "full", "suspension", "2026-09-30")
    assert seen[day(9, 20)] == ("Suspension delayed", "full", "suspension", "2026-09-30")
    assert seen[day(9, 29)][:2] == ("Suspension delayed", "full")
    assert seen[day(9, 30)][:2] == ("Suspended", "suspended")


def test_c_john_doe_limitation_shifted_from_sep_15_to_sep_18(overdue_account, admin):
    def shift():
        overrides.shift(admin, overdue_account, limitation_date=day(9, 18), reason_note="John Doe called",
                        as_of=day(9, 14))

    seen = replay(overdue_account, day(9, 14), day(9, 20), actions={day(9, 14): shift})
    assert seen[day(9, 15)][:2] == ("Service limitation delayed", "full")
    assert seen[day(9, 17)][:2] == ("Service limitation delayed", "full")
    assert seen[day(9, 18)][:2] == ("Limited", "limited")
    assert seen[day(9, 20)][:2] == ("Suspended", "suspended")


def test_d_a_lift_for_two_business_days_not_paid_reapplies(overdue_account, admin):
    replay(overdue_account, day(9, 20), day(9, 20))

    def lift():
        overrides.lift(admin, overdue_account, day(9, 23), reason_note="Two business days to pay", as_of=day(9, 21))

    seen = replay(overdue_account, day(9, 21), day(9, 24), actions={day(9, 21): lift})
    assert seen[day(9, 21)] == ("Suspension delayed", "full", "reapply", "2026-09-23")
    assert seen[day(9, 22)][:2] == ("Suspension delayed", "full")
    assert seen[day(9, 23)][:2] == ("Suspended", "suspended")
    reapplied = db.session.scalar(select(AuditEvent.data).where(AuditEvent.account_id == overdue_account,
                                                                 AuditEvent.action == "suspended")
                                  .order_by(AuditEvent.id.desc()).limit(1))
    assert reapplied["reapplied"] is True


def test_d_a_lift_paid_the_day_before_stays_active(overdue_account, admin):
    replay(overdue_account, day(9, 20), day(9, 20))

    def lift():
        overrides.lift(admin, overdue_account, day(9, 23), reason_note="Two business days to pay", as_of=day(9, 21))

    def pay():
        outcome = ledger.record_payment(admin, overdue_account, "49.00", as_of=day(9, 22))
        assert not outcome.restored  # service was already full (lifted); nothing to restore

    seen = replay(overdue_account, day(9, 21), day(9, 26), actions={day(9, 21): lift, day(9, 22): pay})
    assert seen[day(9, 22)][:2] == ("Active", "full")
    assert seen[day(9, 23)][:2] == ("Active", "full")
    assert seen[day(9, 26)][:2] == ("Active", "full")


def test_paying_everything_clears_the_automatic_suspension_at_once(overdue_account, admin):
    replay(overdue_account, day(9, 20), day(9, 20))
    outcome = ledger.record_payment(admin, overdue_account, "49.00", as_of=day(9, 21))
    assert outcome.restored and outcome.status == "active"
    account = db.session.get(Account, overdue_account)
    assert account.status == "active" and account.balance_cents == 0
    assert db.session.scalar(select(OutboxEmail.kind).order_by(OutboxEmail.id.desc()).limit(1)) == "service_restored"


def test_a_partial_payment_leaving_an_amount_overdue_keeps_the_restriction_and_the_escalation(
        overdue_account, admin):
    ledger.add_invoice(admin, overdue_account, "20.00", day(9, 5), as_of=day(9, 1))
    replay(overdue_account, day(9, 15), day(9, 15))
    ledger.record_payment(admin, overdue_account, "49.00", as_of=day(9, 16))  # the oldest invoice, in full
    seen = replay(overdue_account, day(9, 16), day(9, 20))
    assert seen[day(9, 16)][:2] == ("Limited", "limited")
    # the episode still began on Aug 31: paying its first invoice did not move the start
    assert seen[day(9, 20)][:2] == ("Suspended", "suspended")
    assert record(db.session.get(Account, overdue_account), day(9, 20))["overdue_invoices"] == [2]


def test_a_manual_non_payment_suspension_stays_when_paid_and_says_so(overdue_account, admin):
    from portal.domain import suspension

    suspension.suspend(admin, overdue_account, "non_payment", "Called, will not pay")
    ledger.record_payment(admin, overdue_account, "49.00", as_of=day(9, 2))
    rec = record(db.session.get(Account, overdue_account), day(9, 2))
    assert rec["label"] == "Suspended" and rec["all_paid"] is True


def test_one_run_per_day_and_a_day_with_nothing_due_has_no_chunk(overdue_account):
    first = run_day(day(9, 1))
    with pytest.raises(PeriodAlreadyRun):
        start_daily_run(None, day(9, 1), enqueue=False)
    assert first["matched"] == 1  # the account's next look was due
    nothing = run_day(day(9, 2))
    assert nothing["chunks"] == 0 and nothing["changed"] == 0


def test_shift_dates_that_change_nothing_are_refused_at_the_field(overdue_account, admin):
    with pytest.raises(ValidationFailed) as refused:
        overrides.shift(admin, overdue_account, limitation_date=day(9, 12), reason_note="x", as_of=day(9, 10))
    assert "later date wins" in refused.value.field_errors["limitation_date"]
    with pytest.raises(ValidationFailed) as past:
        overrides.shift(admin, overdue_account, suspension_date=day(9, 10), reason_note="x", as_of=day(9, 10))
    assert "after today" in past.value.field_errors["suspension_date"]
    with pytest.raises(InvalidTransition):
        overrides.lift(admin, overdue_account, day(9, 12), reason_note="x", as_of=day(9, 10))  # not restricted
    replay(overdue_account, day(9, 15), day(9, 15))
    with pytest.raises(ValidationFailed) as too_far:
        overrides.lift(admin, overdue_account, day(11, 1), reason_note="x", as_of=day(9, 15))
    assert "at most 30 days" in too_far.value.field_errors["until"]


def test_payments_keep_the_balance_equal_to_what_open_invoices_owe(overdue_account, admin):
    def owed():
        return db.session.scalar(select(func.coalesce(func.sum(Invoice.amount_cents - Invoice.paid_cents), 0))
                                 .where(Invoice.account_id == overdue_account, Invoice.paid_at.is_(None),
                                        Invoice.written_off_at.is_(None)))

    steps = [lambda: ledger.add_invoice(admin, overdue_account, "10.50", day(9, 30), as_of=day(9, 1)),
             lambda: ledger.record_payment(admin, overdue_account, "20.00", as_of=day(9, 2)),
             lambda: ledger.record_payment(admin, overdue_account, "5.25", invoice_seq=2, as_of=day(9, 3)),
             lambda: ledger.write_off(admin, overdue_account, 1, "Goodwill", as_of=day(9, 4)),
             lambda: ledger.record_payment(admin, overdue_account, "100.00", as_of=day(9, 5)),
             lambda: ledger.add_invoice(admin, overdue_account, "30.00", day(10, 30), as_of=day(9, 6))]
    for step in steps:
        step()
        db.session.expire_all()
        account = db.session.get(Account, overdue_account)
        assert account.balance_cents == owed()
    account = db.session.get(Account, overdue_account)
    assert account.balance_cents == 0 and account.credit_cents == 10000 - 525 - 3000


def test_bad_payments_are_refused_and_nothing_changes(overdue_account, admin):
    for amount in ("0", "-5", "abc", "1e1000000", "²"):
        with pytest.raises(ValidationFailed):
            ledger.record_payment(admin, overdue_account, amount)
    with pytest.raises(ValidationFailed):
        ledger.record_payment(admin, overdue_account, "10.00", invoice_seq=99)
    assert db.session.get(Account, overdue_account).balance_cents == 4900


def test_the_commands_replay_a_calendar(app, runner, overdue_account, admin, standard):
    number = db.session.get(Account, overdue_account).number
    db.session.commit()

    def show(on):
        result = runner.invoke(args=["account", "show", number, "--json", "--as-of", on])
        assert result.exit_code == 0, result.output
        return json.loads(result.output)

    assert show("2026-09-01")["status"] == "limitation_pending"
    shifted = runner.invoke(args=["account", "shift", number, "--suspension-date", "2026-09-30", "--note", "promised",
                                  "--as", admin.email, "--as-of", "2026-09-10"])
    assert shifted.exit_code == 0, shifted.output
    refused = runner.invoke(args=["account", "shift", number, "--limitation-date", "2026-09-11", "--note", "x",
                                  "--as", admin.email, "--as-of", "2026-09-10"])
    assert refused.exit_code != 0 and "later date wins" in refused.output
    record_on = show("2026-09-20")
    assert record_on == dict(record_on, status="suspension_delayed", label="Suspension delayed",
                             pending_action="suspension", pending_date="2026-09-30", overdue_invoices=[1],
                             service="full", number=number)
    paid = runner.invoke(args=["billing", "pay", number, "--amount", "49.00", "--as", admin.email,
                               "--as-of", "2026-09-21"])
    assert paid.exit_code == 0 and "recorded" in paid.output
    assert show("2026-09-30")["status"] == "active"
    seq = runner.invoke(args=["billing", "invoice", number, "--amount", "12.00", "--due", "2026-10-31",
                              "--as", admin.email])
    assert seq.exit_code == 0 and seq.output.strip() == "2"


def test_suspend_and_reactivate_take_as_of(app, runner, overdue_account, admin):
    number = db.session.get(Account, overdue_account).number
    db.session.commit()
    result = runner.invoke(args=["account", "suspend", number, "--reason", "other", "--note", "replay",
                                 "--as", admin.email, "--as-of", "2026-09-03"])
    assert result.exit_code == 0, result.output
    changed_at = db.session.scalar(select(AuditEvent.created_at).where(AuditEvent.account_id == overdue_account,
                                                                       AuditEvent.action == "suspended"))
    assert changed_at.date() == day(9, 3)
    refused = runner.invoke(args=["account", "reactivate", number, "--reason", "other", "--note", "replay",
                                  "--as", admin.email, "--as-of", "2026-13-01"])
    assert refused.exit_code != 0 and "2026-13-01" in refused.output


def test_a_class_warning_goes_out_once_k_days_before_each_step(ctx, make, admin):
    from portal.domain.dunning import classes

    warned = classes.create_class(admin, {"name": "Warned", "limit_after_days": "15", "suspend_after_days": "20",
                                          "warning_days": "3"})
    account_id = make.account(customer_class_id=warned.id)
    make.user("account_manager", account_id=account_id)
    ledger.add_invoice(admin, account_id, "49.00", AUG31, as_of=day(8, 1))
    replay(account_id, day(9, 10), day(9, 20))
    emails = db.session.execute(select(OutboxEmail.kind, OutboxEmail.created_at, OutboxEmail.subject)
                                .where(OutboxEmail.account_id == account_id).order_by(OutboxEmail.id)).all()
    assert [(kind, sent.date()) for kind, sent, _subject in emails] == [
        ("dunning_warning", day(9, 12)), ("dunning_limited", day(9, 15)),
        ("dunning_warning", day(9, 17)), ("dunning_suspended", day(9, 20))]
    assert "will be limited on 2026-09-15" in emails[0][2] and "will be suspended on 2026-09-20" in emails[2][2]


def test_two_admins_shifting_the_same_account_at_once_one_wins(overdue_account, admin, make):
    from portal.domain.errors import Conflict

    other = db.session.get(User, make.user("super_admin").id)
    version = db.session.get(Account, overdue_account).version
    overrides.shift(admin, overdue_account, suspension_date=day(9, 30), reason_note="first", as_of=day(9, 10),
                    expected_version=version)
    with pytest.raises(Conflict):
        overrides.shift(other, overdue_account, suspension_date=day(10, 5), reason_note="second", as_of=day(9, 10),
                        expected_version=version)
    rec = record(db.session.get(Account, overdue_account), day(9, 21))
    assert rec["pending_date"] == "2026-09-30"
