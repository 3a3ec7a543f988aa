"""One account's dunning state inside a transaction: lock it, read its view, apply or clear the schedule.

Billing (payments, invoices, write-offs), shifts and lifts all end the same way: the episode is pinned
or ended, a restriction applied automatically for non-payment is cleared when nothing counts as
overdue any more, a due step is applied, and the day the daily run must look again is planned.
"""
from datetime import date, datetime

from sqlalchemy import select, update

from portal.domain import audit, notify
from portal.domain.dunning.calendar import AUTOMATIC_SOURCES, RANK, evaluate, next_look, warning_due
from portal.domain.dunning.facts import account_facts
from portal.domain.errors import AccountNotFound, Conflict
from portal.extensions import db
from portal.models import Account, ScheduleOverride
from portal.domain.money import dollars
from portal.timeutil import utcnow


def day_of(as_of):
    """The day an as-of value stands for (a date, a datetime, or None for today)."""
    if as_of is None:
        return utcnow().date()
    return as_of.date() if isinstance(as_of, datetime) else as_of


def moment_of(as_of):
    """The time written on a change taken as of as_of (now when as_of is today or None)."""
    if as_of is None:
        return utcnow()
    if isinstance(as_of, datetime):
        return as_of
    now = utcnow()
    return now if as_of == now.date() else datetime.combine(as_of, datetime.min.time())


def lock_account(account_id, expected_version=None):
    """Take the account's row lock for this transaction (both databases) and return it read fresh.

    Bumping the version is the lock: a second transaction doing the same waits (PostgreSQL) or is
    refused the write lock (SQLite), so two payments or two shifts never interleave. With an
    expected_version (the version a form showed), the change is refused if anyone changed it since.
    The UPDATE returns the row (RETURNING), so the lock and the fresh read are one statement.

    Raises:
        AccountNotFound: no such account.
        Conflict: the account changed since expected_version.
    """
    query = update(Account).where(Account.id == account_id)
    if expected_version is not None:
        query = query.where(Account.version == expected_version)
    account = db.session.scalars(query.values(version=Account.version + 1).returning(Account)
                                 .execution_options(synchronize_session=False, populate_existing=True)).one_or_none()
    if account is None:
        db.session.rollback()
        if expected_version is not None and db.session.get(Account, account_id) is not None:
            raise Conflict("This account was changed by someone else since you opened the form. Nothing was "
                           "changed; review it and try again.")
        raise AccountNotFound()
    return account


def view_of(account, as_of=None, held=None):
    """The account's dunning View on as_of (default today), from what is stored (or held: facts.Held)."""
    return evaluate(account_facts(account, held), day_of(as_of))


def is_automatic_non_payment(account):
    """A restriction the schedule or a sweep applied for non-payment (a payment clears it by itself)."""
    if account.status == "limited":
        return True
    return (account.status == "suspended" and account.status_reason == "non_payment"
            and account.status_source in AUTOMATIC_SOURCES)


def invoice_list(view):
    """The overdue invoices of a view in words: "#3 ($49.00, due 2026-08-31), #4 (...)"."""
    return ", ".join(f"#{inv.seq} ({dollars(inv.owed_cents)}, due {inv.due_date.isoformat()})"
                     for inv in view.overdue)


def live_override(account_id):
    """The account's live ScheduleOverride row, or None."""
    return db.session.scalar(select(ScheduleOverride).where(ScheduleOverride.account_id == account_id,
                                                            ScheduleOverride.ended_at.is_(None)))


def end_override(account_id, why, now, held=None):
    """End the account's live manual dates (their episode ended, or an admin cancelled them).

    With held (facts.Held), the held row is ended (no statement when the account has none).
    """
    if held is not None:
        if held.override_row is not None and held.override_row.ended_at is None:
            held.override_row.ended_at, held.override_row.end_reason = now, why
        return
    db.session.execute(update(ScheduleOverride).where(ScheduleOverride.account_id == account_id,
                                                      ScheduleOverride.ended_at.is_(None))
                       .values(ended_at=now, end_reason=why).execution_options(synchronize_session=False))


