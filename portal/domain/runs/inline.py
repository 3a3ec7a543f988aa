"""A run made here and now by its caller: a small bulk change, applied one account at a time in the request.

It has no chunks and no job: the caller changes each account through the suspension domain (each its own
transaction, audit event and emails) inside `events_of(run)`, which writes the run's id on every audit
event added meanwhile, so "changed by run #N" finds these accounts exactly as it finds a queued run's.
While it works the caller beats the run's heartbeat (so the scheduler does not take it for a run whose
jobs were lost), then finishes it with its counts. It cannot be paused or cancelled: it is over in seconds.
"""
from contextlib import contextmanager

from flask import current_app
from sqlalchemy import event, update

from portal.domain import audit
from portal.domain.runs.chunk import run_label
from portal.domain.runs.starting import _require_permission
from portal.extensions import db
from portal.models import AuditEvent, SweepRun
from portal.timeutil import utcnow

BEAT_EVERY_S = 2.0  # well inside starting.LOST_JOBS_AFTER


def start_inline_run(actor, kind, action, selection, reason_category, reason_note, total, now=None):
    """Record a run the caller makes itself (running from now), with its "started" event; return it.

    Raises:
        PermissionDenied: the actor may not run bulk work.
    """
    _require_permission(actor)
    now = now or utcnow()
    run = SweepRun(kind=kind, action=action, status="running", as_of=now, trigger="user",
                   triggered_by_id=getattr(actor, "id", None), reason_category=reason_category,
                   reason_note=reason_note, params={"selection": selection, "total": int(total), "inline": True},
                   chunk_size=current_app.config["SWEEP_CHUNK_SIZE"], created_at=now, started_at=now,
                   heartbeat_at=now)
    db.session.add(run)
    db.session.flush()
    audit.record(f"run_{kind}_started", None, actor, run_id=run.id, reason_category=reason_category,
                 reason_note=reason_note, data={"action": action, "selection": selection, "inline": True}, now=now)
    db.session.commit()
    return run


def is_inline(run):
    """True for a run its caller made at once (no chunks, no job)."""
    return bool((run.params or {}).get("inline"))


@contextmanager
def events_of(run_id):
    """Write `run_id` as the actor run of every audit event this session adds inside the block."""
    session = db.session()

    def tag(flushing, _context, _instances):
        for obj in flushing.new:
            if isinstance(obj, AuditEvent) and obj.actor_run_id is None:
                obj.actor_run_id = run_id

    event.listen(session, "before_flush", tag)
    try:
        yield
    finally:
        event.remove(session, "before_flush", tag)


class Heartbeat:
    """Beat a run's heartbeat at most every BEAT_EVERY_S seconds (one small commit each)."""

    def __init__(self, run_id, clock=utcnow):
        self.run_id, self.clock, self.last = run_id, clock, clock()

    def __call__(self):
        now = self.clock()
        if (now - self.last).total_seconds() >= BEAT_EVERY_S:
            db.session.execute(update(SweepRun).where(SweepRun.id == self.run_id).values(heartbeat_at=now))
            db.session.commit()
            self.last = now


def finish_inline_run(run_id, matched, changed, skip_reasons, now=None, error=None):
    """running -> done (or failed, with the error that stopped the caller) with the counts so far, and the
    run's "finished" event."""
    now = now or utcnow()
    skipped = sum(skip_reasons.values())
    status = "failed" if error else "done"
    done = db.session.execute(
        update(SweepRun).where(SweepRun.id == run_id, SweepRun.status == "running")
        .values(status=status, finished_at=None if error else now, heartbeat_at=now, matched=matched,
                changed=changed, skipped=skipped, skip_reasons=dict(skip_reasons), error=error)
        .execution_options(synchronize_session=False)).rowcount
    if done == 1 and not error:
        run = db.session.get(SweepRun, run_id)
        db.session.refresh(run)
        audit.record(f"run_{run.kind}_finished", None, run_label(run), run_id=run_id,
                     data={"matched": matched, "changed": changed, "skipped": skipped, "skip_reasons": skip_reasons},
                     now=now)
    db.session.commit()
