"""Cancellation requests through the domain: logging, retention, pauses, write-offs and cancelling."""
from datetime import date, datetime, timedelta

import pytest
from sqlalchemy import func, select

from portal.domain import suspension
from portal.domain.auth import authenticate
from portal.domain.cancellations import cancelling, requests, retention
from portal.domain.errors import (Conflict, InvalidTransition, LoginRefused, PermissionDenied, UnpaidInvoices,
                                  ValidationFailed)
from portal.domain.gate import may
from portal.extensions import db
from portal.models import Account, AuditEvent, CancellationRequest, Invoice, OutboxEmail, Payment, RetentionAttempt, User
from tests.conftest import PASSWORD

TODAY = date(2026, 11, 30)
FORM = {"channel": "call", "contact_name": "Dana Diaz", "phone": "(201) 555-0123", "request_date": "2026-11-28",
        "collected": "1,200.00", "months": "10", "reason_code": "too_expensive", "reason": "Budget cut."}
CANCEL_NOTE = "The customer asked to leave; retention failed."


def user(person):
    return db.session.get(User, person.id)


def account_row(account_id):
    return db.session.get(Account, account_id, populate_existing=True)


def snapshot(account_id):
    """Everything a refused action must leave as it was."""
    count = lambda model: db.session.scalar(select(func.count()).select_from(model))  # noqa: E731
    a = account_row(account_id)
    open_invoices = db.session.scalar(select(func.count()).select_from(Invoice).where(
        Invoice.account_id == account_id, Invoice.written_off_at.is_(None), Invoice.paid_at.is_(None)))
    return (a.status, a.version, a.balance_cents, open_invoices, count(CancellationRequest),
            count(RetentionAttempt), count(AuditEvent), count(OutboxEmail))


def log(world, form=None, who=None):
    return requests.log_request(user(who or world.support), world.account, dict(FORM, **(form or {})), as_of=TODAY)


# ---------------------------------------------------------------- logging a request

def test_support_logs_a_request_with_the_phone_in_e164(ctx, world):
    request = log(world)
    assert (request.contact_name, request.phone, request.channel, request.request_date) == (
        "Dana Diaz", "+12015550123", "call", date(2026, 11, 28))
    assert (request.amount_collected_cents, request.months_in_program, request.reason_code, request.outcome) == (
        120000, 10, "too_expensive", "open")
    event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "cancellation_requested"))
    assert event.account_id == world.account and event.data["request_id"] == request.id
    assert requests.with_open_request([world.account, world.other_account]) == {world.account}


def test_empty_figures_are_filled_in_from_the_account(ctx, world):
    account = account_row(world.account)
    account.created_at = datetime(2025, 1, 15)
    db.session.add_all([Payment(account_id=world.account, amount_cents=5000, paid_at=datetime(2025, 3, 1)),
                        Payment(account_id=world.account, amount_cents=2550, paid_at=datetime(2025, 4, 1))])
    db.session.commit()
    request = log(world, {"collected": "", "months": ""})
    assert (request.amount_collected_cents, request.months_in_program) == (7550, 22)


@pytest.mark.parametrize("field, value, message", [
    ("contact_name", "  ", "Enter the contact's name."),
    ("request_date", "2026-12-01", "can't be in the future"),
    ("request_date", "30/11/2026", "YYYY-MM-DD"),
    ("collected", "-5", "can't be negative"),
    ("collected", "lots", "Enter the amount collected"),
    ("months", "-1", "can't be negative"),
    ("months", "ten", "whole number"),
    ("phone", "555-01", "Enter a phone number"),
    ("phone", "call me", "Enter a phone number"),
    ("channel", "fax", "call, text or email"),
    ("reason_code", "bored", "Choose a reason"),
])
def test_bad_fields_are_refused_at_the_field_and_nothing_changes(ctx, world, field, value, message):
    before = snapshot(world.account)
    with pytest.raises(ValidationFailed) as refused:
        log(world, {field: value})
    assert message in refused.value.field_errors[field]
    assert snapshot(world.account) == before


def test_a_request_needs_an_account(ctx, world):
    with pytest.raises(ValidationFailed) as refused:
        requests.log_request(user(world.support), "", FORM, as_of=TODAY)
    assert "Find the account" in refused.value.field_errors["account"]


def test_customers_cannot_log_requests(ctx, world):
    with pytest.raises(PermissionDenied):
        requests.log_request(user(world.manager), world.account, FORM, as_of=TODAY)


