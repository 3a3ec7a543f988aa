"""Crash safety with real worker processes: kill -9 the process doing the chunks (RQ's work horse, which
leaves its worker's process group) and then its worker mid-run, start another, and the run finishes with
every account suspended once, one audit event and one email each, the killed chunks claimed again; an
account an admin reactivates while the run is going is not suspended again by it."""
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import datetime

import pytest
from sqlalchemy import create_engine, insert, select, text

from portal.domain import runs, suspension, sweeps
from portal.extensions import db
from portal.models import Account, AuditEvent, OutboxEmail, SuspensionRule, SweepRunChunk, User
from tests.conftest import ALONE, ROOT, SECRET

pytestmark = [pytest.mark.slow, ALONE]  # timing-sensitive: never alongside another such test
ACCOUNTS = 400
CHUNK = 20
OLD = datetime(2022, 5, 1)
WORKER_ENV = {"PORTAL_SWEEP_CHUNK_STALE_SECONDS": "2", "PORTAL_SWEEP_CHUNK_PAUSE_SECONDS": "0.15"}


@pytest.fixture
def app_config():
    return {"SWEEP_CHUNK_SIZE": CHUNK, "SWEEP_CHUNK_STALE_SECONDS": 2, "CLEANUP_CONFIRM_THRESHOLD": 10_000}


@pytest.fixture
def dormant(ctx, make):
    """ACCOUNTS inactive accounts, each with one account manager; the default rules; an admin."""
    db.session.execute(SuspensionRule.__table__.delete())
    db.session.add(SuspensionRule(enabled=True, **sweeps.DEFAULT_RULES[0]))
    db.session.execute(insert(Account), [
        dict(number=f"K{i:06d}", name=f"Dormant {i}", email=f"d{i}@example.test", status="active", exempt=False,
             balance_cents=0, created_at=OLD, last_activity_at=OLD, settings={}, version=1)
        for i in range(ACCOUNTS)])
    ids = list(db.session.scalars(select(Account.id).order_by(Account.id)))
    db.session.execute(insert(User), [
        dict(email=f"m{i}@example.test", name=f"Manager {i}", role="account_manager", account_id=account_id,
             password_hash="x", session_token=f"token-{i}", disabled=False, email_notifications=True)
        for i, account_id in enumerate(ids)])
    db.session.commit()
    admin = db.session.get(User, make.user("super_admin").id)
    return admin, ids


