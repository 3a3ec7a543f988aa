"""Redis stopped and started again, empty, while a run is going, with the portal's processes as run.py keeps
them (two sweeps workers and the scheduler): the run in hand goes on, the run whose queued jobs Redis lost
is queued again by the scheduler's next tick (its jobs are gone: runs.enqueue_unfinished notices, without
waiting SWEEP_CHUNK_STALE_SECONDS), and every account is changed once, with one audit event and one email."""
import sys
import time
from collections import Counter
from datetime import datetime, timedelta

import pytest
from sqlalchemy import insert, select

from portal.domain import bulk, runs, sweeps
from portal.domain.runs.starting import LOST_JOBS_AFTER
from portal.extensions import QUEUE_SWEEPS, db, get_queue
from portal.models import (Account, AuditEvent, DunningSchedule, OutboxEmail, SuspensionRule, SweepRun,
                           SweepRunChunk, User)
from portal.timeutil import utcnow
from tests.conftest import ALONE, ROOT, unavailable
from tests.fault_processes import RestartableRedis, Supervised, portal_env, wait_until
from tests.services import ServiceUnavailable

pytestmark = [pytest.mark.slow, ALONE]  # timing-sensitive: never alongside another such test
DORMANT, BUSY, CHUNK = 400, 40, 20
OLD = datetime(2022, 5, 1)
STALE_SECONDS = 120  # the default: a stalled run is noticed by its heartbeat only after two minutes
BACK_WITHIN = 25  # seconds from Redis's return until the run it lost is done


@pytest.fixture
def restartable_redis():
    try:
        server = RestartableRedis()
    except ServiceUnavailable as exc:
        unavailable(str(exc))
    yield server
    server.stop()


@pytest.fixture
def app_config(restartable_redis):
    return {"REDIS_URL": restartable_redis.url, "RATELIMIT_STORAGE_URI": restartable_redis.url,
            "SWEEP_CHUNK_SIZE": CHUNK, "SWEEP_CHUNK_STALE_SECONDS": STALE_SECONDS, "BULK_ASYNC_THRESHOLD": 10,
            "CLEANUP_CONFIRM_THRESHOLD": 100_000}


@pytest.fixture
def accounts(ctx, make):
    """DORMANT inactive accounts and BUSY recently active ones, each with an account manager; the default rules."""
    db.session.execute(SuspensionRule.__table__.delete())
    db.session.add(SuspensionRule(enabled=True, **sweeps.DEFAULT_RULES[0]))
    db.session.add(DunningSchedule(enabled=False))  # only the two runs of the test change accounts
    recent = utcnow()
    db.session.execute(insert(Account), [
        dict(number=f"R{i:06d}", name=f"{'Busy' if i >= DORMANT else 'Dormant'} {i}", email=f"r{i}@example.test",
             status="active", exempt=False, balance_cents=0, created_at=OLD,
             last_activity_at=recent if i >= DORMANT else OLD, settings={}, version=1)
        for i in range(DORMANT + BUSY)])
    ids = list(db.session.scalars(select(Account.id).order_by(Account.id)))
    db.session.execute(insert(User), [
        dict(email=f"m{i}@example.test", name=f"Manager {i}", role="account_manager", account_id=account_id,
             password_hash="x", session_token=f"token-{i}", disabled=False, email_notifications=True)
        for i, account_id in enumerate(ids)])
    db.session.commit()
    admin = db.session.get(User, make.user("super_admin").id)
    return admin, ids[:DORMANT], ids[DORMANT:]


def _sweeps_workers_listening(redis_url, count):
    from redis import Redis
    from rq import Worker

    try:
        return len(Worker.all(connection=Redis.from_url(redis_url))) >= count
    except Exception:  # noqa: BLE001 - not up yet
        return False


def _status(run_id):
    db.session.rollback()
    return db.session.scalar(select(SweepRun.status).where(SweepRun.id == run_id))


def _chunks(run_id, done=True):
    db.session.rollback()
    column = SweepRunChunk.done_at if done else SweepRunChunk.claimed_at
    return len(db.session.scalars(select(SweepRunChunk.id).where(SweepRunChunk.run_id == run_id,
                                                                 column.is_not(None))).all())


