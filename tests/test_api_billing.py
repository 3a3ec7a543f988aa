"""Billing pushes on both databases: invoices and payments under an Idempotency-Key (the same key and body
answers the first answer and writes nothing; another body is refused), a payment that clears a non-payment
restriction in the same request, write-offs, and refusals that change nothing."""
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from portal.api import idempotency
from portal.extensions import db
from portal.models import Account, AuditEvent, IdempotencyKey, Invoice, Payment
from portal.timeutil import utcnow
from tests.api_support import Api, make_token, number_of, problem
from tests.test_api_accounts import overdue


@pytest.fixture
def api(app, client, world):
    return Api(client, make_token(app, world.admin.id))


def counts(app):
    with app.app_context():
        found = tuple(db.session.scalar(select(func.count()).select_from(model))
                      for model in (Invoice, Payment, AuditEvent, IdempotencyKey))
        db.session.remove()
    return found


def test_an_invoice_push_is_answered_once_and_replayed(app, api, world):
    number = number_of(app, world.account)
    due = (utcnow().date() + timedelta(days=30)).isoformat()
    first = api.post(f"/api/v1/accounts/{number}/invoices", {"amount_cents": 4900, "due_date": due}, key="inv-1")
    assert first.status_code == 201
    body = first.get_json()
    assert body["invoice"] == dict(body["invoice"], seq=1, amount_cents=4900, paid_cents=0, due_date=due,
                                   status="open")
    assert body["account"]["balance_cents"] == 4900
    before = counts(app)
    again = api.post(f"/api/v1/accounts/{number}/invoices", {"due_date": due, "amount_cents": 4900}, key="inv-1")
    assert again.status_code == 201 and again.get_json() == body
    assert again.headers["Idempotent-Replayed"] == "true"
    assert counts(app) == before  # nothing written the second time
    other = api.post(f"/api/v1/accounts/{number}/invoices", {"amount_cents": 5000, "due_date": due}, key="inv-1")
    problem(other, 422, "idempotency-key-reused")
    assert counts(app) == before
    assert api.post(f"/api/v1/accounts/{number}/invoices", {"amount_cents": 5000, "due_date": due},
                    key="inv-2").get_json()["invoice"]["seq"] == 2


def test_keys_belong_to_their_token(app, client, world, api):
    number = number_of(app, world.account)
    other = Api(client, make_token(app, world.admin2.id, name="other system"))
    body = {"amount_cents": 1000}
    assert api.post(f"/api/v1/accounts/{number}/payments", body, key="same").status_code == 201
    assert other.post(f"/api/v1/accounts/{number}/payments", body, key="same").headers.get(
        "Idempotent-Replayed") is None
    assert counts(app)[1] == 2


def test_a_push_without_a_key_or_with_a_bad_body_is_refused_and_writes_nothing(app, api, world):
    number = number_of(app, world.account)
    before = counts(app)
    body = problem(api.post(f"/api/v1/accounts/{number}/payments", {"amount_cents": 100}), 422, "validation")
    assert "Idempotency-Key" in body["errors"]
    for bad in ({"amount_cents": 0}, {"amount_cents": "12.00"}, {"amount_cents": 10**15}, {"amount_cents": 1.5},
                {"amount_cents": 100, "invoice_seq": 99}, {"amount_cents": 100, "tip": 1}):
        problem(api.post(f"/api/v1/accounts/{number}/payments", bad, key="k"), 422, "validation")
    for bad in ({"amount_cents": 100}, {"amount_cents": 100, "due_date": "soon"},
                {"amount_cents": 100, "due_date": "2999-01-01"}):
        problem(api.post(f"/api/v1/accounts/{number}/invoices", bad, key="k"), 422, "validation")
    problem(api.post(f"/api/v1/accounts/{number}/payments", {"amount_cents": 1}, key="bad key"), 422, "validation")
    problem(api.post("/api/v1/accounts/T9999999/payments", {"amount_cents": 100}, key="k"), 404, "not-found")
    assert counts(app) == before
    # a refused push kept no key: the same key works once the body is right
    assert api.post(f"/api/v1/accounts/{number}/payments", {"amount_cents": 100}, key="k").status_code == 201


def test_a_payment_clearing_a_non_payment_restriction_says_so(app, api, world, make):
    account_id = overdue(app, world, make, 16)  # limited by the schedule
    number = number_of(app, account_id)
    assert api.get(f"/api/v1/accounts/{number}").get_json()["status"] == "limited"
    paid = api.post(f"/api/v1/accounts/{number}/payments", {"amount_cents": 5000, "reference": "PAY-77"}, key="p")
    assert paid.status_code == 201
    body = paid.get_json()
    assert body["restored"] is True and body["settled"] == [{"seq": 1, "cents": 4900}] and body["credit_cents"] == 100
    assert body["account"]["status"] == "active" and body["account"]["label"] == "Active"
    assert "service is restored" in body["message"]
    with app.app_context():
        assert db.session.get(Account, account_id).status == "active"
        assert db.session.scalars(select(Payment.reference)).one() == "PAY-77"


def test_a_write_off_needs_an_open_invoice_and_a_reason(app, api, world, make):
    make.invoice(world.account, amount_cents=2000, seq=1)
    number = number_of(app, world.account)
    before = counts(app)
    problem(api.post(f"/api/v1/accounts/{number}/invoices/1/write-off", {"reason": " "}), 422, "validation")
    problem(api.post(f"/api/v1/accounts/{number}/invoices/7/write-off", {"reason": "Gone"}), 422, "validation")
    assert counts(app) == before
    done = api.post(f"/api/v1/accounts/{number}/invoices/1/write-off", {"reason": "Disputed, settled by phone"})
    assert done.status_code == 200
    assert done.get_json()["invoice"]["status"] == "written_off" and done.get_json()["account"]["balance_cents"] == 0


def test_two_pushes_with_one_key_at_the_same_moment_write_once(app, api, world, monkeypatch):
    """The second request looked before the first committed (its lookup found nothing), so only the database's
    unique (token, key) stops it: its payment is rolled back with its key, and it answers the first answer.
    Seen to fail (two payments, then a 500) with the key written after the push instead of in its transaction."""
    number = number_of(app, world.account)
    body = {"amount_cents": 700}
    first = api.post(f"/api/v1/accounts/{number}/payments", body, key="race")
    assert first.status_code == 201
    looked = []
    real = idempotency._stored

    def stale_lookup(token_id, key):
        looked.append(key)
        return None if len(looked) == 1 else real(token_id, key)

    monkeypatch.setattr(idempotency, "_stored", stale_lookup)
    second = api.post(f"/api/v1/accounts/{number}/payments", body, key="race")
    assert len(looked) == 2  # the stale look, then the look after the refused commit
    assert second.status_code == 201 and second.get_json() == first.get_json()
    assert second.headers["Idempotent-Replayed"] == "true"
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Payment)) == 1
        assert db.session.get(Account, world.account).credit_cents == 700


def test_old_keys_are_forgotten(app, api, world):
    number = number_of(app, world.account)
    api.post(f"/api/v1/accounts/{number}/payments", {"amount_cents": 100}, key="old")
    with app.app_context():
        assert idempotency.prune(now=utcnow() + timedelta(hours=25)) == 1
