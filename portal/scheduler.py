"""The sweep scheduler: `flask scheduler run` ticks every SCHEDULER_TICK_SECONDS, and RQ's scheduler
fires a tick exactly at each slot.

Each tick (portal.domain.schedule.tick) starts the due period's sweep if it has no run yet, plans the
next slot as a job in RQ's ScheduledJobRegistry (run by a worker started --with-scheduler), and
queues stalled runs again. The database decides: a period's run is unique, so any number of
schedulers, and RQ's slot job, can tick at the same time without running a period twice; a slot
missed while nothing was up runs at the first tick after.
"""
import logging
import signal
import time

from portal.domain import schedule
from portal.extensions import db
from portal.plurals import plural

log = logging.getLogger(__name__)


def scheduled_tick():
    """RQ job planned at a slot: tick now (the same tick as the loop's; the database dedupes)."""
    result = schedule.tick()
    return {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in result.items()}


def run(app, interval=None, once=False, echo=print):
    """Tick until SIGTERM/SIGINT (or once); return the last tick's result."""
    interval = float(interval or app.config["SCHEDULER_TICK_SECONDS"])
    stopping = []

    def stop(signum, frame):  # noqa: ARG001
        stopping.append(signum)

    if not once:
        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
    result, last_next = None, object()
    while not stopping:
        with app.app_context():
            try:
                result = schedule.tick()
                _report(result, echo, show_next=result["next_run_at"] != last_next)
                last_next = result["next_run_at"]
            except Exception:  # noqa: BLE001 - a database or Redis hiccup: try again next tick
                log.exception("scheduler tick failed")
                db.session.rollback()
            finally:
                db.session.remove()
        if once:
            break
        deadline = time.monotonic() + interval
        while not stopping and time.monotonic() < deadline:
            time.sleep(min(0.5, interval))
    return result


def _report(result, echo, show_next=True):
    if result["started"]:
        echo(f"Started scheduled sweep run #{result['started']}.")
    if result["waiting"]:
        echo(f"A sweep is due but run #{result['waiting']} is in progress; it will start after.")
    if result.get("dunning_started"):
        echo(f"Started the daily dunning run #{result['dunning_started']}.")
    if result["recovered"]:
        echo(f"Queued stalled {plural(len(result['recovered']), 'run')} again: "
             f"{', '.join(f'#{i}' for i in result['recovered'])}.")
    nxt = result["next_run_at"]
    if show_next:
        idle = result.get("schedule_problem") or "No sweep scheduled."
        echo(f"Next sweep: {nxt:%Y-%m-%d %H:%M} UTC." if nxt else idle)
