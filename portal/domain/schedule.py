"""When the recurring sweep runs: monthly (day and time, UTC) or a cron expression, stored in the database.

Every slot belongs to a period with a key ("monthly:2026-12", or "cron:2026-12-01T03:00" for cron
slots). The tick starts the sweep of the latest slot that is due, if that period has no run yet; the
run's period_key is unique, so two schedulers ticking at once start it once, and a slot missed while
no scheduler was up runs when one comes back. Only the latest missed slot runs (one catch-up, not
one per missed period), and slots before the schedule was last saved are not "missed".

A schedule is valid only if it has a slot within HORIZON_YEARS (croniter's own check accepts
`0 0 30 2 *`, which never comes) and runs at most once a day (a sweep looks at months of activity;
`*/15 * * * *` would suspend and email every quarter of an hour). One stored before those rules does
not break the pages or the tick: one with no slot has no next run time and schedule_problem() says so.

A cron expression that cannot be read is refused naming the part that is wrong (minute, hour, day,
month or weekday) and its bad value; a good one is shown in plain words (cron-descriptor) with its
next UPCOMING slots (preview()).
"""
import calendar
import logging
import re
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

from cron_descriptor import ExpressionDescriptor, Options
from croniter import croniter
from sqlalchemy import select

from portal.domain import audit, notify, runs
from portal.domain.background import BackgroundUnavailable
from portal.domain.errors import PermissionDenied, ValidationFailed
from portal.domain.gate import may
from portal.domain.parsing import InvalidValue, whole_number
from portal.extensions import QUEUE_DEFAULT, db, get_queue
from portal.models import SweepRun, SweepSchedule
from portal.timeutil import utcnow

log = logging.getLogger(__name__)
MODES = ("monthly", "cron")
TIME_RE = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$", re.ASCII)  # ASCII: "\d" alone also matches "٣"
DEFAULTS = {"enabled": True, "mode": "monthly", "day_of_month": 1, "time_of_day": "03:00", "cron": None}
HORIZON_YEARS = 5  # a schedule must have a slot within this many years
CRON_MAX = 100  # the column's length
UPCOMING = 5  # slots the form shows ahead
# The five parts of a cron expression: name, the example of one value, what it accepts.
CRON_PARTS = (
    ("minute", "0", "a minute from 0 to 59"),
    ("hour", "3", "an hour from 0 to 23"),
    ("day", "1", "a day of the month from 1 to 31"),
    ("month", "1", "a month from 1 to 12 or jan to dec"),
    ("weekday", "1", "a weekday from 0 to 7 (0 and 7 are Sunday) or sun to sat"),
)
ORDINALS = ("1st", "2nd", "3rd", "4th", "5th")


def get_schedule():
    """Return the schedule, or None if none has been saved."""
    return db.session.scalar(select(SweepSchedule).order_by(SweepSchedule.id).limit(1))


def parse_schedule(form, now=None):
    """Validate a schedule form; return clean values.

    Args:
        form: mapping with enabled, mode (monthly|cron), day_of_month (1-31; the last day in shorter
            months), time_of_day (HH:MM, UTC), cron (five fields: minute hour day month weekday, with
            a slot within HORIZON_YEARS of now).
        now: the time a cron expression must have a slot after (default now).

    Raises:
        ValidationFailed: field_errors per field.
    """
    errors = {}
    mode = (form.get("mode") or "monthly").strip()
    values = {"enabled": str(form.get("enabled", "")).lower() in ("1", "on", "true", "yes"), "mode": mode,
              "day_of_month": DEFAULTS["day_of_month"], "time_of_day": DEFAULTS["time_of_day"], "cron": None}
    if mode not in MODES:
        errors["mode"] = "Choose monthly or a cron expression."
    elif mode == "monthly":
        try:
            values["day_of_month"] = whole_number(form.get("day_of_month"), 1, 31,
                                                  "Enter a day of the month from 1 to 31.")
        except InvalidValue as exc:
            errors["day_of_month"] = exc.message
        raw_time = str(form.get("time_of_day") or "").strip()
        match = TIME_RE.match(raw_time)
        if not match:
            errors["time_of_day"] = "Enter a time as HH:MM (24-hour, UTC), like 03:00."
        else:
            values["time_of_day"] = f"{int(match.group(1)):02d}:{match.group(2)}"
    else:
        expression = " ".join(str(form.get("cron") or "").split())
        problem = cron_problem(expression, now or utcnow())
        if problem:
            errors["cron"] = problem
        else:
            values["cron"] = expression
    if errors:
        raise ValidationFailed(errors)
    return values


