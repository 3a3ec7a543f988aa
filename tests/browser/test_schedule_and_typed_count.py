"""In a real browser (issue 16): the schedule form enables only the fields of the kind chosen and previews a cron
expression as it is typed (the wrong part named, or the expression in words with its next five runs); a bulk change
above the clean-up's threshold asks for the count to be typed, at the field."""
import re

import pytest
from playwright.sync_api import expect

from tests.conftest import browser_login

# SQLite only: what the browser does here does not depend on the database
# (the HTTP tests of the same views run on both)
pytestmark = [pytest.mark.browser, pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)]


@pytest.fixture
def app_config():
    return {"CLEANUP_CONFIRM_THRESHOLD": 2}


def test_the_schedule_form_switches_fields_and_previews_the_cron_as_typed(page, world):
    browser_login(page, world.admin.email)
    page.goto("/sweeps/schedule")
    cron, day = page.locator("#cron"), page.locator("#day_of_month")
    expect(cron).to_be_disabled()
    expect(day).to_be_enabled()
    page.get_by_label("Cron expression", exact=True).check()
    expect(cron).to_be_enabled()
    expect(day).to_be_disabled()
    expect(page.locator("#time_of_day")).to_be_disabled()

    preview = page.get_by_test_id("schedule-preview")
    cron.fill("0 25 * * *")
    expect(preview).to_contain_text("The hour, the 2nd part, is 25, which is not an hour from 0 to 23")
    cron.fill("*/10 * * * *")
    expect(preview).to_contain_text("would run every 10 minutes; sweeps run at most once a day")
    cron.fill("30 2 * * 1")
    expect(page.get_by_test_id("schedule-words")).to_have_text("At 02:30, only on Monday (UTC).")
    expect(page.get_by_test_id("schedule-upcoming").locator("li")).to_have_count(5)
    expect(page.get_by_test_id("schedule-upcoming").locator("li").first).to_contain_text("Mon")

    cron.fill("0 3 * 13 *")
    page.get_by_role("button", name="Save schedule").click()
    expect(page.locator("#cron-error")).to_contain_text("The month, the 4th part, is 13")
    expect(page.locator("#cron")).to_be_enabled()  # the form came back in cron mode, as typed
    expect(page.locator("#day_of_month")).to_be_disabled()
    page.get_by_label("Monthly").check()
    expect(page.locator("#cron")).to_be_disabled()
    expect(page.locator("#day_of_month")).to_be_enabled()
    expect(page.get_by_test_id("schedule-words")).to_contain_text("Monthly on the 1st at 03:00 UTC")


def test_a_bulk_change_above_the_threshold_asks_for_the_count(page, world, make):
    for i in range(3):
        make.account(name=f"Typed Shop {i}")
    browser_login(page, world.admin.email)
    page.goto("/accounts?q=typed+shop")
    for i in range(3):
        page.get_by_label(re.compile(f"Select Typed Shop {i}")).check()
    page.get_by_role("button", name="Suspend…").click()
    dialog = page.locator("dialog#bulk-dialog[open]")
    dialog.wait_for()
    dialog.get_by_label("Reason").select_option("inactivity")
    dialog.get_by_label("Note").fill("Dormant for two years")
    count = dialog.get_by_label("Type 3 to confirm")
    count.fill("30")
    dialog.get_by_test_id("bulk-apply").click()
    expect(dialog.locator("#bulk-confirm_count-error")).to_contain_text("That doesn't match: 3 accounts would be "
                                                                       "suspended now. Type 3 to confirm.")
    expect(dialog.get_by_label("Type 3 to confirm")).to_have_attribute("aria-invalid", "true")
    expect(dialog.get_by_label("Note")).to_have_value("Dormant for two years")
    dialog.get_by_label("Type 3 to confirm").fill("3")
    dialog.get_by_test_id("bulk-apply").click()
    expect(dialog.get_by_test_id("bulk-summary")).to_contain_text("Suspended 3 accounts")