# ---------------------------------------------------------------- retention

def test_support_may_never_decide(ctx, world, make):
    request = log(world)
    make.invoice(world.account, amount_cents=4000)
    before = snapshot(world.account)
    with pytest.raises(PermissionDenied):
        retention.record_retention(user(world.support), request.id, "discount", "declined", "No.", as_of=TODAY)
    with pytest.raises(PermissionDenied):
        cancelling.cancel_account(user(world.support), world.account, "customer_request", CANCEL_NOTE,
                                  account_row(world.account).number, write_off=[1], write_off_note="Goodwill.")
    from portal.domain.billing.ledger import write_off
    with pytest.raises(PermissionDenied):
        write_off(user(world.support), world.account, 1, "Goodwill.")
    assert snapshot(world.account) == before


def test_a_failed_attempt_keeps_the_request_open_and_a_retained_one_closes_it(ctx, world):
    request = log(world)
    retention.record_retention(user(world.admin), request.id, "discount", "declined", "Wants 50%.", as_of=TODAY)
    assert db.session.get(CancellationRequest, request.id).outcome == "open"
    retention.record_retention(user(world.admin), request.id, "downgrade", "accepted", "Took the basic plan.",
                               outcome="retained", as_of=TODAY)
    request = db.session.get(CancellationRequest, request.id, populate_existing=True)
    assert (request.outcome, request.resolved_by_id) == ("retained", world.admin.id)
    assert [a.offer for a in requests.attempts_of(request.id)] == ["discount", "downgrade"]
    with pytest.raises(InvalidTransition):
        retention.record_retention(user(world.admin), request.id, "none", "declined", outcome="withdrawn")


def test_a_pause_suspends_until_its_end_date_then_reactivates_by_itself(ctx, world):
    request = log(world)
    until = date.today() + timedelta(days=30)
    retention.record_retention(user(world.admin), request.id, "pause", "accepted", "Back in spring.",
                               outcome="paused", pause_until=until.isoformat())
    account = account_row(world.account)
    assert (account.status, account.status_reason, account.status_source) == ("suspended", "customer_request",
                                                                               "pause")
    assert retention.end_due_pauses(until - timedelta(days=1)) == []
    assert retention.end_due_pauses(until) == [world.account]
    assert account_row(world.account).status == "active"
    assert retention.end_due_pauses(until) == []  # done once


def test_a_pause_or_a_suspension_at_the_customers_request_is_refused_while_invoices_are_unpaid(ctx, world, make):
    make.invoice(world.account, amount_cents=4000, due_date=date(2026, 10, 1))
    request = log(world)
    before = snapshot(world.account)
    with pytest.raises(UnpaidInvoices) as refused:
        retention.record_retention(user(world.admin), request.id, "pause", "accepted", outcome="paused",
                                   pause_until=(date.today() + timedelta(days=9)).isoformat())
    assert refused.value.invoices == [{"seq": 1, "owed_cents": 4000, "due_date": date(2026, 10, 1)}]
    with pytest.raises(UnpaidInvoices) as refused:
        suspension.suspend(user(world.admin), world.account, "customer_request", "Asked for a break.")
    assert "#1: $40.00 due 2026-10-01" in refused.value.message
    assert snapshot(world.account) == before
    suspension.suspend(user(world.admin), world.account, "non_payment", "Unpaid since October.")  # other reasons go on


@pytest.mark.parametrize("fields, message", [
    ({"offer": "gift"}, "offer"), ({"answer": "maybe"}, "answer"), ({"outcome": "cancelled"}, "outcome"),
    ({"outcome": "paused", "pause_until": ""}, "pause_until"),
    ({"outcome": "paused", "pause_until": "2020-01-01"}, "pause_until"),
])
def test_bad_retention_input_is_refused_and_nothing_changes(ctx, world, fields, message):
    request = log(world)
    before = snapshot(world.account)
    args = dict({"offer": "discount", "answer": "declined", "outcome": "open", "pause_until": None}, **fields)
    with pytest.raises(ValidationFailed) as refused:
        retention.record_retention(user(world.admin), request.id, args["offer"], args["answer"], "",
                                   outcome=args["outcome"], pause_until=args["pause_until"])
    assert message in refused.value.field_errors
    assert snapshot(world.account) == before


# ---------------------------------------------------------------- cancelling

def _two_unpaid(make, world):
    make.invoice(world.account, amount_cents=7000, due_date=date(2026, 9, 1))
    make.invoice(world.account, amount_cents=5000, due_date=date(2026, 10, 1))


