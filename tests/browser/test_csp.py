"""In a real browser under the Content-Security-Policy: a violation fails the test (tests/conftest.py's
CSP watch), and what moved out of inline script and style still works. (The status cards refreshing
after the status dialog, through the relayed account-status-changed-<id> event, is walked through in
test_suspension_story.py.)"""
import re
from datetime import datetime

import pytest
from playwright.sync_api import expect
from sqlalchemy import delete

from portal.domain import runs, sweeps
from portal.extensions import db
from portal.models import SuspensionRule, User
from portal.web.access import public
from tests.conftest import CSP_WATCH, browser_login

# SQLite only: what the browser does here does not depend on the database
# (the HTTP tests of the same views run on both)
pytestmark = [pytest.mark.browser, pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)]


def test_a_violation_is_caught_and_the_inline_script_does_not_run(app, page):
    @public
    def inline_probe():
        return ('<!doctype html><title>probe</title><p style="color: red">x</p>'
                '<script>document.title = "inline script ran";</script>')

    app.add_url_rule("/_probe/inline", "inline_probe", inline_probe)
    page.goto("/_probe/inline")
    page.wait_for_function("() => document.readyState === 'complete'")
    page.wait_for_timeout(200)  # console messages arrive asynchronously
    assert page.title() == "probe"
    caught = list(CSP_WATCH.violations)
    CSP_WATCH.violations.clear()  # seen: this test expects them
    assert any("script-src" in v for v in caught) and any("style-src" in v for v in caught), caught


@pytest.fixture
def shops(world, make):
    return [make.account(name=f"Green Shop {i:02d}") for i in range(4)]


def test_the_account_list_under_the_policy(page, world, shops):
    browser_login(page, world.admin.email)
    page.goto("/accounts?q=green+shop")
    loading = page.locator("#list-loading")
    expect(loading).to_be_hidden()  # htmx's indicator rules come from portal.css now
    assert page.evaluate("getComputedStyle(document.querySelector('.filters')).display") == "grid"
    page.get_by_label("Select every account on this page").check()  # was an hx-on handler
    boxes = page.locator("input.row-select")
    expect(boxes).to_have_count(4)
    for i in range(4):
        expect(boxes.nth(i)).to_be_checked()
    page.get_by_label("Select every account on this page").uncheck()
    expect(boxes.first).not_to_be_checked()
    with page.expect_response(lambda r: "/accounts?" in r.url and "status=active" in r.url):
        page.get_by_test_id("chip-active").click()  # a field change sends the filter (was an hx-trigger filter)
    expect(page).to_have_url(re.compile(r"[?&]status=active\b"))  # htmx pushes the address after its swap


def test_the_progress_bar_is_drawn_from_its_value(app, page, world, make):
    for i in range(3):
        make.account(name=f"Dormant {i}", created_at=datetime(2022, 1, 1), last_activity_at=datetime(2022, 1, 1))
    with app.app_context():
        db.session.execute(delete(SuspensionRule))  # a fresh install's default rules: one rule, by its name, once
        db.session.add(SuspensionRule(enabled=True, **sweeps.DEFAULT_RULES[0]))
        db.session.commit()
        admin = db.session.get(User, world.admin.id)
        run = sweeps.start_cleanup(admin, sweeps.BY_RULE, "Clean-up")
        runs.process_run(run.id, worker_name="test", poll=0)
        run_id = run.id
    browser_login(page, world.admin.email)
    page.goto(f"/sweeps/runs/{run_id}")
    bar = page.get_by_test_id("progress-bar")
    expect(bar).to_have_attribute("aria-valuenow", "100")
    assert bar.locator("span").bounding_box()["width"] == pytest.approx(bar.bounding_box()["width"], abs=1)
