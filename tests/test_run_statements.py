"""A run's chunk statements are built once per worker process, and a chunk's emails start from its changed accounts.

The statements (rules, reasons, skip cases, the email text rendered from its template) are kept per process,
keyed by what they are made of; only the chunk's range and time change between chunks. These tests check the
text stays right per account and per run, that a second run never gets the first one's statements, and that
only the managers of the accounts a chunk changed are emailed.
"""
from datetime import datetime

import pytest
from sqlalchemy import select

from portal.domain import runs
from portal.domain.runs import chunk as run_chunk, emails as run_emails
from portal.extensions import db
from portal.models import Account, OutboxEmail, User

AS_OF = datetime(2026, 11, 1, 12, 0)
OLD, RECENT = datetime(2023, 1, 1), datetime(2026, 10, 1)
RULES = {"type": "rules", "rules": [
    {"id": 1, "name": "Inactive 12+ months", "enabled": True, "inactivity_months": 12, "min_balance_cents": None,
     "overdue_days": None},
    {"id": 2, "name": "Balance over $5", "enabled": True, "inactivity_months": None, "min_balance_cents": 500,
     "overdue_days": None}]}


@pytest.fixture(autouse=True)
def _no_kept_statements():
    run_chunk._built.clear()  # run ids start again in every test's database
    yield
    run_chunk._built.clear()


@pytest.fixture
def shops(make):
    """Eight shops: 0-4 dormant (3 owes money too, 4 is exempt), 5-6 active and owing, 7 active and paid up.

    Every shop has a manager; shop 0 has a second one, a member and a manager who turned emails off.
    """
    ids = []
    for i in range(8):
        dormant = i <= 4
        ids.append(make.account(name=f"Shop {i}", created_at=OLD, last_activity_at=OLD if dormant else RECENT,
                                balance_cents=900 if i in (3, 5, 6) else 0, exempt=(i == 4)))
    managers = {i: make.user("account_manager", ids[i], name=f"Manager {i}") for i in range(8)}
    second = make.user("account_manager", ids[0], name="Second manager")
    make.user("user", ids[0])
    make.user("account_manager", ids[0], email_notifications=False)
    admin = make.user("super_admin")
    return {"ids": ids, "managers": managers, "second": second, "admin_id": admin.id}


def _start(shops, note="Dormant or owing", chunk_size=2):
    return runs.start_run(db.session.get(User, shops["admin_id"]), "cleanup", "suspend", RULES, runs.BY_RULE, note,
                          as_of=AS_OF, chunk_size=chunk_size, enqueue=False)


def _emails():
    return db.session.scalars(select(OutboxEmail).order_by(OutboxEmail.id)).all()


def test_statements_and_email_text_are_built_once_for_all_chunks_of_a_run(ctx, shops, monkeypatch):
    renders = []
    real = run_emails._body
    monkeypatch.setattr(run_emails, "_body", lambda *a: renders.append(a[2]) or real(*a))
    run = _start(shops, chunk_size=1)  # a chunk per shop that has anything to do
    result = runs.process_run(run.id, worker_name="test", poll=0)
    assert result["status"] == "done" and result["changed"] == 6 and result["chunks"] >= 4
    # rendered once per wording (a rules run words each account's email by its reason), not once per chunk
    assert sorted(renders) == ["inactivity", "non_payment"]
    assert len(run_chunk._built) == 1


def test_each_account_email_names_its_account_its_manager_and_its_own_reason(ctx, shops):
    run = _start(shops)
    runs.process_run(run.id, worker_name="test", poll=0)
    ids, managers = shops["ids"], shops["managers"]
    by_address = {}
    for email in _emails():
        by_address.setdefault(email.to_addr, []).append(email)
    expected = {managers[i].email: i for i in (0, 1, 2, 3, 5, 6)}
    expected[shops["second"].email] = 0
    assert set(by_address) == set(expected)  # not the exempt shop's, the paid-up shop's, or the opted-out one
    for address, i in expected.items():
        (email,) = by_address[address]
        account = db.session.get(Account, ids[i])
        assert email.account_id == ids[i] and account.status == "suspended"
        assert account.number in email.subject and f"{account.number} (Shop {i})" in email.body
        name = "Second manager" if address == shops["second"].email else f"Manager {i}"
        assert email.body.startswith(f"Hello {name},")
        assert "Note: Dormant or owing" in email.body
        reason = "non_payment" if i in (3, 5, 6) else "inactivity"
        assert account.status_reason == reason
        other = "inactivity" if reason == "non_payment" else "non_payment"
        assert _reason_line(reason) in email.body and _reason_line(other) not in email.body


def _reason_line(reason):
    from portal.domain.gate import REASONS

    return f"Reason: {REASONS.get(reason, reason)}"


def test_a_second_run_gets_its_own_statements_not_the_first_ones(ctx, shops, make):
    first = _start(shops, note="First clean-up")
    runs.process_run(first.id, worker_name="test", poll=0)
    undone = runs.start_run(db.session.get(User, shops["admin_id"]), "undo", "reactivate",
                            {"type": "undo", "run_id": first.id}, "customer_request", "Undo the first",
                            undo_of_run_id=first.id, chunk_size=2, enqueue=False)
    assert runs.process_run(undone.id, worker_name="test", poll=0)["changed"] == 6
    db.session.execute(OutboxEmail.__table__.delete())
    db.session.commit()
    second = _start(shops, note="Second clean-up")
    assert runs.process_run(second.id, worker_name="test", poll=0)["changed"] == 6
    bodies = [e.body for e in _emails()]
    assert len(bodies) == 7 and all("Note: Second clean-up" in b and "First clean-up" not in b for b in bodies)
    assert set(db.session.scalars(select(Account.suspended_by_run_id).where(Account.status == "suspended"))) == {
        second.id}
    assert len(run_chunk._built) == 3


def test_the_same_run_id_in_another_database_state_is_not_mistaken_for_a_kept_one(ctx, shops):
    """A kept run is found by what its statements are made of: another note under the same id builds anew."""
    run = _start(shops, note="Kept note")
    kept = run_chunk._statements(run)
    assert run_chunk._statements(run) is kept
    run.reason_note = "Another note"  # as another database's run #1 would be
    assert run_chunk._statements(run) is not kept
    db.session.rollback()
