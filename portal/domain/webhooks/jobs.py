"""The webhook job: the scheduler's tick and a kick after each change queue it; it relays, then sends.

The tick queues `portal.jobs.send_webhooks` once a minute (job id webhooks-YYYYMMDDHHMM) when an enabled
endpoint exists and there is something to do (audit events after the relay's cursor, or a delivery due);
a change that commits an audit event kicks it at once (job id webhooks-kick-YYYYMMDDHHMMSS, at most one a
second; whether an endpoint is enabled is read at most every ENABLED_TTL seconds per process). Ids only
spare Redis duplicate jobs: two jobs at once are safe (the relay's row lock, the deliveries' claims). Redis
down is logged; the outbox rows wait in the database for the next tick.
"""
import logging
import time

from flask import current_app
from sqlalchemy import exists, func, or_, select

from portal.extensions import QUEUE_DEFAULT, db, get_queue
from portal.models import AuditEvent, WebhookDelivery, WebhookEndpoint, WebhookRelay
from portal.timeutil import utcnow

log = logging.getLogger(__name__)
JOB = "portal.jobs.send_webhooks"
ENABLED_TTL = 5.0  # seconds a process trusts what it read about endpoints being enabled


def run(now=None):
    """Relay new audit events into deliveries, then send what is due; return both results."""
    from portal.domain.webhooks.delivery import deliver_due
    from portal.domain.webhooks.relay import relay

    db.session.rollback()  # start from a clean transaction: the relay's first statement takes its lock
    return {"relay": relay(now=now), "deliveries": deliver_due(now=now)}


def work_waiting(now):
    """True if an enabled endpoint exists and audit events wait for the relay or a delivery is due."""
    if not db.session.scalar(select(exists().where(WebhookEndpoint.enabled.is_(True)))):
        return False
    cursor = db.session.scalar(select(WebhookRelay.cursor_id).where(WebhookRelay.id == 1)) or 0
    if (db.session.scalar(select(func.max(AuditEvent.id))) or 0) > cursor:
        return True
    gaps = db.session.scalar(select(WebhookRelay.gaps).where(WebhookRelay.id == 1))
    due = exists().where(WebhookDelivery.status.in_(("pending", "sending")),
                         or_(WebhookDelivery.next_attempt_at.is_(None), WebhookDelivery.next_attempt_at <= now))
    return bool(gaps) or bool(db.session.scalar(select(due)))


def _enqueue(job_id, description):
    from rq.exceptions import DuplicateJobError

    try:
        get_queue(QUEUE_DEFAULT).enqueue(JOB, job_id=job_id, unique=True, job_timeout=600, result_ttl=600,
                                         failure_ttl=86400, description=description)
    except DuplicateJobError:
        pass  # queued (or running) already: it will see the new work, or the next one will
    except Exception as exc:  # noqa: BLE001 - Redis down: the deliveries wait in the database
        log.warning("could not queue the webhook job: %s", exc)
        return None
    return job_id


def enqueue_due(now):
    """Queue this minute's webhook job if there is work; return its id, or None. Called on every tick."""
    if not work_waiting(now):
        return None
    return _enqueue(f"webhooks-{now:%Y%m%d%H%M}", f"webhooks at {now:%Y-%m-%d %H:%M} UTC")


def _endpoint_enabled():
    """Whether an enabled endpoint exists, read at most every ENABLED_TTL seconds per process (the tick covers the rest).

    It reads on a connection of its own, so the caller's session (just committed) is left alone.
    """
    cached = current_app.extensions.get("webhooks_enabled")
    if cached is not None and cached[0] > time.monotonic():
        return cached[1]
    with db.engine.connect() as connection:
        enabled = connection.execute(select(WebhookEndpoint.id).where(WebhookEndpoint.enabled.is_(True))
                                     .limit(1)).first() is not None
    current_app.extensions["webhooks_enabled"] = (time.monotonic() + ENABLED_TTL, enabled)
    return enabled


def forget_endpoints():
    """Drop this process's note of whether an endpoint is enabled (after registering, enabling or disabling one)."""
    current_app.extensions.pop("webhooks_enabled", None)


def kick(now=None):
    """Queue the webhook job now, after a commit, if an enabled endpoint exists; never raises."""
    now = now or utcnow()
    try:
        enabled = _endpoint_enabled()
    except Exception as exc:  # noqa: BLE001 - the tick queues it anyway
        log.warning("could not look for webhook endpoints: %s", exc)
        return None
    if not enabled:
        return None
    return _enqueue(f"webhooks-kick-{now:%Y%m%d%H%M%S}", "webhooks after a change")
