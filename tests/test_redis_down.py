"""The portal with its Redis stopped: sign-in works on a per-process limit, /healthz says what is down,
and every action that needs the job queue says so and changes nothing."""
import logging
import os
import re
import signal
import subprocess
import time
from datetime import datetime

import pytest
from redis import Redis
from sqlalchemy import delete, func, select

from portal import create_app
from portal.domain import runs, schedule, sweeps
from portal.domain.runs import processing as run_processing
from portal.domain.background import BackgroundUnavailable
from portal.extensions import db
from portal.models import Account, AuditEvent, SuspensionRule, SweepRun, SweepRunChunk, SweepSchedule, User
from tests.conftest import CSRF_RE, _config
from tests.services import RedisServer, ServiceUnavailable, _wait_for_port, free_port

UNAVAILABLE = "Background work is unavailable right now"
OLD = datetime(2022, 1, 1)


@pytest.fixture
def private_redis():
    """A redis-server of this test's own, which the test stops by its pid."""
    try:
        server = RedisServer()
    except ServiceUnavailable as exc:
        pytest.fail(str(exc)) if os.environ.get("CI") == "true" else pytest.skip(str(exc))
    yield server
    if server.proc.poll() is None:
        server.stop()


@pytest.fixture
def app_config(private_redis):
    return {"REDIS_URL": private_redis.url, "RATELIMIT_STORAGE_URI": private_redis.url,
            "LOGIN_RATE_LIMIT": "10 per minute", "LOGIN_EMAIL_RATE_LIMIT": "5 per minute",
            "BULK_ASYNC_THRESHOLD": 2}


def kill(server):
    """Stop the redis-server the hard way, by its pid, and wait until it is gone."""
    os.kill(server.proc.pid, signal.SIGKILL)
    server.proc.wait(10)


def _counts(app):
    with app.app_context():
        return {model.__name__: db.session.scalar(select(func.count()).select_from(model))
                for model in (SweepRun, SweepRunChunk, AuditEvent)}


@pytest.fixture
def site(app, make, auth):
    """The default rules, three dormant accounts, a super admin signed in."""
    ids = {"dormant": [make.account(name=f"Dormant {i}", created_at=OLD, last_activity_at=OLD) for i in range(3)]}
    ids["admin"] = make.user("super_admin")
    with app.app_context():
        db.session.execute(delete(SuspensionRule))
        db.session.execute(delete(SweepSchedule))
        for rule in sweeps.DEFAULT_RULES:
            db.session.add(SuspensionRule(enabled=True, **rule))
        db.session.commit()
    assert auth.login(ids["admin"].email).status_code == 303
    return ids


# ---------------------------------------------------------------- sign-in

def _sign_in(client, email, password):
    page = client.get("/login", follow_redirects=True)
    token = CSRF_RE.search(page.get_data(as_text=True)).group(1)
    return client.post("/login", data={"email": email, "password": password, "csrf_token": token})


def test_sign_in_keeps_working_on_a_per_process_limit_when_redis_stops(app, client, auth, world, private_redis,
                                                                       caplog):
    assert _sign_in(client, world.admin.email, "wrong").status_code == 422  # counted in Redis while it is up
    assert Redis.from_url(private_redis.url).keys("LIMITS:*")
    kill(private_redis)
    with caplog.at_level(logging.WARNING, logger="flask-limiter"):
        assert auth.login(world.admin.email).status_code == 303
    assert "falling back to in-memory storage" in caplog.text
    auth.logout()
    for _ in range(5):
        assert _sign_in(client, world.support.email, "wrong").status_code == 422
    refused = _sign_in(client, world.support.email, "correct horse battery staple")
    assert refused.status_code == 429
    assert re.search(r"Please wait \d+ seconds? and try again", refused.get_data(as_text=True))
    assert auth.login(world.admin.email).status_code == 303  # another email still signs in


