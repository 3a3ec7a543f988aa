"""A billing system driven through the API with a token, on both databases: invoices arrive, the daily dunning run
limits the account, a payment arrives and restores service in the same request, and a signed webhook announced
each step to a receiver on 127.0.0.1 (the signature checked with the secret the webhooks page showed once)."""
import calendar
import re
from datetime import date, datetime, timezone

import pytest

from portal import timeutil
from portal.domain import runs, webhooks
from portal.domain.dunning import daily
from portal.extensions import db
from tests.api_support import Api, make_token, number_of
from tests.webhook_receiver import Receiver


@pytest.fixture
def app_config():
    return {"WEBHOOK_ALLOW_PRIVATE": True}


@pytest.fixture
def clock(monkeypatch):
    """The portal's clock (portal.timeutil.utcnow, which every domain function reads), set by the test."""

    class Clock:
        now = None

    class Frozen(datetime):
        @classmethod
        def now(cls, tz=None):
            moment = Clock.now.replace(tzinfo=timezone.utc)
            return moment.astimezone(tz) if tz else moment.replace(tzinfo=None)

    monkeypatch.setattr(timeutil, "datetime", Frozen)
    return Clock


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.down()


def _deliver(app, clock, receiver, secret, expected):
    """Run the webhook job as of the clock; return the new requests' event types, each signature checked."""
    before = len(receiver.received)
    with app.app_context():
        webhooks.run()
        db.session.remove()
    got = receiver.received[before:]
    stamp = calendar.timegm(clock.now.utctimetuple())
    for request in got:
        assert request.signed_by(secret, tolerance=300, now=stamp), request.headers
        assert not request.signed_by(secret.replace("whsec_", "whsec_x"))
    assert [r.json["type"] for r in got] == expected
    return [r.json for r in got]


def test_invoices_then_the_dunning_schedule_then_a_payment_each_announced(app, auth, make, world, receiver, clock):
    clock.now = datetime(2026, 8, 20, 9, 0)
    account_id = make.account(name="Harbor Tours", customer_class_id=make.customer_class(
        "Monthly", limit_after_days=15, suspend_after_days=20))
    number = number_of(app, account_id)
    # The operator registers the billing system's receiver on the webhooks page; the secret is shown once.
    auth.login(world.admin.email)
    page = auth.post("/settings/webhooks", {"url": receiver.url("/portal-events"), "description": "Billing",
                                            "events": ["account.limited", "account.reactivated",
                                                       "payment.recorded", "run.finished"]},
                     page="/settings/webhooks")
    secret = re.search(r'value="(whsec_[^"]+)"', page.get_data(as_text=True)).group(1)
    api = Api(app.test_client(), make_token(app, world.admin.id, ["billing:write", "accounts:read"], "billing-sync"))

    # Aug 20: two invoices arrive; nothing is overdue yet, nothing is announced.
    for key, due in (("inv-1001", "2026-08-31"), ("inv-1002", "2026-09-10")):
        pushed = api.post(f"/api/v1/accounts/{number}/invoices", {"amount_cents": 4900, "due_date": due}, key=key)
        assert pushed.status_code == 201, pushed.get_json()
    assert pushed.get_json()["account"]["status"] == "active"
    assert _deliver(app, clock, receiver, secret, []) == []

    # Sep 15: the day's dunning run limits the account (15 days after the oldest overdue invoice's due date).
    clock.now = datetime(2026, 9, 15, 0, 5)
    with app.app_context():
        run = daily.start_daily_run(None, date(2026, 9, 15), trigger="schedule", enqueue=False)
        assert runs.process_run(run.id, worker_name="test", poll=0)["changed"] == 1
        run_id = run.id
        db.session.remove()
    shown = api.get(f"/api/v1/accounts/{number}").get_json()
    assert shown["status"] == "limited" and shown["overdue_invoices"] == [1, 2]
    limited, finished = _deliver(app, clock, receiver, secret, ["account.limited", "run.finished"])
    assert limited["data"]["account"] == {"number": number, "status": "limited", "previous_status": "active"}
    assert limited["data"]["reason"] == {"category": "non_payment", "note": "Overdue invoices: #1, #2"}
    assert limited["data"]["run_id"] == run_id and limited["data"]["reason"]["category"] == "non_payment"
    assert finished["data"]["run"]["id"] == run_id and finished["data"]["run"]["kind"] == "dunning"

    # Sep 16: the payment arrives; service is restored in the same request, and the answer says so.
    clock.now = datetime(2026, 9, 16, 10, 30)
    paid = api.post(f"/api/v1/accounts/{number}/payments", {"amount_cents": 9800, "reference": "ch_77"},
                    key="pay-2001")
    assert paid.status_code == 201, paid.get_json()
    assert paid.get_json()["restored"] is True and paid.get_json()["account"]["status"] == "active"
    payment, restored = _deliver(app, clock, receiver, secret, ["payment.recorded", "account.reactivated"])
    assert payment["data"]["payment"]["amount_cents"] == 9800
    assert payment["data"]["payment"]["settled"] == [{"invoice_seq": 1, "amount_cents": 4900},
                                                     {"invoice_seq": 2, "amount_cents": 4900}]
    assert "billing-sync" in payment["data"]["actor"]
    assert restored["data"]["action"] == "service_restored" and restored["data"]["cause"] == "payment"
    assert restored["data"]["account"] == {"number": number, "status": "active", "previous_status": "limited"}

    # The billing system retries its push (a timeout on its side): the same answer, no second payment, no webhook.
    again = api.post(f"/api/v1/accounts/{number}/payments", {"amount_cents": 9800, "reference": "ch_77"},
                     key="pay-2001")
    assert again.status_code == 201 and again.headers.get("Idempotent-Replayed") == "true"
    assert again.get_json()["payment_id"] == paid.get_json()["payment_id"]
    _deliver(app, clock, receiver, secret, [])
    assert [r.json["type"] for r in receiver.received] == [
        "account.limited", "run.finished", "payment.recorded", "account.reactivated"]
    assert all(r.path == "/portal-events" for r in receiver.received)
