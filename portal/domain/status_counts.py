"""Accounts per status over the whole table: exact, kept, and brought up to date from the audit trail.

Counting is one GROUP BY over every account (0.25-0.6 s at a million accounts: a scan, `status` is in no
index on purpose). So the counts are counted once per process and then *kept up to date*: every status
change in the portal writes its audit event with the state before and after, in the transaction that
changes the status ("every state change is an event"): a suspension or reactivation, each chunk of a sweep,
bulk change or undo, the daily dunning run (both its SQL and its Python path), a payment that clears a
restriction, a lift, a schedule step applied when manual dates are cancelled, a cancellation, the end of a
pause, and creating an account (None -> active). So the counts at any moment are the kept counts plus, for
each event committed since, +1 for its state_after and -1 for its state_before: one GROUP BY over the new
events' primary-key range (a few rows after a change), instead of a scan of the accounts.

What is kept (an immutable `_Kept`, per process, in the app's extensions; replaced by one assignment):
the counts, exact as of one statement's snapshot; the newest audit event id and account id visible then;
on PostgreSQL that snapshot (pg_current_snapshot()) and the ids below the newest that were not visible
then (gaps). One statement reads everything a step needs (so all of it is one snapshot):
- the events with id above the kept one, or inside a gap, that have a state_after, by (before, after);
  only of accounts up to the kept account id;
- the accounts above the kept account id, by status (accounts written without an event, as the seed and
  the tests' factories write them, and accounts created since: their events are left out, above);
- the new newest ids, the ids that appeared in the gaps and the new gaps (PostgreSQL).
Events of other kinds (notes, settings, dunning dates: no state_after) do not count; an event whose state
is the same before and after adds nothing.

PostgreSQL hands out ids before commit: a transaction holding id 100 may commit after one holding 101.
An id missing below the newest is a gap: a transaction still in progress (it appears later) or one that
rolled back (it never does). Gaps are looked for again on every request until they appear or are known
dead: a transaction that holds a gap's id was in progress at the snapshot of the step that saw the gap
missing (its xid is assigned when it first writes, just after taking the id, or before: every status
change writes the account row first), so once every transaction in progress at that snapshot has ended
(pg_visible_in_snapshot of its xip list), a gap still missing is dead; the check waits GAP_SETTLE_SECONDS
after a gap is first seen, for the moment between taking an id and writing the row. A full count that saw
transactions in progress keeps the number of events up to its id, and counts them again (an index-only
count) once those transactions have ended: the same number means nothing was committed late below it; a
different one means a full count again. SQLite has one writer at a time: its ids commit in order, no gaps.

A full count happens when nothing is kept, when the kept count is older than STATUS_COUNTS_RECOUNT_SECONDS
(a bound on what a writer outside the portal's rules could have changed unseen), when the ids went back
(the database was replaced), when more than MAX_STEP_EVENTS events or MAX_STEP_ACCOUNTS accounts are new
(then a scan is cheaper), when there are more than MAX_GAPS gaps to watch, or when a step would make a
count negative (an event that does not match the table). A step or count taken inside a transaction that
has written something itself (uncommitted) is returned but not kept.

A process's first count is the costly one. The scheduler's tick keeps its own counts and publishes them
(`publish`, through portal.domain.shared_figures); a process with nothing kept, or only an older full count,
adopts the published copy and steps from it as from its own. With Redis down it counts for itself.

`watermark`, `with_baseline` and `still_holds` (a Mark: the newest ids with PostgreSQL's snapshot, and a
count of the events up to it) are what the overview's chart keeps its counts with (portal.domain.overview).
"""
import time
from dataclasses import dataclass, replace
from datetime import datetime

from flask import current_app
from sqlalchemy import func, select, text

from portal.domain import shared_figures
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


# ---------------------------------------------------------------- the kept counts, brought up to date

RECOUNT_SECONDS = 3600  # default of STATUS_COUNTS_RECOUNT_SECONDS: a full count at least this often
MAX_STEP_EVENTS = 200_000  # more new events than this since the kept count: count every account instead
MAX_STEP_ACCOUNTS = 100_000  # the same for new accounts
MAX_GAPS = 200  # id ranges watched at most (PostgreSQL); more: count every account instead
GAP_SETTLE_SECONDS = 2.0  # a gap is given up only if still missing this long after it was first seen


