"""Working through a run: the RQ job claims chunks until none is left, then finishes the run.

On PostgreSQL a worker works on SWEEP_CONNECTIONS chunks at a time, each over its own connection
(on SQLite, which has one writer, on one). Chunks claimed by another live worker are left to it; a
chunk whose claim is older than SWEEP_CHUNK_STALE_SECONDS (its worker was killed) is claimed again.
Each chunk is one transaction (portal.domain.runs.chunk). A run that fails records why and gives its
chunks back; resuming it, or RQ's retry, carries on where it stopped. A chunk is claimed only while its
run is running: after a pause or a cancel (runs.controls) each worker finishes the chunk in hand, gives
its claims back and stops; the status is looked at between chunks, never inside one.
"""
import logging
import os
import socket
import threading
import time
from datetime import timedelta

from flask import current_app
from sqlalchemy import exists, func, or_, select, update
from sqlalchemy.exc import IntegrityError, OperationalError

from portal.domain import audit
from portal.domain.errors import DomainError
from portal.domain.runs.chunk import process_chunk as _process_chunk, run_label
from portal.domain.runs.starting import (ACTIVE_STATUSES, EXCLUSIVE_KINDS, RunInProgress, _release_claims,
                                         chunk_processor, get_run, lock_for, progress, running_exclusive_run,
                                         selection_clause, sweep_connections)
from portal.extensions import db
from portal.models import SweepRun, SweepRunChunk
from portal.timeutil import utcnow

log = logging.getLogger(__name__)


def process_run(run_id, worker_name=None, stale_after=None, poll=0.5, connections=None):
    """Work on a run until none of its chunks is left to claim; finish it if all are done.

    Chunks claimed by another live worker are left to it; a chunk whose claim is older than
    `stale_after` seconds (a killed worker) is claimed again. On PostgreSQL one worker works on
    `connections` chunks at a time (SWEEP_CONNECTIONS; default 2 there, 1 on SQLite, which has one
    writer at a time), each over its own connection. Returns progress(run_id).
    """
    worker_name = worker_name or f"{socket.gethostname()}:{os.getpid()}"
    config = current_app.config
    stale_after = stale_after if stale_after is not None else float(config["SWEEP_CHUNK_STALE_SECONDS"])
    run = get_run(run_id)
    if run.status not in ("queued", "running", "failed"):  # done, or paused or cancelled: nothing to do now
        return progress(run_id)
    _mark_running(run)
    if run.status != "running":  # paused or cancelled since it was read
        return progress(run_id)
    connections = connections or sweep_connections()
    stopped = threading.Event()  # set when a connection is out of chunks, or failed: the others stop too
    app = current_app._get_current_object()
    helpers = [_Helper(app, run_id, f"{worker_name}/{i}", stale_after, poll, stopped, connections)
               for i in range(1, connections)]
    checkpointer = _Checkpointer(app) if db.engine.dialect.name == "sqlite" else None
    for thread in helpers + ([checkpointer] if checkpointer else []):
        thread.start()
    try:
        try:
            _work_on(run, worker_name, stale_after, poll, stopped, connections)
        finally:
            stopped.set()
            for helper in helpers:  # each finishes the chunk in hand
                helper.join()
            if checkpointer:
                checkpointer.stop()
        for helper in helpers:
            if helper.error is not None:
                raise helper.error
    except Exception as exc:
        _mark_failed(run.id, exc)  # also when the job's time ran out while waiting for the other connections
        raise
    _finish(run.id)
    _sqlite_checkpoint()
    return progress(run_id)


def _work_on(run, worker_name, stale_after, poll, stopped, limit=None):
    """Claim and do chunks until none is left; on a failure give this connection's chunks back and raise.

    `stopped` is shared by the connections of one worker: whichever stops first (all chunks done, or
    an error) wakes the others, which finish the chunk in hand and stop. With a `limit` a connection
    only claims a chunk while fewer than `limit` of the run's chunks are in hand (see _Helper).
    """
    pause = float(current_app.config.get("SWEEP_CHUNK_PAUSE_SECONDS") or 0)
    selected = selection_clause(run.params["selection"], run.as_of)
    try:
        while not stopped.is_set():
            chunk = _claim_chunk(run.id, worker_name, stale_after, limit)
            if chunk is None:
                if _all_done(run.id):
                    return
                if not _is_active(run.id):  # paused or cancelled: give back what this connection holds
                    _release_claims(run.id, worker_name)
                    return
                stopped.wait(poll)  # others are on the remaining chunks; take over any that go stale
                continue
            if pause:
                time.sleep(pause)  # throttling: leave the database room for other work
            _process_chunk_with_retry(run, chunk, selected)
    except Exception:
        db.session.rollback()
        _release_claims(run.id, worker_name)  # process_run marks the run failed
        raise
    finally:
        stopped.set()


