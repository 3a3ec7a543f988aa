"""The set-based run engine: chunks, compare-and-set, audit events, emails, undo, idempotency."""
from datetime import datetime

import pytest
from sqlalchemy import func, select, update

from portal.domain import runs, suspension
from portal.extensions import db
from portal.models import Account, AuditEvent, OutboxEmail, SweepRun, SweepRunChunk, User

AS_OF = datetime(2026, 11, 1, 12, 0)
INACTIVE_12 = {"type": "rules", "rules": [{"id": 1, "name": "Inactive 12+ months", "enabled": True,
                                          "inactivity_months": 12, "min_balance_cents": None,
                                          "overdue_days": None}]}


@pytest.fixture
def population(make):
    """Ten accounts: six inactive for years (one exempt, one already suspended), four recently active."""
    old, recent = datetime(2023, 1, 1), datetime(2026, 10, 1)
    ids = {}
    for i in range(6):
        ids[f"old{i}"] = make.account(name=f"Old {i}", created_at=old, last_activity_at=old)
    for i in range(4):
        ids[f"recent{i}"] = make.account(name=f"Recent {i}", created_at=old, last_activity_at=recent)
    with make.app.app_context():
        db.session.get(Account, ids["old4"]).exempt = True
        db.session.get(Account, ids["old5"]).status = "suspended"
        db.session.commit()
    ids["manager"] = make.user("account_manager", ids["old0"])
    ids["member"] = make.user("user", ids["old0"])
    ids["admin"] = make.user("super_admin")
    return ids


def _admin(ids):
    return db.session.get(User, ids["admin"].id)


def _start(ids, **kw):
    return runs.start_run(_admin(ids), kw.pop("kind", "cleanup"), kw.pop("action", "suspend"),
                          kw.pop("selection", INACTIVE_12), "inactivity", "Clean-up of dormant accounts",
                          as_of=AS_OF, chunk_size=kw.pop("chunk_size", 3), enqueue=False, **kw)


def test_run_suspends_matching_accounts_once_with_audit_and_email(ctx, population):
    run = _start(population)
    result = runs.process_run(run.id, worker_name="test", poll=0)
    assert result["status"] == "done"
    assert result["matched"] == 6 and result["changed"] == 4 and result["skipped"] == 2
    assert result["skip_reasons"] == {"exempt": 1, "already suspended": 1}
    suspended = set(db.session.scalars(select(Account.id).where(Account.suspended_by_run_id == run.id)))
    assert suspended == {population[f"old{i}"] for i in range(4)}
    events = db.session.scalars(select(AuditEvent).where(AuditEvent.actor_run_id == run.id,
                                                         AuditEvent.action == "suspended")).all()
    assert sorted(e.account_id for e in events) == sorted(suspended)
    assert all(e.state_before == "active" and e.state_after == "suspended" for e in events)
    assert all(e.actor_label == f"Clean-up run #{run.id}" for e in events)
    emails = db.session.scalars(select(OutboxEmail)).all()
    assert [(e.to_addr, e.kind, e.status) for e in emails] == [
        (population["manager"].email, "account_suspended", "pending")]
    assert "has been suspended" in emails[0].subject and "Old 0" in emails[0].body
    account = db.session.get(Account, population["old0"])
    assert (account.status_reason, account.status_source, account.version) == ("inactivity", "sweep", 2)


def test_a_done_chunk_is_never_done_twice(ctx, population):
    run = _start(population)
    runs.process_run(run.id, worker_name="test", poll=0)
    chunk = db.session.scalars(select(SweepRunChunk).where(SweepRunChunk.run_id == run.id)
                               .order_by(SweepRunChunk.id)).first()
    assert runs.process_chunk(db.session.get(SweepRun, run.id), chunk.id, chunk.lo, chunk.hi) == 0
    count = db.session.scalar(select(func.count()).select_from(AuditEvent).where(
        AuditEvent.actor_run_id == run.id, AuditEvent.action == "suspended"))
    assert count == 4


def test_account_reactivated_by_an_admin_during_the_run_is_left_alone(ctx, population):
    run = _start(population)
    admin = _admin(population)
    target = population["old1"]
    suspension.suspend(admin, target, "other", "checking")
    suspension.reactivate(admin, target, "other", "customer called")
    result = runs.process_run(run.id, worker_name="test", poll=0)
    assert db.session.get(Account, target).status == "active"
    assert result["skip_reasons"].get("reactivated or changed during the run") == 1