def _start_worker(database_url, redis_url, name):
    env = dict(os.environ, PORTAL_ENV="testing", SECRET_KEY=SECRET, DATABASE_URL=database_url, REDIS_URL=redis_url,
               **WORKER_ENV)
    return subprocess.Popen([sys.executable, os.path.join(ROOT, "worker.py"), "--burst", "--name", name, "sweeps"],
                            env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def _children(pid):
    """The pids of a process's children, from /proc (an RQ worker's child is the work horse running its job)."""
    found = set()
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/children") as f:
            found.update(int(child) for child in f.read().split())
    return found


def _gone(pid):
    """Whether pid has ended (a zombie not yet reaped by its parent counts as ended)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True


def _kill_worker_and_horse(worker):
    """kill -9 a worker and the work horse doing the run's chunks (a host lost); assert the horse is gone.

    The worker goes first: alive, it would fork a new horse for the run's other job as soon as this one died.
    """
    horses = _children(worker.pid)
    assert len(horses) == 1, horses
    horse = horses.pop()
    assert os.getpgid(horse) != worker.pid  # RQ's horse left the worker's group: killpg(worker) alone misses it
    os.killpg(worker.pid, signal.SIGKILL)
    worker.wait(10)
    os.kill(horse, signal.SIGKILL)
    assert _wait_until(lambda: _gone(horse), timeout=10), f"work horse {horse} still alive"


def _chunks_done(run_id):
    db.session.rollback()
    return runs.progress(run_id)["chunks_done"]


def _claimed_not_done(run_id):
    """The chunks a worker has claimed and not finished (a killed worker's stays so until it goes stale)."""
    db.session.rollback()
    return db.session.scalars(select(SweepRunChunk.id).where(
        SweepRunChunk.run_id == run_id, SweepRunChunk.done_at.is_(None), SweepRunChunk.claimed_at.is_not(None))).all()


def _wait_until(predicate, timeout=90):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def test_killing_the_worker_mid_run_loses_nothing_and_doubles_nothing(app, dormant, database_url, redis_server):
    admin, ids = dormant
    run = sweeps.start_cleanup(admin, sweeps.BY_RULE, "Dormant for years")
    total_chunks = runs.progress(run.id)["chunks"]
    worker = _start_worker(database_url, redis_server.url, "first")
    try:
        assert _wait_until(lambda: _chunks_done(run.id) >= 4 and _claimed_not_done(run.id)), "no worker got going"
    finally:
        _kill_worker_and_horse(worker)  # mid-run, mid-chunk
    time.sleep(1)  # what the killed horse had already sent the database is done by now
    claimed_not_done, done_at_kill = _claimed_not_done(run.id), _chunks_done(run.id)
    time.sleep(1)
    assert (_claimed_not_done(run.id), _chunks_done(run.id)) == (claimed_not_done, done_at_kill)  # nobody on it
    assert runs.progress(run.id)["status"] == "running" and done_at_kill < total_chunks

    # While the run is stopped, an admin reactivates an account it already suspended, and suspends then
    # reactivates one it has not reached yet.
    already = ids[0]
    assert db.session.get(Account, already).status == "suspended"
    suspension.reactivate(admin, already, "other", "Customer called back")
    ahead = ids[-1]
    suspension.suspend(admin, ahead, "other", "Checking something")
    suspension.reactivate(admin, ahead, "other", "All fine")

    second = _start_worker(database_url, redis_server.url, "second")
    try:
        _, errors = second.communicate(timeout=180)
    except subprocess.TimeoutExpired:  # the run never finished: stop the worker and its horse, then fail
        horses = _children(second.pid)
        os.killpg(second.pid, signal.SIGKILL)
        for horse in horses:
            os.kill(horse, signal.SIGKILL)
        second.wait(10)
        raise
    assert second.returncode == 0, errors[-3000:]

    db.session.rollback()
    report = runs.progress(run.id)
    assert report["status"] == "done" and report["chunks_done"] == total_chunks
    assert report["skip_reasons"].get("reactivated or changed during the run") == 1
    statuses = dict(db.session.execute(select(Account.id, Account.status)).all())
    assert statuses[already] == "active" and statuses[ahead] == "active"
    suspended = {i for i in ids if statuses[i] == "suspended"}
    assert suspended == set(ids) - {already, ahead}
    assert report["changed"] == len(suspended) + 1  # + the one reactivated by the admin afterwards

    events = Counter(db.session.scalars(select(AuditEvent.account_id).where(
        AuditEvent.actor_run_id == run.id, AuditEvent.action == "suspended")))
    assert set(events) == suspended | {already} and set(events.values()) == {1}
    emails = Counter(db.session.scalars(select(OutboxEmail.account_id).where(OutboxEmail.kind == "account_suspended")))
    assert {i: emails[i] for i in suspended | {already}} == {i: 1 for i in suspended | {already}}
    assert emails[ahead] == 1  # the admin's own suspension emailed once; the run added none
    # the killed horse held at most one chunk per connection (2 on PostgreSQL), each claimed again and done
    assert 1 <= len(claimed_not_done) <= (2 if database_url.startswith("postgresql") else 1)
    redone = db.session.execute(select(SweepRunChunk.claimed_by, SweepRunChunk.done_at).where(
        SweepRunChunk.id.in_(claimed_not_done))).all()
    assert all(by.startswith("second") and done for by, done in redone), redone


def _blocked_backend(conn, blocker):
    """The pid of a backend waiting on a lock `blocker` (the test's own backend) holds, or None."""
    pid = conn.execute(text("SELECT pid FROM pg_stat_activity WHERE :blocker = ANY(pg_blocking_pids(pid))"),
                       {"blocker": blocker}).scalar()
    conn.rollback()  # pg_stat_activity is read once per transaction: the next look needs a new one
    return pid


def test_a_chunks_connection_cut_mid_transaction_rolls_back_and_is_redone(app, dormant, database_url,
                                                                          redis_server):
    """pg_terminate_backend on the connection of a chunk whose UPDATE is under way: that transaction rolls
    back, the chunk is done again over a new connection, and the run finishes with each account changed once."""
    if not database_url.startswith("postgresql"):
        pytest.skip("cutting a chunk's database connection: PostgreSQL (SQLite has no server connection)")
    admin, ids = dormant
    locked = ids[5 * CHUNK + 3]  # in the sixth chunk
    engine = create_engine(database_url)
    try:
        with engine.connect() as holder:
            holder.execute(text("SELECT id FROM accounts WHERE id = :id FOR UPDATE"), {"id": locked})
            me = holder.execute(text("SELECT pg_backend_pid()")).scalar()
            run = sweeps.start_cleanup(admin, sweeps.BY_RULE, "Dormant for years")
            worker = _start_worker(database_url, redis_server.url, "cut")
            with engine.connect() as watcher:
                assert _wait_until(lambda: _blocked_backend(watcher, me), timeout=60), "no chunk reached the lock"
                victim = _blocked_backend(watcher, me)
                assert watcher.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": victim}).scalar()
            holder.rollback()  # the lock goes
        _, errors = worker.communicate(timeout=180)
    finally:
        engine.dispose()
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait(10)
    assert worker.returncode == 0, errors[-3000:]
    retried = [line for line in errors.splitlines() if f"of run {run.id} retried after" in line]
    assert retried and "terminating connection due to administrator command" in retried[0], errors[-3000:]
    db.session.rollback()
    report = runs.progress(run.id)
    assert report["status"] == "done" and report["chunks_done"] == report["chunks"], report
    assert db.session.scalar(select(Account.status).where(Account.id == locked)) == "suspended"
    assert set(db.session.scalars(select(Account.status))) == {"suspended"}
    events = Counter(db.session.scalars(select(AuditEvent.account_id).where(
        AuditEvent.actor_run_id == run.id, AuditEvent.action == "suspended")))
    assert set(events) == set(ids) and set(events.values()) == {1}
    emails = Counter(db.session.scalars(select(OutboxEmail.account_id).where(OutboxEmail.kind == "account_suspended")))
    assert set(emails) == set(ids) and set(emails.values()) == {1}
