"""Runs people can follow and steer: progress in accounts (processed of the total, the rate, the time left, from a
controlled clock); pause, resume and cancel from the run page and `flask sweep`, through real RQ workers (a paused
run's workers stop after the chunk in hand and give their claims back; a cancelled run keeps what it finished and
its undo reverses exactly that); each transition a compare-and-set, audited; bad transitions refused with a message
and nothing changed."""
import threading
import time
from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select, update

from portal.domain import bulk, runs, sweeps
from portal.domain.errors import InvalidTransition
from portal.domain.runs import controls, processing
from portal.extensions import db
from portal.models import Account, AuditEvent, OutboxEmail, SweepRun, SweepRunChunk, User

HX = {"HX-Request": "true"}
AS_OF = datetime(2026, 11, 1, 12, 0)
T0 = datetime(2026, 12, 1, 9, 0)
OLD = datetime(2022, 1, 1)
DORMANT = {"type": "rules", "rules": [{"id": 1, "name": "Inactive 12+ months", "enabled": True, "inactivity_months": 12,
                                       "min_balance_cents": None, "overdue_days": None}]}
SHOPS = 12


@pytest.fixture
def app_config():
    return {"LOGIN_RATE_LIMIT": "1000 per minute"}


@pytest.fixture
def shops(app, make):
    """Twelve dormant shops, every third with an account manager; a super admin."""
    ids = [make.account(name=f"Shop {i:02d}", created_at=OLD, last_activity_at=OLD) for i in range(SHOPS)]
    managers = [make.user("account_manager", ids[i]) for i in range(0, SHOPS, 3)]
    admin = make.user("super_admin")
    return {"ids": ids, "managers": managers, "admin_id": admin.id, "admin_email": admin.email}


def _admin(shops):
    return db.session.get(User, shops["admin_id"])


def _start(shops, chunk_size=1, enqueue=False, now=None):
    return runs.start_run(_admin(shops), "cleanup", "suspend", DORMANT, "inactivity", "Dormant shops", as_of=AS_OF,
                          chunk_size=chunk_size, enqueue=enqueue, now=now)


def _set_running(run_id, started_at=None):
    values = {"status": "running"}
    if started_at:
        values["started_at"] = started_at
    db.session.execute(update(SweepRun).where(SweepRun.id == run_id).values(**values))
    db.session.commit()


def _chunks(run_id):
    return db.session.execute(select(SweepRunChunk.id, SweepRunChunk.lo, SweepRunChunk.hi)
                              .where(SweepRunChunk.run_id == run_id).order_by(SweepRunChunk.id)).all()


def _events(run_id, action):
    return db.session.scalar(select(func.count()).select_from(AuditEvent).where(
        AuditEvent.actor_run_id == run_id, AuditEvent.action == action))


def _suspended():
    return set(db.session.scalars(select(Account.id).where(Account.status == "suspended")))


