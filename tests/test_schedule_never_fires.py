"""A schedule that never fires (cron `0 0 30 2 *`): refused at the field; one already stored breaks nothing.

croniter's validity check accepts `0 0 30 2 *`, but no 30 February ever comes. Saving it used to be
committed and audited and then answer 500; after that the sweep pages answered 500 every time and
the scheduler's tick failed every 30 s, which also stopped the recovery of stalled runs and of
stranded email. A schedule is now valid only if it has a slot within HORIZON_YEARS; one stored
before that rule leaves the pages and the tick working, and they say what is wrong.
"""
import logging
from datetime import datetime, timedelta

import pytest
from sqlalchemy import delete, func, select, update

from portal.domain import schedule, suspension, sweeps
from portal.domain.errors import ValidationFailed
from portal.extensions import QUEUE_MAIL, QUEUE_SWEEPS, db, get_queue
from portal.models import AuditEvent, OutboxEmail, SuspensionRule, SweepRun, SweepSchedule, User
from portal.timeutil import utcnow

NEVER = ["0 0 30 2 *", "0 0 31 4 *", "15 3 31 2,4,6,9,11 *", "0 0 30,31 2 *"]
SAVED_AT = datetime(2026, 11, 20, 12, 0)


def _schedule_audits():
    return db.session.scalar(select(func.count()).select_from(AuditEvent)
                             .where(AuditEvent.action == "schedule_updated"))


def _store_directly(cron="0 0 30 2 *", enabled=True):
    """Write a schedule into the table as an older version of the portal may have stored it."""
    db.session.execute(delete(SweepSchedule))
    db.session.add(SweepSchedule(enabled=enabled, mode="cron", cron=cron, day_of_month=1, time_of_day="03:00",
                                 updated_at=SAVED_AT))
    db.session.commit()


@pytest.fixture
def admin(ctx, make):
    db.session.execute(delete(SweepSchedule))
    db.session.execute(delete(SuspensionRule))
    for rule in sweeps.DEFAULT_RULES:
        db.session.add(SuspensionRule(enabled=True, **rule))
    db.session.commit()
    return db.session.get(User, make.user("super_admin").id)


# ---------------------------------------------------------------- saving

@pytest.mark.parametrize("cron", NEVER)
def test_a_cron_that_never_fires_is_refused_at_the_field_and_nothing_is_saved(admin, cron):
    with pytest.raises(ValidationFailed) as refused:
        schedule.save_schedule(admin, {"enabled": "1", "mode": "cron", "cron": cron}, now=SAVED_AT)
    assert refused.value.field_errors == {
        "cron": f"The cron expression {cron} never runs: no date in the next 5 years matches it "
                "(30 February, for example, never comes). Enter one that does."}
    db.session.rollback()
    assert schedule.get_schedule() is None and _schedule_audits() == 0


def test_a_cron_that_never_fires_does_not_replace_a_good_schedule(admin):
    schedule.save_schedule(admin, {"enabled": "1", "mode": "cron", "cron": "0 3 1 * *"}, now=SAVED_AT)
    with pytest.raises(ValidationFailed):
        schedule.save_schedule(admin, {"enabled": "1", "mode": "cron", "cron": "0 0 30 2 *"},
                               now=SAVED_AT + timedelta(hours=1))
    db.session.rollback()
    assert schedule.get_schedule().cron == "0 3 1 * *" and _schedule_audits() == 1


def test_a_leap_day_cron_fires_within_the_horizon_and_is_accepted(admin):
    saved = schedule.save_schedule(admin, {"enabled": "1", "mode": "cron", "cron": "0 4 29 2 *"}, now=SAVED_AT)
    assert schedule.next_run_time(saved, SAVED_AT) == datetime(2028, 2, 29, 4, 0)
    assert schedule.schedule_problem(saved, SAVED_AT) is None


# ---------------------------------------------------------------- a stored schedule with no slot

@pytest.mark.parametrize("cron", ["0 0 30 2 *", "99 * * * *"])  # never comes; unreadable
def test_a_stored_schedule_with_no_slot_has_no_next_run_and_says_why(admin, cron):
    _store_directly(cron)
    stored = schedule.get_schedule()
    assert schedule.next_run_time(stored, SAVED_AT) is None
    assert schedule.due_period(stored, SAVED_AT) is None
    assert schedule.schedule_problem(stored, SAVED_AT) == (
        f"The stored schedule (Cron {cron} (UTC)) never fires: no date in the next 5 years matches it. "
        "No recurring sweep will run until the schedule is changed.")


def test_a_paused_schedule_that_never_fires_is_no_problem(admin):
    _store_directly(enabled=False)
    assert schedule.schedule_problem(schedule.get_schedule(), SAVED_AT) is None