def test_cancelling_is_refused_while_invoices_are_unpaid_and_lists_them(ctx, world, make):
    _two_unpaid(make, world)
    number = account_row(world.account).number
    before = snapshot(world.account)
    with pytest.raises(UnpaidInvoices) as refused:
        cancelling.cancel_account(user(world.admin), world.account, "customer_request", CANCEL_NOTE, number)
    assert [i["seq"] for i in refused.value.invoices] == [1, 2]
    assert "2 unpaid invoices ($120.00)" in refused.value.message
    assert snapshot(world.account) == before


def test_write_off_and_cancel_in_one_go(ctx, world, make):
    _two_unpaid(make, world)
    request = log(world)
    number = account_row(world.account).number
    account, written = cancelling.cancel_account(user(world.admin), world.account, "customer_request", CANCEL_NOTE,
                                                 number.lower(), write_off=["1", "#2"],
                                                 write_off_note="Goodwill on leaving.")
    assert [inv.seq for inv in written] == [1, 2]
    assert (account.status, account.balance_cents) == ("cancelled", 0)
    assert db.session.get(CancellationRequest, request.id, populate_existing=True).outcome == "cancelled"
    actions = list(db.session.scalars(select(AuditEvent.action).where(AuditEvent.account_id == world.account)
                                      .order_by(AuditEvent.id)))
    assert actions[-3:] == ["invoice_written_off", "invoice_written_off", "cancelled"]
    mail = db.session.scalar(select(OutboxEmail).where(OutboxEmail.kind == "account_cancelled"))
    assert (mail.to_addr, mail.status) == (world.manager.email, "pending")
    for person in (world.manager, world.tier, world.member):
        with pytest.raises(LoginRefused) as refused:
            authenticate(person.email, PASSWORD)
        assert "has been cancelled" in refused.value.message
    assert not may("system", "run_campaign", account)
    with pytest.raises(InvalidTransition):  # cancelling twice
        cancelling.cancel_account(user(world.admin), world.account, "customer_request", CANCEL_NOTE, number)


def test_the_dialog_is_all_or_nothing_when_the_cancel_step_fails(ctx, world, make, monkeypatch):
    _two_unpaid(make, world)
    number = account_row(world.account).number
    before = snapshot(world.account)

    def someone_else_changed_it(account, *args):
        db.session.rollback()
        raise Conflict("changed at the same moment")

    monkeypatch.setattr(cancelling, "_set_cancelled", someone_else_changed_it)
    with pytest.raises(Conflict):
        cancelling.cancel_account(user(world.admin), world.account, "customer_request", CANCEL_NOTE, number,
                                  write_off=[1, 2], write_off_note="Goodwill on leaving.")
    db.session.remove()
    assert snapshot(world.account) == before


def test_writing_off_only_some_invoices_still_refuses_and_writes_off_nothing(ctx, world, make):
    _two_unpaid(make, world)
    number = account_row(world.account).number
    before = snapshot(world.account)
    with pytest.raises(UnpaidInvoices) as refused:
        cancelling.cancel_account(user(world.admin), world.account, "customer_request", CANCEL_NOTE, number,
                                  write_off=[1], write_off_note="Goodwill.")
    assert [i["seq"] for i in refused.value.invoices] == [2]
    assert snapshot(world.account) == before


@pytest.mark.parametrize("kwargs, field", [
    ({"confirm_number": "T0"}, "confirm_number"),
    ({"write_off": [1], "write_off_note": ""}, "reason"),
    ({"write_off": [3], "write_off_note": "Goodwill."}, "invoice"),
    ({"write_off": ["x"], "write_off_note": "Goodwill."}, "invoices"),
    ({"reason_note": ""}, "reason_note"),
])
def test_bad_cancel_input_is_refused_and_nothing_changes(ctx, world, make, kwargs, field):
    make.invoice(world.account, amount_cents=7000)
    make.invoice(world.account, amount_cents=100, paid=True)  # #2 is already paid
    number = account_row(world.account).number
    args = dict({"reason_category": "customer_request", "reason_note": CANCEL_NOTE, "confirm_number": number},
                **kwargs)
    before = snapshot(world.account)
    with pytest.raises(ValidationFailed) as refused:
        cancelling.cancel_account(user(world.admin), world.account, **args)
    assert field in refused.value.field_errors
    assert snapshot(world.account) == before


