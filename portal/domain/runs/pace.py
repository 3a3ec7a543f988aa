"""How far a run has got, in accounts people can follow: processed out of the total, the rate, the time left.

processed  the accounts its finished chunks looked at (the selection's accounts in each chunk, counted by
           the chunk's own transaction), so it only grows and never counts an account twice;
total      the accounts its selection held when it started (params["total"], counted by start_run);
rate       processed per second of the time the run was working: from its start to its end (or now), less
           the time it spent paused, which the audit trail records (run_paused until the next run_resumed
           or run_cancelled);
eta        the accounts left at that rate, while it runs.

The figures take `now` as a parameter, so a test can hold the clock.
"""
from sqlalchemy import select

from portal.extensions import db
from portal.models import AuditEvent
from portal.plurals import count

PAUSE_EVENTS = ("run_paused", "run_resumed", "run_cancelled")
STOPPED = ("done", "failed", "cancelled")


def pauses(run_id, now):
    """Return (seconds the run has spent paused, the moment its current pause began or None).

    Read from the run's own events (account_id IS NULL: the (actor_run_id, account_id) index finds them).
    """
    events = db.session.execute(
        select(AuditEvent.action, AuditEvent.created_at)
        .where(AuditEvent.actor_run_id == run_id, AuditEvent.account_id.is_(None),
               AuditEvent.action.in_(PAUSE_EVENTS))
        .order_by(AuditEvent.id)).all()
    paused, since = 0.0, None
    for action, at in events:
        if action == "run_paused" and since is None:
            since = at
        elif action != "run_paused" and since is not None:
            paused += max(0.0, (at - since).total_seconds())
            since = None
    if since is not None:
        paused += max(0.0, (now - since).total_seconds())
    return paused, since


def figures(run, processed, chunks, chunks_done, now):
    """Return processed, total, done_fraction, active_s, rate (accounts/s), eta_s and paused_at for a run.

    Args:
        run: the SweepRun (read fresh).
        processed: the accounts its finished chunks looked at.
        chunks, chunks_done: its chunks (the fraction falls back on them for a run started without a total).
        now: the time the figures are taken at.
    """
    total = (run.params or {}).get("total")
    paused_s, paused_at = pauses(run.id, now)
    end = run.finished_at or (run.heartbeat_at if run.status == "failed" else None) or now
    active = max(0.0, (end - run.started_at).total_seconds() - paused_s) if run.started_at else 0.0
    rate = processed / active if processed and active > 0 else None
    left = max(int(total) - processed, 0) if total is not None else None
    eta = left / rate if run.status == "running" and rate and left is not None else None
    if run.status == "done":
        fraction = 1.0
    elif total:
        fraction = min(processed / int(total), 1.0)
    else:
        fraction = (chunks_done / chunks) if chunks else (1.0 if run.status in STOPPED else 0.0)
    return {"processed": processed, "total": int(total) if total is not None else None, "done_fraction": fraction,
            "active_s": active, "rate": rate, "eta_s": eta, "paused_at": paused_at}


def duration_text(seconds):
    """Say a length of time the way people do: 45 s, 3 min, 1 h 5 min."""
    seconds = max(0, int(round(seconds)))
    if seconds < 90:
        return f"{seconds} s"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"


def summary(state):
    """One sentence on where a run stands, in accounts (the run page, the bulk dialog and `flask sweep` say it).

    Args:
        state: runs.progress().
    """
    processed, total = state["processed"], state["total"]
    of = f"{processed:,} of {count(total, 'account')}" if total is not None else count(processed, "account")
    status = state["status"]
    if status == "queued":
        return (f"Queued after {of}; waiting for a sweep worker." if processed
                else "Queued; waiting for a sweep worker.")
    if status == "running":
        text = f"{of} processed ({state['done_fraction'] * 100:.0f}%)"
        if state["rate"]:
            text += f", {state['rate']:,.0f} accounts/s"
        if state["eta_s"] is not None:
            text += f", about {duration_text(state['eta_s'])} left"
        return text + "."
    if status == "paused":
        return f"Paused after {of}." + (" Finishing the chunk in hand…" if state["in_hand"] else "")
    if status == "cancelled":
        return f"Cancelled after {of}." + (" Finishing the chunk in hand…" if state["in_hand"] else "")
    if status == "failed":
        return f"Stopped by an error after {of}."
    text = f"Done: {count(processed, 'account')} processed"
    if state["duration_s"] is not None:
        text += f" in {duration_text(state['duration_s'])}"
    if state["rate"]:
        text += f" ({state['rate']:,.0f} accounts/s)"
    return text + "."
