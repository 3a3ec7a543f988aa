"""The overview's costly first counts, shared by the scheduler's tick (portal.domain.shared_figures): a process
with nothing kept adopts the published counts and brings them up to date instead of counting every account or
every event of the chart's range; what it serves equals a fresh count; Redis down, another database's copy or an
unreadable one leave it counting for itself."""
from datetime import timedelta

from redis import Redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from sqlalchemy import func, select

from portal.domain import overview, schedule, shared_figures, status_counts, suspension
from portal.extensions import db
from portal.models import Account, User
from portal.timeutil import utcnow

NOTE = "Checked with the customer."


def _fresh_counts():
    rows = db.session.execute(select(Account.status, func.count()).group_by(Account.status)).all()
    return {status: int(n) for status, n in rows}


def _served():
    return {status: n for status, n in status_counts.current().counts.items() if n}


def _new_process():
    """What a web process started now has kept: nothing (the extensions' stores are per process and app)."""
    status_counts.forget()
    overview.forget_activity()


def _full_counts(monkeypatch):
    calls = []
    real = status_counts._count
    monkeypatch.setattr(status_counts, "_count", lambda now: calls.append(now) or real(now))
    return calls


def test_a_new_process_brings_the_published_counts_up_to_date_instead_of_counting(ctx, world, make, monkeypatch):
    ids = [make.account(name=f"Shared {i}") for i in range(4)]
    admin = db.session.get(User, world.admin.id)
    status_counts.publish()  # the scheduler's process: a full count, shared
    full = _full_counts(monkeypatch)
    suspension.suspend(admin, ids[0], "other", NOTE)  # changes after the copy was taken
    make.account(name="Opened since", status="suspended")
    _new_process()
    assert _served() == _fresh_counts() and full == []  # adopted and stepped: no count of every account
    assert status_counts.current().cached  # kept in the process from then on
    suspension.reactivate(admin, ids[0], "resolved", NOTE)
    assert _served() == _fresh_counts() and full == []


def test_an_older_copy_is_not_taken_over_a_newer_count_of_the_process(ctx, world, make, monkeypatch):
    make.account()
    status_counts.publish()
    payload = shared_figures.read(status_counts.SHARED_NAME)
    kept = status_counts._store()["entry"]
    assert status_counts._adopted(kept, utcnow()) is None  # the same count: nothing to adopt
    payload["counted_at"] = (kept.counted_at - timedelta(hours=2)).isoformat()  # older than the recount bound
    shared_figures.publish(status_counts.SHARED_NAME, payload)
    _new_process()
    full = _full_counts(monkeypatch)
    assert _served() == _fresh_counts() and len(full) == 1  # too old to trust: counted here


def test_the_tick_publishes_both_and_the_chart_of_a_new_process_counts_only_new_events(ctx, world, make,
                                                                                       monkeypatch):
    ids = [make.account() for _ in range(3)]
    admin = db.session.get(User, world.admin.id)
    suspension.suspend(admin, ids[0], "other", NOTE, now=utcnow() - timedelta(days=2))
    result = schedule.tick()
    assert result["overview"] == db.session.scalar(select(func.count()).select_from(Account))
    start, end = overview.activity_range()
    assert shared_figures.read(overview._range_name(start, end)) is not None
    suspension.suspend(admin, ids[1], "other", NOTE)
    calls = []
    real = overview._count_events
    monkeypatch.setattr(overview, "_count_events", lambda *a: calls.append(a[2:]) or real(*a))
    _new_process()
    served = overview.activity(start, end)
    assert len(calls) == 1 and calls[0][0] > 0  # from the copy's newest event on, not from the first
    monkeypatch.setattr(shared_figures, "read", lambda name: None)
    _new_process()
    assert overview.activity(start, end).counts == served.counts  # what counting every event gives
    assert served.totals[("suspended", "admin")] == 2


def test_with_redis_down_a_process_counts_for_itself_and_asks_again_only_after_a_while(ctx, world, make,
                                                                                       monkeypatch):
    make.account()
    status_counts.publish()
    asked = []

    class Down(Redis):
        def get(self, name):
            asked.append(name)
            return super().get(name)

    down = Down.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=shared_figures.TIMEOUT_SECONDS,
                         socket_timeout=shared_figures.TIMEOUT_SECONDS, retry=Retry(NoBackoff(), 0))
    monkeypatch.setattr(shared_figures, "_redis", lambda: down)
    _new_process()
    full = _full_counts(monkeypatch)
    assert _served() == _fresh_counts() and len(full) == 1
    _new_process()
    assert _served() == _fresh_counts() and len(full) == 2 and len(asked) == 1  # not asked again for a while
    assert shared_figures.publish("status-counts", {"x": 1}) is False  # logged, not raised


