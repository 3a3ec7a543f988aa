"""Accounts by status, kept up to date from the audit trail: against a fresh GROUP BY after random sequences of
every kind of status change through the portal's own domain functions; the incremental path taken (no full
count) and not missing an event; on PostgreSQL, ids committed out of order and ids that never appear."""
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, precondition, rule, run_state_machine_as_test
from sqlalchemy import func, select, text

from portal.domain import bulk, onboarding, status_counts, suspension
from portal.domain.billing import ledger
from portal.domain.cancellations.cancelling import cancel_account
from portal.domain.dunning import daily, overrides
from portal.domain.errors import DomainError
from portal.domain.runs import process_run, start_run
from portal.extensions import db
from portal.models import Account, User
from portal.timeutil import utcnow

NOTE = "Checked with the customer."


def fresh_counts():
    """The reference: every account counted now, by status."""
    rows = db.session.execute(select(Account.status, func.count()).group_by(Account.status)).all()
    return {status: int(n) for status, n in rows}


def served():
    totals = status_counts.current()
    return {status: n for status, n in totals.counts.items() if n}


def run_now(actor, kind, action, selection, **extra):
    run = start_run(actor, kind, action, selection, "other", NOTE, enqueue=False, **extra)
    process_run(run.id)
    return run.id


class StatusChanges(RuleBasedStateMachine):
    """Status changes of every kind, in any order; reading the counts at any point must give a fresh count."""

    app = admin_id = cls_id = None
    make = None

    @initialize(n=st.integers(2, 5))
    def accounts(self, n):
        self.ids = [self.make.account(customer_class_id=self.cls_id) for _ in range(n)]
        self.runs = []
        self.counted = 0

    @property
    def admin(self):
        return db.session.get(User, self.admin_id)

    def pick(self, i):
        return self.ids[i % len(self.ids)]

    def attempt(self, change, *args, **kwargs):
        try:
            done = change(*args, **kwargs)
        except DomainError:
            db.session.rollback()
            return None
        open_writes = (status_counts._own_writes_sqlite() if db.engine.dialect.name == "sqlite" else
                       db.session.execute(text("SELECT pg_current_xact_id_if_assigned()")).scalar() is not None)
        assert not open_writes, f"{change.__name__} returned with its writes not committed"
        return done

    @rule(i=st.integers(0, 99))
    def suspend(self, i):
        self.attempt(suspension.suspend, self.admin, self.pick(i), "other", NOTE)

    @rule(i=st.integers(0, 99))
    def reactivate(self, i):
        self.attempt(suspension.reactivate, self.admin, self.pick(i), "other", NOTE)

    @rule(i=st.integers(0, 99))
    def cancel(self, i):
        account = db.session.get(Account, self.pick(i))
        self.attempt(cancel_account, self.admin, account.id, "other", NOTE, account.number)

    @rule(picks=st.lists(st.integers(0, 99), min_size=1, max_size=4), action=st.sampled_from(["suspend", "reactivate"]))
    def bulk_run(self, picks, action):
        ids = sorted({self.pick(i) for i in picks})
        run_id = self.attempt(run_now, self.admin, "bulk", action, {"type": "ids", "ids": ids})
        if run_id and action == "suspend":
            self.runs.append(run_id)

    @precondition(lambda self: getattr(self, "runs", None))
    @rule()
    def undo_last_run(self):
        run_id = self.runs.pop()
        self.attempt(run_now, self.admin, "undo", "reactivate", {"type": "undo", "run_id": run_id},
                     undo_of_run_id=run_id)

    @rule(picks=st.lists(st.integers(0, 99), min_size=1, max_size=3), action=st.sampled_from(["suspend", "reactivate"]))
    def bulk_at_once(self, picks, action):
        ids = [str(i) for i in sorted({self.pick(i) for i in picks})]
        self.attempt(bulk.apply, self.admin, action, "selected", ids, None, "other", NOTE)

    @rule()
    def create_account(self):
        n = len(self.ids)
        account = self.attempt(onboarding.create_account, self.admin, f"Opened {n}", f"opened{n}@example.com")
        if account is not None:
            self.ids.append(account.id)

    @rule(status=st.sampled_from(["active", "suspended", "cancelled"]))
    def account_written_without_an_event(self, status):  # as the seed and the factories write them
        self.ids.append(self.make.account(status=status, customer_class_id=self.cls_id))

    @rule(i=st.integers(0, 99), days=st.sampled_from([17, 25]))
    def overdue_invoice(self, i, days):  # a backdated invoice: the schedule limits or suspends at once
        self.attempt(ledger.add_invoice, self.admin, self.pick(i), "20.00", utcnow().date() - timedelta(days=days))

    @rule(i=st.integers(0, 99))
    def payment(self, i):  # nothing overdue any more: service restored
        self.attempt(ledger.record_payment, self.admin, self.pick(i), "100.00")

    @rule(i=st.integers(0, 99), overdue_first=st.booleans())
    def lift(self, i, overdue_first):  # full service until a date (of an account the schedule restricted)
        if overdue_first:
            self.overdue_invoice(i, 25)
        self.attempt(overrides.lift, self.admin, self.pick(i), utcnow().date() + timedelta(days=3), reason_note=NOTE)

    @rule(i=st.integers(0, 99), days=st.sampled_from([17, 25]))
    def daily_run(self, i, days):  # an invoice the run finds (not through billing), and the day's run
        account_id = self.pick(i)
        self.make.invoice(account_id, 2000, due_date=utcnow().date() - timedelta(days=days))
        db.session.execute(text("UPDATE accounts SET dunning_next_on = :d WHERE id = :id"),
                           {"d": utcnow().date(), "id": account_id})
        db.session.commit()
        run = self.attempt(daily.start_daily_run, None, utcnow().date(), enqueue=False)
        if run is not None:
            process_run(run.id)

    @rule()
    def read(self):
        assert served() == fresh_counts()

    @rule()
    def a_new_process_after_the_scheduler_published(self):  # it adopts the shared copy: no full count
        status_counts.publish()
        status_counts.forget()

    def teardown(self):
        if hasattr(self, "ids"):
            assert served() == fresh_counts()
            db.session.remove()


