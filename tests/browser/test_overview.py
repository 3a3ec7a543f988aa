"""In a real browser: the admin signs in onto the overview, every panel loads in its own request, the chart
is drawn (a canvas of non-zero size) under the Content-Security-Policy, a new range redraws it, and a bad
range is refused at its field with the chart left as it was. Without JavaScript each panel is a link."""
from datetime import timedelta

import pytest
from playwright.sync_api import expect

from portal.domain import suspension
from portal.extensions import db
from portal.models import User
from portal.timeutil import utcnow
from tests.conftest import browser_login

pytestmark = pytest.mark.browser
NOTE = "Seen in the chart."
CHART = "document.querySelector('[data-testid=activity-chart]')"
PANELS = ("status", "activity", "runs", "emails", "upcoming", "cancellations")


@pytest.fixture
def changes(app, world, make):
    ids = [make.account(name=f"Charted {i}") for i in range(3)]
    with app.app_context():
        admin = db.session.get(User, world.admin.id)
        for days_ago, account_id in ((5, ids[0]), (2, ids[1]), (2, ids[2])):
            suspension.suspend(admin, account_id, "other", NOTE, now=utcnow() - timedelta(days=days_ago))
        suspension.reactivate(admin, ids[0], "other", NOTE, now=utcnow() - timedelta(days=1))
        db.session.remove()
    return ids


def chart_box(page):
    canvas = page.get_by_test_id("activity-chart")
    expect(canvas).to_be_visible()
    page.wait_for_function(f"() => window.Chart && Chart.getChart({CHART})")
    return canvas.bounding_box()


def test_the_admin_lands_on_the_overview_and_the_chart_is_drawn(page, world, changes):
    browser_login(page, world.admin.email)
    assert page.url.endswith("/overview")
    for name in PANELS:  # each placeholder is replaced by its loaded panel
        expect(page.locator(f"#overview-{name}:not([aria-busy])")).to_be_visible()
    expect(page.get_by_test_id("status-count-suspended")).to_have_text("2")
    box = chart_box(page)
    assert box["width"] > 100 and box["height"] > 100
    drawn = page.evaluate(f"() => Chart.getChart({CHART}).data.datasets"
                          ".reduce((n, d) => n + d.data.reduce((a, b) => a + b, 0), 0)")
    assert drawn == 4  # three suspensions and a reactivation
    page.get_by_text("The figures as a table").click()
    expect(page.get_by_test_id("activity-row")).to_have_count(90)

    page.get_by_label("Last days").fill("7")
    page.get_by_role("button", name="Show").click()
    expect(page.get_by_test_id("activity-row")).to_have_count(7)
    assert chart_box(page)["width"] > 100
    assert page.evaluate(f"() => Chart.getChart({CHART}).data.labels.length") == 7

    page.get_by_label("Last days").fill("400")
    page.get_by_role("button", name="Show").click()
    expect(page.get_by_test_id("activity-error-days")).to_contain_text("from 1 to 366")
    assert chart_box(page)["width"] > 100  # the chart shown stays as it was
    expect(page.get_by_test_id("activity-row")).to_have_count(7)


def test_without_javascript_each_panel_is_a_page_of_its_own(browser, live_server, world, changes):
    context = browser.new_context(base_url=live_server.url, java_script_enabled=False)
    context.set_default_timeout(10_000)
    page = context.new_page()
    try:
        browser_login(page, world.support.email)
        assert page.url.endswith("/overview")
        page.get_by_test_id("panel-link-status").click()
        page.wait_for_url("**/overview/status")
        expect(page.get_by_test_id("status-count-suspended")).to_have_text("2")
        page.get_by_role("link", name="The whole overview").click()
        page.get_by_test_id("panel-link-activity").click()
        page.wait_for_url("**/overview/activity")
        expect(page.get_by_test_id("activity-table")).to_be_attached()
        page.get_by_label("Or from").fill("2026-05-10")
        page.get_by_label("To", exact=True).fill("2026-05-01")
        page.get_by_role("button", name="Show").click()
        expect(page.get_by_test_id("activity-error-date_to")).to_contain_text("is before the start")
    finally:
        context.close()
