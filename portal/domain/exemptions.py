"""Exempt accounts: a super admin flags an account (with a reason) so sweeps never touch it."""
from sqlalchemy import update

from portal.domain import audit
from portal.domain.accounts import load_for_action
from portal.domain.errors import Conflict, InvalidTransition, ValidationFailed
from portal.domain.parsing import text_problem
from portal.extensions import db
from portal.models import Account
from portal.timeutil import utcnow

REASON_MAX = 500


def _clean_reason(reason):
    reason = (reason or "").strip()
    if not reason:
        raise ValidationFailed({"exempt_reason": "Write why (for example: key partner, billing dispute)."})
    if len(reason) > REASON_MAX:
        raise ValidationFailed({"exempt_reason": f"Keep the reason to {REASON_MAX} characters "
                                                 f"(it has {len(reason)})."})
    if text_problem(reason, "The reason"):
        raise ValidationFailed({"exempt_reason": text_problem(reason, "The reason")})
    return reason


def set_exempt(actor, account_id, reason, now=None):
    """Exempt an account from sweeps, with a reason; audited.

    Args:
        actor: the super admin.
        account_id: the account.
        reason: why, 1..500 characters.
        now: the time of the change (default now).

    Returns:
        The Account, now exempt.

    Raises:
        AccountNotFound, PermissionDenied, ValidationFailed (no or too long reason),
        InvalidTransition (already exempt), Conflict (changed at the same moment).
    """
    return _set(actor, account_id, True, reason, now)


def clear_exempt(actor, account_id, reason, now=None):
    """Let sweeps consider an exempt account again, with a reason; audited.

    Raises:
        AccountNotFound, PermissionDenied, ValidationFailed, InvalidTransition (not exempt), Conflict.
    """
    return _set(actor, account_id, False, reason, now)


def _set(actor, account_id, exempt, reason, now):
    now = now or utcnow()
    account = load_for_action(actor, "set_exempt", account_id)
    reason = _clean_reason(reason)
    if account.exempt == exempt:
        state = "already exempt" if exempt else "not exempt"
        raise InvalidTransition(f"Account {account.number} is {state} from sweeps. Nothing was changed.")
    previous = account.exempt_reason
    result = db.session.execute(
        update(Account).where(Account.id == account.id, Account.exempt.is_(not exempt),
                              Account.version == account.version)
        .values(exempt=exempt, exempt_reason=reason if exempt else None, version=Account.version + 1)
        .execution_options(synchronize_session=False))
    if result.rowcount != 1:
        db.session.rollback()
        raise Conflict(f"Account {account.number} was changed by someone else at the same moment. "
                       "Nothing was changed; reload it and try again.")
    audit.record("exempted" if exempt else "exemption_cleared", account.id, actor, reason_note=reason,
                 data={"previous_reason": previous} if not exempt else None, now=now)
    db.session.commit()
    db.session.refresh(account)
    return account
