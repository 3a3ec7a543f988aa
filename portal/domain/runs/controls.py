"""Pausing and cancelling a run (resuming is starting.resume_run).

Each is a compare-and-set on the run's status, with its audit event in the same transaction, so two
clicks at once, or a worker finishing the run at the same moment, make one transition and the other is
refused with what happened instead (nothing changed).

Workers look at the status between chunks, never inside one: a chunk is claimed only while its run is
running (processing._claim_chunk), so after a pause or a cancel each worker finishes the chunk in hand,
gives its claims back and stops. A paused run keeps its chunks (and an exclusive run its lock); resuming
queues it again. A cancelled run keeps what its finished chunks did and lets its lock go; its undo
reverses exactly that (the accounts still suspended by it).
"""
from sqlalchemy import update

from portal.domain import audit
from portal.domain.errors import InvalidTransition
from portal.domain.runs.inline import is_inline
from portal.domain.runs.starting import ACTIVE_STATUSES, _require_permission, get_run, progress
from portal.extensions import db
from portal.models import SweepRun
from portal.timeutil import utcnow

PAUSABLE = ACTIVE_STATUSES
CANCELLABLE = ACTIVE_STATUSES + ("paused", "failed")


def pause_run(actor, run_id, now=None):
    """Pause a queued or running run: its workers stop after the chunk in hand and give their claims back.

    Args:
        actor: the super admin (None: the system).
        run_id: the run.
        now: the time of the pause (default now).

    Returns:
        The paused SweepRun.

    Raises:
        PermissionDenied, RunNotFound,
        InvalidTransition: the run is not queued or running (finished, cancelled, failed or already paused).
    """
    return _transition(actor, run_id, PAUSABLE, "paused", "run_paused", now)


def cancel_run(actor, run_id, now=None):
    """Cancel a run that has not finished: it stops after the chunk in hand and keeps what it did.

    An exclusive run lets its lock go at once, so another clean-up or undo (of this one) can start.

    Args:
        actor: the super admin (None: the system).
        run_id: the run.
        now: the time of the cancel (default now).

    Returns:
        The cancelled SweepRun.

    Raises:
        PermissionDenied, RunNotFound,
        InvalidTransition: the run has finished or was already cancelled.
    """
    return _transition(actor, run_id, CANCELLABLE, "cancelled", "run_cancelled", now)


def _transition(actor, run_id, sources, target, action, now):
    _require_permission(actor)
    now = now or utcnow()
    run = get_run(run_id, fresh=True)  # the status the compare-and-set below compares against
    if run.status not in sources:
        raise InvalidTransition(refusal(run, target))
    if is_inline(run):
        raise InvalidTransition(f"Run #{run.id} is a bulk change made at once, account by account; it cannot be "
                                f"{'paused' if target == 'paused' else 'cancelled'}. Nothing was changed.")
    values = {"status": target}
    if target == "cancelled":
        values.update(lock_key=None, finished_at=now)
    moved = db.session.execute(update(SweepRun).where(SweepRun.id == run.id, SweepRun.status.in_(sources))
                               .values(**values).execution_options(synchronize_session=False)).rowcount
    if moved != 1:  # another click, or a worker, changed it between the read and this update
        db.session.rollback()
        raise InvalidTransition(refusal(get_run(run.id), target, meanwhile=True))
    state = progress(run.id, now=now)
    if target == "cancelled":  # its report as of now; a chunk still in hand adds itself when it lands
        db.session.execute(update(SweepRun).where(SweepRun.id == run.id).values(
            matched=state["matched"], changed=state["changed"], skipped=state["skipped"],
            skip_reasons=state["skip_reasons"]).execution_options(synchronize_session=False))
    audit.record(action, None, actor or "System", run_id=run.id, data={
        "from": run.status, "processed": state["processed"], "total": state["total"]}, now=now)
    db.session.commit()
    db.session.refresh(run)
    return run


def refusal(run, target, meanwhile=False):
    """Why a run cannot be paused or cancelled now, and that nothing was changed."""
    db.session.refresh(run)
    verb = "pause" if target == "paused" else "cancel"
    first = f"Run #{run.id} {'changed meanwhile: it ' if meanwhile else ''}"
    reasons = {
        "done": "has already finished; there is nothing to " + verb + ".",
        "cancelled": "was already cancelled." if target == "cancelled" else "was cancelled; there is nothing to pause.",
        "paused": "is already paused: resume it, or cancel it.",
        "failed": "stopped with an error; resume it, or cancel it.",
    }
    return first + reasons.get(run.status, f"is {run.status}.") + " Nothing was changed."
