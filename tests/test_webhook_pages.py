"""The webhook pages (super admins), with and without htmx, on both databases: register (the secret shown once),
refusals at their field, the delivery log, the body, "send again" (POST, CSRF, compare-and-set), disable, roll."""
import re
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from portal.domain import suspension, webhooks
from portal.extensions import db
from portal.models import User, WebhookDelivery, WebhookEndpoint
from tests.webhook_receiver import Receiver

T0 = datetime(2026, 12, 1, 9, 0)


@pytest.fixture
def app_config():
    return {"WEBHOOK_ALLOW_PRIVATE": True, "WEBHOOK_MAX_ATTEMPTS": 1}


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.down()


def _register(auth, receiver, events=("account.suspended",), htmx=False):
    return auth.post("/settings/webhooks", {"url": receiver.url(), "description": "Billing", "events": list(events)},
                     htmx=htmx, page="/settings/webhooks")


def _endpoint(app):
    with app.app_context():
        endpoint = db.session.scalar(select(WebhookEndpoint))
        db.session.expunge(endpoint)
        db.session.remove()
    return endpoint


def test_registering_shows_the_secret_once(app, auth, world, receiver):
    auth.login(world.admin.email)
    page = auth.client.get("/settings/webhooks")
    assert page.status_code == 200 and "Register an endpoint" in page.get_data(as_text=True)
    response = _register(auth, receiver, ("account.suspended", "payment.recorded"))
    assert response.status_code == 200
    endpoint = _endpoint(app)
    html = response.get_data(as_text=True)
    assert endpoint.secret in html and "won't be shown again" in html
    assert endpoint.event_list == ["account.suspended", "payment.recorded"]
    again = auth.client.get("/settings/webhooks").get_data(as_text=True)
    assert endpoint.secret not in again and receiver.url() in again
    detail = auth.client.get(f"/settings/webhooks/{endpoint.id}").get_data(as_text=True)
    assert endpoint.secret not in detail


def test_htmx_registration_answers_the_block_and_refusals_are_422_at_their_field(app, auth, world, receiver):
    auth.login(world.admin.email)
    response = auth.post("/settings/webhooks", {"url": "ftp://example.com/x", "events": []}, htmx=True,
                         page="/settings/webhooks")
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert html.lstrip().startswith('<div id="webhook-endpoints">')
    assert "must start with https:// or http://" in html and "Choose at least one event." in html
    assert 'aria-describedby="new-url-error"' in html
    plain = auth.post("/settings/webhooks", {"url": "ftp://example.com/x"}, page="/settings/webhooks")
    assert plain.status_code == 422 and "<html" in plain.get_data(as_text=True)
    ok = _register(auth, receiver, htmx=True)
    assert ok.status_code == 200 and _endpoint(app).secret in ok.get_data(as_text=True)
    with app.app_context():
        assert db.session.query(WebhookEndpoint).count() == 1
        db.session.remove()


def test_the_private_address_refusal_is_shown_when_configuration_does_not_allow_it(app, auth, world):
    app.config["WEBHOOK_ALLOW_PRIVATE"] = False
    auth.login(world.admin.email)
    response = auth.post("/settings/webhooks", {"url": "http://127.0.0.1:9/hook", "events": ["run.finished"]},
                         page="/settings/webhooks")
    assert response.status_code == 422 and "private network" in response.get_data(as_text=True)


def _failed_delivery(app, world, auth, receiver):
    """Register, suspend, send to a receiver that is down: one failed delivery (WEBHOOK_MAX_ATTEMPTS = 1)."""
    auth.login(world.admin.email)
    _register(auth, receiver)
    endpoint = _endpoint(app)
    receiver.down()
    with app.app_context():
        suspension.suspend(db.session.get(User, world.admin.id), world.account, "non_payment", "Overdue")
        webhooks.run(now=T0)
        delivery = db.session.scalar(select(WebhookDelivery))
        assert delivery.status == "failed"
        db.session.expunge(delivery)
        db.session.remove()
    return endpoint, delivery