def test_counts_equal_a_fresh_count_after_any_sequence_of_status_changes(ctx, make, monkeypatch):
    """A full count only once (the first read): every later read is the kept counts brought up to date, also in
    a new process that took the scheduler's published copy (portal.domain.shared_figures)."""
    full = []
    real = status_counts._count
    monkeypatch.setattr(status_counts, "_count", lambda now: full.append(now) or real(now))
    monkeypatch.setattr(daily, "period_key", lambda day: f"{day.isoformat()}-{len(full)}-{utcnow().timestamp()}")
    StatusChanges.make, StatusChanges.app = make, ctx
    StatusChanges.admin_id = make.user("super_admin").id
    StatusChanges.cls_id = make.customer_class("Model", limit_after_days=15, suspend_after_days=20)
    run_state_machine_as_test(StatusChanges, settings=settings(
        max_examples=25, stateful_step_count=20, deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much]))
    assert len(full) == 1


def test_a_change_is_counted_from_its_events_and_none_is_missed(ctx, world, make, monkeypatch):
    ids = [make.account(name=f"Step {i}") for i in range(5)]
    admin = db.session.get(User, world.admin.id)
    first = status_counts.current()
    full = []
    monkeypatch.setattr(status_counts, "_count", lambda now: full.append(now) or pytest.fail("counted in full"))
    suspension.suspend(admin, ids[0], "other", NOTE)
    run = run_now(admin, "bulk", "suspend", {"type": "ids", "ids": ids[1:4]})  # three events in one statement
    make.account(status="cancelled")
    after = status_counts.current()
    assert not after.cached
    assert after.counts["suspended"] == first.counts["suspended"] + 4 == fresh_counts()["suspended"]
    assert after.counts["active"] == first.counts["active"] - 4 and after.counts["cancelled"] == 1
    run_now(admin, "undo", "reactivate", {"type": "undo", "run_id": run}, undo_of_run_id=run)
    again = status_counts.current()
    assert {s: n for s, n in again.counts.items() if n} == fresh_counts()
    assert again.counts["suspended"] == 1 and status_counts.current().cached


def test_a_note_or_a_rename_changes_no_count(ctx, world, make, monkeypatch):
    account = make.account()
    first = status_counts.current()
    monkeypatch.setattr(status_counts, "_count", lambda now: pytest.fail("counted in full"))
    from portal.domain import audit

    db.session.execute(text("UPDATE accounts SET name = 'Renamed'"))
    db.session.commit()
    assert status_counts.current().cached  # no event, no new account: nothing read
    audit.record("note_added", account, "Test", reason_note="A note")  # an event with no state_after
    db.session.commit()
    kept = status_counts.current()
    assert kept.counts == first.counts == {**dict.fromkeys(status_counts.STATUSES, 0), **fresh_counts()}


def test_an_event_that_does_not_match_the_table_makes_a_full_count(ctx, world, make):
    account = make.account()
    status_counts.current()
    from portal.domain import audit

    # a 'limited -> active' change of an account no count has as limited: a count would go below zero
    audit.record("reactivated", account, "Test", state_before="limited", state_after="active")
    db.session.commit()
    counted = status_counts.current()
    assert {s: n for s, n in counted.counts.items() if n} == fresh_counts()  # counted again, not -1 limited


def test_counts_read_inside_a_transaction_that_wrote_are_not_kept(ctx, world, make):
    account = make.account()
    before = status_counts.current()
    db.session.execute(text("UPDATE accounts SET status = 'suspended' WHERE id = :id"), {"id": account})
    from portal.domain import audit

    audit.record("suspended", account, "Test", state_before="active", state_after="suspended")
    db.session.flush()
    inside = status_counts.current()
    assert inside.counts["suspended"] == before.counts["suspended"] + 1  # what this transaction sees
    db.session.rollback()
    assert status_counts.current().counts == before.counts  # the rolled-back change was never kept


