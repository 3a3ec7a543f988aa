"""`flask sweep ...` and `flask scheduler run` through the CLI runner (and a real worker where a run is followed)."""
import threading
from datetime import datetime

import pytest
from sqlalchemy import delete, func, select

from portal.domain import runs, schedule, sweeps
from portal.extensions import db
from portal.models import Account, SuspensionRule, SweepRun, SweepSchedule
from portal.timeutil import utcnow
from tests.conftest import wait_for_queued

OLD = datetime(2022, 1, 1)


@pytest.fixture
def dormant(app, make):
    """Three inactive accounts (one with a manager), one busy; the default rules."""
    ids = [make.account(name=f"Dormant {i}", created_at=OLD, last_activity_at=OLD) for i in range(3)]
    make.user("account_manager", ids[0])
    make.account(name="Busy", created_at=OLD, last_activity_at=datetime.now())
    with app.app_context():
        db.session.execute(delete(SuspensionRule))
        for rule in sweeps.DEFAULT_RULES:
            db.session.add(SuspensionRule(enabled=True, **rule))
        db.session.commit()
    return ids


def _runs(app):
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(SweepRun).where(SweepRun.kind != "dunning"))


def test_preview_prints_the_counts_and_why(runner, dormant):
    result = runner.invoke(args=["sweep", "preview", "--sample", "2"])
    assert result.exit_code == 0, result.output
    assert "would suspend   3" in result.output
    assert "by rule 'Inactive 12+ months': 3" in result.output
    assert result.output.count("Inactive 12+ months: last reservation 2022-01-01") == 2


@pytest.mark.parametrize("app_config", [{"CLEANUP_CONFIRM_THRESHOLD": 2}])
@pytest.mark.parametrize("args, typed", [(["--confirm", "4"], None), ([], "2\n"), ([], "\n"), (["--confirm", "x"], None)])
def test_a_wrong_or_missing_count_starts_nothing(app, runner, dormant, args, typed):
    result = runner.invoke(args=["sweep", "run", "--no-wait", *args], input=typed)
    assert result.exit_code == 1
    assert "Type 3 to confirm" in result.output
    assert _runs(app) == 0


@pytest.mark.parametrize("app_config", [{"CLEANUP_CONFIRM_THRESHOLD": 2}])
def test_the_typed_count_or_confirm_option_starts_the_run(app, runner, dormant):
    prompted = runner.invoke(args=["sweep", "run", "--no-wait"], input="3\n")
    assert prompted.exit_code == 0, prompted.output
    assert "Type 3 to suspend 3 accounts" in prompted.output and "Started clean-up run #" in prompted.output
    with app.app_context():
        run = db.session.scalar(select(SweepRun))
        assert (run.trigger, run.triggered_by_id, run.status) == ("cli", None, "queued")


def test_a_second_clean_up_is_refused_while_one_runs(app, runner, dormant):
    assert runner.invoke(args=["sweep", "run", "--no-wait"]).exit_code == 0
    second = runner.invoke(args=["sweep", "run", "--no-wait"])
    assert second.exit_code == 1 and "still in progress" in second.output
    assert _runs(app) == 1


def test_run_follows_the_progress_to_the_report(app, runner, dormant, run_worker, redis_server):
    outcome = {}

    def worker_once_queued():
        wait_for_queued(redis_server.url, "sweeps")  # the command has queued the run
        outcome["worker"] = run_worker("sweeps")

    thread = threading.Thread(target=worker_once_queued)
    thread.start()
    result = runner.invoke(args=["sweep", "run", "--note", "Dormant accounts"])
    thread.join(120)
    assert outcome["worker"].returncode == 0, outcome["worker"].stderr[-2000:]
    assert result.exit_code == 0, result.output
    assert "Run #" in result.output and "3 suspended so far" in result.output  # no terminal: lines
    assert "Done: 3 accounts processed" in result.output  # in accounts, not chunks
    assert "Clean-up run #" in result.output and ": done" in result.output
    assert "suspended 3" in result.output and "matched  3" in result.output and "duration" in result.output
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Account).where(Account.status == "suspended")) == 3


def test_status_undo_and_resume(app, runner, dormant):
    runner.invoke(args=["sweep", "run", "--no-wait"])
    with app.app_context():
        run_id = db.session.scalar(select(SweepRun.id))
        runs.process_run(run_id, worker_name="test", poll=0)
    status = runner.invoke(args=["sweep", "status"])
    assert status.exit_code == 0 and f"Clean-up run #{run_id}: done" in status.output and "suspended 3" in status.output
    assert runner.invoke(args=["sweep", "status", "999"]).output.strip().endswith("Run not found.")
    resumed = runner.invoke(args=["sweep", "resume", str(run_id), "--no-wait"])
    assert resumed.exit_code == 1 and "already finished" in resumed.output
    bad_undo = runner.invoke(args=["sweep", "undo", str(run_id), "--reason", "other", "--note", " ", "--no-wait"])
    assert bad_undo.exit_code == 1 and _runs(app) == 1
    undo = runner.invoke(args=["sweep", "undo", str(run_id), "--reason", "other", "--note", "Too strict",
                               "--no-wait"])
    assert undo.exit_code == 0 and f"Started undo run #{run_id + 1} of run #{run_id}" in undo.output


def test_scheduler_run_once_ticks(app, runner, dormant):
    with app.app_context():
        db.session.execute(delete(SweepSchedule))
        saved = SweepSchedule(enabled=True, mode="cron", cron="15 4 * * *", day_of_month=1, time_of_day="03:00",
                              updated_at=utcnow())
        db.session.add(saved)
        db.session.commit()
        expected = schedule.next_run_time(saved)
    result = runner.invoke(args=["scheduler", "run", "--once"])
    assert result.exit_code == 0, result.output
    assert f"Next sweep: {expected:%Y-%m-%d} 04:15 UTC." in result.output
    assert "Started scheduled sweep" not in result.output and _runs(app) == 0
