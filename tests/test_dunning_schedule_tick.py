"""The daily dunning run is started by the scheduler's tick once per as-of day, and a missed day is caught up."""
from datetime import datetime

from sqlalchemy import func, select

from portal.domain import runs, schedule
from portal.domain.dunning import daily
from portal.extensions import db
from portal.models import DunningSchedule, SweepRun


def tick(now):
    """A tick, then the run it started worked through here, as a sweeps worker would."""
    run_id = daily.tick(now)
    if run_id is not None:
        runs.process_run(run_id, worker_name="test", poll=0)
    return run_id


def dunning_runs():
    return db.session.scalars(select(SweepRun.period_key).where(SweepRun.kind == "dunning")
                              .order_by(SweepRun.id)).all()


def test_the_tick_starts_the_day_s_run_at_its_time_and_once(ctx):
    db.session.add(DunningSchedule(enabled=True, time_of_day="02:00"))
    db.session.commit()
    assert tick(datetime(2026, 9, 15, 1, 59)) is not None  # the missed slot of Sep 14, as of now
    assert dunning_runs() == ["dunning:2026-09-15"]
    assert tick(datetime(2026, 9, 15, 2, 0)) is None  # today's run already covers the day
    assert tick(datetime(2026, 9, 16, 1, 0)) is None  # the Sep 15 slot has its run
    run_id = tick(datetime(2026, 9, 16, 2, 0))
    assert run_id is not None and dunning_runs() == ["dunning:2026-09-15", "dunning:2026-09-16"]
    assert db.session.get(SweepRun, run_id).trigger == "schedule"


def test_a_day_missed_while_no_scheduler_was_up_is_caught_up_as_of_now(ctx):
    db.session.add(DunningSchedule(enabled=True, time_of_day="02:00"))
    db.session.commit()
    tick(datetime(2026, 9, 10, 3, 0))
    # nothing ticked on Sep 11 to 13; the scheduler returns on Sep 14 at 01:00, before that day's slot
    assert tick(datetime(2026, 9, 14, 1, 0)) is not None
    assert dunning_runs() == ["dunning:2026-09-10", "dunning:2026-09-14"]


def test_a_disabled_schedule_starts_nothing_and_the_sweep_tick_runs_it(ctx):
    db.session.add(DunningSchedule(enabled=False, time_of_day="02:00"))
    db.session.commit()
    assert tick(datetime(2026, 9, 15, 3, 0)) is None
    row = db.session.scalar(select(DunningSchedule))
    row.enabled = True
    db.session.commit()
    result = schedule.tick(datetime(2026, 9, 15, 3, 0))
    assert result["dunning_started"] is not None
    assert db.session.scalar(select(func.count()).select_from(SweepRun).where(SweepRun.kind == "dunning")) == 1
