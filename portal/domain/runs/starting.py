"""The set-based run engine: suspend or reactivate every account a selection picks, in chunks.

A run covers the account id range that existed when it started, cut into chunks. Workers claim
chunks; each chunk is one transaction (portal.domain.runs.chunk) that compare-and-sets the accounts'
status, writes one audit event per changed account, queues the managers' emails, and marks the chunk
done. A killed worker's chunk rolls back and is claimed again once its claim is older than
SWEEP_CHUNK_STALE_SECONDS, so every account changes once, with one event and one email. Any number
of workers can work on one run at the same time. The database is the truth: a run whose worker died,
or whose jobs Redis lost, is queued again when a sweep worker starts (enqueue_unfinished) or by the
scheduler's tick.

Clean-ups, recurring sweeps and undos are exclusive: while one is queued or running its row holds
lock_key = "sweep", which is unique, so the database refuses a second one. A recurring run's
period_key is unique too: a period never runs twice.

A selection is a JSON-able dict stored with the run; `SELECTIONS[type](selection, as_of)` turns it
into a SQL condition over accounts (rules, an account-list filter, explicit ids, the accounts an
earlier run suspended).
"""
import logging
import time
from datetime import timedelta

from flask import current_app
from sqlalchemy import and_, case, func, insert, select, text, update
from sqlalchemy.exc import IntegrityError

from portal.domain import audit, rules as rules_domain
from portal.domain.background import BackgroundUnavailable, require_queue
from portal.domain.errors import Conflict, DomainError, InvalidTransition, PermissionDenied, ValidationFailed
from portal.domain.gate import may
from portal.domain.parsing import record_id
from portal.domain.runs.chunk import ACTIONS, BY_RULE, run_label  # noqa: F401  (re-exported)
from portal.domain.suspension import validate_reason
from portal.extensions import QUEUE_SWEEPS, db, get_queue
from portal.models import Account, AuditEvent, SweepRun, SweepRunChunk
from portal.timeutil import utcnow

log = logging.getLogger(__name__)

KINDS = ("cleanup", "recurring", "bulk", "undo", "dunning")
EXCLUSIVE_KINDS = ("cleanup", "recurring", "undo", "dunning")
LOCK = "sweep"
LOCKS = {"dunning": "dunning"}  # the daily dunning run is exclusive among its own kind, not with sweeps
RUN_ACTIONS = tuple(ACTIONS) + ("evaluate",)  # evaluate: the dunning schedule decides per account
CHUNK_PROCESSORS = {}
CANDIDATE_CHUNKED = set()
ACTIVE_STATUSES = ("queued", "running")  # workers take it on (paused and cancelled runs they leave alone)
IN_PROGRESS = ACTIVE_STATUSES + ("paused",)  # not finished: an undo waits for these
TRIGGER_ACTORS = {"schedule": "Schedule", "cli": "Command line"}
SELECTIONS = {}


class RunNotFound(DomainError):
    """No such run."""

    status_code = 404

    def __init__(self):
        super().__init__("Run not found.")


class RunInProgress(Conflict):
    """Another clean-up, recurring sweep or undo is queued or running; only one at a time."""

    def __init__(self, run_id=None, lock=LOCK):
        which = f"Run #{run_id} is" if run_id else "Another run is"
        what = "daily dunning run" if lock == "dunning" else "clean-up, sweep or undo"
        super().__init__(f"{which} still in progress. Only one {what} runs at a time: "
                         "wait for it to finish (or resume it if it failed). Nothing was started.", run_id=run_id)


class PeriodAlreadyRun(Conflict):
    """The recurring sweep of this period (or the dunning run of this day) has already been started."""

    def __init__(self, period_key):
        if str(period_key).startswith("dunning:"):
            message = f"The dunning run of {period_key.split(':', 1)[1]} has already been started (one run per day)."
        else:
            message = f"The sweep of period {period_key} has already run."
        super().__init__(message, period_key=period_key)


def lock_for(kind):
    """The lock an exclusive kind of run holds while queued or running (None: not exclusive)."""
    if kind not in EXCLUSIVE_KINDS:
        return None
    return LOCKS.get(kind, LOCK)


def register_chunk_processor(kind, process):
    """Register process(run, chunk_id, lo, hi, selected, now) for the chunks of runs of this kind."""
    CHUNK_PROCESSORS[kind] = process