def _stalled_run(admin):
    """A clean-up whose worker died: running, an old heartbeat, no job waiting."""
    run = sweeps.start_cleanup(admin, sweeps.BY_RULE, "Clean-up", now=utcnow() - timedelta(hours=2))
    get_queue(QUEUE_SWEEPS).empty()
    db.session.execute(update(SweepRun).where(SweepRun.id == run.id)
                       .values(status="running", heartbeat_at=utcnow() - timedelta(hours=1)))
    db.session.commit()
    return run.id


def _stranded_email(admin, make):
    """A suspension's email to the manager, pending in the outbox, its delivery job lost."""
    account_id = make.account()
    make.user("account_manager", account_id)
    suspension.suspend(admin, account_id, "non_payment", "Unpaid.")
    get_queue(QUEUE_MAIL).empty()
    assert db.session.scalar(select(func.count()).select_from(OutboxEmail)
                             .where(OutboxEmail.status == "pending")) == 1


def test_the_tick_survives_it_recovers_stalled_runs_and_email_and_logs_once(admin, make, caplog):
    stalled = _stalled_run(admin)
    _stranded_email(admin, make)
    _store_directly()
    with caplog.at_level(logging.ERROR, logger="portal.domain.schedule"):
        result = schedule.tick()
    assert result["started"] is None and result["next_run_at"] is None
    assert result["recovered"] == [stalled]
    assert result["mail_kicked"] is True
    assert "never fires" in result["schedule_problem"]
    problems = [r for r in caplog.records if r.name == "portal.domain.schedule" and r.levelno >= logging.ERROR]
    assert len(problems) == 1 and "0 0 30 2 *" in problems[0].getMessage()
    assert db.session.scalar(select(func.count()).select_from(SweepRun)
                             .where(SweepRun.kind == "recurring")) == 0


def test_the_scheduler_command_keeps_ticking_and_prints_the_problem(app, admin, runner):
    _store_directly()
    db.session.remove()
    result = runner.invoke(args=["scheduler", "run", "--once"])
    assert result.exit_code == 0, result.output
    assert "never fires" in result.output and "No recurring sweep will run" in result.output


def test_once_changed_the_schedule_fires_again(admin):
    _store_directly()
    saved = schedule.save_schedule(admin, {"enabled": "1", "mode": "cron", "cron": "0 3 1 * *"}, now=SAVED_AT)
    assert schedule.schedule_problem(saved, SAVED_AT) is None
    result = schedule.tick(now=datetime(2026, 12, 1, 3, 0))
    assert result["schedule_problem"] is None and result["started"] is not None


# ---------------------------------------------------------------- the pages

@pytest.fixture
def signed_in(app, make, auth):
    with app.app_context():
        db.session.execute(delete(SweepSchedule))
        db.session.commit()
    admin = make.user("super_admin")
    auth.login(admin.email)
    return admin


def _count(app, model, *where):
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(model).where(*where))


@pytest.mark.parametrize("htmx", [False, True], ids=["plain", "htmx"])
def test_saving_a_cron_that_never_fires_is_a_422_at_the_field(app, client, auth, signed_in, htmx):
    response = auth.post("/sweeps/schedule", {"enabled": "1", "mode": "cron", "cron": "0 0 30 2 *"}, htmx=htmx)
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert 'id="cron-error"' in html and "0 0 30 2 * never runs" in html and 'value="0 0 30 2 *"' in html
    assert ("<h1>" in html) is (not htmx)
    assert _count(app, SweepSchedule) == 0
    assert _count(app, AuditEvent, AuditEvent.action == "schedule_updated") == 0
    assert client.get("/sweeps").status_code == 200
    assert client.get("/sweeps/schedule").status_code == 200


def test_the_pages_open_and_say_a_stored_schedule_never_fires(app, client, auth, signed_in):
    with app.app_context():
        _store_directly()
    for path in ("/sweeps", "/sweeps/schedule"):
        response = client.get(path)
        html = response.get_data(as_text=True)
        assert response.status_code == 200, path
        assert 'data-testid="schedule-problem"' in html and "never fires" in html, path
        assert 'data-testid="next-run"' not in html
    form = client.get("/sweeps/schedule").get_data(as_text=True)
    assert 'value="0 0 30 2 *"' in form  # the form opens with what is stored, to be changed
    fixed = auth.post("/sweeps/schedule", {"enabled": "1", "mode": "cron", "cron": "0 3 1 * *"})
    assert fixed.status_code == 303
    html = client.get("/sweeps").get_data(as_text=True)
    assert "schedule-problem" not in html and 'data-testid="next-run"' in html


def test_a_bad_save_over_a_stored_schedule_that_never_fires_still_says_so(app, client, auth, signed_in):
    with app.app_context():
        _store_directly()
    response = auth.post("/sweeps/schedule", {"enabled": "1", "mode": "cron", "cron": "0 0 31 4 *"})
    html = response.get_data(as_text=True)
    assert response.status_code == 422 and 'data-testid="schedule-problem"' in html
    with app.app_context():
        assert db.session.scalar(select(SweepSchedule.cron)) == "0 0 30 2 *"