def after_billing(account, start_before, as_of, actor, now, cause, held=None):
    """Finish a billing change: pin or end the episode, clear an automatic restriction, plan the next look.

    Args:
        account: the locked Account, with its invoices already changed in this transaction.
        start_before: the episode start before the change (None if no episode counted).
        as_of: the day of the change.
        actor: who acted (a User or a label).
        now: the time written on the change.
        cause: "payment", "write_off" or "invoice".
        held: what the transaction holds about the account (facts.Held, its invoices as changed); None: the
            facts are read afresh at each step, after a flush.

    Returns:
        True if a restriction was cleared (service restored).
    """
    day = day_of(as_of)
    facts = account_facts(account, held)
    view = evaluate(facts, day)
    restored = False
    if view.episode_start is None:
        account.dunning_since, account.dunning_warned = None, None
        end_override(account.id, "paid" if cause != "invoice" else "ended", now, held)
        if is_automatic_non_payment(account):
            restore_service(account, actor, now, cause)
            restored = True
    elif start_before is not None and account.dunning_since != start_before:
        account.dunning_since = start_before  # paying some invoices does not move the episode's start
    if held is None:
        db.session.flush()
    if cause == "invoice":  # a backdated invoice can make a step due today: it applies now, not tomorrow
        apply_schedule(account, day, actor, now, held=held)
    plan_next_look(account, day, held)
    return restored


def restore_service(account, actor, now, cause):
    """Clear an automatic non-payment restriction at once: active, audited, managers emailed, mail released."""
    before = account.status
    account.status, account.status_reason, account.status_note = "active", None, None
    account.status_source, account.status_changed_at, account.suspended_by_run_id = None, now, None
    audit.record("service_restored", account.id, actor, reason_category="non_payment",
                 reason_note=f"Nothing is overdue any more ({cause.replace('_', '-')}).",
                 state_before=before, state_after="active", data={"cause": cause}, now=now)
    notify.release_held(account.id)
    for manager in notify.account_managers(account.id):
        notify.queue_email(manager, "service_restored", f"Service on account {account.number} is restored",
                           "service_restored.txt", account=account, now=now)


def plan_next_look(account, day, held=None):
    """Store the first day the daily run must look at the account (today if a step is due now)."""
    facts = account_facts(account, held)
    view = evaluate(facts, day)
    due_now = RANK.get(account.status, 0) < RANK[view.target] and account.status != "cancelled"
    warning = warning_due(facts, view)
    if due_now or (warning and warning[0] != account.dunning_warned):
        account.dunning_next_on = day
    else:
        account.dunning_next_on = next_look(facts, day)
    if held is None:
        db.session.flush()
    return view


def apply_schedule(account, as_of, actor, now, run_id=None, held=None):
    """Escalate one account to what the schedule applies on as_of, if that is more than it has now.

    Returns the state after (unchanged if nothing was due). Used when a manual date is cancelled; the
    daily run does the same for many accounts at once, set-based. held: see after_billing.
    """
    from portal.domain.dunning.emails import queue_step_emails

    facts = account_facts(account, held)
    view = evaluate(facts, day_of(as_of))
    if account.status == "cancelled" or account.exempt or RANK.get(account.status, 0) >= RANK[view.target]:
        return account.status
    before = account.status
    account.status, account.status_reason, account.status_source = view.target, "non_payment", "dunning"
    account.status_note = f"Overdue invoices: {invoice_list(view)}"
    account.status_changed_at, account.suspended_by_run_id = now, run_id
    audit.record(view.target, account.id, actor, run_id=run_id, reason_category="non_payment",
                 reason_note=account.status_note, state_before=before, state_after=view.target,
                 data={"dunning": True, "invoices": view.overdue_seqs}, now=now)
    if view.target == "suspended":
        notify.hold_members_mail(account.id)
    queue_step_emails(view.target, [account.id], now, {account.id: view})
    db.session.flush()
    return view.target


def as_date(value):
    """A date from a date or datetime (or None)."""
    if value is None or isinstance(value, date) and not isinstance(value, datetime):
        return value
    return value.date()