def _wait(app, run_id, condition, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with app.app_context():
            state = runs.progress(run_id)
            db.session.remove()
        if condition(state):
            return state
        time.sleep(0.05)
    raise AssertionError(f"run {run_id} never got there: {state}")


def _worker_in_background(run_worker, **env):
    outcome = {}
    thread = threading.Thread(target=lambda: outcome.update(result=run_worker("sweeps", extra_env=env)))
    thread.start()
    return thread, outcome


# ---------------------------------------------------------------- progress in accounts, from a held clock

def test_progress_counts_accounts_and_leaves_paused_time_out_of_the_rate(ctx, shops):
    run = _start(shops, chunk_size=3, now=T0)
    assert runs.progress(run.id, now=T0)["total"] == SHOPS and runs.progress(run.id, now=T0)["processed"] == 0
    _set_running(run.id, started_at=T0)
    chunks = _chunks(run.id)
    assert len(chunks) == 4
    for chunk in chunks[:2]:
        runs.process_chunk(run, *chunk, now=T0 + timedelta(seconds=2))
    state = runs.progress(run.id, now=T0 + timedelta(seconds=3))
    assert (state["processed"], state["total"], state["done_fraction"]) == (6, 12, 0.5)
    assert state["rate"] == pytest.approx(2.0) and state["eta_s"] == pytest.approx(3.0)
    assert state["summary"] == "6 of 12 accounts processed (50%), 2 accounts/s, about 3 s left."
    runs.pause_run(_admin(shops), run.id, now=T0 + timedelta(seconds=3))
    paused = runs.progress(run.id, now=T0 + timedelta(minutes=10))  # ten minutes later, still paused
    assert paused["rate"] == pytest.approx(2.0) and paused["eta_s"] is None
    assert paused["summary"] == "Paused after 6 of 12 accounts."
    runs.resume_run(_admin(shops), run.id, now=T0 + timedelta(minutes=10))
    _set_running(run.id)
    runs.process_chunk(run, *chunks[2], now=T0 + timedelta(minutes=10, seconds=1))
    state = runs.progress(run.id, now=T0 + timedelta(minutes=10, seconds=3))
    # 9 accounts in 6 s of work: the 9 min 57 s paused do not count
    assert state["processed"] == 9 and state["rate"] == pytest.approx(1.5) and state["eta_s"] == pytest.approx(2.0)
    assert state["summary"] == "9 of 12 accounts processed (75%), 2 accounts/s, about 2 s left."
    runs.process_chunk(run, *chunks[3], now=T0 + timedelta(minutes=10, seconds=4))
    processing._finish(run.id)
    done = runs.progress(run.id)
    assert (done["status"], done["processed"], done["done_fraction"]) == ("done", 12, 1.0)
    assert done["summary"].startswith("Done: 12 accounts processed in ")


def test_the_time_left_reads_well():
    from portal.domain.runs.pace import duration_text

    assert [duration_text(s) for s in (0.4, 45, 89, 150, 3500, 3599, 3900, 7200)] == [
        "0 s", "45 s", "89 s", "2 min", "58 min", "1 h", "1 h 5 min", "2 h"]


# ---------------------------------------------------------------- through real RQ workers

def test_pause_then_resume_changes_every_account_once(app, shops, run_worker):
    with app.app_context():
        run_id = _start(shops, enqueue=True).id
    thread, outcome = _worker_in_background(run_worker, PORTAL_SWEEP_CHUNK_PAUSE_SECONDS="0.3")
    _wait(app, run_id, lambda s: s["chunks_done"] >= 3)
    with app.app_context():
        runs.pause_run(_admin(shops), run_id)
    thread.join(120)
    assert outcome["result"].returncode == 0, outcome["result"].stderr[-3000:]
    with app.app_context():
        state = runs.progress(run_id)
        assert state["status"] == "paused" and 3 <= state["chunks_done"] < SHOPS  # the chunk in hand, then it stopped
        # the workers gave their claims back: nothing is held, nothing more is claimed while paused
        assert db.session.scalar(select(func.count()).select_from(SweepRunChunk).where(
            SweepRunChunk.run_id == run_id, SweepRunChunk.done_at.is_(None), SweepRunChunk.claimed_at.is_not(None))) == 0
        assert processing._claim_chunk(run_id, "late", 120) is None
        assert len(_suspended()) == state["processed"] == state["chunks_done"]
        assert state["summary"] == f"Paused after {state['processed']} of {SHOPS} accounts."
        runs.resume_run(_admin(shops), run_id)
    resumed = run_worker("sweeps")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    with app.app_context():
        state = runs.progress(run_id)
        assert (state["status"], state["changed"], state["processed"]) == ("done", SHOPS, SHOPS)
        assert _suspended() == set(shops["ids"])
        events = db.session.execute(select(AuditEvent.account_id, func.count()).where(
            AuditEvent.actor_run_id == run_id, AuditEvent.action == "suspended").group_by(AuditEvent.account_id)).all()
        assert sorted(events) == sorted((i, 1) for i in shops["ids"])  # each account once
        assert db.session.scalar(select(func.count()).select_from(OutboxEmail).where(
            OutboxEmail.kind == "account_suspended")) == len(shops["managers"])
        assert (_events(run_id, "run_paused"), _events(run_id, "run_resumed")) == (1, 1)


def test_cancel_mid_run_keeps_what_it_did_and_its_undo_reverts_exactly_that(app, shops, run_worker):
    with app.app_context():
        run_id = _start(shops, enqueue=True).id
    thread, outcome = _worker_in_background(run_worker, PORTAL_SWEEP_CHUNK_PAUSE_SECONDS="0.3")
    _wait(app, run_id, lambda s: s["chunks_done"] >= 3)
    with app.app_context():
        runs.cancel_run(_admin(shops), run_id)
        assert runs.running_exclusive_run() is None  # its lock goes at once
    thread.join(120)
    assert outcome["result"].returncode == 0, outcome["result"].stderr[-3000:]
    with app.app_context():
        state = runs.progress(run_id)
        done_by_run = _suspended()
        assert state["status"] == "cancelled" and state["finished"] and not state["in_hand"]
        assert 3 <= len(done_by_run) == state["changed"] == state["processed"] < SHOPS
        assert state["summary"] == f"Cancelled after {len(done_by_run)} of {SHOPS} accounts."
        stored = db.session.get(SweepRun, run_id)  # the run's own counts include the chunk that was in hand
        assert (stored.changed, stored.matched) == (len(done_by_run), len(done_by_run))
        with pytest.raises(InvalidTransition, match="was cancelled"):
            runs.resume_run(_admin(shops), run_id)
        undo = sweeps.start_undo(_admin(shops), run_id, "other", "Stopped halfway")
        runs.process_run(undo.id, worker_name="test", poll=0)
        assert runs.progress(undo.id)["changed"] == len(done_by_run)
        assert _suspended() == set()
        undone = set(db.session.scalars(select(AuditEvent.account_id).where(
            AuditEvent.actor_run_id == undo.id, AuditEvent.action == "reactivated")))
        assert undone == done_by_run  # exactly what the cancelled run did, nothing else
        untouched = set(shops["ids"]) - done_by_run
        assert not db.session.scalar(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.account_id.in_(untouched)))