@dataclass(frozen=True)
class _Kept:
    """Counts exact as of one statement's snapshot, and what the next step needs to know about it."""

    counts: tuple  # ((status, n), ...)
    event_id: int  # the newest audit event visible in that snapshot
    account_id: int  # the newest account visible in it
    counted_at: datetime  # the last full count (for the recount bound)
    as_of: datetime  # when the counts were brought up to date
    snapshot: str | None = None  # PostgreSQL: the snapshot itself ("xmin:xmax:in-progress,...")
    seen_at: float = 0.0  # time.time() of that snapshot
    gaps: tuple = ()  # PostgreSQL: ((lo, hi, first seen, time.time()), ...) ids <= event_id not visible
    base: tuple | None = None  # PostgreSQL: (events up to base id, base id, time.time()) while unsettled

    @property
    def version(self):
        return f"{self.event_id}:{self.account_id}"

    @property
    def pending(self):
        return bool(self.gaps) or self.base is not None


def current(now=None):
    """Return the exact StatusTotals: kept while nothing changed, brought up to date from the new audit
    events after a change, counted in full when they cannot say (see the module's docstring).

    Args:
        now: the time the counts are stamped with (default now).

    Returns:
        StatusTotals; `cached` when nothing changed since the kept count (nothing was counted).
    """
    now = now or utcnow()
    kept = _store().get("entry")
    if kept is None or _too_old(kept, now):
        adopted = _adopted(kept, now)  # the scheduler's copy, if it is newer (portal.domain.shared_figures)
        if adopted is not None:
            kept = _store()["entry"] = adopted
    if kept is not None and not _too_old(kept, now):
        mark = watermark()
        went_back = mark.event_id < kept.event_id or mark.account_id < kept.account_id
        if not went_back and not kept.pending and (mark.event_id, mark.account_id) == (kept.event_id, kept.account_id):
            return _totals(dict(kept.counts), kept.as_of, kept.version, cached=True)
        if (not went_back and mark.event_id - kept.event_id <= MAX_STEP_EVENTS
                and mark.account_id - kept.account_id <= MAX_STEP_ACCOUNTS):
            stepped, own_writes = _step(kept, now)
            if stepped is not None:
                same = (stepped.counts, stepped.version) == (kept.counts, kept.version)
                if same:  # nothing new (a gap or a late commit looked for): the kept figures, as they were
                    stepped = replace(stepped, as_of=kept.as_of)
                if not own_writes:
                    _store()["entry"] = stepped  # one assignment: threads see old or new, each self-consistent
                return _totals(dict(stepped.counts), stepped.as_of, stepped.version, cached=same)
    counted, own_writes = _count(now)
    if not own_writes:
        _store()["entry"] = counted
    return _totals(dict(counted.counts), counted.as_of, counted.version)


SHARED_NAME = "status-counts"
PUBLISH_AHEAD_SECONDS = 300  # the scheduler counts in full this long before the recount bound


def publish(now=None):
    """Bring this process's counts up to date (a full count when due) and share them with the processes that
    have none yet; the scheduler's tick calls this. Returns the StatusTotals."""
    now = now or utcnow()
    kept = _store().get("entry")
    if kept is not None and (now - kept.counted_at).total_seconds() > _recount_bound() - PUBLISH_AHEAD_SECONDS:
        counted, own_writes = _count(now)  # in full before the bound, so a copy is never as old as one kept
        if not own_writes:
            _store()["entry"] = counted
    totals = current(now)
    kept = _store().get("entry")
    if kept is not None:
        shared_figures.publish(SHARED_NAME, _dump(kept))
    return totals


def _adopted(kept, now):
    """The shared copy of the counts, if there is one counted on this database later than `kept`, else None."""
    payload = shared_figures.read(SHARED_NAME)
    try:
        shared = _load(payload) if payload is not None else None
    except (KeyError, TypeError, ValueError):
        return None  # written by another version: ignored
    if shared is None or _too_old(shared, now) or (kept is not None and shared.counted_at <= kept.counted_at):
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
    return _Kept(tuple((str(status), int(n)) for status, n in payload["counts"]), int(payload["event_id"]),
                 int(payload["account_id"]), datetime.fromisoformat(payload["counted_at"]),
                 datetime.fromisoformat(payload["as_of"]), payload["snapshot"], clock,
                 tuple((int(lo), int(hi), clock) for lo, hi, _first in payload["gaps"]),
                 (int(payload["base"][0]), int(payload["base"][1]), clock) if payload["base"] is not None else None)


def _recount_bound():
    return current_app.config.get("STATUS_COUNTS_RECOUNT_SECONDS", RECOUNT_SECONDS)


def _too_old(kept, now):
    return (now - kept.counted_at).total_seconds() > _recount_bound() or now < kept.counted_at


def _postgres():
    return db.session.get_bind().dialect.name == "postgresql"


