"""In a real browser: sort by clicking (or pressing Enter on) a column heading, the range under the table,
"More filters", the ticked count, a live filter's wrong value marked at its field, and the status chips
counting again after a suspension made from the list."""
import re

import pytest
from playwright.sync_api import expect

from tests.browser.test_account_list import click_and_wait, rows, shops, wait_for_query  # noqa: F401
from tests.conftest import browser_login

pytestmark = pytest.mark.browser


def test_a_heading_sorts_by_click_and_by_keyboard(page, world, shops):
    browser_login(page, world.support.email)
    page.goto("/accounts?per_page=10")
    expect(page.get_by_test_id("list-range")).to_have_text("1–10 of 52")  # the world's two accounts + 50
    status = page.get_by_test_id("sort-status")
    click_and_wait(page, status)
    wait_for_query(page, sort="-status", per_page="10")
    expect(page.locator("th[aria-sort=descending]")).to_contain_text("Status")
    expect(page.get_by_test_id("status-badge").first).to_have_text("Suspended")
    expect(page.locator("#sort")).to_have_value("-status")  # the form follows the heading
    page.get_by_test_id("sort-status").focus()
    page.keyboard.press("Enter")
    wait_for_query(page, sort="status", per_page="10")
    expect(page.locator("th[aria-sort=ascending]")).to_contain_text("Status")
    expect(page.get_by_test_id("status-badge").first).to_have_text("Active")
    click_and_wait(page, page.get_by_test_id("sort-activity"))
    wait_for_query(page, sort="-activity", per_page="10")
    expect(page.locator("th[aria-sort=descending]")).to_contain_text("Last activity")


def test_ticking_more_filters_and_a_wrong_value_at_its_field(page, world, shops):
    browser_login(page, world.admin.email)
    page.goto("/accounts?q=blue")  # (a page size is one of the "more" filters: it would be open)
    count = page.get_by_test_id("selected-count")
    expect(count).to_have_attribute("aria-live", "polite")
    for box in page.locator("input.row-select").all()[:3]:
        box.check()
    expect(count).to_have_text("3 selected")
    page.locator("input.row-select").first.uncheck()
    expect(count).to_have_text("2 selected")

    more = page.get_by_test_id("more-filters")
    expect(more).not_to_have_attribute("open", "")
    expect(page.get_by_label("Balance at least ($)")).to_be_hidden()
    more.locator("summary").click()
    field = page.get_by_label("Balance at least ($)")
    field.fill("abc")
    with page.expect_response(lambda r: "/accounts?" in r.url and "balance_min=abc" in r.url) as answer:
        field.press("Tab")  # a change: the live filter sends the form
    assert answer.value.status == 422
    expect(field).to_have_attribute("aria-invalid", "true")
    message = page.locator("#balance_min-problem")
    expect(message).to_be_visible()
    expect(message).to_contain_text("Enter an amount in dollars")
    expect(field).to_have_attribute("aria-describedby", re.compile("balance_min-problem"))
    field.fill("10")
    field.press("Tab")
    expect(field).not_to_have_attribute("aria-invalid", "true")
    expect(message).to_be_hidden()


def test_the_chips_count_again_after_a_suspension_from_the_list(page, world, shops):
    browser_login(page, world.admin.email)
    page.goto("/accounts?q=blue&per_page=10")
    suspended = page.get_by_test_id("count-suspended")
    expect(suspended).to_have_text("9")  # Blue Shop 00, 05, ..., 40
    row = rows(page).filter(has_text="Blue Shop 01")
    row.get_by_test_id("row-status-action").click()
    dialog = page.locator("dialog#status-dialog[open]")
    dialog.wait_for()
    dialog.get_by_label("Reason").select_option("non_payment")
    dialog.get_by_label("Note").fill("Three invoices unpaid")
    dialog.get_by_label(re.compile("I confirm")).check()
    dialog.get_by_role("button", name="Suspend account").click()
    page.locator("dialog#status-dialog").wait_for(state="detached")
    expect(suspended).to_have_text("10")
    expect(page.get_by_test_id("count-active")).to_have_text("36")