# ---------------------------------------------------------------- compare-and-set: one transition

@pytest.mark.parametrize("action, prepare", [("pause", None), ("cancel", None), ("resume", "pause")])
def test_two_transitions_at_once_make_one(app, shops, monkeypatch, action, prepare):
    """Both read the run, then both write: the status in the UPDATE's WHERE lets one through (seen to fail, two
    events and both 'ok', with the condition taken out of controls._transition / resume_run)."""
    with app.app_context():
        run_id = _start(shops).id
        _set_running(run_id)
        if prepare:
            runs.pause_run(_admin(shops), run_id)
    barrier = threading.Barrier(2)
    module = runs.starting if action == "resume" else controls
    read = module.get_run

    first = threading.local()

    def get_run_then_wait(run_id_, **kwargs):
        run = read(run_id_, **kwargs)
        if not getattr(first, "done", False):  # each click's first read (a refusal reads the run again)
            first.done = True
            barrier.wait(timeout=20)  # both have read the status before either writes
        return run

    monkeypatch.setattr(module, "get_run", get_run_then_wait)
    act = {"pause": runs.pause_run, "cancel": runs.cancel_run, "resume": runs.resume_run}[action]
    results = []

    def click():
        with app.app_context():
            try:
                act(db.session.get(User, shops["admin_id"]), run_id)
                results.append("ok")
            except InvalidTransition as exc:
                results.append(exc.message)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=click) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    monkeypatch.undo()
    assert sorted(results, key=len)[0] == "ok" and len(results) == 2 and results.count("ok") == 1, results
    assert "changed meanwhile" in next(r for r in results if r != "ok")
    with app.app_context():
        event = {"pause": "run_paused", "cancel": "run_cancelled", "resume": "run_resumed"}[action]
        assert _events(run_id, event) == 1


def test_a_worker_finishing_and_a_pause_or_cancel_make_one_transition(ctx, shops):
    run = _start(shops, chunk_size=6)
    _set_running(run.id)
    for chunk in _chunks(run.id):
        runs.process_chunk(run, *chunk)
    runs.pause_run(_admin(shops), run.id)
    processing._finish(run.id)  # the worker's last step comes after the pause: it does not mark it done
    assert runs.progress(run.id)["status"] == "paused" and _events(run.id, "run_cleanup_finished") == 0
    runs.resume_run(_admin(shops), run.id)
    _set_running(run.id)
    processing._finish(run.id)
    assert runs.progress(run.id)["status"] == "done"
    with pytest.raises(InvalidTransition, match="already finished; there is nothing to cancel"):
        runs.cancel_run(_admin(shops), run.id)
    assert runs.progress(run.id)["status"] == "done" and _events(run.id, "run_cancelled") == 0


