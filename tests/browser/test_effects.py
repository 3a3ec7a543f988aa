"""In a real browser: from a suspended account's page to its state in the effect matrix, then one role's column."""
import os
import re

import pytest
from playwright.sync_api import expect

from tests.conftest import browser_login

# SQLite only: what the browser does here does not depend on the database
# (the HTTP tests of the same views run on both)
pytestmark = [pytest.mark.browser, pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)]


def test_the_account_page_leads_to_its_state_and_the_role_filter_swaps_the_tables(page, world, make):
    suspended = make.account(name="Quiet Fox Cafe", status="suspended", status_reason="non_payment")
    browser_login(page, world.support.email)
    page.goto(f"/accounts/{suspended}")
    page.get_by_test_id("effects-link").click()
    page.wait_for_url(re.compile(r"/effects#state-suspended$"))
    section = page.locator("#state-suspended")
    expect(section).to_be_in_viewport()
    cell = section.locator('[data-role="tier_manager"][data-action="login"]')
    expect(cell).to_contain_text("Refused")
    expect(cell).to_contain_text("Your account has been temporarily suspended.")
    if os.environ.get("EFFECTS_SCREENSHOT"):
        page.screenshot(path=os.environ["EFFECTS_SCREENSHOT"], full_page=False)
    page.get_by_label("Role").select_option("account_manager")
    page.get_by_role("button", name="Show").click()
    page.wait_for_url(re.compile(r"role=account_manager"))
    expect(page.locator("#state-suspended thead th[data-role]")).to_have_count(1)
    expect(page.locator('#state-suspended [data-action="publish_listing"]')).to_contain_text(
        "Your account is suspended, so this can't be changed right now.")
    expect(page.get_by_role("heading", level=1)).to_have_text("What each state and role may do")