def cron_problem(expression, now):
    """Say what is wrong with a cron expression for the recurring sweep, or return None if it will do.

    The message names the part that is wrong and its value ("The hour, 25, ..."), says that an
    expression which never comes never runs, and refuses one that runs more than once a day.
    """
    example = "for example 0 3 1 * * for 03:00 on the 1st"
    if not expression:
        return f"Enter a cron expression with five parts: minute hour day month weekday ({example})."
    if len(expression) > CRON_MAX:
        return f"Keep the cron expression to {CRON_MAX} characters."
    parts = expression.split(" ")
    if len(parts) != 5:
        return (f"A cron expression has five parts, minute hour day month weekday; {expression} has "
                f"{len(parts)} ({example}).")
    for index, text in enumerate(parts):
        bad = _bad_value(index, text)
        if bad is not None:
            name, _sample, accepts = CRON_PARTS[index]
            value = f"{bad}" if bad == text else f"{bad} (in {text})"
            return (f"The {name}, the {ORDINALS[index]} part, is {value}, which is not {accepts}. Use a number, "
                    f"* for every {name}, a list like 1,15, a range like 1-5 or a step like */2.")
    if not croniter.is_valid(expression):
        return f"The cron expression {expression} can't be read: {example}."
    if _cron_slot(expression, now) is None:
        return (f"The cron expression {expression} never runs: no date in the next {HORIZON_YEARS} "
                "years matches it (30 February, for example, never comes). Enter one that does.")
    return _too_often(expression)


def _bad_value(index, text):
    """The first value of one part that croniter can't read in that place (the part itself if its list is fine)."""
    def readable(value):
        fields = ["*"] * 5
        fields[index] = value
        return croniter.is_valid(" ".join(fields))

    if readable(text):
        return None
    for item in text.split(","):
        if not readable(item):
            return item or text
    return text


def _too_often(expression):
    """Refuse an expression with more than one time of day: on a day it runs, it would run more than once."""
    minutes, hours = croniter(expression).expanded[:2]
    per_day = (60 if minutes == ["*"] else len(minutes)) * (24 if hours == ["*"] else len(hours))
    if per_day <= 1:
        return None
    times = sorted(h * 60 + m for h in (range(24) if hours == ["*"] else hours)
                   for m in (range(60) if minutes == ["*"] else minutes))
    gaps = {b - a for a, b in zip(times, times[1:])}
    gap = min(gaps)
    if len(gaps) == 1 and times[0] + 1440 - times[-1] == gap:
        how = f"every {_minutes_text(gap)}"
    else:
        how = f"{per_day:,} times a day, as little as {_minutes_text(gap)} apart"
    return (f"The cron expression {expression} would run {how}; sweeps run at most once a day. "
            "Give one minute and one hour, like 0 3 * * * for 03:00 every day.")


def _minutes_text(minutes):
    if minutes % 60:
        return f"{minutes} minute{'s' if minutes != 1 else ''}"
    hours = minutes // 60
    return f"{hours} hour{'s' if hours != 1 else ''}"


def cron_in_words(expression):
    """Say a cron expression in plain words ("At 03:00, only on Monday"), or None if it can't be read."""
    options = Options()
    options.use_24hour_time_format = True
    try:
        return ExpressionDescriptor(expression, options).get_description()
    except Exception:  # noqa: BLE001 - cron-descriptor raises its own kinds for what it can't read
        return None


def upcoming(values, after, count=UPCOMING):
    """Return the next `count` slots (UTC) of schedule values (as parse_schedule returns them) after `after`."""
    schedule = SimpleNamespace(**dict(values, enabled=True))
    slots, moment = [], after
    while len(slots) < count:
        moment = next_run_time(schedule, moment)
        if moment is None:
            break
        slots.append(moment)
    return slots


def preview(form, now=None):
    """What a schedule form would do, for the form's live preview.

    Returns:
        dict(mode, errors (field errors, empty if valid), words (the expression or monthly rule in plain
        words, or None), upcoming (the next UPCOMING slots, UTC; empty if not valid)).
    """
    now = now or utcnow()
    try:
        values = parse_schedule(dict(form, enabled="1"), now)
    except ValidationFailed as exc:
        return {"mode": form.get("mode"), "errors": exc.field_errors, "words": None, "upcoming": []}
    if values["mode"] == "cron":
        words = cron_in_words(values["cron"])
        words = f"{words} (UTC)" if words else None
    else:
        words = describe(SimpleNamespace(**values))
    return {"mode": values["mode"], "errors": {}, "words": words, "upcoming": upcoming(values, now)}


