"""In a real browser: search, filter by a status chip, page deep, suspend from a row's dialog and see the
row change in place; the back button restores the previous filter; a bulk change from ticked rows."""
import re
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import expect

from tests.conftest import browser_login

pytestmark = pytest.mark.browser


@pytest.fixture
def shops(world, make):
    ids = {}
    for i in range(45):
        ids[i] = make.account(name=f"Blue Shop {i:02d}", status="suspended" if i % 5 == 0 else "active")
    for i in range(5):
        make.account(name=f"Red Shop {i:02d}")
    return ids


def query(page):
    return parse_qs(urlsplit(page.url).query)


def rows(page):
    return page.get_by_test_id("account-row")


def wait_for_query(page, **expected):
    page.wait_for_function(
        "expected => { const q = new URLSearchParams(location.search);"
        " return Object.entries(expected).every(([k, v]) => v === null ? !q.has(k) : q.get(k) === v); }",
        arg=expected)
    page.wait_for_load_state("networkidle")


def click_and_wait(page, locator):
    """Click a link or chip that pushes a new URL; wait for the URL and the swap."""
    before = page.url
    locator.click()
    page.wait_for_function("before => location.href !== before", arg=before)
    page.wait_for_load_state("networkidle")


def test_search_filter_page_suspend_from_a_row_and_go_back(page, world, shops):
    browser_login(page, world.admin.email)
    page.goto("/accounts?per_page=10")
    assert rows(page).count() == 10

    page.get_by_label("Search by name, email or account number").fill("blue sh")
    wait_for_query(page, q="blue sh", per_page="10")
    assert all(name.startswith("Blue Shop") for name in rows(page).locator("td:nth-child(3)").all_inner_texts())
    page.get_by_test_id("count-all").filter(has_text="45").wait_for()  # the counts arrived on their own

    page.get_by_test_id("chip-active").click()
    wait_for_query(page, q="blue sh", status="active", per_page="10")
    assert page.get_by_test_id("status-badge").all_inner_texts() == ["Active"] * 10
    first_page = rows(page).locator("td:nth-child(3)").all_inner_texts()

    for _ in range(3):  # page deep: 36 active Blue Shops, 10 a page
        click_and_wait(page, page.get_by_test_id("next-page"))
    assert "cursor" in query(page)
    deep = rows(page).locator("td:nth-child(3)").all_inner_texts()
    assert len(deep) == 6 and not set(deep) & set(first_page)
    assert page.get_by_test_id("next-page").count() == 0

    target = rows(page).first
    name = target.locator("td:nth-child(3)").inner_text()
    target.get_by_test_id("row-status-action").click()
    dialog = page.locator("dialog#status-dialog[open]")
    dialog.wait_for()
    dialog.get_by_label("Reason").select_option("non_payment")
    dialog.get_by_label("Note").fill("Three invoices unpaid")
    dialog.get_by_label(re.compile("I confirm")).check()
    dialog.get_by_role("button", name="Suspend account").click()
    page.locator("dialog#status-dialog").wait_for(state="detached")
    row = page.locator("tr", has_text=name)
    row.get_by_test_id("status-badge").filter(has_text="Suspended").wait_for()  # the row changed in place
    assert row.get_by_test_id("row-status-action").inner_text() == "Reactivate…"
    assert rows(page).count() == 6  # the rest of the page stayed as it was

    page.go_back()
    page.go_back()
    page.go_back()  # before the three Next clicks: the first page of "blue sh", active
    wait_for_query(page, q="blue sh", status="active", per_page="10", cursor=None)
    expect(page.locator("#status-active")).to_be_checked()
    expect(page.get_by_label("Search by name, email or account number")).to_have_value("blue sh")
    expect(rows(page).locator("td:nth-child(3)")).to_have_text(first_page)
    page.go_back()  # before the chip: every status
    wait_for_query(page, q="blue sh", status=None)
    expect(page.locator("#status-all")).to_be_checked()
    expect(rows(page)).to_have_count(10)
    expect(page.get_by_test_id("status-badge").filter(has_text="Suspended")).not_to_have_count(0)


def test_a_bulk_suspension_of_ticked_rows_shows_a_summary_and_refreshes_the_list(page, world, shops):
    browser_login(page, world.admin.email)
    page.goto("/accounts?q=blue+shop+0&per_page=10")
    names = ["Blue Shop 00", "Blue Shop 01", "Blue Shop 02"]  # 00 is already suspended
    for name in names:
        page.get_by_label(re.compile(f"Select {name}")).check()
    page.get_by_role("button", name="Suspend…").click()
    dialog = page.locator("dialog#bulk-dialog[open]")
    dialog.wait_for()
    assert "exactly 3" in dialog.get_by_test_id("bulk-count").inner_text()
    dialog.get_by_label("Reason").select_option("inactivity")
    dialog.get_by_label("Note").fill("Dormant for two years")
    dialog.get_by_test_id("bulk-apply").click()
    summary = dialog.get_by_test_id("bulk-summary")
    summary.wait_for()
    assert "Suspended 2 accounts; left 1 alone (1 already suspended)." in summary.inner_text()
    page.locator("tr", has_text="Blue Shop 02").get_by_test_id("status-badge").filter(has_text="Suspended").wait_for()
    dialog.get_by_role("link", name="Close").click()
    page.locator("dialog#bulk-dialog").wait_for(state="detached")


def test_the_list_works_without_javascript(browser, live_server, world, shops):
    context = browser.new_context(base_url=live_server.url, java_script_enabled=False)
    context.set_default_timeout(10_000)
    page = context.new_page()
    try:
        browser_login(page, world.support.email)
        page.get_by_role("link", name="Accounts", exact=True).click()
        page.get_by_label("Search by name, email or account number").fill("red")
        page.get_by_role("button", name="Apply").click()
        page.wait_for_url("**/accounts?q=red*")
        assert rows(page).count() == 5
        page.goto("/accounts?per_page=10")
        page.get_by_test_id("next-page").click()
        assert "cursor" in query(page) and rows(page).count() == 10
    finally:
        context.close()
