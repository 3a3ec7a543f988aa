"""The webhook pages in a real browser: a refusal swapped in at its field, the secret shown once, the delivery log,
the body and 'send again' (a CSP violation fails the test)."""
import pytest

from tests.conftest import browser_login
from tests.webhook_receiver import Receiver

pytestmark = pytest.mark.browser


@pytest.fixture
def app_config():
    return {"WEBHOOK_ALLOW_PRIVATE": True, "WEBHOOK_MAX_ATTEMPTS": 1}


def test_register_an_endpoint_then_send_a_failed_delivery_again(app, page, world):
    from portal.domain import suspension, webhooks
    from portal.extensions import db
    from portal.models import User, WebhookDelivery

    receiver = Receiver()
    try:
        browser_login(page, world.admin.email)
        page.goto("/settings/webhooks")
        page.get_by_label("Address").fill("ftp://billing.example.com/events")
        page.get_by_role("button", name="Register endpoint").click()
        assert "must start with https:// or http://" in page.locator(".field-error").first.inner_text()
        assert "Choose at least one event." in page.locator("#new-events-error").inner_text()
        page.get_by_label("Address").fill(receiver.url())
        page.get_by_label("account.suspended").check()
        page.get_by_role("button", name="Register endpoint").click()
        secret = page.get_by_test_id("secret-text").input_value()
        assert secret.startswith("whsec_")
        page.reload()
        assert page.get_by_test_id("secret-text").count() == 0
        page.get_by_role("link", name=receiver.url()).click()
        page.wait_for_load_state("networkidle")

        receiver.down()
        with app.app_context():
            suspension.suspend(db.session.get(User, world.admin.id), world.account, "non_payment", "Overdue")
            webhooks.run()
            db.session.remove()
        page.reload()
        row = page.get_by_test_id("delivery-row")
        assert "Failed" in row.inner_text() and "Could not connect" in row.inner_text()
        row.get_by_role("link", name="account.suspended").click()
        assert '"type":"account.suspended"' in page.get_by_test_id("delivery-payload").inner_text()
        receiver.up()
        page.get_by_role("button", name="Send again").click()
        page.wait_for_load_state("networkidle")
        assert page.get_by_test_id("delivery-status").inner_text() == "Pending"
        assert "queued to be sent again" in page.content()
        with app.app_context():
            webhooks.deliver_due()
            assert db.session.query(WebhookDelivery).one().status == "delivered"
            db.session.remove()
        assert len(receiver.received) == 1 and receiver.received[0].signed_by(secret, tolerance=300)
    finally:
        receiver.down()