def save_schedule(actor, form, now=None):
    """Save the recurring sweep's schedule; audited. Slots before now are not run as "missed".

    Raises:
        PermissionDenied, ValidationFailed.
    """
    decision = may(actor, "run_sweep", None)
    if not decision:
        raise PermissionDenied(decision.message)
    now = now or utcnow()
    values = parse_schedule(form, now)
    schedule = get_schedule()
    before = describe(schedule) if schedule else None
    if schedule is None:
        schedule = SweepSchedule()
        db.session.add(schedule)
    for key, value in values.items():
        setattr(schedule, key, value)
    schedule.updated_at, schedule.updated_by_id = now, getattr(actor, "id", None)
    db.session.flush()
    audit.record("schedule_updated", None, actor, data={"before": before, "after": describe(schedule)}, now=now)
    db.session.commit()
    plan_next_slot(schedule, now)
    return schedule


def describe(schedule):
    """Say when the schedule runs, in words."""
    if schedule is None:
        return "Not scheduled"
    if schedule.mode == "cron":
        text = f"Cron {schedule.cron} (UTC)"
    else:
        day = schedule.day_of_month
        suffix = "th" if 10 <= day % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")
        text = f"Monthly on the {day}{suffix} at {schedule.time_of_day} UTC"
        if day > 28:
            text += " (the last day in shorter months)"
    return text if schedule.enabled else f"{text} — paused"


def _monthly_slot(schedule, year, month):
    hour, minute = (int(x) for x in schedule.time_of_day.split(":"))
    day = min(schedule.day_of_month, calendar.monthrange(year, month)[1])
    return datetime(year, month, day, hour, minute)


def _shift_month(year, month, delta):
    index = year * 12 + month - 1 + delta
    return index // 12, index % 12 + 1


def _cron_slot(expression, start, before=False):
    """Return the cron slot after start (or the latest at or before it) within HORIZON_YEARS, else None.

    None also for an expression croniter cannot read (one stored before it was checked).
    """
    try:
        times = croniter(expression, start, max_years_between_matches=HORIZON_YEARS)
        return times.get_prev(datetime) if before else times.get_next(datetime)
    except (ValueError, OverflowError):  # CroniterBadDateError (no date in the horizon) is a ValueError
        return None


def next_run_time(schedule, after=None):
    """Return the first slot strictly after `after` (default now), or None if paused or it never fires."""
    if schedule is None or not schedule.enabled:
        return None
    after = after or utcnow()
    if schedule.mode == "cron":
        return _cron_slot(schedule.cron, after)
    slot = _monthly_slot(schedule, after.year, after.month)
    if slot <= after:
        slot = _monthly_slot(schedule, *_shift_month(after.year, after.month, 1))
    return slot


def latest_slot(schedule, now):
    """Return the latest slot at or before now (None for a cron expression with none within HORIZON_YEARS)."""
    if schedule.mode == "cron":
        return _cron_slot(schedule.cron, now.replace(second=0, microsecond=0) + timedelta(seconds=1), before=True)
    slot = _monthly_slot(schedule, now.year, now.month)
    if slot > now:
        slot = _monthly_slot(schedule, *_shift_month(now.year, now.month, -1))
    return slot


def period_key(schedule, slot):
    """The key of the period a slot belongs to: a month for monthly schedules, the slot for cron."""
    if schedule.mode == "cron":
        return f"cron:{slot:%Y-%m-%dT%H:%M}"
    return f"monthly:{slot:%Y-%m}"


def due_period(schedule, now=None):
    """Return (slot, period key) of the sweep due now and not yet started, or None."""
    if schedule is None or not schedule.enabled:
        return None
    now = now or utcnow()
    slot = latest_slot(schedule, now)
    if slot is None:
        return None
    if schedule.updated_at and slot < schedule.updated_at.replace(second=0, microsecond=0):
        return None  # set after that slot: it was never due under this schedule
    key = period_key(schedule, slot)
    if db.session.scalar(select(SweepRun.id).where(SweepRun.period_key == key)) is not None:
        return None
    return slot, key


def schedule_problem(schedule, now=None):
    """Say why an enabled schedule never fires (no slot within HORIZON_YEARS after now), or return None."""
    if schedule is None or not schedule.enabled or next_run_time(schedule, now) is not None:
        return None
    return (f"The stored schedule ({describe(schedule)}) never fires: no date in the next {HORIZON_YEARS} years "
            "matches it. No recurring sweep will run until the schedule is changed.")


