"""The status counts' shared copy: the scheduler's tick publishes its kept counts, a new process adopts them.

A process's first count is the costly one (a scan of every account, portal.domain.status_counts). The
scheduler's tick keeps its own counts and publishes them through portal.domain.shared_figures; a process with
nothing kept, or only an older full count, adopts the published copy and steps from it as from its own: the
copy carries the same marks (the newest ids, PostgreSQL's snapshot, its gaps and the full count's baseline).
With Redis down, or the copy missing, unreadable or too old, the process counts for itself.
"""
import time
from datetime import datetime

from portal.domain import shared_figures, status_counts
from portal.timeutil import utcnow

SHARED_NAME = "status-counts"
PUBLISH_AHEAD_SECONDS = 300  # the scheduler counts in full this long before the recount bound


def publish(now=None):
    """Bring this process's counts up to date (a full count when due) and share them with the processes that
    have none yet; the scheduler's tick calls this (as status_counts.publish). Returns the StatusTotals."""
    now = now or utcnow()
    store = status_counts._store()
    kept = store.get("entry")
    ahead = status_counts._recount_bound() - PUBLISH_AHEAD_SECONDS
    if kept is not None and (now - kept.counted_at).total_seconds() > ahead:
        # in full before the bound, so the copy is newer than any a web process keeps when that expires
        counted, own_writes = status_counts._count(now)
        if not own_writes:
            store["entry"] = counted
    totals = status_counts.current(now)
    kept = store.get("entry")
    if kept is not None:
        shared_figures.publish(SHARED_NAME, _dump(kept))
    return totals


def adopted(kept, now):
    """The shared copy of the counts, if there is one counted on this database later than `kept`, else None."""
    payload = shared_figures.read(SHARED_NAME)
    try:
        shared = _load(payload) if payload is not None else None
    except (KeyError, TypeError, ValueError):
        return None  # written by another version: ignored
    if (shared is None or status_counts._too_old(shared, now)
            or (kept is not None and shared.counted_at <= kept.counted_at)):
        return None
    return shared


def _dump(kept):
    return {"counts": [list(pair) for pair in kept.counts], "event_id": kept.event_id, "account_id": kept.account_id,
            "counted_at": kept.counted_at.isoformat(), "as_of": kept.as_of.isoformat(), "snapshot": kept.snapshot,
            "seen_at": kept.seen_at, "gaps": [list(gap) for gap in kept.gaps],
            "base": list(kept.base) if kept.base is not None else None}


def _load(payload):
    """The shared copy as this process's own. Its clock times (when the snapshot was taken, when each gap and the
    baseline were first seen) are another host's: they restart on this one's clock, so a gap is given up only
    after GAP_SETTLE_SECONDS here, whatever the two clocks say."""
    clock = time.time()
    return status_counts._Kept(
        tuple((str(status), int(n)) for status, n in payload["counts"]), int(payload["event_id"]),
        int(payload["account_id"]), datetime.fromisoformat(payload["counted_at"]),
        datetime.fromisoformat(payload["as_of"]), payload["snapshot"], clock,
        tuple((int(lo), int(hi), clock) for lo, hi, _first in payload["gaps"]),
        (int(payload["base"][0]), int(payload["base"][1]), clock) if payload["base"] is not None else None)
