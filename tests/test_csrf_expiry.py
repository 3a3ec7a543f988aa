"""A form sent after its CSRF token expired comes back with what was typed and a fresh token (issue 16, item 5);
the stale post is never acted on, and a post from another site gets no second chance."""
import json
import re
import time

import pytest
from sqlalchemy import select

from portal.extensions import db
from portal.models import Account, SuspensionRule
from tests.conftest import CSRF_RE

NOTE = "Three invoices unpaid since May; called twice."
ORIGIN = {"Origin": "http://localhost"}


@pytest.fixture
def app_config():
    return {"WTF_CSRF_TIME_LIMIT": 1}


def _html(response):
    return response.get_data(as_text=True)


def _stale_token(auth, path):
    """A token of the form at path, let expire (WTF_CSRF_TIME_LIMIT is 1 s here)."""
    token = CSRF_RE.search(_html(auth.client.get(path))).group(1)
    time.sleep(2.1)
    return token


def _status(app, account_id):
    with app.app_context():
        status = db.session.get(Account, account_id).status
        db.session.remove()
        return status


def _suspend_form(token):
    return {"csrf_token": token, "reason_category": "non_payment", "reason_note": NOTE, "version": "1",
            "confirm": "1"}


def test_a_full_page_post_comes_back_with_what_was_typed_and_a_fresh_token(app, auth, world):
    auth.login(world.admin.email)
    path = f"/accounts/{world.account}/suspend"
    stale = _stale_token(auth, f"/accounts/{world.account}/status-dialog")
    response = auth.client.post(path, data=_suspend_form(stale), headers=ORIGIN)
    html = _html(response)
    assert response.status_code == 400 and 'data-testid="form-expired"' in html
    assert "Your form expired" in html and NOTE in html
    assert _status(app, world.account) == "active"  # the stale post was not acted on
    form = html[html.index('data-testid="form-expired"'):]
    assert f'action="{path}"' in html
    fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', form))
    assert fields["reason_note"] == NOTE and fields["confirm"] == "1" and fields["csrf_token"] != stale
    resent = auth.client.post(path, data=fields, headers=ORIGIN)  # "Send again", within the token's second
    assert resent.status_code == 303, _html(resent)
    assert _status(app, world.account) == "suspended"


def test_an_htmx_post_gets_a_fresh_token_and_the_form_stays_on_the_page(app, auth, world):
    auth.login(world.admin.email)
    stale = _stale_token(auth, f"/accounts/{world.account}/status-dialog")
    response = auth.client.post(f"/accounts/{world.account}/suspend", data=_suspend_form(stale),
                                headers={**ORIGIN, "HX-Request": "true", "X-CSRFToken": stale})
    assert response.status_code == 400  # htmx swaps nothing: what was typed stays in the form
    fresh = json.loads(response.headers["HX-Trigger"])["form-token-refreshed"]["token"]
    assert fresh and fresh != stale and "Your form expired" in _html(response)
    assert response.headers["Cache-Control"] == "no-store"
    assert _status(app, world.account) == "active"
    again = auth.client.post(f"/accounts/{world.account}/suspend", data=_suspend_form(fresh),
                             headers={**ORIGIN, "HX-Request": "true", "X-CSRFToken": fresh})
    assert again.status_code == 200 and _status(app, world.account) == "suspended"


def test_the_rule_edit_form_comes_back_too(app, auth, world):
    with app.app_context():
        rule = SuspensionRule(name="Dormant", inactivity_months=12, enabled=True)
        db.session.add(rule)
        db.session.commit()
        rule_id = rule.id
        db.session.remove()
    auth.login(world.admin.email)
    stale = _stale_token(auth, f"/rules/{rule_id}/edit")
    typed = {"csrf_token": stale, "name": "Dormant shops", "inactivity_months": "18", "enabled": "1"}
    html = _html(auth.client.post(f"/rules/{rule_id}", data=typed, headers={"Referer": f"http://localhost/rules/{rule_id}/edit"}))
    assert "Dormant shops" in html and 'data-testid="typed-fields"' in html
    with app.app_context():
        assert db.session.get(SuspensionRule, rule_id).name == "Dormant"
        db.session.remove()


def test_a_post_from_another_site_or_without_a_token_gets_no_second_chance(app, auth, world):
    auth.login(world.admin.email)
    stale = _stale_token(auth, f"/accounts/{world.account}/status-dialog")
    elsewhere = auth.client.post(f"/accounts/{world.account}/suspend", data=_suspend_form(stale),
                                 headers={"Origin": "https://evil.example"})
    missing = auth.client.post(f"/accounts/{world.account}/suspend", data=dict(_suspend_form(""), csrf_token=""),
                               headers=ORIGIN)
    for refused in (elsewhere, missing):
        html = _html(refused)
        assert refused.status_code == 400 and 'data-testid="form-expired"' not in html and NOTE not in html
    assert _status(app, world.account) == "active"


def test_a_password_is_never_written_back(client, auth, world):
    token = _stale_token(auth, "/login")
    html = _html(client.post("/login", data={"csrf_token": token, "email": world.admin.email,
                                             "password": "s3cret-typed"}, headers=ORIGIN))
    assert "s3cret-typed" not in html and world.admin.email in html
    assert "A password or a file cannot be sent again" in html
