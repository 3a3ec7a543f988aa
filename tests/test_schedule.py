"""The recurring sweep's schedule: validation, next run time, once per period, missed slots, RQ's scheduler."""
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import pytest
from rq.registry import ScheduledJobRegistry
from sqlalchemy import delete, func, insert, select
from sqlalchemy.exc import IntegrityError

from portal.domain import runs, schedule, sweeps
from portal.domain.errors import ValidationFailed
from portal.extensions import QUEUE_DEFAULT, db, get_queue
from portal.models import AuditEvent, SuspensionRule, SweepRun, SweepSchedule, User
from portal.timeutil import utcnow
from tests.conftest import ROOT, SECRET

SAVED_AT = datetime(2026, 11, 22, 10, 0)
MONTHLY = {"enabled": "1", "mode": "monthly", "day_of_month": "1", "time_of_day": "03:00"}


@pytest.fixture
def admin(ctx, make):
    db.session.execute(delete(SweepSchedule))
    db.session.execute(delete(SuspensionRule))
    for rule in sweeps.DEFAULT_RULES:
        db.session.add(SuspensionRule(enabled=True, **rule))
    db.session.commit()
    return db.session.get(User, make.user("super_admin").id)


def _runs():
    # the sweep's runs (the same tick also starts the daily dunning run: tests/test_dunning_schedule_tick.py)
    return db.session.scalars(select(SweepRun).where(SweepRun.kind != "dunning").order_by(SweepRun.id)).all()


# ---------------------------------------------------------------- the form

@pytest.mark.parametrize("form, field", [
    (dict(MONTHLY, day_of_month="0"), "day_of_month"),
    (dict(MONTHLY, day_of_month="32"), "day_of_month"),
    (dict(MONTHLY, day_of_month="first"), "day_of_month"),
    (dict(MONTHLY, day_of_month="-1"), "day_of_month"),
    (dict(MONTHLY, time_of_day="25:00"), "time_of_day"),
    (dict(MONTHLY, time_of_day="3pm"), "time_of_day"),
    ({"mode": "weekly"}, "mode"),
    ({"mode": "cron", "cron": "61 * * * *"}, "cron"),
    ({"mode": "cron", "cron": "every day"}, "cron"),
    ({"mode": "cron", "cron": "0 3 * *"}, "cron"),
    ({"mode": "cron", "cron": "0 0 3 * * *"}, "cron"),
    ({"mode": "cron", "cron": ""}, "cron"),
])
def test_bad_schedules_are_refused_and_nothing_changes(admin, form, field):
    schedule.save_schedule(admin, MONTHLY, now=SAVED_AT)
    with pytest.raises(ValidationFailed) as refused:
        schedule.save_schedule(admin, form, now=SAVED_AT + timedelta(hours=1))
    assert refused.value.field_errors[field]
    db.session.rollback()
    saved = schedule.get_schedule()
    assert (saved.mode, saved.day_of_month, saved.time_of_day, saved.updated_at) == ("monthly", 1, "03:00", SAVED_AT)
    assert db.session.scalar(select(func.count()).select_from(AuditEvent)
                             .where(AuditEvent.action == "schedule_updated")) == 1


def test_saving_is_audited_and_the_next_run_time_follows(admin):
    saved = schedule.save_schedule(admin, {"enabled": "1", "mode": "cron", "cron": "30  2 * * 1"}, now=SAVED_AT)
    assert saved.cron == "30 2 * * 1"
    assert schedule.next_run_time(saved, SAVED_AT) == datetime(2026, 11, 23, 2, 30)  # the next Monday
    event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "schedule_updated"))
    assert event.actor_user_id == admin.id and event.data["after"] == "Cron 30 2 * * 1 (UTC)"


def test_monthly_next_run_time_clamps_to_short_months(admin):
    saved = schedule.save_schedule(admin, dict(MONTHLY, day_of_month="31", time_of_day="22:15"), now=SAVED_AT)
    assert schedule.next_run_time(saved, datetime(2026, 11, 22)) == datetime(2026, 11, 30, 22, 15)
    assert schedule.next_run_time(saved, datetime(2026, 11, 30, 22, 15)) == datetime(2026, 12, 31, 22, 15)
    assert schedule.next_run_time(saved, datetime(2027, 2, 1)) == datetime(2027, 2, 28, 22, 15)
    saved.enabled = False
    assert schedule.next_run_time(saved, SAVED_AT) is None


# ---------------------------------------------------------------- ticks

def test_a_period_runs_once_when_due(admin):
    schedule.save_schedule(admin, MONTHLY, now=SAVED_AT)
    assert schedule.tick(now=datetime(2026, 11, 25))["started"] is None  # Nov 1 was before the schedule was set
    due = schedule.tick(now=datetime(2026, 12, 1, 3, 0))
    [run] = _runs()
    assert due["started"] == run.id and due["next_run_at"] == datetime(2027, 1, 1, 3, 0)
    assert (run.kind, run.trigger, run.period_key, run.reason_category) == (
        "recurring", "schedule", "monthly:2026-12", sweeps.BY_RULE)
    assert [r["name"] for r in run.rules_snapshot] == [r["name"] for r in sweeps.DEFAULT_RULES]
    runs.process_run(run.id, worker_name="test", poll=0)
    for later in (datetime(2026, 12, 1, 3, 1), datetime(2026, 12, 1, 9, 0), datetime(2026, 12, 31, 23, 59)):
        assert schedule.tick(now=later)["started"] is None
    assert len(_runs()) == 1


