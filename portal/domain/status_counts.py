"""Accounts per status over the whole table: exact, cached, and counted again as soon as a status changes.

Counting is one GROUP BY over every account, the query the account list's chips send (0.1-0.4 s at a
million accounts), so the result is kept with the *status version* it was counted at and served while that
version holds: invalidated by the change itself, not by a time-to-live guess. It is kept in the web
process's memory (per app), not in Redis: checking the version is one query either way, and each process
then counts once after a change, with nothing to fail when Redis is down and no shared state written by a GET.

The status version is read from two ends of primary keys, a fraction of a millisecond:
- max(audit_events.id). Every status change in the portal writes its audit event in the transaction that
  changes the status ("every state change is an event"): a suspension or reactivation, each chunk of a
  sweep, bulk change or undo, the daily dunning run, a payment that clears a restriction, a lift, a
  cancellation, the end of a pause. So no status changes without raising it. Other events raise it too;
  they cost one recount, never a wrong figure.
- max(accounts.id): a new account changes the counts (onboarding audits it, but seeding writes rows directly).
Why not a counter of our own: it needs a table (a migration) and an UPDATE in every place that changes a
status, including the runs' set-based statements; the audit trail is already that place, kept by the design.

PostgreSQL hands out ids before commit: a transaction holding id 100 may commit after one holding 101, and a
count taken between the two commits sees max 101 without 100's change, while max stays 101 after it. So on
PostgreSQL the entry also keeps the transactions in progress when it was counted (`pg_current_snapshot()`)
and holds only while none of them has ended since. SQLite has one writer at a time: its ids commit in order.
The version is read before counting, so the counts are never older than the version they are kept under.
"""
from dataclasses import dataclass
from datetime import datetime

from flask import current_app
from sqlalchemy import func, select, text

from portal.extensions import db
from portal.models import Account, AuditEvent
from portal.timeutil import utcnow

STATUSES = ("active", "limited", "suspended", "cancelled")


@dataclass
class StatusTotals:
    """Accounts per stored status (every one of STATUSES, 0 when none), counted at `as_of`."""

    counts: dict
    total: int
    as_of: datetime
    version: str
    cached: bool = False


def status_version():
    """Return (version, transactions in progress) now; the version changes whenever a status may have.

    The second part is PostgreSQL's current snapshot as text (None on SQLite).
    """
    latest = [select(func.max(AuditEvent.id)).scalar_subquery(), select(func.max(Account.id)).scalar_subquery()]
    if db.engine.dialect.name == "postgresql":
        latest.append(text("pg_current_snapshot()::text"))
    row = db.session.execute(select(*latest)).one()
    return f"{row[0] or 0}:{row[1] or 0}", (row[2] if len(row) > 2 else None)


def _none_ended_since(snapshot):
    """True if every transaction in progress at `snapshot` (PostgreSQL) is still in progress now."""
    if not snapshot or snapshot.endswith(":"):  # "xmin:xmax:" lists none in progress
        return True
    ended = db.session.scalar(text("SELECT count(*) FROM pg_snapshot_xip(CAST(:s AS pg_snapshot)) AS x "
                                   "WHERE pg_visible_in_snapshot(x, pg_current_snapshot())"), {"s": snapshot})
    return ended == 0


def current(now=None):
    """Return the exact StatusTotals: from the cache while the status version holds, else counted now.

    Args:
        now: the time a fresh count is stamped with (default now).
    """
    version, snapshot = status_version()
    entry = _read()
    if entry and entry["version"] == version and _none_ended_since(entry.get("snapshot")):
        return _totals(entry["counts"], entry["as_of"], version, cached=True)
    now = now or utcnow()
    counts = dict(db.session.execute(select(Account.status, func.count()).group_by(Account.status)).all())
    _write({"version": version, "snapshot": snapshot, "counts": counts, "as_of": now})
    return _totals(counts, now, version)


def _totals(counts, as_of, version, cached=False):
    every = {status: int(counts.get(status, 0)) for status in STATUSES}
    every.update({status: int(n) for status, n in counts.items() if status not in every})
    return StatusTotals(every, sum(every.values()), as_of, version, cached)


def _store():
    return current_app.extensions.setdefault("portal.status_counts", {})


def _read():
    return _store().get("entry")


def _write(entry):
    _store()["entry"] = entry  # one assignment: another thread reads the old entry or this one


def forget():
    """Drop the cached counts (the next read counts again)."""
    _store().pop("entry", None)