class _Helper(threading.Thread):
    """One more connection of the same worker working on the run's chunks.

    It claims a chunk only while fewer than `limit` (the worker's connections) of the run's chunks are in
    hand, counting every worker's: two workers of two connections each keep two chunks going, not four
    (more chunks at a time than the database has cores is slower). The worker's own connection claims under
    the same limit: when each worker's own connection always claimed, two workers kept three chunks going
    over a run's four, and the last one ran alone. A killed worker's chunks count as in hand only until they
    go stale (SWEEP_CHUNK_STALE_SECONDS), so they hold the others back no longer than they wait themselves.
    """

    def __init__(self, app, run_id, worker_name, stale_after, poll, stopped, limit):
        super().__init__(name=f"run-{run_id}-{worker_name}", daemon=True)
        self.app, self.run_id, self.worker_name, self.stopped = app, run_id, worker_name, stopped
        self.stale_after, self.poll, self.limit, self.error = stale_after, poll, limit, None

    def run(self):
        with self.app.app_context():
            try:
                _work_on(get_run(self.run_id), self.worker_name, self.stale_after, self.poll, self.stopped,
                         self.limit)
            except Exception as exc:  # noqa: BLE001 - handed to the worker's own thread, which raises it
                log.exception("run %s: %s failed", self.run_id, self.worker_name)
                self.error = exc
            finally:
                db.session.remove()


class _Checkpointer(threading.Thread):
    """SQLite: copy the write-ahead log into the database while a run writes, on a connection of its own.

    The chunks' connection checkpoints rarely (runs.chunk: checkpointing there would stop the writing for
    a copy and two fsyncs every few chunks); this thread copies what the committed chunks wrote while
    the next chunk is being written, so little is left to copy when the run ends (_sqlite_checkpoint).
    """

    def __init__(self, app, interval=0.2):
        super().__init__(name="run-checkpointer", daemon=True)
        self.app, self.interval, self.stopped = app, interval, threading.Event()

    def run(self):
        with self.app.app_context():
            connection = db.engine.raw_connection()
            try:
                while not self.stopped.wait(self.interval):
                    try:
                        cursor = connection.cursor()
                        cursor.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                        cursor.close()
                    except Exception as exc:  # noqa: BLE001 - housekeeping: try again next time
                        log.warning("background checkpoint failed: %s", exc)
            finally:
                connection.close()

    def stop(self):
        """Stop after the checkpoint in progress, if any."""
        self.stopped.set()
        self.join()


def _sqlite_checkpoint():
    """SQLite: after a run, copy what is left of the write-ahead log into the database.

    PASSIVE: it never waits for readers or holds up writers (it copies what no reader still needs). The
    log file, which a run makes large, is cut back to journal_size_limit (db_setup) when a writer next
    starts it over.
    """
    if db.engine.dialect.name != "sqlite":
        return
    try:
        busy, logged, copied = db.session.connection().exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)").one()
        db.session.commit()
        if busy or logged != copied:
            log.info("checkpoint after the run copied %s of %s log pages; the rest follows", copied, logged)
    except Exception as exc:  # noqa: BLE001 - housekeeping; the next commits checkpoint anyway
        db.session.rollback()
        log.warning("could not checkpoint the write-ahead log: %s", exc)


def process_chunk(run, chunk_id, lo, hi, now=None):
    """Apply the run to accounts lo <= id < hi in one transaction and mark the chunk done.

    Returns the number of accounts changed (0 if another worker already did this chunk).
    """
    return _processor(run)(run, chunk_id, lo, hi, selection_clause(run.params["selection"], run.as_of),
                                     now or utcnow())


def _processor(run):
    """The chunk function of the run's kind: runs.chunk's status change unless the kind registered its own."""
    return chunk_processor(run.kind) or _process_chunk


def _mark_running(run):
    """queued/failed -> running; a failed exclusive run takes the lock again (or stays failed)."""
    now = utcnow()
    values = dict(status="running", started_at=func.coalesce(SweepRun.started_at, now), heartbeat_at=now,
                  error=None)
    if run.kind in EXCLUSIVE_KINDS:
        values["lock_key"] = lock_for(run.kind)
    try:
        db.session.execute(update(SweepRun).where(SweepRun.id == run.id, SweepRun.status.in_(("queued", "failed")))
                           .values(**values).execution_options(synchronize_session=False))
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        raise RunInProgress(running_exclusive_run(lock_for(run.kind)), lock_for(run.kind)) from None
    db.session.refresh(run)