def test_the_log_shows_each_delivery_and_send_again_delivers_it(app, auth, world, receiver):
    endpoint, delivery = _failed_delivery(app, world, auth, receiver)
    log = auth.client.get(f"/settings/webhooks/{endpoint.id}").get_data(as_text=True)
    assert "account.suspended" in log and "Failed" in log and "Could not connect" in log
    assert 'data-testid="count-failed">1<' in log
    only_failed = auth.client.get(f"/settings/webhooks/{endpoint.id}?status=failed", headers={"HX-Request": "true"})
    assert only_failed.get_data(as_text=True).lstrip().startswith('<div id="webhook-deliveries">')
    none_delivered = auth.client.get(f"/settings/webhooks/{endpoint.id}?status=delivered").get_data(as_text=True)
    assert "No delivery yet." in none_delivered
    page = auth.client.get(f"/settings/webhooks/{endpoint.id}/deliveries/{delivery.id}").get_data(as_text=True)
    assert "&#34;type&#34;:&#34;account.suspended&#34;" in page and "Send again" in page
    resend = f"/settings/webhooks/{endpoint.id}/deliveries/{delivery.id}/resend"
    assert auth.client.post(resend, data={"attempts": "1"}).status_code == 400  # no CSRF token
    stale = auth.post(resend, {"attempts": "0"}, page=f"/settings/webhooks/{endpoint.id}")
    assert stale.status_code == 409 and "changed since the page showed it" in stale.get_data(as_text=True)
    receiver.up()
    done = auth.post(resend, {"attempts": "1"}, page=f"/settings/webhooks/{endpoint.id}")
    assert done.status_code == 303 and done.headers["Location"].endswith(f"/deliveries/{delivery.id}")
    twice = auth.post(resend, {"attempts": "0"}, htmx=True, page=f"/settings/webhooks/{endpoint.id}")
    assert twice.status_code == 409 and "waiting to be sent already" in twice.get_data(as_text=True)
    with app.app_context():
        webhooks.deliver_due(now=T0 + timedelta(minutes=1))
        assert db.session.get(WebhookDelivery, delivery.id).status == "delivered"
        db.session.remove()
    assert len(receiver.received) == 1 and receiver.received[0].signed_by(endpoint.secret)


def test_disable_enable_and_roll_the_secret(app, auth, world, receiver):
    auth.login(world.admin.email)
    _register(auth, receiver)
    endpoint = _endpoint(app)
    base = f"/settings/webhooks/{endpoint.id}"
    assert auth.post(f"{base}/enabled", {"enabled": "0"}, page=base).status_code == 303
    assert "Disabled" in auth.client.get(base).get_data(as_text=True)
    again = auth.post(f"{base}/enabled", {"enabled": "0"}, page=base)
    assert again.status_code == 409 and "already disabled" in again.get_data(as_text=True)
    assert auth.post(f"{base}/enabled", {"enabled": "1"}, page=base).status_code == 303
    unconfirmed = auth.post(f"{base}/secret", {}, htmx=True, page=base)
    assert unconfirmed.status_code == 422 and "Tick the box" in unconfirmed.get_data(as_text=True)
    rolled = auth.post(f"{base}/secret", {"confirm": "yes"}, htmx=True, page=base)
    new_secret = re.search(r'value="(whsec_[^"]+)"', rolled.get_data(as_text=True)).group(1)
    assert rolled.status_code == 200 and new_secret != endpoint.secret
    assert _endpoint(app).secret == new_secret
    assert new_secret not in auth.client.get(base).get_data(as_text=True)


def test_settings_are_changed_with_refusals_at_their_field(app, auth, world, receiver):
    auth.login(world.admin.email)
    _register(auth, receiver)
    endpoint = _endpoint(app)
    base = f"/settings/webhooks/{endpoint.id}"
    bad = auth.post(base, {"url": receiver.url(), "events": ["nope"]}, htmx=True, page=base)
    assert bad.status_code == 422 and "Unknown event" in bad.get_data(as_text=True)
    assert bad.get_data(as_text=True).lstrip().startswith('<div id="webhook-settings">')
    ok = auth.post(base, {"url": receiver.url("/other"), "events": ["run.finished", "account.cancelled"]}, page=base)
    assert ok.status_code == 303
    changed = _endpoint(app)
    assert changed.url == receiver.url("/other") and changed.event_list == ["account.cancelled", "run.finished"]


def test_other_endpoints_ids_and_other_roles_are_refused(app, auth, world, receiver):
    auth.login(world.admin.email)
    assert auth.client.get("/settings/webhooks/999").status_code == 404
    _register(auth, receiver)
    endpoint = _endpoint(app)
    assert auth.client.get(f"/settings/webhooks/{endpoint.id}/deliveries/1").status_code == 404
    auth.logout()
    auth.login(world.support.email)
    assert auth.client.get("/settings/webhooks").status_code == 403
    assert auth.post("/settings/webhooks", {"url": receiver.url(), "events": ["run.finished"]}).status_code == 403
