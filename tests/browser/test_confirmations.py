"""Destructive actions ask before they are sent."""
import pytest

from tests.conftest import browser_login

# SQLite only: what the browser does here does not depend on the database
# (the HTTP tests of the same views run on both)
pytestmark = [pytest.mark.browser, pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)]


def test_deleting_a_rule_asks_first_and_cancel_keeps_it(app, page, world):
    from portal.extensions import db
    from portal.models import SuspensionRule

    with app.app_context():  # PostgreSQL test databases are emptied, shipped rules included
        db.session.add(SuspensionRule(name="Dormant 36+ months", inactivity_months=36))
        db.session.commit()
    browser_login(page, world.admin.email)
    page.goto("/rules")
    rules = page.get_by_test_id("rule")
    before = rules.count()
    assert before >= 1
    name = rules.first.locator("td").first.inner_text()
    page.once("dialog", lambda dialog: dialog.dismiss())
    page.get_by_role("button", name=f"Delete rule {name}").click()
    page.wait_for_timeout(300)
    assert page.get_by_test_id("rule").count() == before
    messages = []
    page.once("dialog", lambda dialog: (messages.append(dialog.message), dialog.accept()))
    page.get_by_role("button", name=f"Delete rule {name}").click()
    page.wait_for_load_state("networkidle")
    assert page.get_by_test_id("rule").count() == before - 1
    assert name in messages[0]
