"""Working through a run: the RQ job claims chunks one at a time until none is left, then finishes the run.

Chunks claimed by another live worker are left to it; a chunk whose claim is older than
SWEEP_CHUNK_STALE_SECONDS (its worker was killed) is claimed again. Each chunk is one transaction
(portal.domain.run_chunk). A run that fails records why and gives its chunks back; resuming it, or
RQ's retry, carries on where it stopped.
"""
import logging
import os
import socket
import time
from datetime import timedelta

from flask import current_app
from sqlalchemy import func, or_, select, update
from sqlalchemy.exc import IntegrityError, OperationalError

from portal.domain import audit
from portal.domain.errors import DomainError
from portal.domain.run_chunk import process_chunk as _process_chunk, run_label
from portal.domain.runs import (EXCLUSIVE_KINDS, LOCK, RunInProgress, _release_claims, get_run, progress,
                                running_exclusive_run, selection_clause)
from portal.extensions import db
from portal.models import SweepRun, SweepRunChunk
from portal.timeutil import utcnow

log = logging.getLogger(__name__)


def process_run(run_id, worker_name=None, stale_after=None, poll=0.5):
    """Work on a run until none of its chunks is left to claim; finish it if all are done.

    Chunks claimed by another live worker are left to it; a chunk whose claim is older than
    `stale_after` seconds (a killed worker) is claimed again. Returns progress(run_id).
    """
    worker_name = worker_name or f"{socket.gethostname()}:{os.getpid()}"
    config = current_app.config
    stale_after = stale_after if stale_after is not None else float(config["SWEEP_CHUNK_STALE_SECONDS"])
    pause = float(config.get("SWEEP_CHUNK_PAUSE_SECONDS") or 0)
    run = get_run(run_id)
    if run.status == "done":
        return progress(run_id)
    _mark_running(run)
    selected = selection_clause(run.params["selection"], run.as_of)
    _sqlite_checkpoint_every(int(config.get("SWEEP_SQLITE_WAL_AUTOCHECKPOINT") or 1000))
    try:
        while True:
            chunk = _claim_chunk(run.id, worker_name, stale_after)
            if chunk is None:
                if _all_done(run.id):
                    break
                time.sleep(poll)  # others are on the remaining chunks; take over any that go stale
                continue
            if pause:
                time.sleep(pause)  # throttling: leave the database room for other work
            _process_chunk_with_retry(run, chunk, selected)
    except Exception as exc:
        db.session.rollback()
        _release_claims(run.id, worker_name)
        _mark_failed(run.id, exc)
        raise
    finally:
        _sqlite_checkpoint_every(1000)
    _finish(run.id)
    return progress(run_id)


def _sqlite_checkpoint_every(pages):
    """SQLite: copy the write-ahead log into the database every `pages` pages (default 1000).

    A run writes a lot; checkpointing every 4 MB costs two fsyncs each time and made a 1M-account
    clean-up ~40% slower, so a run checkpoints less often and the usual setting comes back after it.
    """
    if db.engine.dialect.name != "sqlite":
        return
    try:
        db.session.connection().exec_driver_sql(f"PRAGMA wal_autocheckpoint = {int(pages)}")
        db.session.commit()
    except Exception as exc:  # noqa: BLE001 - a tuning knob; never hide the run's own error
        db.session.rollback()
        log.warning("could not set wal_autocheckpoint: %s", exc)


def process_chunk(run, chunk_id, lo, hi, now=None):
    """Apply the run to accounts lo <= id < hi in one transaction and mark the chunk done.

    Returns the number of accounts changed (0 if another worker already did this chunk).
    """
    return _process_chunk(run, chunk_id, lo, hi, selection_clause(run.params["selection"], run.as_of),
                          now or utcnow())


def _mark_running(run):
    """queued/failed -> running; a failed exclusive run takes the lock again (or stays failed)."""
    now = utcnow()
    values = dict(status="running", started_at=func.coalesce(SweepRun.started_at, now), heartbeat_at=now,
                  error=None)
    if run.kind in EXCLUSIVE_KINDS:
        values["lock_key"] = LOCK
    try:
        db.session.execute(update(SweepRun).where(SweepRun.id == run.id, SweepRun.status.in_(("queued", "failed")))
                           .values(**values).execution_options(synchronize_session=False))
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        raise RunInProgress(running_exclusive_run()) from None
    db.session.refresh(run)


def _mark_failed(run_id, exc):
    message = exc.message if isinstance(exc, DomainError) else f"{type(exc).__name__}: {exc}"
    db.session.execute(update(SweepRun).where(SweepRun.id == run_id, SweepRun.status != "done")
                       .values(status="failed", error=message[:2000], lock_key=None)
                       .execution_options(synchronize_session=False))
    db.session.commit()


def _claim_chunk(run_id, worker_name, stale_after):
    """Atomically claim the next chunk nobody is working on; return (id, lo, hi) or None."""
    now = utcnow()
    stale_at = now - timedelta(seconds=stale_after)
    candidate = (select(SweepRunChunk.id)
                 .where(SweepRunChunk.run_id == run_id, SweepRunChunk.done_at.is_(None),
                        or_(SweepRunChunk.claimed_at.is_(None), SweepRunChunk.claimed_at < stale_at))
                 .order_by(SweepRunChunk.id).limit(1))
    if db.engine.dialect.name == "postgresql":
        candidate = candidate.with_for_update(skip_locked=True)
    stmt = (update(SweepRunChunk).where(SweepRunChunk.id == candidate.scalar_subquery())
            .values(claimed_at=now, claimed_by=worker_name)
            .returning(SweepRunChunk.id, SweepRunChunk.lo, SweepRunChunk.hi))
    row = db.session.execute(stmt).first()
    db.session.execute(update(SweepRun).where(SweepRun.id == run_id).values(heartbeat_at=now))
    db.session.commit()
    return tuple(row) if row else None


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
        return
    run = db.session.get(SweepRun, run_id)
    audit.record(f"run_{run.kind}_finished", None, run_label(run), run_id=run_id,
                 data={k: totals[k] for k in ("matched", "changed", "skipped", "skip_reasons")})
    db.session.commit()
    from portal.domain import notify

    notify.kick_delivery()


def _process_chunk_with_retry(run, chunk, selected, attempts=5):
    for attempt in range(attempts):
        try:
            return _process_chunk(run, *chunk, selected, utcnow())
        except OperationalError as exc:  # SQLite busy snapshot / PostgreSQL deadlock: the chunk rolled back
            db.session.rollback()
            if attempt == attempts - 1:
                raise
            log.info("chunk %s of run %s retried after %s", chunk[0], run.id, exc.orig)
            time.sleep(0.2 * (attempt + 1))
