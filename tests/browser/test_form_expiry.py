"""In a real browser (issue 16): a form sent after its token expired keeps what was typed; the page takes the fresh
token and the same form sends as it is the second time."""
import pytest
from playwright.sync_api import expect

from portal.extensions import db
from portal.models import SuspensionRule
from tests.conftest import browser_login

# SQLite only: what the browser does here does not depend on the database
# (the HTTP tests of the same views run on both)
pytestmark = [pytest.mark.browser, pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)]


@pytest.fixture
def app_config():
    # A token carries the whole second it was signed in and expires once more than this many whole seconds have
    # passed, so 3 s can take up to 4 s of waiting; the wait below is longer than that.
    return {"WTF_CSRF_TIME_LIMIT": 3}


def test_an_expired_rule_form_keeps_the_text_and_sends_the_second_time(app, page, world):
    with app.app_context():
        rule = SuspensionRule(name="Dormant", inactivity_months=12, enabled=True)
        db.session.add(rule)
        db.session.commit()
        rule_id = rule.id
    browser_login(page, world.admin.email)
    page.goto(f"/rules/{rule_id}/edit")
    page.get_by_label("Name").fill("Dormant shops")
    page.wait_for_timeout(4300)  # the page's token expires
    page.get_by_role("button", name="Save rule").click()
    expect(page.locator("#toast")).to_contain_text("Your form expired")
    expect(page.get_by_label("Name")).to_have_value("Dormant shops")  # nothing swapped, nothing lost
    with app.app_context():
        assert db.session.get(SuspensionRule, rule_id).name == "Dormant"
        db.session.remove()
    page.get_by_role("button", name="Save rule").click()
    page.wait_for_url("**/rules")
    expect(page.get_by_test_id("rule").filter(has_text="Dormant shops")).to_have_count(1)
