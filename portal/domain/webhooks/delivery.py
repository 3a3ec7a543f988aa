"""Sending the deliveries: signed POSTs, retried with exponential back-off, then failed (kept), sent again by hand.

A delivery is due when pending and its next attempt time has come, or when its sending lease ran out (a
worker died mid-send). It is claimed by compare-and-set, which counts the attempt and sets a lease, so two
workers never send it at once and a delivery that kills its worker every time still runs out of attempts.
The request goes to the address checked just before (portal.domain.egress: again at every attempt, against
DNS rebinding), with no redirect followed, within WEBHOOK_TIMEOUT_SECONDS. A 2xx answer delivers it; any
other answer, or none, is a failed attempt: pending again after WEBHOOK_BACKOFF_SECONDS doubled per
failure (at most WEBHOOK_BACKOFF_MAX_SECONDS), or failed after WEBHOOK_MAX_ATTEMPTS. A receiver that does
not answer at all is tried once per run: its other deliveries wait for the next run, uncounted.
"""
import calendar
import time
from collections import namedtuple
from datetime import timedelta

import httpx
from sqlalchemy import and_, func, or_, select, update

from portal.domain import audit, egress
from portal.domain.errors import Conflict, DomainError, InvalidTransition
from portal.domain.parsing import ID_MAX, InvalidValue, record_id, whole_number
from portal.domain.webhooks.endpoints import URL_MAX, get_endpoint, require_super_admin, url_problem
from portal.domain.webhooks.jobs import kick
from portal.domain.webhooks.settings import setting
from portal.domain.webhooks.signing import SIGNATURE_HEADER, sign
from portal.extensions import db
from portal.models import WebhookDelivery, WebhookEndpoint
from portal.timeutil import utcnow

USER_AGENT = "AccountSuspensionPortal-Webhooks/1.0"
LEASE = timedelta(minutes=5)  # longer than one attempt (WEBHOOK_TIMEOUT_SECONDS) and its commit
STATUSES = ("pending", "sending", "delivered", "failed")
Outcome = namedtuple("Outcome", "delivered status_code error unreachable")


class DeliveryNotFound(DomainError):
    """No such delivery for this endpoint."""

    status_code = 404

    def __init__(self):
        super().__init__("No such delivery.")


def backoff(attempts):
    """The wait before the next attempt after `attempts` failed ones."""
    base, cap = setting("WEBHOOK_BACKOFF_SECONDS"), setting("WEBHOOK_BACKOFF_MAX_SECONDS")
    return timedelta(seconds=min(cap, base * 2 ** min(max(attempts - 1, 0), 30)))


def _due(now):
    d = WebhookDelivery
    return or_(and_(d.status == "pending", or_(d.next_attempt_at.is_(None), d.next_attempt_at <= now)),
               and_(d.status == "sending", d.next_attempt_at <= now))


def deliver_due(now=None, budget=None):
    """Send the due deliveries of the enabled endpoints, oldest first, until none is left or the budget is spent.

    Args:
        now: the time of the run (default now): what is due, the signature's timestamp, the next attempt.
        budget: seconds after which no new delivery starts (default WEBHOOK_BUDGET_SECONDS).

    Returns:
        {"delivered", "retrying", "failed", "unreachable": [endpoint ids not answering this run]}.
    """
    fixed_now = now
    deadline = time.monotonic() + (budget if budget is not None else setting("WEBHOOK_BUDGET_SECONDS"))
    result, skipped = {"delivered": 0, "retrying": 0, "failed": 0}, set()
    while time.monotonic() < deadline:
        now = fixed_now or utcnow()
        due = (select(WebhookDelivery.id, WebhookDelivery.endpoint_id)
               .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
               .where(_due(now), WebhookEndpoint.enabled.is_(True))
               .order_by(WebhookDelivery.id).limit(setting("WEBHOOK_SEND_BATCH")))
        if skipped:
            due = due.where(WebhookDelivery.endpoint_id.not_in(skipped))
        page = db.session.execute(due).all()
        db.session.rollback()  # end the read: each claim is its own short transaction
        if not page:
            break
        for delivery_id, endpoint_id in page:
            if endpoint_id in skipped or time.monotonic() >= deadline:
                continue
            done = _attempt(delivery_id, fixed_now or utcnow())
            if done is None:
                continue  # another worker claimed it first
            label, unreachable = done
            result[label] += 1
            if unreachable:
                skipped.add(endpoint_id)
    result["unreachable"] = sorted(skipped)
    return result