def test_redis_lost_mid_run_the_queued_run_resumes_at_once_and_nothing_runs_twice(app, accounts, database_url,
                                                                                  restartable_redis):
    admin, dormant, busy = accounts
    redis = restartable_redis
    env = portal_env(database_url, redis.url, PORTAL_SWEEP_CHUNK_PAUSE_SECONDS="0.4",
                     PORTAL_SWEEP_CHUNK_STALE_SECONDS=STALE_SECONDS, PORTAL_SCHEDULER_TICK_SECONDS="1")
    worker = [sys.executable, f"{ROOT}/worker.py", "--with-scheduler", "sweeps"]  # as run.py starts them
    with Supervised() as portal:
        portal.start("sweep worker 1", worker + ["--name", "sweeps-1"], env)
        portal.start("sweep worker 2", worker + ["--name", "sweeps-2"], env)
        assert wait_until(lambda: _sweeps_workers_listening(redis.url, 2), timeout=30), "the workers did not start"
        cleanup = sweeps.start_cleanup(admin, sweeps.BY_RULE, "Dormant for years").id  # both workers take it
        outcome = bulk.apply(admin, "suspend", "selected", busy, None, "other", "Closing the busy ones")
        queued = outcome.run_id  # its jobs wait in the sweeps queue behind the clean-up
        portal.start("scheduler", [sys.executable, "-m", "flask", "scheduler", "run"], env)
        assert wait_until(lambda: _chunks(cleanup) >= 3, timeout=30), "the clean-up did not get going"

        redis.kill()  # everything Redis held is lost: the queued run's jobs, the workers' registrations
        assert _status(cleanup) == "running" and _status(queued) == "queued" and _chunks(queued, done=False) == 0
        time.sleep(2)
        redis.start()  # same port, empty
        back_at = time.monotonic()
        assert wait_until(lambda: _status(queued) == "done", timeout=BACK_WITHIN + 15), (
            f"the run Redis lost is {_status(queued)} {time.monotonic() - back_at:.0f} s after Redis came back")
        took = time.monotonic() - back_at
        assert wait_until(lambda: _status(cleanup) == "done", timeout=30)
    assert took < BACK_WITHIN, f"the lost run finished {took:.0f} s after Redis came back"

    db.session.rollback()
    statuses = dict(db.session.execute(select(Account.id, Account.status)).all())
    assert {statuses[i] for i in dormant + busy} == {"suspended"}
    events = Counter(db.session.execute(select(AuditEvent.actor_run_id, AuditEvent.account_id)
                                        .where(AuditEvent.action == "suspended")).all())
    assert set(events) == {(cleanup, i) for i in dormant} | {(queued, i) for i in busy}
    assert set(events.values()) == {1}
    emails = Counter(db.session.scalars(select(OutboxEmail.account_id).where(OutboxEmail.kind == "account_suspended")))
    assert set(emails) == set(dormant + busy) and set(emails.values()) == {1}
    assert [runs.progress(run)["changed"] for run in (cleanup, queued)] == [DORMANT, BUSY]
    assert db.session.scalar(select(SweepRun.id).where(SweepRun.id.not_in((cleanup, queued)))) is None


def test_the_tick_queues_again_a_run_redis_knows_no_job_of_once_it_has_been_quiet_a_moment(ctx, accounts):
    from rq.registry import StartedJobRegistry

    admin, _dormant, _busy = accounts
    run = sweeps.start_cleanup(admin, sweeps.BY_RULE, "Dormant for years").id
    later = utcnow() + LOST_JOBS_AFTER + timedelta(seconds=1)
    queue = get_queue(QUEUE_SWEEPS)
    assert runs.enqueue_unfinished(now=later) == []  # its jobs wait in the queue
    [first, _second] = queue.get_job_ids()
    queue.empty()  # Redis lost them
    assert runs.enqueue_unfinished() == []  # just started: a worker may be taking its job this moment
    in_hand = StartedJobRegistry(queue=queue)
    queue.connection.zadd(in_hand.key, {f"{first}:execution-1": "+inf"})  # as RQ notes a job a worker has taken
    assert runs.enqueue_unfinished(now=later) == []  # a worker has it in hand
    queue.connection.delete(in_hand.key)
    assert runs.enqueue_unfinished(now=later) == [run]
    assert len(queue.get_job_ids()) == 1
    assert runs.enqueue_unfinished(now=later + LOST_JOBS_AFTER * 2) == []  # its new job waits
