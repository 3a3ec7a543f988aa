"""Audit events: written in the same transaction as the change they describe."""
from sqlalchemy import select

from portal.extensions import db
from portal.models import AuditEvent
from portal.timeutil import utcnow


def actor_label(actor):
    """Describe who acted, for the timeline: a user's name and email, or a system actor's name."""
    if actor is None:
        return "System"
    if isinstance(actor, str):
        return actor
    return f"{actor.name} <{actor.email}>"


def record(action, account_id=None, actor=None, run_id=None, reason_category=None, reason_note=None,
           state_before=None, state_after=None, data=None, now=None):
    """Add an audit event to the current transaction and return it (the caller commits).

    Args:
        action: what happened, past tense (suspended, reactivated, rule_updated, ...).
        account_id: the account concerned, if any.
        actor: the User who acted, or a label for a system actor (e.g. "Sweep run #4").
        run_id: the sweep run that acted, if any.
        reason_category, reason_note: why.
        state_before, state_after: the account state around the change.
        data: any extra detail worth keeping (JSON).
        now: the time of the event (default: now).
    """
    event = AuditEvent(
        created_at=now or utcnow(),
        account_id=account_id,
        actor_user_id=getattr(actor, "id", None),
        actor_run_id=run_id,
        actor_label=actor_label(actor),
        action=action,
        reason_category=reason_category,
        reason_note=reason_note,
        state_before=state_before,
        state_after=state_after,
        data=data,
    )
    db.session.add(event)
    return event


def timeline(account_id, limit=100):
    """Return the account's audit events, newest first."""
    stmt = (select(AuditEvent).where(AuditEvent.account_id == account_id)
            .order_by(AuditEvent.id.desc()).limit(limit))
    return list(db.session.scalars(stmt))
