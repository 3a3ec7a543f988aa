"""The relay: audit events after the cursor become deliveries, once per subscribed endpoint and event.

Each batch is one transaction: lock the relay's row (webhook_relay, id 1: a second relay waits, on either
database), read up to WEBHOOK_RELAY_BATCH audit events after the cursor in one statement, look again for
the ids noted as gaps, insert the deliveries (ON CONFLICT DO NOTHING on the unique (endpoint_id,
event_id): writing one again is a no-op), move the cursor and the gaps, commit. A crash anywhere rolls the
whole batch back; the next run does it again. See the package's docstring for why a relay, and gaps.
"""
import logging
from datetime import datetime, timedelta

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from portal.domain.webhooks.events import event_type, payload
from portal.domain.webhooks.settings import setting
from portal.extensions import db
from portal.models import Account, AuditEvent, WebhookDelivery, WebhookEndpoint, WebhookRelay
from portal.timeutil import utcnow

log = logging.getLogger(__name__)
STATE_ID = 1
RANGES_PER_QUERY = 50  # gap ranges looked up in one statement
MAX_GAPS = 1000  # ranges watched at most (the oldest are given up first)
INSERT_ROWS = 500  # deliveries per INSERT statement (SQLite's parameter limit)
COLUMNS = (AuditEvent.id, AuditEvent.created_at, AuditEvent.account_id, AuditEvent.actor_label,
           AuditEvent.actor_run_id, AuditEvent.action, AuditEvent.reason_category, AuditEvent.reason_note,
           AuditEvent.state_before, AuditEvent.state_after, AuditEvent.data, Account.number)


def _insert():
    return pg_insert if db.session.get_bind().dialect.name == "postgresql" else sqlite_insert


def relay(now=None, batch=None):
    """Turn the audit events after the cursor into deliveries, a batch per transaction, until none is left.

    Call it outside a transaction (a job, a command). Args: now, the time written on the deliveries and
    the gaps (default now); batch, events read per transaction (default WEBHOOK_RELAY_BATCH).

    Returns:
        {"read": audit events read, "queued": deliveries written, "gaps": id ranges still watched}.
    """
    now = now or utcnow()
    batch = batch or setting("WEBHOOK_RELAY_BATCH")
    totals = {"read": 0, "queued": 0, "gaps": 0}
    while True:
        read, queued, gaps, more = _relay_batch(now, batch)
        totals["read"] += read
        totals["queued"] += queued
        totals["gaps"] = gaps
        if not more:
            return totals


def _lock_state(now):
    """Lock the relay's row for this transaction (created on first use) and return it read fresh."""
    table = WebhookRelay.__table__
    lock = update(table).where(table.c.id == STATE_ID).values(updated_at=now)
    if db.session.execute(lock).rowcount != 1:
        db.session.execute(_insert()(table).values(id=STATE_ID, cursor_id=0, gaps=[], updated_at=now)
                           .on_conflict_do_nothing(index_elements=["id"]))
        db.session.execute(lock)
    return db.session.get(WebhookRelay, STATE_ID, populate_existing=True)


def _relay_batch(now, batch):
    """One transaction of the relay; returns (events read, deliveries written, gaps watched, more to read)."""
    state = _lock_state(now)
    endpoints = list(db.session.scalars(select(WebhookEndpoint).where(WebhookEndpoint.enabled.is_(True))))
    cursor, gaps = state.cursor_id, [tuple(gap) for gap in (state.gaps or [])]
    if not endpoints:  # nobody to tell: skip ahead (an endpoint receives only what follows its creation)
        state.cursor_id = max(cursor, db.session.scalar(select(func.max(AuditEvent.id))) or 0)
        state.gaps = []
        db.session.commit()
        return 0, 0, 0, False
    floor = min(endpoint.starts_after_event_id for endpoint in endpoints)
    if floor > cursor:  # nothing before the oldest endpoint's start is announced to anyone
        cursor, gaps = floor, [(max(lo, floor + 1), hi, seen) for lo, hi, seen in gaps if hi > floor]
    rows = db.session.execute(_events().where(AuditEvent.id > cursor).order_by(AuditEvent.id).limit(batch)).all()
    appeared = _appeared(gaps)
    queued = _queue(rows + appeared, endpoints, now)
    ids = [row.id for row in rows]
    gaps = _subtract(gaps, {row.id for row in appeared}) + _missing(cursor, ids, now)
    state.gaps = _kept(gaps, now)
    state.cursor_id = ids[-1] if ids else cursor
    db.session.commit()
    return len(rows) + len(appeared), queued, len(state.gaps), len(rows) == batch


def _events():
    return select(*COLUMNS).outerjoin(Account, Account.id == AuditEvent.account_id)


def _appeared(gaps):
    """The audit events now visible inside the gaps."""
    found = []
    for start in range(0, len(gaps), RANGES_PER_QUERY):
        ranges = [and_(AuditEvent.id >= lo, AuditEvent.id <= hi) for lo, hi, _seen in gaps[start:start + RANGES_PER_QUERY]]
        found.extend(db.session.execute(_events().where(or_(*ranges)).order_by(AuditEvent.id)).all())
    return found


def _missing(cursor, ids, now):
    """The id ranges between the cursor and the ids read that were not there: [(first, last, first seen)]."""
    seen, previous, gaps = now.isoformat(), cursor, []
    for current in ids:
        if current > previous + 1:
            gaps.append((previous + 1, current - 1, seen))
        previous = current
    return gaps


def _subtract(gaps, found):
    """The gaps without the ids found, ranges split around them."""
    if not found:
        return gaps
    left = []
    for lo, hi, seen in gaps:
        start = lo
        for current in sorted(i for i in found if lo <= i <= hi):
            if current > start:
                left.append((start, current - 1, seen))
            start = current + 1
        if start <= hi:
            left.append((start, hi, seen))
    return left


def _kept(gaps, now):
    """The gaps still watched: seen less than WEBHOOK_GAP_SECONDS ago, at most MAX_GAPS (the newest)."""
    oldest = now - timedelta(seconds=setting("WEBHOOK_GAP_SECONDS"))
    kept = [gap for gap in gaps if datetime.fromisoformat(gap[2]) > oldest]
    if len(kept) < len(gaps):
        log.info("webhook relay gave up %d id range(s) that never appeared (rolled back)", len(gaps) - len(kept))
    kept.sort()
    if len(kept) > MAX_GAPS:
        log.warning("webhook relay watches %d id ranges; giving up the oldest", len(kept))
        kept = sorted(kept, key=lambda gap: gap[2])[-MAX_GAPS:]
        kept.sort()
    return [list(gap) for gap in kept]


def _queue(rows, endpoints, now):
    """Insert a delivery per (endpoint subscribed, event it has not had); return how many were written."""
    deliveries = []
    for row in rows:
        kind = event_type(row)
        if kind is None:
            continue
        body = None
        for endpoint in endpoints:
            if kind in endpoint.event_list and row.id > endpoint.starts_after_event_id:
                body = body or payload(kind, row)
                deliveries.append({"endpoint_id": endpoint.id, "event_type": kind, "event_id": str(row.id),
                                   "payload": body, "status": "pending", "attempts": 0, "created_at": now})
    written = 0
    table = WebhookDelivery.__table__
    for start in range(0, len(deliveries), INSERT_ROWS):
        stmt = (_insert()(table).on_conflict_do_nothing(index_elements=["endpoint_id", "event_id"])
                .returning(table.c.id))
        written += len(db.session.execute(stmt, deliveries[start:start + INSERT_ROWS]).all())
    return written