# ---------------------------------------------------------------- bad transitions

def test_bad_transitions_are_refused_and_change_nothing(ctx, shops):
    admin = _admin(shops)
    done = _start(shops, chunk_size=6)
    runs.process_run(done.id, worker_name="test", poll=0)
    with pytest.raises(InvalidTransition, match=f"Run #{done.id} has already finished; there is nothing to pause"):
        runs.pause_run(admin, done.id)
    live = _start(shops)
    _set_running(live.id)
    db.session.execute(update(SweepRun).where(SweepRun.id == live.id).values(heartbeat_at=datetime.utcnow()))
    db.session.commit()
    with pytest.raises(InvalidTransition, match="is running, not paused; there is nothing to resume"):
        runs.resume_run(admin, live.id)
    runs.cancel_run(admin, live.id)
    with pytest.raises(InvalidTransition, match="was already cancelled"):
        runs.cancel_run(admin, live.id)
    with pytest.raises(InvalidTransition, match="was cancelled; there is nothing to pause"):
        runs.pause_run(admin, live.id)
    assert [_events(live.id, a) for a in ("run_paused", "run_resumed", "run_cancelled")] == [0, 0, 1]
    assert runs.progress(live.id)["status"] == "cancelled" and runs.progress(done.id)["status"] == "done"


def test_a_bulk_change_made_at_once_cannot_be_paused(ctx, shops):
    outcome = bulk.apply(_admin(shops), "suspend", "selected", shops["ids"][:2], None, "other", "Two shops")
    db.session.execute(update(SweepRun).where(SweepRun.id == outcome.run_id).values(status="running"))
    db.session.commit()  # as if it were still at work
    with pytest.raises(InvalidTransition, match="made at once"):
        runs.pause_run(_admin(shops), outcome.run_id)
    with pytest.raises(InvalidTransition, match="made at once"):
        runs.cancel_run(_admin(shops), outcome.run_id)


# ---------------------------------------------------------------- the run page, with and without htmx

@pytest.fixture
def signed_in(auth, shops):
    auth.login(shops["admin_email"])
    return auth


def _html(response):
    return response.get_data(as_text=True)


def test_a_running_run_page_shows_progress_and_pause_and_cancel(app, client, signed_in, shops):
    with app.app_context():
        run = _start(shops, chunk_size=4)
        _set_running(run.id, started_at=datetime.utcnow() - timedelta(seconds=2))
        runs.process_chunk(run, *_chunks(run.id)[0])
        run_id = run.id
    page = _html(client.get(f"/sweeps/runs/{run_id}"))
    assert "<html" in page and "4 of 12 accounts processed (33%)" in page and "accounts/s" in page
    assert 'data-testid="pause-run"' in page and 'data-testid="cancel-run"' in page and "Cancel this run…" in page
    assert 'data-testid="resume-run"' not in page and 'hx-trigger="every 1s"' in page and 'hx-preserve="true"' in page
    live = client.get(f"/sweeps/runs/{run_id}/progress", headers=HX)
    assert "<html" not in _html(live) and _html(live).lstrip().startswith('<section class="card" id="run-live"')
    assert live.headers["Vary"] == "HX-Request" or "HX-Request" in live.headers["Vary"]
    plain = signed_in.post(f"/sweeps/runs/{run_id}/pause", page=f"/sweeps/runs/{run_id}")
    assert plain.status_code == 303 and plain.headers["Location"] == f"/sweeps/runs/{run_id}"
    paused = _html(client.get(f"/sweeps/runs/{run_id}"))
    assert "paused: its workers stop after the chunk in hand" in paused and "Paused after 4 of 12 accounts." in paused
    assert 'data-testid="resume-run"' in paused and 'data-testid="pause-run"' not in paused
    assert 'hx-trigger="every 5s"' in paused
    resumed = signed_in.post(f"/sweeps/runs/{run_id}/resume", htmx=True, page=f"/sweeps/runs/{run_id}")
    assert resumed.status_code == 204 and resumed.headers["HX-Redirect"] == f"/sweeps/runs/{run_id}"
    cancelled = signed_in.post(f"/sweeps/runs/{run_id}/cancel", htmx=True, page=f"/sweeps/runs/{run_id}")
    assert cancelled.status_code == 204
    report = _html(client.get(f"/sweeps/runs/{run_id}"))
    assert "Cancelled after 4 of 12 accounts." in report and 'data-testid="cancelled-note"' in report
    assert 'id="undo-form"' in report and 'hx-trigger="every' not in report  # finished: it no longer polls
    with app.app_context():
        assert [_events(run_id, a) for a in ("run_paused", "run_resumed", "run_cancelled")] == [1, 1, 1]