def test_a_slot_missed_while_no_scheduler_was_up_runs_when_one_comes_back(admin):
    schedule.save_schedule(admin, MONTHLY, now=SAVED_AT)
    result = schedule.tick(now=datetime(2026, 12, 4, 17, 30))  # down from Nov 30 to Dec 4
    assert result["started"] is not None
    assert _runs()[0].period_key == "monthly:2026-12"


def test_a_period_is_unique_in_the_database(admin):
    schedule.save_schedule(admin, MONTHLY, now=SAVED_AT)
    first = sweeps.start_recurring(schedule.get_schedule().id, "monthly:2026-12", now=datetime(2026, 12, 1, 3))
    runs.process_run(first.id, worker_name="test", poll=0)
    with pytest.raises(runs.PeriodAlreadyRun):
        sweeps.start_recurring(schedule.get_schedule().id, "monthly:2026-12", now=datetime(2026, 12, 1, 3))
    db.session.rollback()
    with pytest.raises(IntegrityError):  # a scheduler that skipped every check still cannot insert it
        db.session.execute(insert(SweepRun).values(kind="recurring", action="suspend", status="queued",
                                                   period_key="monthly:2026-12", created_at=SAVED_AT, as_of=SAVED_AT,
                                                   trigger="schedule", chunk_size=10, matched=0, changed=0,
                                                   skipped=0, dry_run=False))
    db.session.rollback()
    assert len(_runs()) == 1


def test_a_due_sweep_waits_for_a_running_clean_up(admin):
    schedule.save_schedule(admin, MONTHLY, now=SAVED_AT)
    cleanup = sweeps.start_cleanup(admin, sweeps.BY_RULE, "Clean-up first", now=datetime(2026, 11, 30, 23))
    waiting = schedule.tick(now=datetime(2026, 12, 1, 3, 0))
    assert (waiting["started"], waiting["waiting"]) == (None, cleanup.id)
    runs.process_run(cleanup.id, worker_name="test", poll=0)
    started = schedule.tick(now=datetime(2026, 12, 1, 3, 1))["started"]
    assert db.session.get(SweepRun, started).period_key == "monthly:2026-12"


def test_a_paused_schedule_starts_nothing(admin):
    schedule.save_schedule(admin, dict(MONTHLY, enabled=""), now=SAVED_AT)
    result = schedule.tick(now=datetime(2026, 12, 1, 3, 0))
    assert (result["started"], result["next_run_at"]) == (None, None) and _runs() == []


def test_each_tick_plans_the_next_slot_in_rqs_scheduler(admin):
    schedule.save_schedule(admin, MONTHLY, now=SAVED_AT)
    schedule.tick(now=datetime(2026, 12, 1, 3, 0))
    registry = ScheduledJobRegistry(queue=get_queue(QUEUE_DEFAULT))
    assert "sweep-slot-monthly-2027-01" in registry.get_job_ids()
    planned = registry.get_scheduled_time("sweep-slot-monthly-2027-01")
    assert planned == datetime(2027, 1, 1, 3, 0, tzinfo=timezone.utc)


# ---------------------------------------------------------------- real processes

def _due_every_minute(admin):
    """A daily slot a minute ago, saved an hour before it: due now (sweeps run at most daily, so not "* * * * *")."""
    slot = utcnow() - timedelta(minutes=1)
    schedule.save_schedule(admin, {"enabled": "1", "mode": "cron", "cron": f"{slot.minute} {slot.hour} * * *"},
                           now=slot - timedelta(hours=1))


def test_rqs_scheduler_fires_the_slot_job_and_the_sweep_runs(app, admin, run_worker):
    _due_every_minute(admin)
    get_queue(QUEUE_DEFAULT).enqueue_at(datetime.now(timezone.utc) - timedelta(seconds=1),
                                        "portal.scheduler.scheduled_tick", job_id="sweep-slot-test")
    db.session.remove()
    fired = run_worker("--with-scheduler", QUEUE_DEFAULT)
    assert fired.returncode == 0, fired.stderr[-2000:]
    [run] = _runs()
    assert run.trigger == "schedule" and run.period_key.startswith("cron:")
    db.session.remove()
    swept = run_worker("sweeps")
    assert swept.returncode == 0, swept.stderr[-2000:]
    assert runs.progress(run.id)["status"] == "done"


def test_two_schedulers_ticking_at_once_start_the_period_once(app, admin, database_url, redis_server):
    _due_every_minute(admin)
    db.session.remove()
    env = dict(os.environ, PORTAL_ENV="testing", SECRET_KEY=SECRET, DATABASE_URL=database_url,
               REDIS_URL=redis_server.url, FLASK_APP="portal")
    cmd = [sys.executable, "-m", "flask", "scheduler", "run", "--once"]
    procs = [subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(3)]
    outputs = [proc.communicate(timeout=120) for proc in procs]
    assert all(proc.returncode == 0 for proc in procs), outputs
    started = [out for out, _ in outputs if "Started scheduled sweep" in out]
    assert len(started) == 1 and len(_runs()) == 1