def chunk_processor(kind):
    """The function a kind of run registered for its chunks, or None (run_chunk's status change)."""
    return CHUNK_PROCESSORS.get(kind)


def register_selection(kind, build, by_candidates=False):
    """Register build(selection, as_of) -> SQL condition over accounts, for selections of this type.

    by_candidates: cut the run's chunks where the selected accounts are (for a selection read through an
    index that picks few accounts out of many), instead of by id ranges over every account.
    """
    SELECTIONS[kind] = build
    if by_candidates:
        CANDIDATE_CHUNKED.add(kind)


def _rules_selection(selection, as_of):
    return rules_domain.match_clause(selection["rules"], as_of)


def _ids_selection(selection, as_of):  # noqa: ARG001
    return Account.id.in_([int(i) for i in selection["ids"]])


def _undo_selection(selection, as_of):  # noqa: ARG001
    return Account.suspended_by_run_id == int(selection["run_id"])


register_selection("rules", _rules_selection)
register_selection("ids", _ids_selection)
register_selection("undo", _undo_selection)


def selection_clause(selection, as_of):
    """Return the SQL condition of a stored selection."""
    try:
        build = SELECTIONS[selection["type"]]
    except (KeyError, TypeError):
        raise ValidationFailed({"selection": "Unknown selection."}) from None
    return build(selection, as_of)


# ---------------------------------------------------------------- starting and reading runs

def running_exclusive_run(lock=LOCK):
    """Return the id of the clean-up, sweep or undo (or, with lock="dunning", the dunning run) in progress, or None."""
    return db.session.scalar(select(SweepRun.id).where(SweepRun.lock_key == lock))


def start_run(actor, kind, action, selection, reason_category, reason_note, as_of=None, trigger="user",
              schedule_id=None, period_key=None, undo_of_run_id=None, chunk_size=None, enqueue=True, now=None,
              total=None):
    """Create a run with its chunks and queue its processing on the sweeps queue.

    Args:
        actor: the super admin starting it, or None for the schedule or the command line.
        kind: cleanup | recurring | bulk | undo (all but bulk are exclusive: one at a time).
        action: suspend | reactivate.
        selection: which accounts (see SELECTIONS), stored with the run.
        reason_category, reason_note: why (as for a single suspension); a rules run may give BY_RULE:
            each account gets non-payment if a money rule matched it, else inactivity.
        as_of: the time rules are evaluated at (default now).
        trigger: user | schedule | cli.
        schedule_id, period_key: for recurring runs (period_key is unique: a period never runs twice).
        undo_of_run_id: the run an undo reverses.
        chunk_size: accounts per chunk (default SWEEP_CHUNK_SIZE).
        enqueue: False to leave processing to the caller (tests, benchmarks).
        now: the time of the start (default now).
        total: how many accounts the selection holds, when the caller has just counted them (the clean-up's
            preview, the bulk confirmation); else counted here. Progress is reported out of it.

    Returns:
        The queued SweepRun.

    Raises:
        PermissionDenied: the actor may not run sweeps.
        ValidationFailed: unknown kind, action or selection; missing reason.
        RunInProgress: an exclusive run is already queued or running (the database refuses a second).
        PeriodAlreadyRun: period_key has already run.
        BackgroundUnavailable: the job queue cannot be reached (with enqueue); nothing is stored.
    """
    _require_permission(actor)
    if kind not in KINDS or action not in RUN_ACTIONS:
        raise ValidationFailed({"kind": "Unknown kind of run."})
    category, note = validate_run_reason(reason_category, reason_note, selection, action)
    now = now or utcnow()
    as_of = as_of or now
    selection_clause(selection, as_of)  # refuse a bad selection before anything is stored
    lock = lock_for(kind)
    if period_key and db.session.scalar(select(SweepRun.id).where(SweepRun.period_key == period_key)):
        raise PeriodAlreadyRun(period_key)
    if lock and (busy := running_exclusive_run(lock)) is not None:
        raise RunInProgress(busy, lock)
    if enqueue:
        require_queue()
    run = SweepRun(kind=kind, action=action, status="queued", as_of=as_of, trigger=trigger,
                   triggered_by_id=getattr(actor, "id", None), schedule_id=schedule_id, period_key=period_key,
                   lock_key=lock, undo_of_run_id=undo_of_run_id,
                   reason_category=category, reason_note=note, rules_snapshot=selection.get("rules"),
                   params={"selection": selection},
                   chunk_size=chunk_size or current_app.config["SWEEP_CHUNK_SIZE"], created_at=now)
    db.session.add(run)
    try:
        db.session.flush()  # the unique lock_key / period_key are checked here, by the database
    except IntegrityError:
        db.session.rollback()
        raise _start_conflict(period_key, lock) from None
    counted = _add_chunks(run, selection, total)
    total = total if total is not None else counted if counted is not None else _count_selected(run, selection)
    run.params = {"selection": selection, "total": int(total)}
    audit.record(f"run_{kind}_started", None, actor or TRIGGER_ACTORS.get(trigger, "System"), run_id=run.id,
                 reason_category=category, reason_note=note,
                 data={"action": action, "selection": selection, "as_of": as_of.isoformat(), "trigger": trigger},
                 now=now)
    if enqueue and not enqueue_run(run.id):  # its jobs first: a run is never stored without them
        db.session.rollback()
        raise BackgroundUnavailable()
    db.session.commit()
    return run