def own_writes():
    """Return whether this session's transaction has written something it has not committed yet.

    What such a transaction reads includes its own writes, which may still roll back: it is served to the
    caller but neither kept nor shared (the status counts here, the chart's counts in portal.domain.overview).
    """
    if not _postgres():
        return _own_writes_sqlite()
    return db.session.scalar(text("SELECT pg_current_xact_id_if_assigned() IS NOT NULL"))


def _own_writes_sqlite():
    """Whether this session's SQLite connection has uncommitted writes (pysqlite opens a transaction on DML)."""
    return bool(db.session.connection().connection.dbapi_connection.in_transaction)


_NULL_TEXT = "CAST(NULL AS TEXT)"
_NULL_INT = "CAST(NULL AS BIGINT)"


def _count(now):
    """Count every account by status, with the newest ids (and PostgreSQL's snapshot) in the same statement."""
    parts = [f"SELECT 'c' AS k, status AS s1, {_NULL_TEXT} AS s2, count(*) AS n1, {_NULL_INT} AS n2 "
             "FROM accounts GROUP BY status",
             f"SELECT 'e', {_NULL_TEXT}, {_NULL_TEXT}, (SELECT coalesce(max(id), 0) FROM audit_events), {_NULL_INT}",
             f"SELECT 'a', {_NULL_TEXT}, {_NULL_TEXT}, (SELECT coalesce(max(id), 0) FROM accounts), {_NULL_INT}"]
    postgres = _postgres()
    if postgres:  # the events up to the newest, counted only if some transaction is in progress
        parts.append("SELECT 's', CAST(pg_current_snapshot() AS TEXT), "
                     "CAST(pg_current_xact_id_if_assigned() AS TEXT), "
                     "CASE WHEN EXISTS (SELECT 1 FROM pg_snapshot_xip(pg_current_snapshot())) "
                     "THEN (SELECT count(*) FROM audit_events) END, "
                     f"{_NULL_INT}")
    rows = db.session.execute(text(" UNION ALL ".join(parts))).all()
    counts = {r.s1: int(r.n1) for r in rows if r.k == "c"}
    event_id = next(int(r.n1) for r in rows if r.k == "e")
    account_id = next(int(r.n1) for r in rows if r.k == "a")
    kept = _Kept(_frozen(counts), event_id, account_id, now, now)
    if not postgres:
        return kept, _own_writes_sqlite()
    snap = next(r for r in rows if r.k == "s")
    base = (int(snap.n1), event_id, time.time()) if snap.n1 is not None else None
    return replace(kept, snapshot=snap.s1, seen_at=time.time(), base=base), snap.s2 is not None


def _gap_clause(gaps):
    """SQL for 'id in one of the gaps', with its parameters."""
    params = {}
    ors = []
    for i, (lo, hi, _first) in enumerate(gaps):
        params[f"glo{i}"], params[f"ghi{i}"] = lo, hi
        ors.append(f"id BETWEEN :glo{i} AND :ghi{i}")
    return "(" + " OR ".join(ors) + ")", params