def _claim(delivery_id, now):
    """Compare-and-set the delivery from due to sending (an attempt counted, a lease); None if not ours."""
    claimed = db.session.execute(
        update(WebhookDelivery).where(WebhookDelivery.id == delivery_id, _due(now))
        .values(status="sending", attempts=WebhookDelivery.attempts + 1, next_attempt_at=now + LEASE)
        .returning(WebhookDelivery.attempts)).scalar()
    if claimed is None:
        db.session.rollback()
        return None
    db.session.commit()
    return claimed


def _attempt(delivery_id, now):
    """Claim, send and record one delivery; return (delivered | retrying | failed, unreachable), or None."""
    attempt = _claim(delivery_id, now)
    if attempt is None:
        return None
    delivery = db.session.get(WebhookDelivery, delivery_id, populate_existing=True)
    endpoint = db.session.get(WebhookEndpoint, delivery.endpoint_id, populate_existing=True)
    url, secret, body, event = endpoint.url, endpoint.secret, delivery.payload, (delivery.event_id, delivery.event_type)
    db.session.rollback()  # no transaction stays open while the receiver takes its time
    outcome = post(url, secret, body, event, attempt, now)
    return _record(delivery_id, attempt, outcome, now), outcome.unreachable


def post(url, secret, body, event, attempt, now):
    """POST one delivery's body, signed, to the address checked now; return an Outcome (never raises)."""
    try:
        scheme, host, _port, address = egress.resolve(url, setting("WEBHOOK_ALLOW_PRIVATE"), URL_MAX)
    except egress.AddressRefused as exc:
        return Outcome(False, None, f"Not sent: {url_problem(exc)}", True)
    target, host_header = egress.pinned(url, address)
    raw = body.encode("utf-8")
    stamp = calendar.timegm(now.utctimetuple())
    headers = {"Host": host_header, "User-Agent": USER_AGENT, "Content-Type": "application/json",
               SIGNATURE_HEADER: sign(secret, stamp, raw), "Portal-Event-Id": f"evt_{event[0]}",
               "Portal-Event-Type": event[1], "Portal-Delivery-Attempt": str(attempt)}
    extensions = {"sni_hostname": host} if scheme == "https" else {}
    timeout = setting("WEBHOOK_TIMEOUT_SECONDS")
    try:
        with httpx.Client(timeout=httpx.Timeout(timeout), follow_redirects=False, trust_env=False) as client:
            response = client.post(target, content=raw, headers=headers, extensions=extensions)
    except httpx.TimeoutException:
        return Outcome(False, None, f"No answer within {timeout:g} s.", True)
    except httpx.HTTPError as exc:
        return Outcome(False, None, f"Could not connect ({exc.__class__.__name__}).", True)
    if 200 <= response.status_code < 300:
        return Outcome(True, response.status_code, None, False)
    if response.is_redirect:
        return Outcome(False, response.status_code, f"Answered HTTP {response.status_code} (a redirect); "
                                                    "webhooks follow no redirect: register the final address.", False)
    return Outcome(False, response.status_code, f"Answered HTTP {response.status_code}.", False)


def _record(delivery_id, attempt, outcome, now):
    """Store an attempt's outcome if the delivery is still ours (same attempt, still sending)."""
    ours = and_(WebhookDelivery.id == delivery_id, WebhookDelivery.status == "sending",
                WebhookDelivery.attempts == attempt)
    if outcome.delivered:
        values, label = dict(status="delivered", delivered_at=now, next_attempt_at=None, last_error=None), "delivered"
    elif attempt >= setting("WEBHOOK_MAX_ATTEMPTS"):
        values, label = dict(status="failed", next_attempt_at=None), "failed"
    else:
        values, label = dict(status="pending", next_attempt_at=now + backoff(attempt)), "retrying"
    if not outcome.delivered:
        values["last_error"] = (outcome.error or "")[:500]
    db.session.execute(update(WebhookDelivery).where(ours)
                       .values(last_status_code=outcome.status_code, **values)
                       .execution_options(synchronize_session=False))
    db.session.commit()
    return label