def test_a_copy_from_another_database_or_another_version_is_ignored(ctx, world, make, monkeypatch):
    make.account()
    status_counts.publish()
    digest = shared_figures._database()
    monkeypatch.setattr(shared_figures, "_database", lambda: "another-install")
    assert shared_figures.read(status_counts.SHARED_NAME) is None
    monkeypatch.setattr(shared_figures, "_database", lambda: digest)
    shared_figures.publish(status_counts.SHARED_NAME, {"counts": "not what this version writes"})
    _new_process()
    full = _full_counts(monkeypatch)
    assert _served() == _fresh_counts() and len(full) == 1


def test_the_scheduler_counts_again_before_the_bound_so_its_copy_is_always_newer(ctx, world, make, monkeypatch):
    make.account()
    status_counts.publish()
    first = status_counts._store()["entry"]
    full = _full_counts(monkeypatch)
    ahead = first.counted_at + timedelta(seconds=status_counts.RECOUNT_SECONDS - status_counts.PUBLISH_AHEAD_SECONDS + 1)
    status_counts.publish(ahead)  # the tick, shortly before the web processes' copies expire
    assert len(full) == 1 and status_counts._store()["entry"].counted_at == ahead
    status_counts._store()["entry"] = first  # a web process still on the first copy, now past the bound:
    later = first.counted_at + timedelta(seconds=status_counts.RECOUNT_SECONDS + 1)
    assert status_counts.current(later).counts and len(full) == 1  # it takes the newer copy instead of counting


def test_gaps_travel_with_the_copy_on_postgresql(app, world, make, db_backend, monkeypatch):
    """An event id taken before the copy and committed after it, in a new process: counted, with no full count."""
    import pytest

    if db_backend != "postgresql":
        pytest.skip("SQLite has one writer at a time: its ids commit in order")
    from sqlalchemy import create_engine, text

    early, other = make.account(name="Early"), make.account(name="Other")
    engine = create_engine(app.config["SQLALCHEMY_DATABASE_URI"])
    with app.app_context():
        admin = db.session.get(User, world.admin.id)
        status_counts.publish()
        with engine.connect() as late:  # takes an event id, commits later: a gap below a newer committed id
            late.execute(text("UPDATE accounts SET status = 'suspended' WHERE id = :id"), {"id": early})
            late.execute(text("INSERT INTO audit_events (created_at, account_id, actor_label, action, state_before, "
                              "state_after) VALUES (now(), :id, 'Test', 'suspended', 'active', 'suspended')"),
                         {"id": early})
            suspension.suspend(admin, other, "other", NOTE)  # a newer id, committed first
            db.session.remove()
            status_counts.publish()  # the scheduler's copy holds the gap
            assert status_counts._store()["entry"].gaps
            late.commit()
        full = _full_counts(monkeypatch)
        _new_process()
        assert _served() == _fresh_counts() and full == []  # the gap's event found, from the copy
        db.session.remove()
    engine.dispose()


def test_the_chart_counts_a_transaction_reads_with_its_own_uncommitted_events_are_neither_kept_nor_shared(
        ctx, world, make, monkeypatch):
    """The tick's transaction holding a suspension it has not committed: the chart it returns counts it, but what
    the process keeps and shares does not, so after the rollback no process counts an event that never was."""
    from sqlalchemy import text

    from portal.domain import audit

    early, other = make.account(name="Suspended early"), make.account(name="Suspended, then rolled back")
    admin = db.session.get(User, world.admin.id)
    suspension.suspend(admin, early, "other", NOTE)
    start, end = overview.activity_range()
    committed = overview.publish_activity()
    db.session.execute(text("UPDATE accounts SET status = 'suspended' WHERE id = :id"), {"id": other})
    audit.record("suspended", other, "Test", state_before="active", state_after="suspended")
    db.session.flush()
    inside = overview.publish_activity()
    assert inside.measure_total("suspended") == committed.measure_total("suspended") + 1  # as the transaction sees it
    db.session.rollback()
    shared = shared_figures.read(overview._range_name(start, end))
    assert sum(n for _day, m, _s, n in shared["counts"] if m == "suspended") == committed.measure_total("suspended")
    suspension.reactivate(admin, early, "resolved", NOTE)  # a later event (on SQLite: the rolled-back one's id)
    here = overview.activity(start, end)  # this process's kept counts, brought up to date
    _new_process()
    adopted = overview.activity(start, end)  # a new process, from the shared copy
    monkeypatch.setattr(shared_figures, "read", lambda name: None)
    _new_process()
    fresh = overview.activity(start, end)  # every event of the range counted
    assert here.counts == adopted.counts == fresh.counts
    assert fresh.measure_total("suspended") == committed.measure_total("suspended")
    assert fresh.measure_total("reactivated") == committed.measure_total("reactivated") + 1