def test_the_limits_go_back_to_redis_once_it_answers_again(client, world, private_redis, caplog):
    caplog.set_level(logging.INFO, logger="flask-limiter")
    kill(private_redis)
    assert _sign_in(client, world.admin.email, "wrong").status_code == 422  # counted in memory
    binary = private_redis.proc.args[0]
    back = subprocess.Popen([binary, "--port", str(private_redis.port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", private_redis.dir], stdout=subprocess.DEVNULL)
    try:
        _wait_for_port(private_redis.port, proc=back)
        redis = Redis.from_url(private_redis.url)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not redis.keys("LIMITS:*"):
            time.sleep(0.5)
            # Flask-Limiter looks at its storage again after 1, 2, 4 ... seconds; each guess is another email
            page = client.get("/login")
            token = CSRF_RE.search(page.get_data(as_text=True)).group(1)
            client.post("/login", data={"email": f"x{time.monotonic_ns()}@example.test", "password": "x",
                                        "csrf_token": token})
        assert redis.keys("LIMITS:*"), "the limiter never went back to Redis"
        assert "Rate limit storage recovered" in caplog.text
    finally:
        back.terminate()
        back.wait(10)


@pytest.mark.parametrize("app_config", [{"REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",
                                         "RATELIMIT_STORAGE_URI": f"redis://127.0.0.1:{free_port()}/0"}])
def test_sign_in_works_when_redis_was_never_there(client, auth, world):
    response = auth.login(world.admin.email)
    assert response.status_code == 303 and response.headers["Location"] == "/overview"
    assert client.get("/accounts").status_code == 200


# ---------------------------------------------------------------- /healthz

def test_healthz_says_redis_is_down(client, private_redis):
    assert client.get("/healthz").status_code == 200
    kill(private_redis)
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.get_json() == {"status": "unavailable", "database": "up", "redis": "down", "down": ["redis"]}


def test_healthz_says_the_database_is_down(redis_server):
    config = _config(f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/portal", redis_server.url)
    response = create_app(config).test_client().get("/healthz")
    assert response.status_code == 503
    assert response.get_json() == {"status": "unavailable", "database": "down", "redis": "up", "down": ["database"]}


# ---------------------------------------------------------------- actions that need the queue

@pytest.mark.parametrize("htmx", [False, True])
def test_a_clean_up_with_redis_down_is_refused_and_leaves_no_run(app, auth, site, private_redis, htmx):
    before = _counts(app)
    kill(private_redis)
    response = auth.post("/sweeps/cleanup", {"reason_category": "by_rule", "reason_note": "Clean-up"}, htmx=htmx)
    assert response.status_code == 503
    html = response.get_data(as_text=True)
    assert UNAVAILABLE in html and "nothing was started or changed" in html
    assert ">Clean-up</textarea>" in html  # the form again, with what was typed
    assert _counts(app) == before
    with app.app_context():
        assert db.session.scalar(select(func.count()).where(Account.status != "active")) == 0


def test_a_failed_enqueue_rolls_the_run_back(ctx, site, private_redis):
    """Redis answers a ping but refuses writes: the jobs cannot be queued, so the run is not stored either."""
    Redis.from_url(private_redis.url).config_set("min-replicas-to-write", 1)
    before = _counts(ctx)
    admin = db.session.get(User, site["admin"].id)
    with pytest.raises(BackgroundUnavailable):
        sweeps.start_cleanup(admin, sweeps.BY_RULE, "Clean-up")
    db.session.rollback()
    assert _counts(ctx) == before
    assert runs.running_exclusive_run() is None  # the lock was not left taken


def test_the_command_line_clean_up_says_so_too(app, runner, site, private_redis):
    kill(private_redis)
    result = runner.invoke(args=["sweep", "run", "--note", "Clean-up", "--no-wait"])
    assert result.exit_code != 0 and UNAVAILABLE in result.output
    assert _counts(app)["SweepRun"] == 0


def _finished_run(app):
    with app.app_context():
        admin = db.session.scalar(select(User).where(User.role == "super_admin"))
        run = sweeps.start_cleanup(admin, sweeps.BY_RULE, "Clean-up")
        runs.process_run(run.id, worker_name="test", poll=0)
        return run.id


def test_undo_with_redis_down_is_refused_and_changes_nothing(app, auth, site, private_redis):
    run_id = _finished_run(app)
    before = _counts(app)
    kill(private_redis)
    response = auth.post(f"/sweeps/runs/{run_id}/undo", {"reason_category": "other", "reason_note": "Too strict"})
    assert response.status_code == 503 and UNAVAILABLE in response.get_data(as_text=True)
    assert _counts(app) == before
    with app.app_context():
        assert db.session.scalar(select(func.count()).where(Account.status == "suspended")) == 3


def test_resume_with_redis_down_is_refused_and_changes_nothing(app, auth, site, private_redis):
    with app.app_context():
        admin = db.session.scalar(select(User).where(User.role == "super_admin"))
        run_id = sweeps.start_cleanup(admin, sweeps.BY_RULE, "Clean-up").id
        run_processing._mark_failed(run_id, RuntimeError("worker lost"))
    before = _counts(app)
    kill(private_redis)
    response = auth.post(f"/sweeps/runs/{run_id}/resume")
    assert response.status_code == 503 and UNAVAILABLE in response.get_data(as_text=True)
    assert _counts(app) == before
    with app.app_context():
        run = db.session.get(SweepRun, run_id)
        assert (run.status, run.lock_key) == ("failed", None)


@pytest.mark.parametrize("htmx", [False, True])
def test_a_large_bulk_change_with_redis_down_is_refused_and_changes_nothing(app, auth, site, private_redis, htmx):
    before = _counts(app)
    kill(private_redis)
    response = auth.post("/accounts/bulk", {"action": "suspend", "scope": "selected", "ids": site["dormant"],
                                            "reason_category": "other", "reason_note": "Bulk"}, htmx=htmx)
    assert response.status_code == 503 and UNAVAILABLE in response.get_data(as_text=True)
    assert _counts(app) == before
    with app.app_context():
        assert db.session.scalar(select(func.count()).where(Account.status != "active")) == 0


def test_a_small_bulk_change_needs_no_queue(app, auth, site, private_redis):
    kill(private_redis)
    response = auth.post("/accounts/bulk", {"action": "suspend", "scope": "selected", "ids": site["dormant"][:2],
                                            "reason_category": "other", "reason_note": "Bulk"})
    assert response.status_code == 303
    with app.app_context():
        assert db.session.scalar(select(func.count()).where(Account.status == "suspended")) == 2


def test_the_scheduler_tick_waits_for_redis_and_starts_the_period_after(ctx, site, private_redis):
    admin = db.session.get(User, site["admin"].id)
    schedule.save_schedule(admin, {"enabled": "1", "mode": "monthly", "day_of_month": "1", "time_of_day": "03:00"},
                           now=datetime(2026, 11, 22, 10, 0))
    kill(private_redis)
    result = schedule.tick(now=datetime(2026, 12, 1, 3, 0))
    assert result["started"] is None
    assert db.session.scalar(select(func.count()).select_from(SweepRun)) == 0
    restarted = RedisServer()
    try:
        ctx.config["REDIS_URL"] = restarted.url
        ctx.extensions.pop("portal_redis", None)
        started = schedule.tick(now=datetime(2026, 12, 1, 3, 1))["started"]
        assert db.session.get(SweepRun, started).period_key == "monthly:2026-12"
    finally:
        restarted.stop()


def test_a_job_for_a_run_that_never_committed_ends_quietly(ctx):
    assert runs.wait_for_run(987654, timeout=0.3) is False