@pytest.mark.parametrize("htmx", [False, True])
def test_a_refused_transition_says_why_and_changes_nothing(app, client, signed_in, shops, htmx):
    with app.app_context():
        run = _start(shops, chunk_size=6)
        runs.process_run(run.id, worker_name="test", poll=0)
        run_id = run.id
        before = db.session.scalar(select(func.count()).select_from(AuditEvent))
    for action, words in (("pause", "nothing to pause"), ("resume", "nothing to resume"),
                          ("cancel", "nothing to cancel")):
        response = signed_in.post(f"/sweeps/runs/{run_id}/{action}", htmx=htmx, page=f"/sweeps/runs/{run_id}")
        html = _html(response)
        assert response.status_code == 409 and words in html and 'class="flash flash-error"' in html
        assert ("<html" in html) is (not htmx)  # htmx: the live part, whose message the page shows as a toast
    assert signed_in.post("/sweeps/runs/999999/pause", page="/sweeps").status_code == 404
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(AuditEvent)) == before
        assert runs.progress(run_id)["status"] == "done"


# ---------------------------------------------------------------- flask sweep

def test_the_commands_pause_show_resume_cancel_and_follow(app, runner, shops):
    with app.app_context():
        run_id = _start(shops, chunk_size=4).id
        _set_running(run_id)
    email = shops["admin_email"]
    paused = runner.invoke(args=["sweep", "pause", str(run_id), "--as", email])
    assert paused.exit_code == 0 and f"Paused run #{run_id}: Paused after 0 of 12 accounts." in paused.output
    shown = runner.invoke(args=["sweep", "show", str(run_id)])
    assert shown.exit_code == 0 and ": paused" in shown.output and "processed 0 of 12" in shown.output
    again = runner.invoke(args=["sweep", "pause", str(run_id), "--as", email])
    assert again.exit_code == 1 and "is already paused" in again.output
    resumed = runner.invoke(args=["sweep", "resume", str(run_id), "--as", email, "--no-wait"])
    assert resumed.exit_code == 0 and f"Resumed run #{run_id}." in resumed.output
    refused = runner.invoke(args=["sweep", "cancel", str(run_id), "--as", email], input="n\n")
    assert refused.exit_code == 1 and "Aborted" in refused.output
    cancelled = runner.invoke(args=["sweep", "cancel", str(run_id), "--as", email], input="y\n")
    assert cancelled.exit_code == 0 and f"Cancelled run #{run_id}: Cancelled after 0 of 12 accounts." in cancelled.output
    twice = runner.invoke(args=["sweep", "cancel", str(run_id), "--as", email, "--yes"])
    assert twice.exit_code == 1 and "was already cancelled" in twice.output
    followed = runner.invoke(args=["sweep", "follow", str(run_id)])  # a cancelled run: the report at once
    assert followed.exit_code == 0 and ": cancelled" in followed.output
    nobody = runner.invoke(args=["sweep", "pause", str(run_id), "--as", "nobody@example.test"])
    assert nobody.exit_code == 1 and "No user with email" in nobody.output
    with app.app_context():
        assert [_events(run_id, a) for a in ("run_paused", "run_resumed", "run_cancelled")] == [1, 1, 1]
        actors = set(db.session.scalars(select(AuditEvent.actor_user_id).where(
            AuditEvent.actor_run_id == run_id, AuditEvent.action.in_(("run_paused", "run_cancelled")))))
        assert actors == {shops["admin_id"]}


def test_follow_reports_accounts_not_chunks(app, runner, shops, run_worker):
    with app.app_context():
        run_id = _start(shops, chunk_size=4, enqueue=True).id
    worker = run_worker("sweeps")
    assert worker.returncode == 0, worker.stderr[-2000:]
    followed = runner.invoke(args=["sweep", "follow", str(run_id)])
    assert followed.exit_code == 0 and "Done: 12 accounts processed" in followed.output
    assert "processed 12" in followed.output and "accounts/s" in followed.output