def test_undo_reactivates_only_what_the_run_still_holds(ctx, population):
    run = _start(population)
    runs.process_run(run.id, worker_name="test", poll=0)
    admin = _admin(population)
    suspension.reactivate(admin, population["old2"], "other", "paid by phone")
    undo = runs.start_run(admin, "undo", "reactivate", {"type": "undo", "run_id": run.id}, "other",
                          "Undo the clean-up", undo_of_run_id=run.id, chunk_size=3, enqueue=False)
    result = runs.process_run(undo.id, worker_name="test", poll=0)
    assert result["changed"] == 3
    statuses = {k: db.session.get(Account, v).status for k, v in population.items() if k.startswith("old")}
    assert statuses == {"old0": "active", "old1": "active", "old2": "active", "old3": "active",
                        "old4": "active", "old5": "suspended"}
    assert db.session.scalar(select(func.count()).select_from(AuditEvent).where(
        AuditEvent.actor_run_id == undo.id, AuditEvent.action == "reactivated")) == 3


def test_run_through_a_real_worker(app, population, run_worker):
    with app.app_context():
        run = _start(population)
        run_id = run.id
        runs.enqueue_run(run_id, jobs=2)
    result = run_worker("sweeps")
    assert result.returncode == 0, result.stderr[-2000:]
    with app.app_context():
        progress = runs.progress(run_id)
        assert progress["status"] == "done" and progress["changed"] == 4
        assert progress["chunks_done"] == progress["chunks"]


def _jobs_for(run_id):
    from portal.extensions import QUEUE_SWEEPS, get_queue

    return [j for j in get_queue(QUEUE_SWEEPS).get_job_ids() if j.startswith(f"run-{run_id}-")]


def test_the_tick_queues_a_stalled_run_again_once(ctx, population):
    from datetime import timedelta

    from portal.extensions import QUEUE_SWEEPS, get_queue
    from portal.timeutil import utcnow

    run = _start(population)
    runs.enqueue_run(run.id, jobs=1)
    assert runs.enqueue_unfinished(stale_only=True) == []  # fresh, and a job is waiting
    get_queue(QUEUE_SWEEPS).empty()  # the job was taken by a worker that then died
    stale = utcnow() - timedelta(hours=1)
    db.session.execute(update(SweepRun).where(SweepRun.id == run.id).values(status="running", heartbeat_at=stale))
    db.session.commit()
    assert runs.enqueue_unfinished(stale_only=True) == [run.id]
    assert len(_jobs_for(run.id)) == 1
    assert runs.enqueue_unfinished(stale_only=True) == []  # its heartbeat was refreshed, and a job waits


def test_a_sweep_worker_picks_up_a_run_left_with_no_job(app, population, run_worker):
    with app.app_context():
        run = _start(population)  # queued, never enqueued: as if Redis lost the job
        run_id = run.id
        assert _jobs_for(run_id) == []
    result = run_worker("sweeps", extra_env={"PORTAL_SWEEP_CHUNK_STALE_SECONDS": "1"})
    assert result.returncode == 0, result.stderr[-2000:]
    with app.app_context():
        assert runs.progress(run_id)["status"] == "done"


def test_one_worker_works_on_chunks_over_two_connections(ctx, population, monkeypatch):
    import threading

    from portal.domain.runs import processing as run_processing

    real, both_in = run_processing._process_chunk, threading.Barrier(2, timeout=20)
    seen = set()

    def meet_once(*args):
        if threading.current_thread().name not in seen:  # each connection's first chunk: both at once
            seen.add(threading.current_thread().name)
            both_in.wait()
        return real(*args)

    monkeypatch.setattr(run_processing, "_process_chunk", meet_once)
    run = _start(population, chunk_size=1)
    result = runs.process_run(run.id, worker_name="test", poll=0.05, connections=2)
    assert result["status"] == "done" and result["chunks_done"] == result["chunks"]
    assert result["changed"] == 4 and result["skip_reasons"] == {"exempt": 1, "already suspended": 1}
    claimed_by = set(db.session.scalars(select(SweepRunChunk.claimed_by).where(SweepRunChunk.run_id == run.id)))
    assert claimed_by == {"test", "test/1"}
    counts = db.session.execute(select(AuditEvent.account_id, func.count()).where(
        AuditEvent.actor_run_id == run.id, AuditEvent.action == "suspended").group_by(AuditEvent.account_id)).all()
    assert sorted(counts) == sorted((population[f"old{i}"], 1) for i in range(4))
    assert db.session.scalar(select(func.count()).select_from(OutboxEmail)) == 1