def validate_run_reason(category, note, selection, action="suspend"):
    """A reason for the action (suspension.reasons_for: a reactivating run, bulk or undo, has its own), or BY_RULE
    for a rules run (non-payment or inactivity per account)."""
    if category == BY_RULE and isinstance(selection, dict) and selection.get("type") == "rules":
        return BY_RULE, validate_reason("other", note)[1]
    return validate_reason(category, note, action)


def _require_permission(actor):
    if actor is not None:
        decision = may(actor, "run_sweep", None)
        if not decision:
            raise PermissionDenied(decision.message)


def _start_conflict(period_key, lock=LOCK):
    if period_key and db.session.scalar(select(SweepRun.id).where(SweepRun.period_key == period_key)):
        return PeriodAlreadyRun(period_key)
    return RunInProgress(running_exclusive_run(lock or LOCK), lock or LOCK)


def sweep_connections():
    """How many chunks one worker works on at a time: SWEEP_CONNECTIONS (default 2) on PostgreSQL, 1 on SQLite."""
    if db.engine.dialect.name != "postgresql":
        return 1  # one writer at a time: a second connection would only wait for the first
    return max(1, int(current_app.config.get("SWEEP_CONNECTIONS") or 2))


def _min_chunks():
    """The fewest chunks a run with anything to do is cut into where possible: on PostgreSQL two per connection
    of a worker, so that two workers share the work (and a worker's connections do), on SQLite one."""
    connections = sweep_connections()
    return 1 if connections == 1 else 2 * connections


def _add_chunks(run, selection, total=None):
    """Cut the run's id range into chunks of about chunk_size SELECTED accounts each; return the count.

    A chunk is a range of ids (claimed, done and claimed again after a crash as a whole). What a chunk costs
    beyond its accounts is fixed, so a run has as few chunks as its selected accounts allow: about
    chunk_size selected accounts each, but at least _min_chunks() so that the workers share the work.
    - Given the total (the clean-up's confirmation, a bulk change's count), the range is cut into that many
      ranges of equal width: they cover every id, so an account the count did not see is still looked at.
    - Else a selection by rules or by a filter is counted here, block by block of chunk_size ids in one pass;
      the blocks that hold a selected account are joined into chunks (a run that selects nothing has none).
    - Explicit ids and an undo (its accounts from the audit index) narrow the range and are counted first.
    Returns that count for a selection counted here, else None (the caller passes the total, or counts).
    """
    column, where = Account.id, []
    kind = selection.get("type")
    if kind in CANDIDATE_CHUNKED:
        return _add_candidate_chunks(run, selection_clause(selection, run.as_of))
    if kind == "ids":
        where = [_ids_selection(selection, None)]
    elif kind == "undo":  # the accounts the run suspended, from the audit index
        column = AuditEvent.account_id
        where = [AuditEvent.actor_run_id == int(selection["run_id"]), AuditEvent.action == "suspended"]
    # Two statements: SQLite answers min() and max() alone from one end of the index, but both in one
    # statement with a full index scan.
    lo = db.session.scalar(select(func.min(column)).where(*where))
    hi = db.session.scalar(select(func.max(column)).where(*where))
    run.min_id, run.max_id = lo, hi
    if lo is None:
        return 0 if total is None and kind not in ("ids", "undo") else None
    counted = None
    if total is None and kind not in ("ids", "undo"):
        found = _count_by_block(run, selection, lo)
        counted = sum(found.values())
        ranges = _joined_blocks(found, lo, hi, run.chunk_size, _per_chunk(counted, run.chunk_size))
    else:
        if total is None:
            total = counted = _count_selected(run, selection)
        ranges = _even_ranges(lo, hi, total, run.chunk_size)
    if ranges:
        db.session.execute(insert(SweepRunChunk), [
            dict(run_id=run.id, lo=start, hi=end, matched=0, changed=0, skipped=0) for start, end in ranges])
    return counted


