"""Accounts per status over the whole table: exact, cached, and counted again as soon as a status changes.

Counting is one GROUP BY over every account, the query the account list's chips send (0.1-0.4 s at a
million accounts), so the result is kept with the *status version* it was counted at and served while that
version holds: invalidated by the change itself, not by a time-to-live guess. It is kept in the web
process's memory (per app), not in Redis: checking the version is one query either way, and each process
then counts once after a change, with nothing to fail when Redis is down and no shared state written by a GET.

The status version is read from two ends of primary keys, a fraction of a millisecond (a `Mark`):
- max(audit_events.id). Every status change in the portal writes its audit event in the transaction that
  changes the status ("every state change is an event"): a suspension or reactivation, each chunk of a
  sweep, bulk change or undo, the daily dunning run, a payment that clears a restriction, a lift, a
  cancellation, the end of a pause; so does creating an account. So no status changes without raising it.
  Other events raise it too; they cost one recount, never a wrong figure.
- max(accounts.id): a new account written without an event (seeding) changes the counts too.
Why not a counter of our own: it needs a table (a migration) and an UPDATE in every place that changes a
status, including the runs' set-based statements; the audit trail is already that place, kept by the design.

PostgreSQL hands out ids before commit: a transaction holding id 100 may commit after one holding 101, and a
count taken between the two commits sees max 101 without 100's change, while max stays 101 after it. So on
PostgreSQL a mark also keeps the transactions in progress when it was taken (`pg_current_snapshot()`) and the
number of events up to its id. While none of those transactions has ended, nothing can appear below the id;
once one has, the events up to the id are counted again (an index-only count, far cheaper than the counts it
guards): the same number means nothing was committed late, and the mark holds on. SQLite has one writer at
a time: its ids commit in order. The mark is read before counting, so counts are never older than their mark.
"""
from dataclasses import dataclass, replace
from datetime import datetime

from flask import current_app
from sqlalchemy import func, select, text

from portal.extensions import db
from portal.models import Account, AuditEvent
from portal.timeutil import utcnow

STATUSES = ("active", "limited", "suspended", "cancelled")


@dataclass(frozen=True)
class Mark:
    """How far the audit trail and the accounts had come: newest ids, and (PostgreSQL) what was in progress."""

    event_id: int
    account_id: int
    snapshot: str | None = None  # pg_current_snapshot() as text: "xmin:xmax:in-progress,..."
    events_upto: int | None = None  # events with id <= event_id, counted when some were in progress

    @property
    def version(self):
        return f"{self.event_id}:{self.account_id}"


def _in_progress(snapshot):
    return bool(snapshot) and not snapshot.endswith(":")  # "xmin:xmax:" lists none


def watermark():
    """Return the Mark now: the newest ids, in one statement (with PostgreSQL's snapshot)."""
    latest = [select(func.max(AuditEvent.id)).scalar_subquery(), select(func.max(Account.id)).scalar_subquery()]
    if db.engine.dialect.name != "postgresql":
        row = db.session.execute(select(*latest)).one()
        return Mark(row[0] or 0, row[1] or 0)
    row = db.session.execute(select(*latest, text("pg_current_snapshot()::text"))).one()
    return Mark(row[0] or 0, row[1] or 0, row[2])


def with_baseline(mark):
    """Return the mark with its events counted, if some transactions were in progress (PostgreSQL).

    Take it before counting what the mark will guard: a late commit after it then changes the number.
    """
    if not _in_progress(mark.snapshot):
        return mark
    upto = db.session.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.id <= mark.event_id))
    return replace(mark, events_upto=upto)


def still_holds(mark):
    """Return `mark` (or it renewed) if nothing was committed below its event id since it was taken, else None.

    Only PostgreSQL can commit an id late; see the module's docstring.
    """
    if not _in_progress(mark.snapshot):
        return mark
    ended = db.session.scalar(text("SELECT count(*) FROM pg_snapshot_xip(CAST(:s AS pg_snapshot)) AS x "
                                   "WHERE pg_visible_in_snapshot(x, pg_current_snapshot())"), {"s": mark.snapshot})
    if not ended:
        return mark
    row = db.session.execute(select(select(func.count()).select_from(AuditEvent)
                                    .where(AuditEvent.id <= mark.event_id).scalar_subquery(),
                                    text("pg_current_snapshot()::text"))).one()
    if mark.events_upto is None or row[0] != mark.events_upto:
        return None
    return replace(mark, snapshot=row[1])  # those now in progress may still commit below: keep watching them


@dataclass
class StatusTotals:
    """Accounts per stored status (every one of STATUSES, 0 when none), counted at `as_of`."""

    counts: dict
    total: int
    as_of: datetime
    version: str
    cached: bool = False


def current(now=None):
    """Return the exact StatusTotals: from the cache while the status version holds, else counted now.

    Args:
        now: the time a fresh count is stamped with (default now).
    """
    mark = watermark()
    entry = _store().get("entry")
    kept = still_holds(entry["mark"]) if entry and entry["mark"].version == mark.version else None
    if kept is not None:
        _store()["entry"] = dict(entry, mark=kept)
        return _totals(entry["counts"], entry["as_of"], mark.version, cached=True)
    now = now or utcnow()
    mark = with_baseline(mark)
    counts = dict(db.session.execute(select(Account.status, func.count()).group_by(Account.status)).all())
    _store()["entry"] = {"mark": mark, "counts": counts, "as_of": now}  # one assignment: threads see old or new
    return _totals(counts, now, mark.version)


def _totals(counts, as_of, version, cached=False):
    every = {status: int(counts.get(status, 0)) for status in STATUSES}
    every.update({status: int(n) for status, n in counts.items() if status not in every})
    return StatusTotals(every, sum(every.values()), as_of, version, cached)


def _store():
    return current_app.extensions.setdefault("portal.status_counts", {})


def forget():
    """Drop the cached counts (the next read counts again)."""
    _store().pop("entry", None)
