"""Suspend and reactivate an account with a reason: one transaction each, audited, emails queued."""
from sqlalchemy import update

from portal.domain import audit, notify
from portal.domain.errors import Conflict, InvalidTransition, PermissionDenied, ValidationFailed
from portal.domain.gate import REASONS, STATE_LABELS, may
from portal.extensions import db
from portal.models import Account
from portal.timeutil import utcnow

NOTE_MAX = 500


def validate_reason(category, note):
    """Return (category, note) cleaned, or raise ValidationFailed naming the fields at fault."""
    errors = {}
    category = (category or "").strip()
    note = (note or "").strip()
    if not category:
        errors["reason_category"] = "Choose a reason."
    elif category not in REASONS:
        errors["reason_category"] = "Choose one of the listed reasons."
    if not note:
        errors["reason_note"] = "Write a short note explaining the reason."
    elif len(note) > NOTE_MAX:
        errors["reason_note"] = f"Keep the note to {NOTE_MAX} characters (it has {len(note)})."
    if errors:
        raise ValidationFailed(errors)
    return category, note


def _load_for_change(actor, action, account_id, expected_version):
    account = db.session.get(Account, account_id)
    if account is None:
        from portal.domain.errors import AccountNotFound

        raise AccountNotFound()
    decision = may(actor, action, account)
    if not decision:
        raise PermissionDenied(decision.message)
    if expected_version is not None and int(expected_version) != account.version:
        raise Conflict(f"Account {account.number} changed since you opened this form "
                       f"(it is now {STATE_LABELS[account.status]}). Nothing was changed; review it and try again.")
    return account


def _compare_and_set(account, before, values):
    """Apply values only if the account is still in state `before` at the version we read."""
    result = db.session.execute(
        update(Account)
        .where(Account.id == account.id, Account.status == before, Account.version == account.version)
        .values(version=Account.version + 1, **values)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        db.session.rollback()
        raise Conflict(f"Account {account.number} was changed by someone else at the same moment. "
                       "Nothing was changed; reload and try again.")
    db.session.refresh(account)


def suspend(actor, account_id, reason_category, reason_note, expected_version=None, now=None):
    """Suspend an account for a reason; its account managers are emailed.

    Args:
        actor: the super admin acting.
        account_id: the account to suspend.
        reason_category: one of gate.REASONS.
        reason_note: why, up to 500 characters.
        expected_version: the version the actor saw (stale forms are refused).
        now: the time of the action (default now).

    Returns:
        The suspended Account.

    Raises:
        ValidationFailed, AccountNotFound, PermissionDenied, InvalidTransition, Conflict.
    """
    category, note = validate_reason(reason_category, reason_note)
    account = _load_for_change(actor, "suspend", account_id, expected_version)
    before = account.status
    if before not in ("active", "limited"):
        raise InvalidTransition(f"Account {account.number} is {STATE_LABELS[before].lower()}; "
                                "only an active or limited account can be suspended.")
    now = now or utcnow()
    _compare_and_set(account, before, dict(status="suspended", status_reason=category, status_note=note,
                                           status_source="manual", status_changed_at=now,
                                           suspended_by_run_id=None))
    audit.record("suspended", account.id, actor, reason_category=category, reason_note=note,
                 state_before=before, state_after="suspended", now=now)
    for manager in notify.account_managers(account.id):
        notify.queue_email(manager, "account_suspended", f"Your account {account.number} has been suspended",
                           "account_suspended.txt", account=account, reason=category, note=note)
    db.session.commit()
    notify.kick_delivery()
    return account


def reactivate(actor, account_id, reason_category, reason_note, expected_version=None, now=None):
    """Reactivate a suspended or limited account: the overlay goes and everything is as it was.

    Args:
        actor: the super admin acting.
        account_id: the account to reactivate.
        reason_category: one of gate.REASONS.
        reason_note: why, up to 500 characters.
        expected_version: the version the actor saw (stale forms are refused).
        now: the time of the action (default now).

    Returns:
        The reactivated Account.

    Raises:
        ValidationFailed, AccountNotFound, PermissionDenied, InvalidTransition, Conflict.
    """
    category, note = validate_reason(reason_category, reason_note)
    account = _load_for_change(actor, "reactivate", account_id, expected_version)
    before = account.status
    if before not in ("suspended", "limited"):
        raise InvalidTransition(f"Account {account.number} is {STATE_LABELS[before].lower()}; "
                                "only a suspended or limited account can be reactivated.")
    now = now or utcnow()
    _compare_and_set(account, before, dict(status="active", status_reason=None, status_note=None,
                                           status_source=None, status_changed_at=now,
                                           suspended_by_run_id=None))
    audit.record("reactivated", account.id, actor, reason_category=category, reason_note=note,
                 state_before=before, state_after="active", now=now)
    notify.release_held(account.id)
    for manager in notify.account_managers(account.id):
        notify.queue_email(manager, "account_reactivated", f"Your account {account.number} is active again",
                           "account_reactivated.txt", account=account, reason=category, note=note)
    db.session.commit()
    notify.kick_delivery()
    return account