def _per_chunk(total, chunk_size):
    """How many selected accounts a chunk should hold: chunk_size, or fewer to make _min_chunks() chunks."""
    return max(1, min(chunk_size, -(-int(total) // _min_chunks())))


def _chunk_count(total, chunk_size):
    """How many chunks `total` selected accounts make: about chunk_size each, at least _min_chunks(), and on
    PostgreSQL a multiple of a worker's connections (so none of them is left idle for the last chunk)."""
    count = max(_min_chunks(), -(-int(total) // chunk_size))
    connections = sweep_connections()
    return -(-count // connections) * connections


def _even_ranges(lo, hi, total, chunk_size):
    """[lo, hi] cut into _chunk_count(total) ranges of equal width, [(start, end)] with end exclusive."""
    span = hi + 1 - lo
    width = -(-span // min(span, _chunk_count(total, chunk_size)))
    return [(start, min(start + width, hi + 1)) for start in range(lo, hi + 1, width)]


def _joined_blocks(found, lo, hi, block_size, per_chunk):
    """Consecutive blocks that hold selected accounts joined into ranges of at most per_chunk of them.

    found: {block number: selected accounts} for blocks of block_size ids from lo. A block holding more than
    per_chunk is a chunk of its own (a chunk is never less than a block). Blocks without a selected account
    are left out and never joined over: no chunk reads ids where nothing is selected.
    """
    ranges, start, end, held = [], None, None, 0
    for block in sorted(found):
        b_start, b_end = lo + block * block_size, min(lo + (block + 1) * block_size, hi + 1)
        if start is not None and (held + found[block] > per_chunk or b_start != end):
            ranges.append((start, end))
            start, held = None, 0
        if start is None:
            start = b_start
        end, held = b_end, held + found[block]
    if start is not None:
        ranges.append((start, end))
    return ranges


def _count_by_block(run, selection, lo):
    """{block: selected accounts} for the blocks of chunk_size ids from lo that hold any, in one pass.

    The run's total comes from the same pass, and a chunk is cut only where there is something to do: a
    run that selects nothing has no chunk, and one that selects few does not pay for the empty blocks.
    """
    if db.engine.dialect.name == "postgresql":
        db.session.execute(text("SET LOCAL jit = off"))  # one pass: compiling it costs more than it saves
    block = ((Account.id - lo) // run.chunk_size).label("block")  # integer division on both databases
    rows = db.session.execute(select(block, func.count()).where(selection_clause(selection, run.as_of))
                              .group_by(block))
    return {int(b): int(n) for b, n in rows}


def _count_selected(run, selection):
    """The accounts the run's selection holds in its id range now: the total its progress is reported out of.

    An undo counts the accounts still suspended by the run it reverses, found through the audit index.
    """
    if run.min_id is None:
        return 0
    if selection.get("type") == "undo":
        undone = int(selection["run_id"])
        suspended = select(AuditEvent.account_id).where(AuditEvent.actor_run_id == undone,
                                                        AuditEvent.action == "suspended")
        where = [Account.id.in_(suspended), Account.suspended_by_run_id == undone]
    else:
        where = [Account.id >= run.min_id, Account.id <= run.max_id, selection_clause(selection, run.as_of)]
    if db.engine.dialect.name == "postgresql":
        db.session.execute(text("SET LOCAL jit = off"))  # one pass: compiling it costs more than it saves
    return db.session.scalar(select(func.count()).select_from(Account).where(*where)) or 0


def _add_candidate_chunks(run, candidates):
    """Chunks of chunk_size candidate accounts each, cut where the candidates are (a run that selects few
    accounts out of a million has one small chunk, or none: its cost follows what it selects)."""
    ids = list(db.session.scalars(select(Account.id).where(candidates).order_by(Account.id)))
    run.min_id, run.max_id = (ids[0], ids[-1]) if ids else (None, None)
    bounds = [ids[i] for i in range(0, len(ids), run.chunk_size)]
    if ids:
        db.session.execute(insert(SweepRunChunk), [
            dict(run_id=run.id, lo=lo, hi=(bounds[i + 1] if i + 1 < len(bounds) else ids[-1] + 1), matched=0,
                 changed=0, skipped=0) for i, lo in enumerate(bounds)])
    return len(ids)


def enqueue_run(run_id, jobs=None):
    """Queue `jobs` workers' worth of processing for a run (they share its chunks); return True if queued.

    A run being started is queued before its transaction commits, so a worker may take a job before
    the run is there to read: the job waits for it (wait_for_run).
    """
    from rq import Retry

    jobs = jobs or int(current_app.config.get("SWEEP_PARALLEL_JOBS", 2))
    try:
        queue = get_queue(QUEUE_SWEEPS)
        stamp = time.time_ns() // 1000
        for i in range(jobs):
            queue.enqueue("portal.jobs.process_run", run_id, job_id=f"run-{run_id}-{stamp}-{i}",
                          job_timeout=6 * 3600, retry=Retry(max=3, interval=[5, 30, 120]),
                          description=f"process run #{run_id}")
    except Exception as exc:  # noqa: BLE001 - the run stays queued; recovery queues it again
        log.warning("could not queue run %s: %s", run_id, exc)
        return False
    return True


LOST_JOBS_AFTER = timedelta(seconds=10)  # a run Redis knows no job of is queued again once this quiet


def _sweeps_jobs():
    """The ids of the sweeps queue's jobs Redis knows of: (waiting, all known).

    Waiting: in the queue, or being taken from it by a worker (RQ's intermediate list). Known: those, the
    ones in a worker's hands (StartedJobRegistry) and the ones planned for a retry (ScheduledJobRegistry).
    """
    from rq.registry import ScheduledJobRegistry, StartedJobRegistry

    queue = get_queue(QUEUE_SWEEPS)
    waiting = set(queue.get_job_ids()) | set(queue.intermediate_queue.get_job_ids())
    in_hand = StartedJobRegistry(queue=queue).get_job_ids(cleanup=False)  # workers' own maintenance cleans it
    planned = ScheduledJobRegistry(queue=queue).get_job_ids(cleanup=False)
    return waiting, waiting | set(in_hand) | set(planned)


def _of_run(job_ids, run_id):
    prefix = f"run-{run_id}-"
    return any(job_id.startswith(prefix) for job_id in job_ids)


def enqueue_unfinished(stale_only=True, now=None):
    """Queue processing again for unfinished runs nobody is working on; return their ids.

    The database is the truth. A sweep worker calls this when it starts (stale_only=False: every unfinished
    run without a job waiting), and the scheduler's tick for runs that look abandoned:
    - a worker killed mid-run leaves its run "running" with its heartbeat (refreshed at every chunk claim)
      growing old: queued again once it is older than SWEEP_CHUNK_STALE_SECONDS;
    - Redis lost the run's jobs (restarted empty, or its data lost) while the run was queued or between
      chunks: Redis knows no job of the run (none waiting, in a worker's hands or planned for a retry), so
      it is queued again once its heartbeat is older than LOST_JOBS_AFTER, without waiting for staleness.
      A worker still doing its chunks keeps the heartbeat fresh, so a run in hand is not queued twice.
    A run that already has a job waiting in the queue is left alone; an extra job is harmless anyway
    (chunks are claimed once).
    """
    now = now or utcnow()
    stale_at = now - timedelta(seconds=float(current_app.config["SWEEP_CHUNK_STALE_SECONDS"]))
    last_sign = func.coalesce(SweepRun.heartbeat_at, SweepRun.created_at)
    query = (select(SweepRun.id, last_sign).where(SweepRun.status.in_(ACTIVE_STATUSES)).order_by(SweepRun.id))
    if stale_only:
        query = query.where(last_sign < max(stale_at, now - LOST_JOBS_AFTER))
    candidates = db.session.execute(query).all()
    if not candidates:
        return []
    try:
        waiting, known = _sweeps_jobs()
    except Exception as exc:  # noqa: BLE001 - Redis down: nothing can be queued now anyway
        log.warning("could not look at the sweeps queue: %s", exc)
        return []
    queued = []
    for run_id, seen_at in candidates:
        if _of_run(waiting, run_id) or (stale_only and seen_at >= stale_at and _of_run(known, run_id)):
            continue
        if stale_only and seen_at >= stale_at:
            log.warning("run %s has no job left in Redis (was Redis restarted?): queueing it again", run_id)
        db.session.execute(update(SweepRun).where(SweepRun.id == run_id).values(heartbeat_at=now))
        db.session.commit()
        if enqueue_run(run_id, jobs=1):
            queued.append(run_id)
    return queued


def wait_for_run(run_id, timeout=10.0, poll=0.02):
    """Return True once the run can be read; False if it is not there after timeout seconds.

    A job is queued just before its run commits (start_run), so it may arrive first; if the commit
    failed, the run never appears and the job has nothing to do.
    """
    deadline = time.monotonic() + timeout
    while db.session.get(SweepRun, int(run_id)) is None:
        db.session.rollback()  # a new transaction sees what committed since
        if time.monotonic() >= deadline:
            return False
        time.sleep(poll)
    return True


def get_run(run_id, fresh=False):
    """Return the run or raise RunNotFound; fresh: read its row again even if the session holds it."""
    run_id = record_id(run_id)
    run = db.session.get(SweepRun, run_id, populate_existing=fresh) if run_id is not None else None
    if run is None:
        raise RunNotFound()
    return run


def progress(run_id, now=None):
    """Return a run's live progress: status, accounts processed out of the total, rate, time left, counts so far.

    Args:
        run_id: the run.
        now: the time the figures are taken at (default now).

    Returns:
        dict: processed, total, done_fraction (of the accounts), rate (accounts/s), eta_s, in_hand (chunks
        a worker still holds), stopping (paused or cancelled, a chunk still in hand), finished (nothing more
        will happen without someone resuming it), the counts and skip reasons, and the chunks.

    Raises:
        RunNotFound.
    """
    from portal.domain.runs import pace

    now = now or utcnow()
    run = get_run(run_id)
    db.session.refresh(run)
    stale_at = now - timedelta(seconds=float(current_app.config["SWEEP_CHUNK_STALE_SECONDS"]))
    total, done, matched, changed, skipped, in_hand = db.session.execute(
        select(func.count(), func.count(SweepRunChunk.done_at), func.coalesce(func.sum(SweepRunChunk.matched), 0),
               func.coalesce(func.sum(SweepRunChunk.changed), 0), func.coalesce(func.sum(SweepRunChunk.skipped), 0),
               func.count(case((and_(SweepRunChunk.done_at.is_(None), SweepRunChunk.claimed_at >= stale_at), 1))))
        .where(SweepRunChunk.run_id == run.id)).one()
    reasons = {}
    for (chunk_reasons,) in db.session.execute(select(SweepRunChunk.skip_reasons).where(
            SweepRunChunk.run_id == run.id, SweepRunChunk.done_at.is_not(None))):
        for reason, count in (chunk_reasons or {}).items():
            reasons[reason] = reasons.get(reason, 0) + count
    if not total and (run.params or {}).get("inline"):  # a bulk change made at once: its counts are on the run
        matched, changed, skipped, reasons = run.matched, run.changed, run.skipped, dict(run.skip_reasons or {})
    duration = None
    if run.started_at:
        duration = max(0.0, ((run.finished_at or now) - run.started_at).total_seconds())
    in_hand = int(in_hand) if run.status in ("paused", "cancelled") else 0
    state = {"id": run.id, "status": run.status, "kind": run.kind, "action": run.action, "trigger": run.trigger,
             "label": run_label(run), "matched": int(matched), "changed": int(changed), "skipped": int(skipped),
             "skip_reasons": dict(sorted(reasons.items(), key=lambda kv: -kv[1])),
             "chunks": int(total), "chunks_done": int(done), "in_hand": in_hand, "stopping": in_hand > 0,
             "finished": run.status in ("done", "failed") or (run.status == "cancelled" and not in_hand),
             "error": run.error, "duration_s": duration, "as_of": run.as_of, "created_at": run.created_at,
             "started_at": run.started_at, "finished_at": run.finished_at}
    state.update(pace.figures(run, int(matched), int(total), int(done), now))
    state["summary"] = pace.summary(state)
    return state


def is_stalled(run, now=None):
    """True when a run workers should be on has not been heard of for SWEEP_CHUNK_STALE_SECONDS."""
    stale = timedelta(seconds=float(current_app.config["SWEEP_CHUNK_STALE_SECONDS"]))
    beat = run.heartbeat_at or run.created_at
    return run.status in ACTIVE_STATUSES and beat < (now or utcnow()) - stale


RESUMABLE = ("paused", "failed")  # and a queued or running run nobody has worked on for a while (is_stalled)


def resume_run(actor, run_id, now=None):
    """Queue a paused, failed or stalled run again; chunks already done are not redone.

    A compare-and-set on the status read: two resumes at once, or a worker finishing the run meanwhile,
    leave one transition (the other is refused and changes nothing).

    Args:
        actor: the super admin resuming it (None: the system).
        run_id: the run.
        now: the time of the resume (default now).

    Raises:
        PermissionDenied, RunNotFound,
        InvalidTransition (finished, cancelled, or running or queued and not stalled: nothing to resume),
        RunInProgress (another exclusive run holds the lock),
        BackgroundUnavailable (the job queue cannot be reached; nothing is changed).
    """
    _require_permission(actor)
    now = now or utcnow()
    run = get_run(run_id, fresh=True)  # the status the compare-and-set below compares against
    if run.status not in RESUMABLE and not is_stalled(run, now):
        raise InvalidTransition(not_resumable(run))
    if (run.params or {}).get("inline"):
        raise InvalidTransition(f"Run #{run.id} was a bulk change made at once, account by account; it is not "
                                "resumed (start the bulk change again for the accounts it did not reach). "
                                "Nothing was changed.")
    require_queue()
    values = dict(status="queued", error=None)
    if run.kind in EXCLUSIVE_KINDS:
        values["lock_key"] = lock_for(run.kind)
    try:
        moved = db.session.execute(update(SweepRun).where(SweepRun.id == run.id, SweepRun.status == run.status)
                                   .values(**values).execution_options(synchronize_session=False)).rowcount
        if moved != 1:
            db.session.rollback()
            raise InvalidTransition(not_resumable(get_run(run.id), meanwhile=True))
        audit.record("run_resumed", None, actor or "System", run_id=run.id, data={"from": run.status}, now=now)
        db.session.flush()
    except IntegrityError:
        db.session.rollback()
        raise RunInProgress(running_exclusive_run(lock_for(run.kind) or LOCK), lock_for(run.kind) or LOCK) from None
    _release_claims(run.id, commit=False)  # paused, or the admin says it is stuck: don't wait for claims to go stale
    if not enqueue_run(run.id):  # its job first, then the commit: a queued run always has one
        db.session.rollback()
        raise BackgroundUnavailable()
    db.session.commit()
    db.session.refresh(run)
    return run


def not_resumable(run, meanwhile=False):
    """Why a run cannot be resumed now, and that nothing was changed."""
    db.session.refresh(run)
    first = f"Run #{run.id} {'changed meanwhile: it ' if meanwhile else ''}"
    if run.status == "done":
        return first + "has already finished; there is nothing to resume. Nothing was changed."
    if run.status == "cancelled":
        return first + "was cancelled; a cancelled run is not resumed (start a new one). Nothing was changed."
    if run.status in ACTIVE_STATUSES:
        return first + f"is {run.status}, not paused; there is nothing to resume. Nothing was changed."
    return first + f"is {run.status}. Nothing was changed."


def _release_claims(run_id, worker_name=None, commit=True):
    """Give back unfinished chunks (this worker's, or all) so a resumed run takes them at once.

    Safe even if a live worker still holds one: a chunk is marked done in the transaction that
    changes its accounts, and process_chunk re-checks that first, so a chunk is never done twice.
    """
    query = update(SweepRunChunk).where(SweepRunChunk.run_id == run_id, SweepRunChunk.done_at.is_(None))
    if worker_name is not None:
        query = query.where(SweepRunChunk.claimed_by == worker_name)
    db.session.execute(query.values(claimed_at=None, claimed_by=None))
    if commit:
        db.session.commit()
