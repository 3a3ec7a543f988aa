"""When the daily dunning evaluation runs (a UTC time of day, stored in the database), and starting today's now.

One row of dunning_schedules holds the time; none saved means the default (enabled, 02:00 UTC). The
scheduler's tick reads it; a super admin changes it on the dunning page (audited). "Run now" starts
the run of today, which the database allows once per as-of day.
"""
from datetime import datetime, timedelta

from sqlalchemy import select

from portal.domain import audit
from portal.domain.dunning.account_state import day_of
from portal.domain.dunning.daily import period_key, start_daily_run
from portal.domain.errors import Conflict, PermissionDenied, ValidationFailed
from portal.domain.gate import may
from portal.domain.runs import PeriodAlreadyRun
from portal.domain.schedule import TIME_RE
from portal.extensions import db
from portal.models import DunningSchedule, SweepRun
from portal.timeutil import utcnow

DEFAULT_TIME = "02:00"


def get_dunning_schedule():
    """Return the saved schedule, or an unsaved default one (enabled, 02:00 UTC) if none was saved."""
    saved = db.session.scalar(select(DunningSchedule).order_by(DunningSchedule.id).limit(1))
    return saved if saved is not None else DunningSchedule(enabled=True, time_of_day=DEFAULT_TIME)


def _require(actor):
    decision = may(actor, "run_sweep", None)
    if not decision:
        raise PermissionDenied(decision.message)


def parse_dunning_schedule(form):
    """Validate the daily time form: enabled (a checkbox) and time_of_day (HH:MM, 24-hour, UTC).

    Raises:
        ValidationFailed: field_errors["time_of_day"].
    """
    raw = str(form.get("time_of_day") or "").strip()
    match = TIME_RE.match(raw)
    if not match:
        raise ValidationFailed({"time_of_day": "Enter a time as HH:MM (24-hour, UTC), like 02:00."})
    enabled = str(form.get("enabled") or "").strip().lower() in ("1", "on", "true", "yes")
    return {"enabled": enabled, "time_of_day": f"{int(match.group(1)):02d}:{match.group(2)}"}


def save_dunning_schedule(actor, form, now=None):
    """Save when the daily dunning run starts; audited ("dunning_schedule_updated", before and after).

    Args:
        actor: the super admin.
        form: mapping with enabled and time_of_day (see parse_dunning_schedule).
        now: the time of the change (default now).

    Returns:
        The saved DunningSchedule.

    Raises:
        PermissionDenied: the actor may not change schedules.
        ValidationFailed: the time is not HH:MM.
    """
    _require(actor)
    values = parse_dunning_schedule(form)
    now = now or utcnow()
    schedule = db.session.scalar(select(DunningSchedule).order_by(DunningSchedule.id).limit(1))
    before = describe(schedule) if schedule is not None else None
    if schedule is None:
        schedule = DunningSchedule()
        db.session.add(schedule)
    schedule.enabled, schedule.time_of_day = values["enabled"], values["time_of_day"]
    schedule.updated_at, schedule.updated_by_id = now, getattr(actor, "id", None)
    db.session.flush()
    audit.record("dunning_schedule_updated", None, actor, data={"before": before, "after": describe(schedule)},
                 now=now)
    db.session.commit()
    return schedule


def describe(schedule):
    """Say when the daily run starts, in words."""
    text = f"Daily at {schedule.time_of_day} UTC"
    return text if schedule.enabled else f"{text} — paused"


def next_run_time(schedule, now=None):
    """The next time the daily run starts (a naive UTC datetime), or None while paused.

    Today's slot counts only while today's run has not happened yet; once it has passed, the run is due
    now (the scheduler's next tick starts it).
    """
    if not schedule.enabled:
        return None
    now = now or utcnow()
    hours, minutes = (int(part) for part in schedule.time_of_day.split(":"))
    slot = datetime.combine(now.date(), datetime.min.time()).replace(hour=hours, minute=minutes)
    if run_of_day(now.date()) is not None:
        return slot + timedelta(days=1)
    return slot if slot > now else now.replace(second=0, microsecond=0)


def run_of_day(as_of=None):
    """The dunning run of a day (default today), or None if that day has not run."""
    return db.session.scalar(select(SweepRun).where(SweepRun.period_key == period_key(day_of(as_of))))


class DayAlreadyRun(Conflict):
    """Today's dunning run has already been started; `run_id` names it."""

    def __init__(self, day, run_id):
        super().__init__(f"The dunning run of {day.isoformat()} has already been started (run #{run_id}); a day "
                         "runs once. Nothing was started.", run_id=run_id)
        self.run_id = run_id


def run_now(actor, as_of=None):
    """Start the dunning run of today (or as_of) on the sweeps queue.

    Returns:
        The queued SweepRun.

    Raises:
        PermissionDenied: the actor may not run sweeps.
        DayAlreadyRun: that day's run has already been started (its id is given).
        RunInProgress: another dunning run is queued or running.
        BackgroundUnavailable: the job queue cannot be reached; nothing was started.
    """
    _require(actor)
    day = day_of(as_of)
    done = run_of_day(day)
    if done is not None:
        raise DayAlreadyRun(day, done.id)
    try:
        return start_daily_run(actor, day, trigger="user")
    except PeriodAlreadyRun:
        db.session.rollback()
        done = run_of_day(day)
        raise DayAlreadyRun(day, done.id if done else None) from None