# ---------------------------------------------------------------- the log and "send again"

def status_counts(endpoint_ids=None):
    """Return {endpoint_id: {status: count}}."""
    stmt = select(WebhookDelivery.endpoint_id, WebhookDelivery.status, func.count()).group_by(
        WebhookDelivery.endpoint_id, WebhookDelivery.status)
    if endpoint_ids is not None:
        stmt = stmt.where(WebhookDelivery.endpoint_id.in_(list(endpoint_ids)))
    counts = {}
    for endpoint_id, status, count in db.session.execute(stmt):
        counts.setdefault(endpoint_id, {})[status] = count
    return counts


def deliveries_of(endpoint_id, status=None, before_id=None, limit=50):
    """Return the endpoint's deliveries, newest first (status: one of STATUSES, or None for all)."""
    stmt = select(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint_id)
    if status in STATUSES:
        stmt = stmt.where(WebhookDelivery.status == status)
    if before_id is not None:
        stmt = stmt.where(WebhookDelivery.id < before_id)
    return list(db.session.scalars(stmt.order_by(WebhookDelivery.id.desc()).limit(limit)))


def get_delivery(endpoint_id, delivery_id):
    """Return the endpoint's delivery with this id.

    Raises:
        EndpointNotFound, DeliveryNotFound (no such delivery, or another endpoint's).
    """
    endpoint = get_endpoint(endpoint_id)
    delivery_id = record_id(delivery_id)
    delivery = db.session.get(WebhookDelivery, delivery_id) if delivery_id is not None else None
    if delivery is None or delivery.endpoint_id != endpoint.id:
        raise DeliveryNotFound()
    return delivery


def resend(actor, endpoint_id, delivery_id, expected_attempts=None, now=None):
    """Send a delivered or failed delivery again: pending at once, with every attempt of a new one.

    Args:
        actor: the super admin (a User).
        endpoint_id, delivery_id: which delivery.
        expected_attempts: the attempts the page showed; if it changed since, nothing is done (None: no check).
        now: the time of the request (default now).

    Raises:
        PermissionDenied, EndpointNotFound, DeliveryNotFound,
        InvalidTransition: it is waiting to be sent already (pending or sending),
        Conflict: it changed since the page showed it.
    """
    require_super_admin(actor)
    now = now or utcnow()
    delivery = get_delivery(endpoint_id, delivery_id)
    stmt = update(WebhookDelivery).where(WebhookDelivery.id == delivery.id,
                                         WebhookDelivery.status.in_(("delivered", "failed")))
    if expected_attempts is not None:
        try:
            stmt = stmt.where(WebhookDelivery.attempts == whole_number(expected_attempts, 0, ID_MAX))
        except InvalidValue:
            raise Conflict("This form is out of date or incomplete; nothing changed. Look at the delivery again.") \
                from None
    done = db.session.execute(stmt.values(status="pending", attempts=0, next_attempt_at=None, last_error=None,
                                          last_status_code=None, delivered_at=None)
                              .execution_options(synchronize_session=False)).rowcount
    if done != 1:
        db.session.rollback()
        db.session.refresh(delivery)
        if delivery.status in ("pending", "sending"):
            raise InvalidTransition("This delivery is waiting to be sent already; nothing changed.")
        raise Conflict("This delivery changed since the page showed it; nothing changed. Look at it again.")
    audit.record("webhook_resent", None, actor, now=now,
                 data={"endpoint_id": delivery.endpoint_id, "delivery_id": delivery.id,
                       "event_id": delivery.event_id, "event_type": delivery.event_type})
    db.session.commit()
    kick(now)
    db.session.refresh(delivery)
    return delivery
