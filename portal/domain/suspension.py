"""Suspend and reactivate an account with a reason: one transaction each, audited, emails queued.

Suspension is an overlay: only the account's status columns change. Users, settings, campaigns,
listings and profiles are never touched, so reactivation restores them exactly by construction.
"""
from sqlalchemy import update

from portal.domain import audit, notify
from portal.domain.accounts import load_for_action
from portal.domain.billing.unpaid import refuse_if_unpaid
from portal.domain.errors import Conflict, InvalidTransition, ValidationFailed
from portal.domain.gate import REASONS, STATE_LABELS
from portal.domain.parsing import InvalidValue, text_problem, whole_number
from portal.extensions import db
from portal.models import Account
from portal.timeutil import utcnow

NOTE_MAX = 500

# Why an account is given back its service: reactivation and the undo of a run have their own reasons,
# not the suspension's ("inactivity" is no reason to reactivate). Stored in the same reason_category
# columns (30 characters). customer_request is in both sets: a pause at the customer's request ends with it.
REACTIVATION_REASONS = {
    "paid": "Paid",
    "resolved": "Resolved",
    "suspended_in_error": "Suspended in error",
    "customer_request": "Customer request",
    "other": "Other",
}
# Why a super admin moves an approaching dunning step later, or lifts an applied one for a while: an agreement
# with the customer, not a reason to suspend ("non-payment" is what the schedule itself acts on).
DUNNING_OVERRIDE_REASONS = {
    "promise_to_pay": "Promise to pay",
    "payment_plan": "Payment plan agreed",
    "invoice_disputed": "Invoice disputed",
    "goodwill": "Goodwill",
    "other": "Other",
}
# Why the manual dates are cancelled and the class schedule applies again.
SCHEDULE_RESTORED_REASONS = {
    "promise_not_kept": "Promise not kept",
    "dates_set_in_error": "Dates set in error",
    "other": "Other",
}
REASON_LABELS = {**REASONS, **REACTIVATION_REASONS, **DUNNING_OVERRIDE_REASONS,
                 **SCHEDULE_RESTORED_REASONS}  # every stored reason, for the pages that show one
ACTION_REASONS = {"reactivate": REACTIVATION_REASONS, "shift": DUNNING_OVERRIDE_REASONS,
                  "lift": DUNNING_OVERRIDE_REASONS, "cancel_dates": SCHEDULE_RESTORED_REASONS}
ACTION_WORDS = {"reactivate": "a reactivation", "shift": "new dates", "lift": "a lift",
                "cancel_dates": "going back to the class schedule"}


def reasons_for(action):
    """Return the reasons an action may give: REACTIVATION_REASONS for reactivate (and an undo),
    DUNNING_OVERRIDE_REASONS for shift and lift, SCHEDULE_RESTORED_REASONS for cancel_dates (the manual dunning
    dates), else gate.REASONS (suspend, cancel, write-off)."""
    return ACTION_REASONS.get(action, REASONS)

# Which stored states each action may start from, and where it leads.
TRANSITIONS = {
    "suspend": (("active", "limited"), "suspended"),
    "reactivate": (("suspended", "limited"), "active"),
}


def actions_for(account):
    """Return the status actions possible on the account now, e.g. ("suspend",) or ("suspend", "reactivate")."""
    return tuple(action for action, (sources, _target) in TRANSITIONS.items() if account.status in sources)


def validate_reason(category, note, action="suspend"):
    """Return (category, note) cleaned.

    Args:
        category: one of reasons_for(action) (surrounding spaces ignored).
        note: why, 1..NOTE_MAX characters once trimmed.
        action: "reactivate" for a reactivation or an undo, "shift", "lift" or "cancel_dates" for the dunning
            overrides (see reasons_for); anything else takes the suspension's reasons (gate.REASONS).

    Raises:
        ValidationFailed: field_errors names reason_category and/or reason_note.
    """
    errors = {}
    category = (category or "").strip()
    note = (note or "").strip()
    if not category:
        errors["reason_category"] = "Choose a reason."
    elif category not in reasons_for(action):
        errors["reason_category"] = "Choose one of the listed reasons."
        if action in ACTION_REASONS:  # most likely a suspension's reason given to it: say which will do
            listed = ", ".join(label.lower() for label in ACTION_REASONS[action].values())
            errors["reason_category"] = f"Choose one of the listed reasons for {ACTION_WORDS[action]}: {listed}."
    if not note:
        errors["reason_note"] = "Write a short note explaining the reason."
    elif len(note) > NOTE_MAX:
        errors["reason_note"] = f"Keep the note to {NOTE_MAX} characters (it has {len(note)})."
    elif text_problem(note, "The note"):
        errors["reason_note"] = text_problem(note, "The note")
    if errors:
        raise ValidationFailed(errors)
    return category, note


def _parse_version(expected_version):
    if expected_version is None:
        return None
    try:
        return whole_number(expected_version, 0)
    except InvalidValue:
        raise Conflict("This form is out of date or incomplete. Nothing was changed; "
                       "reopen it and try again.") from None


def _load_for_change(actor, action, account_id, expected_version):
    """Load the account fresh from the database, ask the gate, and check the form is not stale."""
    account = load_for_action(actor, action, account_id)
    expected = _parse_version(expected_version)
    if expected is not None and expected != account.version:
        raise Conflict(f"Account {account.number} changed since you opened this form "
                       f"(it is now {STATE_LABELS[account.status]}). Nothing was changed; "
                       "review it and try again.", current_status=account.status)
    return account


