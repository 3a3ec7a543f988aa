"""The cancellation story in a real browser: support logs a call, the super admin's retention attempt fails,
cancelling is refused for two unpaid invoices, the admin writes them off and cancels in one dialog, the
account manager is refused sign-in with the cancelled message, and the log and its CSV show the request."""
import csv
import io
import re
from datetime import date

import pytest
from playwright.sync_api import expect

from portal.extensions import db
from portal.models import Account
from tests.conftest import PASSWORD, browser_login

pytestmark = pytest.mark.browser


@pytest.fixture
def app_config():
    return {"LOGIN_RATE_LIMIT": "1000 per minute"}


def sign_out(page):
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_load_state("networkidle")


def test_support_logs_admin_tries_writes_off_and_cancels(page, app, world, make):
    make.invoice(world.account, amount_cents=7000, due_date=date(2026, 9, 1))
    make.invoice(world.account, amount_cents=5000, due_date=date(2026, 10, 1))
    with app.app_context():
        number = db.session.get(Account, world.account).number
        db.session.remove()

    browser_login(page, world.support.email)
    page.goto("/cancellations/new")
    page.get_by_label("Find the account").fill("Blue Harbor")
    page.get_by_role("link", name=f"{number} · Blue Harbor Bistro").click()
    expect(page.get_by_test_id("chosen-account")).to_contain_text(number)
    page.get_by_label("Contact's name").fill("Dana Diaz")
    page.get_by_label("Contact's phone").fill("201-555-0123")
    page.get_by_label("Total amount collected ($)").fill("1200")
    page.get_by_label("Months in the program").fill("10")
    page.get_by_label("Reason", exact=True).select_option("too_expensive")
    page.get_by_label("In the customer's words").fill("Budget cut.")
    page.get_by_role("button", name="Log the request").click()
    expect(page.get_by_role("heading", name=re.compile(r"^Request #\d+: Blue Harbor Bistro"))).to_be_visible()
    expect(page.get_by_text("Record an attempt")).to_have_count(0)  # support never decides
    sign_out(page)

    browser_login(page, world.admin.email)
    page.goto("/cancellations")
    page.get_by_test_id("log-row").first.get_by_role("link").first.click()
    page.get_by_label("Offer made").select_option("discount")
    page.get_by_label("The customer's answer").select_option("declined")
    page.get_by_label("Note", exact=True).fill("Wants 50% off; we offer 20%.")
    page.get_by_role("button", name="Record the attempt").click()
    expect(page.get_by_test_id("attempt")).to_contain_text("Declined")
    expect(page.get_by_test_id("request-outcome")).to_have_text("Open")

    page.get_by_role("link", name="Cancel account…").click()
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_test_id("cancel-submit")).to_have_text("Write off 2 invoices, $120.00, and cancel")
    dialog.get_by_label(re.compile(r"^Invoice #1")).uncheck()
    dialog.get_by_label(re.compile(r"^Invoice #2")).uncheck()
    expect(dialog.get_by_test_id("cancel-submit")).to_have_text("Cancel account")
    dialog.get_by_label("Note").fill("Retention failed; the customer is leaving.")
    dialog.get_by_label(re.compile("^Type the account number")).fill(number)
    dialog.get_by_test_id("cancel-submit").click()
    error = page.get_by_role("dialog").get_by_test_id("cancel-form-error")
    expect(error).to_contain_text("2 unpaid invoices ($120.00)")
    expect(error).to_contain_text("#1: $70.00 due 2026-09-01; #2: $50.00 due 2026-10-01")

    dialog = page.get_by_role("dialog")
    dialog.get_by_label(re.compile(r"^Invoice #1")).check()
    dialog.get_by_label(re.compile(r"^Invoice #2")).check()
    expect(dialog.get_by_test_id("cancel-submit")).to_have_text("Write off 2 invoices, $120.00, and cancel")
    dialog.get_by_label("Why they are written off").fill("Goodwill on leaving.")
    dialog.get_by_label(re.compile("^Type the account number")).fill(number)
    dialog.get_by_test_id("cancel-submit").click()
    expect(page).to_have_url(re.compile(rf"/accounts/{world.account}$"))
    expect(page.locator("#flashes")).to_contain_text(f"2 invoices written off; account {number}")
    expect(page.locator("main section").first.get_by_test_id("status-badge")).to_have_text("Cancelled")
    sign_out(page)

    page.goto("/login")
    page.get_by_label("Email").fill(world.manager.email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("main")).to_contain_text("This account has been cancelled.")
    expect(page).to_have_url(re.compile(r"/login"))

    browser_login(page, world.support.email)
    page.goto("/cancellations")
    top = page.get_by_test_id("log-row").first
    expect(top).to_contain_text("Dana Diaz")
    expect(top.get_by_test_id("log-outcome")).to_have_text("Cancelled")
    href = page.get_by_test_id("log-export").get_attribute("href")
    download = page.request.get(href)
    rows = list(csv.reader(io.StringIO(download.text())))
    assert len(rows) == 2 and len(rows[1]) == len(rows[0]) == 14
    assert all(rows[1]), rows[1]  # every column filled
    assert rows[1][:9] == ["Dana Diaz", "(201) 555-0123", rows[1][2], "$1,200.00", "10", "Too expensive: Budget cut.",
                           number, "Call", "Cancelled"]
    assert "Discount, Declined: Wants 50% off; we offer 20%." in rows[1][9]