def test_a_failing_connection_fails_the_run_and_stops_the_other(ctx, population, monkeypatch):
    import threading
    import time

    from portal.domain.runs import processing as run_processing

    real, failed = run_processing._process_chunk, threading.Event()
    after_failure = []

    def fail_in_the_second_connection(*args):
        if threading.current_thread() is not threading.main_thread():
            failed.set()
            raise RuntimeError("disk full")
        if failed.is_set():
            after_failure.append(args[1])
        time.sleep(0.05)  # leave the second connection time to claim a chunk
        return real(*args)

    monkeypatch.setattr(run_processing, "_process_chunk", fail_in_the_second_connection)
    run = _start(population, chunk_size=1)
    with pytest.raises(RuntimeError, match="disk full"):
        runs.process_run(run.id, worker_name="test", poll=0.05, connections=2)
    db.session.rollback()
    state = runs.progress(run.id)
    assert state["status"] == "failed" and "disk full" in state["error"]
    assert state["chunks_done"] < state["chunks"]
    assert len(after_failure) <= 1  # the first connection stopped after the chunk in hand
    assert db.session.scalar(select(func.count()).select_from(SweepRunChunk).where(
        SweepRunChunk.run_id == run.id, SweepRunChunk.done_at.is_(None), SweepRunChunk.claimed_at.is_not(None))) == 0
    monkeypatch.setattr(run_processing, "_process_chunk", real)
    assert runs.process_run(run.id, worker_name="test", poll=0)["status"] == "done"  # and it can be resumed


def test_extra_connections_keep_to_the_limit_of_chunks_in_hand(ctx, population):
    from portal.domain.runs import processing as run_processing

    run = _start(population, chunk_size=1)
    first = run_processing._claim_chunk(run.id, "worker-a", 120)
    second = run_processing._claim_chunk(run.id, "worker-b", 120)
    assert first and second and first != second
    assert run_processing._claim_chunk(run.id, "worker-a/1", 120, limit=2) is None  # two in hand already
    assert run_processing._claim_chunk(run.id, "worker-a", 120) is not None  # a worker's own connection claims
    db.session.execute(update(SweepRunChunk).where(SweepRunChunk.run_id == run.id).values(done_at=None,
                                                                                        claimed_at=None))
    db.session.commit()
    assert run_processing._claim_chunk(run.id, "worker-a/1", 120, limit=2) is not None


def test_a_bulk_reactivation_counts_only_what_it_left_alone(ctx, population):
    ids = [population[f"old{i}"] for i in range(3)]
    admin = _admin(population)
    for account_id in ids:
        suspension.suspend(admin, account_id, "other", "checking")
    selection = {"type": "ids", "ids": ids + [population["recent0"]]}
    run = runs.start_run(admin, "bulk", "reactivate", selection, "other", "Checked", chunk_size=2, enqueue=False)
    result = runs.process_run(run.id, worker_name="test", poll=0)
    assert (result["matched"], result["changed"], result["skipped"]) == (4, 3, 1)
    assert result["skip_reasons"] == {"already active": 1}


def test_undo_emails_the_managers_and_releases_mail_held_while_suspended(ctx, population):
    from portal.domain import notify

    run = _start(population)
    runs.process_run(run.id, worker_name="test", poll=0)
    account = db.session.get(Account, population["old0"])
    member = db.session.get(User, population["member"].id)
    held = notify.queue_email(member, "reservation_reminder", "Your booking", "account_suspended.txt",
                              account=account, reason="inactivity", note="")
    db.session.commit()
    assert db.session.get(OutboxEmail, held.id).status == "held"
    undo = runs.start_run(_admin(population), "undo", "reactivate", {"type": "undo", "run_id": run.id}, "other",
                          "Suspended by mistake", undo_of_run_id=run.id, chunk_size=3, enqueue=False)
    assert runs.process_run(undo.id, worker_name="test", poll=0)["changed"] == 4
    assert db.session.get(OutboxEmail, held.id).status == "pending"
    back = db.session.scalars(select(OutboxEmail).where(OutboxEmail.kind == "account_reactivated")).all()
    assert [(e.to_addr, e.account_id, e.status) for e in back] == [
        (population["manager"].email, population["old0"], "pending")]
    assert back[0].subject == f"Your account {account.number} is active again"
    assert f"Your account {account.number} (Old 0) is active again" in back[0].body
    assert "Suspended by mistake" in back[0].body
