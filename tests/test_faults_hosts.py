"""Two schedulers and two sweeps workers at once on PostgreSQL, as on two machines (each its own environment,
host name and working directory, the same database and Redis), ticking over a due period: both schedulers
reach the start of the period's run at the same moment (their INSERTs are held at one gate and let go
together), the database keeps one run of the period, its chunks are done by the two machines' workers (which of
them takes each is up to timing: the run keeps at most SWEEP_CONNECTIONS chunks in hand across all workers, so a
worker that is quick to claim again may do them all while the other stands by), and every account is changed once."""
import sys
from contextlib import ExitStack
import time
from collections import Counter
from datetime import datetime, timedelta

import pytest
from redis import Redis
from rq import Worker
from sqlalchemy import create_engine, func, insert, select, text

from portal.domain import schedule, sweeps
from portal.extensions import db
from portal.models import (Account, AuditEvent, DunningSchedule, OutboxEmail, SuspensionRule, SweepRun,
                           SweepRunChunk, SweepSchedule, User)
from portal.timeutil import utcnow
from tests.conftest import ALONE, ROOT
from tests.fault_processes import Hosts, portal_env, wait_until

pytestmark = [pytest.mark.slow, ALONE]  # timing-sensitive: never alongside another such test
ACCOUNTS, CHUNK = 400, 20
OLD = datetime(2022, 5, 1)
HOSTS = ("host-a", "host-b")


@pytest.fixture
def due_monthly_sweep(ctx, make, database_url):
    """ACCOUNTS dormant accounts with a manager each, the default rule, and a monthly sweep due since the 1st."""
    if not database_url.startswith("postgresql"):
        pytest.skip("several machines share one PostgreSQL (SQLite is for one machine)")
    db.session.execute(SuspensionRule.__table__.delete())
    db.session.execute(SweepSchedule.__table__.delete())
    db.session.add(SuspensionRule(enabled=True, **sweeps.DEFAULT_RULES[0]))
    db.session.add(DunningSchedule(enabled=False))  # the sweep is the period under test
    db.session.execute(insert(Account), [
        dict(number=f"H{i:06d}", name=f"Dormant {i}", email=f"h{i}@example.test", status="active", exempt=False,
             balance_cents=0, created_at=OLD, last_activity_at=OLD, settings={}, version=1)
        for i in range(ACCOUNTS)])
    ids = list(db.session.scalars(select(Account.id).order_by(Account.id)))
    db.session.execute(insert(User), [
        dict(email=f"m{i}@example.test", name=f"Manager {i}", role="account_manager", account_id=account_id,
             password_hash="x", session_token=f"token-{i}", disabled=False, email_notifications=True)
        for i, account_id in enumerate(ids)])
    db.session.commit()
    admin = db.session.get(User, make.user("super_admin").id)
    now = utcnow()
    saved = schedule.save_schedule(admin, {"enabled": "1", "mode": "monthly", "day_of_month": "1",
                                           "time_of_day": "00:00"}, now=now - timedelta(days=40))
    slot, key = schedule.due_period(saved, now)
    db.session.commit()
    return ids, key


def _inserts_held_by(conn, holder):
    """How many backends wait at the gate to insert a run."""
    count = conn.execute(text("SELECT count(*) FROM pg_stat_activity WHERE :holder = ANY(pg_blocking_pids(pid)) "
                              "AND query ILIKE 'INSERT INTO sweep_runs%'"), {"holder": holder}).scalar()
    conn.rollback()  # pg_stat_activity is read once per transaction
    return count


def _host_env(database_url, redis_url, host, home):
    """A machine's own environment: its host name, home and instance folder; the shared database and Redis."""
    return portal_env(database_url, redis_url, HOSTNAME=host, HOME=str(home),
                      PORTAL_INSTANCE_PATH=str(home / "instance"), PORTAL_SCHEDULER_TICK_SECONDS="1",
                      PORTAL_SWEEP_CHUNK_SIZE=CHUNK, PORTAL_SWEEP_CHUNK_PAUSE_SECONDS="0.2")


def test_two_schedulers_and_two_workers_on_two_hosts_run_the_period_once(app, due_monthly_sweep, database_url,
                                                                         redis_server, tmp_path):
    ids, period = due_monthly_sweep
    engine = create_engine(database_url)
    logs = {}
    try:
        with ExitStack() as stack, Hosts() as hosts, engine.connect() as gate, engine.connect() as watcher:
            gate.execute(text("LOCK TABLE sweep_runs IN SHARE MODE"))  # reads go on; an INSERT waits here
            holder = gate.execute(text("SELECT pg_backend_pid()")).scalar()
            for host in HOSTS:
                home = tmp_path / host
                (home / "instance").mkdir(parents=True)
                env = _host_env(database_url, redis_server.url, host, home)
                logs[host] = home / "portal.log"
                log = stack.enter_context(open(logs[host], "w"))
                hosts.start([sys.executable, f"{ROOT}/worker.py", "--name", f"{host}-sweeps", "sweeps"], env, home, log)
                hosts.start([sys.executable, "-m", "flask", "scheduler", "run"], env, home, log)
            assert wait_until(lambda: _inserts_held_by(watcher, holder) == 2, timeout=40), (
                "both schedulers did not reach the start of the period's run: " + _tails(logs))
            assert wait_until(lambda: len(Worker.all(connection=Redis.from_url(redis_server.url))) == 2, timeout=30)
            gate.rollback()  # the gate opens: both INSERTs go on at once
            assert wait_until(lambda: set(_run_statuses(period)) == {"done"}, timeout=40), _tails(logs)
            time.sleep(3)  # both keep ticking over the period
    finally:
        engine.dispose()
    assert len(_run_statuses(period)) == 1, _tails(logs)  # the database refused the second start of the period

    db.session.rollback()
    [run] = db.session.scalars(select(SweepRun).where(SweepRun.kind == "recurring")).all()
    assert run.period_key == period and run.status == "done" and run.changed == ACCOUNTS
    started = [line for host in HOSTS for line in logs[host].read_text().splitlines()
               if "Started scheduled sweep run" in line]
    assert started == [f"Started scheduled sweep run #{run.id}."], _tails(logs)
    hosts_that_worked = {by.split("-sweeps")[0] for by in db.session.scalars(
        select(SweepRunChunk.claimed_by).where(SweepRunChunk.run_id == run.id))}
    assert hosts_that_worked and hosts_that_worked <= set(HOSTS)  # the machines' workers did the one run's chunks
    assert db.session.scalar(select(func.count()).select_from(SweepRunChunk).where(
        SweepRunChunk.run_id == run.id, SweepRunChunk.claimed_by.is_(None))) == 0
    assert set(db.session.scalars(select(Account.status))) == {"suspended"}
    events = Counter(db.session.scalars(select(AuditEvent.account_id).where(AuditEvent.action == "suspended")))
    assert set(events) == set(ids) and set(events.values()) == {1}
    emails = Counter(db.session.scalars(select(OutboxEmail.account_id).where(OutboxEmail.kind == "account_suspended")))
    assert set(emails) == set(ids) and set(emails.values()) == {1}


def _run_statuses(period):
    db.session.rollback()
    return list(db.session.scalars(select(SweepRun.status).where(SweepRun.period_key == period)))


def _tails(logs):
    return "\n".join(f"--- {host}\n{path.read_text()[-1500:]}" for host, path in logs.items() if path.exists())
