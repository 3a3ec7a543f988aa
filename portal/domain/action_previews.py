"""What an action will do, shown before it is confirmed: a suspension's messages and emails, a bulk change's reach.

The messages come from the gate itself, asked about the account as it would be once suspended for the
chosen reason (an overlay in memory; nothing is written), so the preview cannot drift from what people
will really see.
"""
from dataclasses import dataclass, field
from types import SimpleNamespace

from sqlalchemy import func, select

from portal.domain import account_search, notify, suspension
from portal.domain.gate import REASONS, banner_for, may
from portal.extensions import db
from portal.models import Account, OutboxEmail, User

ROLE_NAMES = {"account_manager": "Account managers", "tier_manager": "Tier managers", "user": "Users"}


@dataclass
class RoleEffect:
    """What the people of one role will see: how many there are, whether they can sign in, the message."""

    role: str
    label: str
    people: int
    can_sign_in: bool
    message: str


@dataclass
class StatusPreview:
    """A status change's effect: per role, who is emailed (name, address), emails held or released."""

    action: str
    reason: str = ""
    roles: list = field(default_factory=list)
    emailed: list = field(default_factory=list)
    mail_held: int = 0


def _as_suspended(account, reason):
    return SimpleNamespace(id=account.id, status="suspended", status_reason=reason)


def _people_by_role(account_id):
    rows = db.session.execute(select(User.role, func.count()).where(User.account_id == account_id,
                                                                    User.disabled.is_(False))
                              .group_by(User.role)).all()
    return dict(rows)


def _emailed(account_id):
    return [(u.name, u.email) for u in notify.account_managers(account_id)]


def suspension_preview(account, reason):
    """Describe what suspending `account` for `reason` does, without doing it.

    Args:
        account: the Account (any state; it is not changed).
        reason: a key of gate.REASONS, or "" when none is chosen yet (messages that follow the reason are
            then left empty).

    Returns:
        StatusPreview: per customer role, the message the gate will give (the account managers' banner,
        the members' sign-in refusal), the account managers who will be emailed, and how many emails of
        its members will be held.
    """
    reason = reason if reason in REASONS else ""
    after = _as_suspended(account, reason or "other")
    counts = _people_by_role(account.id)
    roles = []
    for role, label in ROLE_NAMES.items():
        person = SimpleNamespace(role=role, account_id=account.id, disabled=False)
        login = may(person, "login", after)
        message = banner_for(person, after) if login else login.message
        if role == "account_manager" and not reason:
            message = ""
        roles.append(RoleEffect(role, label, counts.get(role, 0), bool(login), message))
    members = select(User.id).where(User.account_id == account.id, User.role.in_(notify.MEMBER_ROLES))
    held = db.session.scalar(select(func.count()).select_from(OutboxEmail).where(
        OutboxEmail.account_id == account.id, OutboxEmail.status == "pending", OutboxEmail.user_id.in_(members)))
    return StatusPreview("suspend", reason, roles, _emailed(account.id), held or 0)


def reactivation_preview(account):
    """Describe what reactivating `account` does: every role back as before, its managers emailed, held mail sent."""
    counts = _people_by_role(account.id)
    roles = [RoleEffect(role, label, counts.get(role, 0), True, "") for role, label in ROLE_NAMES.items()]
    held = db.session.scalar(select(func.count()).select_from(OutboxEmail).where(
        OutboxEmail.account_id == account.id, OutboxEmail.status == "held"))
    return StatusPreview("reactivate", "", roles, _emailed(account.id), held or 0)


def status_preview(account, actions, reason):
    """The preview for the status dialog: a suspension's when it can suspend, else a reactivation's (or None)."""
    if "suspend" in actions:
        return suspension_preview(account, reason)
    if "reactivate" in actions:
        return reactivation_preview(account)
    return None


@dataclass
class BulkReach:
    """How many of a bulk selection the change will touch, why the rest are left alone, and each sample row's fate."""

    will_change: int
    left_alone: dict
    fates: dict  # sample account id -> why it is left alone, or None when it will be changed


def _skip_reason(action, status, exempt):
    """The run engine's words for an account it leaves alone (runs.chunk.skip_reason_clause), or None."""
    if status not in suspension.TRANSITIONS[action][0]:
        return f"already {status}"
    if action == "suspend" and exempt:
        return "exempt"
    return None


def bulk_reach(preview):
    """Split a bulk Preview (portal.domain.bulk.preview) into what it changes and what it leaves alone.

    Args:
        preview: the bulk Preview: its action, scope, selection (ids) or filters, and its sample rows.

    Returns:
        BulkReach with the exact number it will change and {reason left alone: count}, counted by one
        GROUP BY over the selection (the run engine's reasons: "already suspended", "exempt"), and for each
        sample row whether it will be changed.
    """
    if preview.scope == "filter":
        where = account_search.filter_clause(preview.filters)
    else:
        where = Account.id.in_(preview.selection["ids"] or [-1])
    groups = db.session.execute(select(Account.status, Account.exempt, func.count()).where(where)
                                .group_by(Account.status, Account.exempt)).all()
    will_change, left_alone = 0, {}
    for status, exempt, count in groups:
        why = _skip_reason(preview.action, status, exempt)
        if why is None:
            will_change += count
        else:
            left_alone[why] = left_alone.get(why, 0) + count
    fates = {row.id: _skip_reason(preview.action, row.status, row.exempt) for row in preview.sample}
    return BulkReach(will_change, dict(sorted(left_alone.items(), key=lambda kv: (-kv[1], kv[0]))), fates)