def test_the_counts_are_counted_in_full_after_the_bound(ctx, world, make, monkeypatch):
    make.account()
    first = status_counts.current()
    assert status_counts.current(first.as_of + timedelta(seconds=10)).cached
    later = status_counts.current(first.as_of + timedelta(seconds=status_counts.RECOUNT_SECONDS + 1))
    assert not later.cached


# ---------------------------------------------------------------- PostgreSQL: ids committed out of order

def _pg_only(db_backend):
    if db_backend != "postgresql":
        pytest.skip("SQLite has one writer at a time: its ids commit in order")


def _insert_event(conn, account_id, before, after):
    conn.execute(text("INSERT INTO audit_events (created_at, account_id, actor_label, action, state_before, "
                      "state_after) VALUES (now(), :id, 'Test', 'changed', :b, :a)"),
                 {"id": account_id, "b": before, "a": after})


def test_a_change_committed_below_a_newer_id_after_a_step_is_counted_from_its_gap(ctx, world, make, db_backend,
                                                                                   monkeypatch):
    """The kept counts are brought up to date (a step) while a transaction holding a lower id is in
    progress: that id is a gap, looked for on every read, and counted when it appears, with no full count."""
    _pg_only(db_backend)
    late, other = make.account(name="Late"), make.account(name="Other")
    status_counts.current()
    full = []
    real = status_counts._count
    monkeypatch.setattr(status_counts, "_count", lambda now: full.append(now) or real(now))
    slow = db.engine.connect()
    slow_tx = slow.begin()
    slow.execute(text("UPDATE accounts SET status = 'suspended' WHERE id = :id"), {"id": late})
    _insert_event(slow, late, "active", "suspended")  # takes the lower id
    with db.engine.begin() as quick:  # a higher id, committed first
        quick.execute(text("UPDATE accounts SET status = 'cancelled' WHERE id = :id"), {"id": other})
        _insert_event(quick, other, "active", "cancelled")
    db.session.rollback()
    stepped = status_counts.current()
    assert stepped.counts["cancelled"] == 1 and stepped.counts["suspended"] == 0
    assert status_counts._store()["entry"].gaps  # the lower id is watched
    slow_tx.commit()
    slow.close()
    db.session.rollback()
    after = status_counts.current()
    assert {s: n for s, n in after.counts.items() if n} == fresh_counts() and after.counts["suspended"] == 1
    assert not full  # both counted from their events


def test_an_id_that_never_appears_is_given_up_once_its_transaction_has_ended(ctx, world, make, db_backend,
                                                                             monkeypatch):
    _pg_only(db_backend)
    monkeypatch.setattr(status_counts, "GAP_SETTLE_SECONDS", 0.0)
    account = make.account()
    status_counts.current()
    doomed = db.engine.connect()
    doomed_tx = doomed.begin()
    _insert_event(doomed, account, "active", "suspended")
    with db.engine.begin() as quick:
        _insert_event(quick, account, "active", "active")  # a higher id, committed; changes nothing
    db.session.rollback()
    status_counts.current()
    assert status_counts._store()["entry"].gaps
    doomed_tx.rollback()  # its id never appears
    doomed.close()
    db.session.rollback()
    status_counts.current()  # the transaction has ended since the gap was seen: the gap is given up
    db.session.rollback()
    assert not status_counts._store()["entry"].gaps and status_counts.current().cached


def test_a_step_reads_only_the_new_rows_by_primary_key_on_sqlite(ctx, world, make, db_backend):
    """Without statistics SQLite walked the whole index on audit_events.account_id (0.5 s at 1M accounts)
    and the whole status index of accounts (0.26 s) for a step; it must search both primary keys."""
    if db_backend != "sqlite":
        pytest.skip("the PostgreSQL planner has statistics; the bench shows its plan")
    from sqlalchemy import event

    account = make.account()
    status_counts.current()
    suspension.suspend(db.session.get(User, world.admin.id), account, "other", NOTE)
    seen = []

    def keep(conn, cursor, statement, parameters, context, executemany):  # noqa: ARG001
        if "'m'" in statement:
            seen.append((statement, parameters))

    event.listen(db.engine, "before_cursor_execute", keep)
    try:
        status_counts.current()
    finally:
        event.remove(db.engine, "before_cursor_execute", keep)
    statement, parameters = seen[0]
    plan = " | ".join(row[3] for row in db.session.connection().exec_driver_sql(
        "EXPLAIN QUERY PLAN " + statement, parameters).all())
    assert "SEARCH audit_events USING INTEGER PRIMARY KEY (rowid>?)" in plan, plan
    assert "SEARCH accounts USING INTEGER PRIMARY KEY (rowid>?)" in plan, plan
    assert "ix_" not in plan, plan