def _mark_failed(run_id, exc):
    """queued/running -> failed, the lock let go (a run paused or cancelled meanwhile stays so)."""
    message = exc.message if isinstance(exc, DomainError) else f"{type(exc).__name__}: {exc}"
    db.session.execute(update(SweepRun).where(SweepRun.id == run_id, SweepRun.status.in_(("queued", "running")))
                       .values(status="failed", error=message[:2000], lock_key=None)
                       .execution_options(synchronize_session=False))
    db.session.commit()


def _claim_chunk(run_id, worker_name, stale_after, limit=None):
    """Atomically claim the next chunk nobody is working on; return (id, lo, hi) or None.

    Only while the run is queued or running: the claim's own UPDATE checks the status, so once a pause or
    cancel has committed no chunk is claimed any more. With a `limit`, only while fewer than `limit` of the run's chunks
    are in hand (claimed, not done).
    """
    now = utcnow()
    stale_at = now - timedelta(seconds=stale_after)
    candidate = (select(SweepRunChunk.id)
                 .where(SweepRunChunk.run_id == run_id, SweepRunChunk.done_at.is_(None),
                        or_(SweepRunChunk.claimed_at.is_(None), SweepRunChunk.claimed_at < stale_at))
                 .order_by(SweepRunChunk.id).limit(1))
    if limit:
        in_hand = (select(func.count()).select_from(SweepRunChunk)
                   .where(SweepRunChunk.run_id == run_id, SweepRunChunk.done_at.is_(None),
                          SweepRunChunk.claimed_at >= stale_at).scalar_subquery())
        candidate = candidate.where(in_hand < limit)
    if db.engine.dialect.name == "postgresql":
        candidate = candidate.with_for_update(skip_locked=True)
    running = exists().where(SweepRun.id == run_id, SweepRun.status.in_(ACTIVE_STATUSES))
    stmt = (update(SweepRunChunk).where(SweepRunChunk.id == candidate.scalar_subquery(), running)
            .values(claimed_at=now, claimed_by=worker_name)
            .returning(SweepRunChunk.id, SweepRunChunk.lo, SweepRunChunk.hi))
    row = db.session.execute(stmt).first()
    db.session.execute(update(SweepRun).where(SweepRun.id == run_id).values(heartbeat_at=now))
    db.session.commit()
    return tuple(row) if row else None


def _is_active(run_id):
    return db.session.scalar(select(SweepRun.status).where(SweepRun.id == run_id)) in ACTIVE_STATUSES


def _all_done(run_id):
    left = db.session.scalar(select(func.count()).select_from(SweepRunChunk)
                             .where(SweepRunChunk.run_id == run_id, SweepRunChunk.done_at.is_(None)))
    return left == 0


def _finish(run_id):
    """running -> done with the totals, the lock released and one "finished" event (one worker wins)."""
    totals = progress(run_id)
    finished = db.session.execute(
        update(SweepRun).where(SweepRun.id == run_id, SweepRun.status == "running")
        .values(status="done", finished_at=utcnow(), matched=totals["matched"], changed=totals["changed"],
                skipped=totals["skipped"], skip_reasons=totals["skip_reasons"], lock_key=None)
        .execution_options(synchronize_session=False)).rowcount
    if finished != 1:
        db.session.rollback()
        settle_cancelled(run_id)
        return
    run = db.session.get(SweepRun, run_id)
    audit.record(f"run_{run.kind}_finished", None, run_label(run), run_id=run_id,
                 data={k: totals[k] for k in ("matched", "changed", "skipped", "skip_reasons")})
    db.session.commit()
    from portal.domain import notify

    notify.kick_delivery()


def settle_cancelled(run_id):
    """A cancelled run's totals as its finished chunks say (a chunk in hand at the cancel lands after it)."""
    totals = progress(run_id)
    db.session.execute(update(SweepRun).where(SweepRun.id == run_id, SweepRun.status == "cancelled")
                       .values(matched=totals["matched"], changed=totals["changed"], skipped=totals["skipped"],
                               skip_reasons=totals["skip_reasons"]).execution_options(synchronize_session=False))
    db.session.commit()


def _process_chunk_with_retry(run, chunk, selected, attempts=5):
    for attempt in range(attempts):
        try:
            return _processor(run)(run, *chunk, selected, utcnow())
        except OperationalError as exc:  # SQLite busy snapshot / PostgreSQL deadlock: the chunk rolled back
            db.session.rollback()
            if attempt == attempts - 1:
                raise
            log.info("chunk %s of run %s retried after %s", chunk[0], run.id, exc.orig)
            time.sleep(0.2 * (attempt + 1))