def _check_transition(account, action):
    sources, _target = TRANSITIONS[action]
    if account.status not in sources:
        allowed = {"suspend": "an active or limited account can be suspended",
                   "reactivate": "a suspended or limited account can be reactivated"}[action]
        raise InvalidTransition(f"Account {account.number} is {STATE_LABELS[account.status].lower()}; only "
                                f"{allowed}. Nothing was changed.", current_status=account.status)


def _compare_and_set(account, before, values):
    """Apply values only if the row is still in state `before` at the version read; bump the version.

    Two admins acting at once both read the same version; the database lets exactly one UPDATE
    match, and the other gets Conflict (no lost update) with nothing changed.
    """
    result = db.session.execute(
        update(Account)
        .where(Account.id == account.id, Account.status == before, Account.version == account.version)
        .values(version=Account.version + 1, **values)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        number = account.number
        db.session.rollback()
        raise Conflict(f"Account {number} was changed by someone else at the same moment. "
                       "Nothing was changed; reload it and try again.")
    db.session.refresh(account)


def _status_values(action, category, note, now):
    """Return the account columns an action writes: the overlay on suspend, cleared on reactivate."""
    if action == "suspend":
        return dict(status="suspended", status_reason=category, status_note=note, status_source="manual",
                    status_changed_at=now, suspended_by_run_id=None)
    return dict(status="active", status_reason=None, status_note=None, status_source=None,
                status_changed_at=now, suspended_by_run_id=None)


def _change_status(actor, action, account_id, reason_category, reason_note, expected_version, now):
    """Check, compare-and-set the status and write the audit event; return (account, category, note)."""
    account = _load_for_change(actor, action, account_id, expected_version)
    category, note = validate_reason(reason_category, reason_note, action)
    _check_transition(account, action)
    if action == "suspend" and category == "customer_request":
        refuse_if_unpaid(account, "be suspended at the customer's request")
    before = account.status
    target = TRANSITIONS[action][1]
    _compare_and_set(account, before, _status_values(action, category, note, now))
    past = "suspended" if action == "suspend" else "reactivated"
    audit.record(past, account.id, actor, reason_category=category, reason_note=note,
                 state_before=before, state_after=target, data={"version": account.version}, now=now)
    return account, category, note


def suspend(actor, account_id, reason_category, reason_note, expected_version=None, now=None):
    """Suspend an account for a reason; its account managers are emailed.

    The account's members lose sign-in at once (the gate reads the new state on their next request);
    their pending emails are held until reactivation.

    Args:
        actor: the super admin acting (a User).
        account_id: the account to suspend.
        reason_category: one of gate.REASONS.
        reason_note: why, up to 500 characters.
        expected_version: the account version the actor saw; a stale form is refused (None: no check).
        now: the time of the action (default now).

    Returns:
        The suspended Account.

    Raises:
        AccountNotFound: no such account.
        PermissionDenied: the actor is not a super admin.
        ValidationFailed: missing or unknown reason, note missing or too long.
        InvalidTransition: the account is not active or limited.
        UnpaidInvoices: the reason is customer_request and the account has open invoices.
        Conflict: the account changed since expected_version, or another admin changed it at the same moment.
    """
    now = now or utcnow()
    account = suspend_in_transaction(actor, account_id, reason_category, reason_note, expected_version, now)
    db.session.commit()
    notify.kick_delivery()
    return account


def suspend_in_transaction(actor, account_id, reason_category, reason_note, expected_version=None, now=None,
                           source="manual"):
    """Suspend inside the caller's transaction (the caller commits); see suspend.

    Args:
        source: what status_source records ("manual"; "pause" for a pause at the customer's request,
            which ends by itself).
    """
    now = now or utcnow()
    account, category, note = _change_status(actor, "suspend", account_id, reason_category, reason_note,
                                             expected_version, now)
    if source != "manual":
        account.status_source = source
    notify.hold_members_mail(account.id)
    for manager in notify.account_managers(account.id):
        notify.queue_email(manager, "account_suspended", f"Your account {account.number} has been suspended",
                           "account_suspended.txt", account=account, reason=category, note=note, now=now)
    return account


def reactivate(actor, account_id, reason_category, reason_note, expected_version=None, now=None):
    """Reactivate a suspended or limited account: the overlay goes and everything is as it was.

    Args:
        actor: the super admin acting (a User).
        account_id: the account to reactivate.
        reason_category: one of REACTIVATION_REASONS.
        reason_note: why, up to 500 characters.
        expected_version: the account version the actor saw; a stale form is refused (None: no check).
        now: the time of the action (default now).

    Returns:
        The reactivated Account.

    Raises:
        AccountNotFound: no such account.
        PermissionDenied: the actor is not a super admin.
        ValidationFailed: missing reason or not a reactivation reason, note missing or too long.
        InvalidTransition: the account is not suspended or limited (e.g. active or cancelled).
        Conflict: the account changed since expected_version, or another admin changed it at the same moment.
    """
    now = now or utcnow()
    account, category, note = _change_status(actor, "reactivate", account_id, reason_category, reason_note,
                                             expected_version, now)
    notify.release_held(account.id)
    for manager in notify.account_managers(account.id):
        notify.queue_email(manager, "account_reactivated", f"Your account {account.number} is active again",
                           "account_reactivated.txt", account=account, reason=category, note=note, now=now)
    db.session.commit()
    notify.kick_delivery()
    return account