def _step(kept, now):
    """Bring the kept counts up to date from what was committed since, in one statement.

    Returns (the new _Kept, or None when it cannot be shown exact; whether this transaction wrote itself).
    """
    postgres = _postgres()
    params = {"e": kept.event_id, "a": kept.account_id}
    in_gaps, gap_params = _gap_clause(kept.gaps) if kept.gaps else (None, {})
    params.update(gap_params)
    new_events = f"(id > :e OR {in_gaps})" if in_gaps else "id > :e"  # an OR on SQLite would scan the table
    # SQLite's planner, without statistics, walks an index on account_id or status (the whole table) rather
    # than the primary-key range; a unary + keeps those columns out of any index
    plus = "" if postgres else "+"
    parts = [f"SELECT 'e' AS k, {_NULL_TEXT} AS s1, {_NULL_TEXT} AS s2, "
             f"(SELECT coalesce(max(id), 0) FROM audit_events) AS n1, {_NULL_INT} AS n2",
             f"SELECT 'a', {_NULL_TEXT}, {_NULL_TEXT}, (SELECT coalesce(max(id), 0) FROM accounts), {_NULL_INT}",
             # the status changes since, of accounts already counted
             f"SELECT 'm', state_before, state_after, count(*), {_NULL_INT} FROM audit_events "
             f"WHERE {new_events} AND state_after IS NOT NULL AND {plus}account_id <= :a "
             "GROUP BY state_before, state_after",
             # accounts not counted yet, as they are now
             f"SELECT 'n', status, {_NULL_TEXT}, count(*), {_NULL_INT} FROM accounts WHERE id > :a "
             f"GROUP BY {plus}status"]
    if postgres:
        if kept.gaps:  # the ids that appeared in the gaps
            parts.append(f"SELECT 'g', {_NULL_TEXT}, {_NULL_TEXT}, id, {_NULL_INT} FROM audit_events WHERE {in_gaps}")
        # the new gaps: ids missing between the kept newest and the newest now
        parts.append(f"SELECT 'h', {_NULL_TEXT}, {_NULL_TEXT}, coalesce(prev, :e) + 1, id - 1 FROM "
                     "(SELECT id, lag(id) OVER (ORDER BY id) AS prev FROM audit_events WHERE id > :e) AS w "
                     "WHERE id > coalesce(prev, :e) + 1")
        # the transactions in progress at the kept snapshot: how many still are, how many have ended
        xip = "FROM pg_snapshot_xip(CAST(:snap AS pg_snapshot)) AS x WHERE "
        running = f"(SELECT count(*) {xip}NOT pg_visible_in_snapshot(x, pg_current_snapshot()))"
        ended = f"(SELECT count(*) {xip}pg_visible_in_snapshot(x, pg_current_snapshot()))"
        params["snap"] = kept.snapshot
        base = _NULL_INT
        if kept.base is not None:  # counted while it is young, then whenever one of those transactions ends
            params["base_id"] = kept.base[1]
            recount = "(SELECT count(*) FROM audit_events WHERE id <= :base_id)"
            young = kept.seen_at - kept.base[2] < GAP_SETTLE_SECONDS
            base = recount if young else f"CASE WHEN {ended} > 0 THEN {recount} END"
        parts.append(f"SELECT 's', CAST(pg_current_snapshot() AS TEXT), "
                     f"CAST(pg_current_xact_id_if_assigned() AS TEXT), {running}, {base}")
    rows = db.session.execute(text(" UNION ALL ".join(parts)), params).all()
    counts = dict(kept.counts)
    for r in rows:
        if r.k == "m":
            counts[r.s2] = counts.get(r.s2, 0) + int(r.n1)
            if r.s1 is not None:
                counts[r.s1] = counts.get(r.s1, 0) - int(r.n1)
        elif r.k == "n":
            counts[r.s1] = counts.get(r.s1, 0) + int(r.n1)
    if any(n < 0 for n in counts.values()):
        return None, False  # an event that does not match the table: count every account
    event_id = next(int(r.n1) for r in rows if r.k == "e")
    account_id = next(int(r.n1) for r in rows if r.k == "a")
    stepped = replace(kept, counts=_frozen(counts), event_id=event_id, account_id=account_id, as_of=now)
    if not postgres:
        return stepped, _own_writes_sqlite()
    snap = next(r for r in rows if r.k == "s")
    everyone_ended = int(snap.n1) == 0
    base = kept.base
    if snap.n2 is not None and int(snap.n2) != kept.base[0]:
        return None, False  # an event was committed late below the full count's newest id: count again
    if base is not None and everyone_ended and kept.seen_at - base[2] >= GAP_SETTLE_SECONDS:
        base = None  # every transaction that could still have committed below it has ended
    clock = time.time()
    appeared = {int(r.n1) for r in rows if r.k == "g"}
    gaps = []
    for lo, hi, first in kept.gaps:
        dead = everyone_ended and kept.seen_at - first >= GAP_SETTLE_SECONDS
        if not dead:
            gaps.extend((a, b, first) for a, b in _without(lo, hi, appeared))
    gaps.extend((int(r.n1), int(r.n2), clock) for r in rows if r.k == "h")
    if len(gaps) > MAX_GAPS:
        return None, False
    stepped = replace(stepped, snapshot=snap.s1, seen_at=clock, gaps=tuple(gaps), base=base)
    return stepped, snap.s2 is not None


def _without(lo, hi, found):
    """The ranges of lo..hi left once the ids found are taken out."""
    start = lo
    for current_id in sorted(i for i in found if lo <= i <= hi):
        if current_id > start:
            yield start, current_id - 1
        start = current_id + 1
    if start <= hi:
        yield start, hi


def _frozen(counts):
    return tuple(sorted((status, int(n)) for status, n in counts.items() if n))


def _totals(counts, as_of, version, cached=False):
    every = {status: int(counts.get(status, 0)) for status in STATUSES}
    every.update({status: int(n) for status, n in counts.items() if status not in every})
    return StatusTotals(every, sum(every.values()), as_of, version, cached)


def _store():
    return current_app.extensions.setdefault("portal.status_counts", {})


def forget():
    """Drop the kept counts (the next read counts every account again)."""
    _store().pop("entry", None)