def tick(now=None):
    """Start the due sweep (once per period, enforced by the database), plan the next slot, recover runs.

    A stored schedule that never fires starts nothing (logged once per tick); the rest of the tick
    (stalled runs, stranded email) goes on.

    Returns:
        dict(started: run id or None, waiting: id of the run in the way or None,
        next_run_at: datetime or None, recovered: [run ids queued again],
        mail_kicked: True if stranded outbox email was queued for delivery,
        schedule_problem: why the stored schedule never fires, or None).
    """
    from portal.domain import sweeps

    now = now or utcnow()
    result = {"started": None, "waiting": None, "next_run_at": None, "recovered": []}
    schedule = get_schedule()
    result["schedule_problem"] = problem = schedule_problem(schedule, now)
    if problem:
        log.error("recurring sweep: %s Change it on the Sweeps page.", problem)
    due = None if problem else due_period(schedule, now)
    if due is not None:
        slot, key = due
        try:
            run = sweeps.start_recurring(schedule.id, key, now=now)
            result["started"] = run.id if run is not None else None
            if run is None:
                log.info("sweep of %s skipped: no rule is enabled", key)
        except runs.PeriodAlreadyRun:
            db.session.rollback()  # another scheduler started it a moment ago
        except runs.RunInProgress as exc:
            db.session.rollback()  # a clean-up or undo is running: start on a later tick
            result["waiting"] = exc.details.get("run_id")
        except BackgroundUnavailable:
            db.session.rollback()  # Redis is down: nothing is stored, and the first tick after it is back starts it
            log.warning("the sweep of %s waits: background work is unavailable", key)
    result["next_run_at"] = next_run_time(schedule, now)
    if schedule is not None:
        plan_next_slot(schedule, now)
    result["dunning_started"] = _dunning_tick(now)
    result["pauses_ended"] = _pauses_tick(now)
    result["features"] = _features_tick(now)
    result["pruned"] = _prune_tick(now)
    result["overview"] = _overview_tick()
    result["recovered"] = runs.enqueue_unfinished(stale_only=True, now=now)
    result["mail_kicked"] = notify.kick_if_stranded()
    return result


def _dunning_tick(now):
    """Start the day's dunning run when due (its own failures never stop the rest of the tick)."""
    from portal.domain.dunning import daily

    try:
        return daily.tick(now)
    except Exception:  # noqa: BLE001 - logged; the sweep, recovery and mail parts of the tick go on
        db.session.rollback()
        log.exception("the daily dunning run could not be started")
        return None


def _pauses_tick(now):
    """Reactivate the accounts whose pause at the customer's request has ended (failures never stop the tick)."""
    from portal.domain.cancellations.retention import end_due_pauses

    try:
        return end_due_pauses(now)
    except Exception:  # noqa: BLE001 - logged; the next tick tries again
        db.session.rollback()
        log.exception("ended pauses could not be reactivated")
        return []


def _prune_tick(now):
    """Forget API request logs past their keeping time and spent idempotency keys (indexed deletes; cheap when none)."""
    from portal.api import idempotency
    from portal.domain import api_tokens

    try:
        return {"api_events": api_tokens.prune_events(now=now), "idempotency_keys": idempotency.prune(now=now)}
    except Exception:  # noqa: BLE001 - logged; the next tick tries again
        db.session.rollback()
        log.exception("old API logs could not be pruned")
        return None


def _overview_tick():
    """Keep the overview's costly counts up to date here and share them, so that no web process has to count
    every account or event itself (portal.domain.shared_figures). As of the real time, whatever day a tick is
    asked to act as of. Returns the accounts counted, or None (a failure is logged; the tick goes on)."""
    from portal.domain import overview, status_counts

    try:
        totals = status_counts.publish()
        overview.publish_activity()
        return totals.total
    except Exception:  # noqa: BLE001 - logged; the pages count for themselves meanwhile
        db.session.rollback()
        log.exception("the overview's counts could not be shared")
        return None


def _features_tick(now):
    """Queue the campaign sends and the social feed polls that are due (portal.domain.features.ticks)."""
    from portal.domain.features import ticks

    return ticks.tick(now)


def plan_next_slot(schedule, now=None):
    """Ask RQ's scheduler to run a tick at the next slot (one job per slot; re-planning replaces it)."""
    at = next_run_time(schedule, now)
    if at is None:
        return None
    job_id = "sweep-slot-" + re.sub(r"[^A-Za-z0-9_-]", "-", period_key(schedule, at))
    try:
        get_queue(QUEUE_DEFAULT).enqueue_at(at.replace(tzinfo=timezone.utc), "portal.scheduler.scheduled_tick",
                                            job_id=job_id, job_timeout=600, description=f"sweep slot {at:%Y-%m-%d %H:%M} UTC")
    except Exception as exc:  # noqa: BLE001 - the periodic tick still starts it
        log.warning("could not plan the next sweep slot: %s", exc)
        return None
    return job_id
