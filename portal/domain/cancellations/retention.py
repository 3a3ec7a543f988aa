"""Retention (super admins, the managers): attempts on a request and how it ends; pauses that end by themselves.

A pause is a suspension at the customer's request (refused while invoices are unpaid) with an end date;
on that date `end_due_pauses` reactivates the account, as the scheduler's tick calls it every day.
"""
from datetime import timedelta

from sqlalchemy import select, update

from portal.domain import audit, notify, suspension
from portal.domain.cancellations.choices import ANSWERS, ATTEMPT_OUTCOMES, OFFERS, OUTCOMES
from portal.domain.cancellations.requests import get_request
from portal.domain.dunning.account_state import day_of, moment_of
from portal.domain.errors import InvalidTransition, ValidationFailed
from portal.domain.gate import require
from portal.domain.parsing import InvalidValue, clean_text, date_message, iso_date
from portal.extensions import db
from portal.models import Account, CancellationRequest, RetentionAttempt

NOTE_MAX = 1000
PAUSE_MAX_DAYS = 366


def _read_attempt(offer, answer, note, outcome, pause_until, today):
    """Return (offer, answer, note, outcome, pause_until) cleaned, or raise ValidationFailed naming each field."""
    errors = {}
    offer, answer, outcome = (str(v or "").strip() for v in (offer, answer, outcome or "open"))
    if offer not in OFFERS:
        errors["offer"] = "Choose the offer made: discount, pause, downgrade or none."
    if answer not in ANSWERS:
        errors["answer"] = "Choose the customer's answer."
    if outcome not in ATTEMPT_OUTCOMES:
        errors["outcome"] = ("To cancel, use Cancel account." if outcome == "cancelled"
                             else "Choose how the request ends: still open, retained, paused or withdrawn.")
    try:
        note = clean_text(note, "The note")
        if len(note) > NOTE_MAX:
            errors["note"] = f"Keep the note to {NOTE_MAX} characters (it has {len(note)})."
    except InvalidValue as exc:
        errors["note"] = exc.message
    until = None
    if outcome == "paused":
        try:
            until = iso_date(pause_until, date_message("the day the pause ends"))
            if not today < until <= today + timedelta(days=PAUSE_MAX_DAYS):
                errors["pause_until"] = f"The pause must end after today and within {PAUSE_MAX_DAYS} days."
        except InvalidValue as exc:
            errors["pause_until"] = exc.message
    if errors:
        raise ValidationFailed(errors)
    return offer, answer, note, outcome, until


def record_retention(actor, request_id, offer, answer, note="", outcome="open", pause_until=None, as_of=None):
    """Record a retention attempt on an open request and, if it decides, how the request ends; audited.

    Args:
        actor: the super admin (a User).
        request_id: the request.
        offer: one of OFFERS; answer: one of ANSWERS; note: free text (up to NOTE_MAX).
        outcome: "open" (still open), "retained", "paused" or "withdrawn".
        pause_until: for "paused", the day the account reactivates by itself (after today, within a year).
        as_of: the time of the attempt (default now).

    Returns:
        The new RetentionAttempt.

    Raises:
        RequestNotFound, PermissionDenied (not a super admin), ValidationFailed (a field),
        InvalidTransition (the request is already decided, or a pause of an account not active or limited),
        UnpaidInvoices (a pause while invoices are open), Conflict.
    """
    request = get_request(request_id)
    require(actor, "record_retention", request.account)
    now, today = moment_of(as_of), day_of(as_of)
    offer, answer, note, outcome, until = _read_attempt(offer, answer, note, outcome, pause_until, today)
    if request.outcome != "open":
        raise InvalidTransition(f"Request #{request.id} is already {OUTCOMES[request.outcome].lower()}; "
                                "nothing was changed.")
    attempt = RetentionAttempt(request_id=request.id, attempted_at=now, offer=offer, answer=answer,
                               note=note or None, created_by_id=getattr(actor, "id", None), created_at=now)
    db.session.add(attempt)
    if outcome == "paused":
        suspension.suspend_in_transaction(actor, request.account_id, "customer_request",
                                          f"Paused at the customer's request until {until.isoformat()} "
                                          f"(request #{request.id}).", now=now, source="pause")
    if outcome != "open":
        request.outcome, request.outcome_note, request.pause_until = outcome, note or None, until
        request.resolved_by_id, request.resolved_at = getattr(actor, "id", None), now
    db.session.flush()
    audit.record("retention_attempted", request.account_id, actor, reason_note=note or None,
                 data={"request_id": request.id, "offer": offer, "answer": answer, "outcome": outcome,
                       "pause_until": until.isoformat() if until else None}, now=now)
    db.session.commit()
    notify.kick_delivery()
    return attempt


def end_due_pauses(as_of=None):
    """Reactivate every account whose pause ended on or before as_of's day; return their ids.

    Only an account still suspended by that pause (status_source "pause") is touched; one a super
    admin suspended again for another reason stays suspended. Each account is its own compare-and-set,
    audited and emailed, so running this twice changes nothing the second time.
    """
    now, day = moment_of(as_of), day_of(as_of)
    due = db.session.execute(
        select(CancellationRequest.id, Account.id, Account.version).join(Account)
        .where(CancellationRequest.outcome == "paused", CancellationRequest.pause_until <= day,
               Account.status == "suspended", Account.status_source == "pause")).all()
    ended = []
    for request_id, account_id, version in due:
        if _end_pause(request_id, account_id, version, now):
            ended.append(account_id)
    return ended


def _end_pause(request_id, account_id, version, now):
    values = dict(status="active", status_reason=None, status_note=None, status_source=None,
                  status_changed_at=now, suspended_by_run_id=None, version=Account.version + 1)
    changed = db.session.execute(update(Account).where(Account.id == account_id, Account.version == version,
                                                       Account.status_source == "pause")
                                 .values(**values).execution_options(synchronize_session=False)).rowcount
    if changed != 1:
        db.session.rollback()
        return False
    account = db.session.get(Account, account_id, populate_existing=True)
    actor = f"Pause of request #{request_id}"
    audit.record("reactivated", account_id, actor, reason_category="customer_request",
                 reason_note="The pause at the customer's request ended.", state_before="suspended",
                 state_after="active", data={"request_id": request_id, "version": account.version}, now=now)
    notify.release_held(account_id)
    for manager in notify.account_managers(account_id):
        notify.queue_email(manager, "account_reactivated", f"Your account {account.number} is active again",
                           "account_reactivated.txt", account=account, reason="customer_request",
                           note="The pause you asked for has ended.", now=now)
    db.session.commit()
    notify.kick_delivery()
    return True