def test_writing_off_a_paid_invoice_is_refused(ctx, world, make):
    make.invoice(world.account, amount_cents=100, paid=True)
    number = account_row(world.account).number
    with pytest.raises(ValidationFailed) as refused:
        cancelling.cancel_account(user(world.admin), world.account, "customer_request", CANCEL_NOTE, number,
                                  write_off=[1], write_off_note="Goodwill.")
    assert "no open invoice #1" in refused.value.field_errors["invoice"]


# ---------------------------------------------------------------- what leaves a cancelled account alone

def test_sweeps_the_dunning_run_and_its_schedule_leave_a_cancelled_account_alone(ctx, world, make):
    from sqlalchemy import delete

    from portal.domain import runs, sweeps
    from portal.domain.dunning import calendar
    from portal.domain.dunning.daily import start_daily_run
    from portal.domain.dunning.facts import account_facts
    from portal.models import SuspensionRule

    old = datetime(2023, 1, 1)
    account = account_row(world.account)
    account.created_at, account.last_activity_at = old, old
    account.customer_class_id = make.customer_class("Standard", limit_after_days=15, suspend_after_days=20)
    control = account_row(world.other_account)  # just as dormant, not cancelled: the sweep takes it
    control.created_at, control.last_activity_at = old, old
    db.session.commit()
    cancelling.cancel_account(user(world.admin), world.account, "customer_request", CANCEL_NOTE,
                              account.number)
    make.invoice(world.account, amount_cents=90000, due_date=date.today() - timedelta(days=60))  # a late bill
    db.session.execute(delete(SuspensionRule))
    for rule in sweeps.DEFAULT_RULES:
        db.session.add(SuspensionRule(enabled=True, **rule))
    db.session.commit()
    before = snapshot(world.account)

    cleanup = sweeps.start_cleanup(user(world.admin), sweeps.BY_RULE, "Yearly clean-up")
    runs.process_run(cleanup.id, worker_name="test", poll=0)
    daily = start_daily_run(None, date.today(), enqueue=False)
    assert runs.process_run(daily.id, worker_name="test", poll=0)["status"] == "done"
    db.session.expire_all()
    view = calendar.evaluate(account_facts(account_row(world.account)), date.today())
    assert (view.status, view.target, view.pending_action) == ("cancelled", "active", None)
    assert account_row(world.other_account).status == "suspended"
    after = snapshot(world.account)
    assert after[:5] == before[:5]  # status, version, balance, invoices, requests
    assert not db.session.scalars(select(AuditEvent).where(AuditEvent.account_id == world.account,
                                                           AuditEvent.created_at > account.status_changed_at,
                                                           AuditEvent.action != "cancelled")).all()


def test_the_schedulers_tick_ends_a_pause_on_its_date(ctx, world):
    from portal.domain import schedule

    request = log(world)
    until = date.today() + timedelta(days=3)
    retention.record_retention(user(world.admin), request.id, "pause", "accepted", outcome="paused",
                               pause_until=until.isoformat())
    assert schedule.tick(now=datetime.combine(until - timedelta(days=1), datetime.min.time()))["pauses_ended"] == []
    assert account_row(world.account).status == "suspended"
    assert schedule.tick(now=datetime.combine(until, datetime.min.time()))["pauses_ended"] == [world.account]
    assert account_row(world.account).status == "active"
    mail = db.session.scalars(select(OutboxEmail.kind).where(OutboxEmail.account_id == world.account)
                              .order_by(OutboxEmail.id)).all()
    assert mail == ["account_suspended", "account_reactivated"]


def test_rows_imported_by_someone_else_at_the_same_moment_import_nothing(ctx, world, monkeypatch):
    from portal.domain.cancellations import importing

    number = account_row(world.account).number
    sheet = f"Account number,Name,Date,Reason\n{number},Dana Diaz,2025-11-02,Too expensive\n".encode()
    plan_import = importing.plan_import

    def racing(*args, **kwargs):
        plan = plan_import(*args, **kwargs)
        _row, v, key = plan.creates[0]
        db.session.add(CancellationRequest(account_id=world.account, contact_name="Dana Diaz", channel="call",
                                           request_date=v["request_date"], amount_collected_cents=0,
                                           months_in_program=0, reason="", outcome="open", import_key=key))
        return plan

    monkeypatch.setattr(importing, "plan_import", racing)
    with pytest.raises(Conflict):
        importing.run_import(user(world.support), "old.csv", sheet)
    assert db.session.scalar(select(func.count()).select_from(CancellationRequest)) == 0
