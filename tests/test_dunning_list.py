"""The account list shows the dunning schedule's status, in the same words as the account page and the CLI."""
import re
from datetime import timedelta

import pytest

from portal.domain.billing import ledger
from portal.domain.dunning.status import record
from portal.extensions import db
from portal.models import Account, User
from portal.timeutil import utcnow


@pytest.fixture
def app_config():
    return {"LOGIN_RATE_LIMIT": "1000 per minute"}


def badge(html, account_id):
    row = re.search(rf'data-account-id="{account_id}".*?</tr>', html, re.S).group(0)
    return re.search(r'data-testid="status-badge">([^<]+)<', row).group(1)


def test_the_list_and_the_row_show_the_schedule_s_status(app, client, auth, world, make):
    cls = make.customer_class(limit_after_days=15, suspend_after_days=20)
    pending = make.account(name="Bakery Pending", customer_class_id=cls)
    due_now = make.account(name="Bakery Late", customer_class_id=cls)
    today = utcnow().date()
    with app.app_context():
        admin = db.session.get(User, world.admin.id)
        ledger.add_invoice(admin, pending, "40.00", today - timedelta(days=3))
        ledger.add_invoice(admin, due_now, "40.00", today - timedelta(days=16))
        expected = {aid: record(db.session.get(Account, aid))["label"] for aid in (pending, due_now)}
    assert expected == {pending: "Limitation pending", due_now: "Limited"}
    auth.login(world.admin.email)
    html = client.get("/accounts?q=Bakery").get_data(as_text=True)
    assert badge(html, pending) == "Limitation pending" and badge(html, due_now) == "Limited"
    response = client.get(f"/accounts/{pending}/row", headers={"HX-Request": "true"})
    row = response.get_data(as_text=True)
    assert response.status_code == 200, row
    assert badge(row, pending) == "Limitation pending"
