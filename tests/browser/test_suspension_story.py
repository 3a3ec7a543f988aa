"""The whole story in a real browser: suspend with a reason, what each role sees, reactivate, the timeline."""
import re

import pytest
from playwright.sync_api import expect

from portal.domain import suspension
from portal.extensions import db
from portal.models import User
from tests.conftest import PASSWORD, browser_login

pytestmark = pytest.mark.browser

BANNER = ("Your account has been suspended for non-payment of dues. "
          "To reactivate your account, please contact billing@portal.test.")
REFUSED = "Your account has been temporarily suspended. Please contact your account administrator for details."


@pytest.fixture
def app_config():
    return {"LOGIN_RATE_LIMIT": "1000 per minute"}


@pytest.fixture
def new_page(browser, live_server):
    """Open another browser (its own cookies) on the live server."""
    contexts = []

    def open_page():
        context = browser.new_context(base_url=live_server.url)
        context.set_default_timeout(10_000)
        contexts.append(context)
        return context.new_page()

    yield open_page
    for context in contexts:
        context.close()


def open_status_dialog(page):
    page.locator("[id^=status-action-]").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_be_visible()
    return dialog


def fill_reason(dialog, reason, note):
    dialog.get_by_label("Reason").select_option(label=reason)
    dialog.get_by_label("Note").fill(note)
    tick = dialog.get_by_label(re.compile("I confirm"))  # only a suspension asks for it
    if tick.count():
        tick.check()


def test_suspend_see_each_role_refused_or_warned_reactivate_and_read_the_timeline(page, new_page, world):
    member = new_page()  # the member's page is open before the suspension, signed in with remember-me
    member.goto("/login")
    member.get_by_label("Email").fill(world.member.email)
    member.get_by_label("Password").fill(PASSWORD)
    member.get_by_label("Keep me signed in").check()
    member.get_by_role("button", name="Sign in").click()
    expect(member).to_have_url(re.compile(r"/reservations$"))
    assert "remember_token" in [c["name"] for c in member.context.cookies()]
    expect(member.get_by_role("heading", name="Reservations", exact=True)).to_be_visible()

    admin = page
    browser_login(admin, world.admin.email)
    admin.goto(f"/accounts/{world.account}")
    dialog = open_status_dialog(admin)
    fill_reason(dialog, "Non-payment", "Three invoices overdue since March.")
    dialog.get_by_role("button", name="Suspend account").click()
    expect(admin.get_by_role("dialog")).to_have_count(0)
    expect(admin.locator("main section").get_by_test_id("status-badge")).to_have_text("Suspended")
    expect(admin.locator("#flashes")).to_contain_text("is now suspended")
    expect(admin.get_by_test_id("timeline-event").first).to_contain_text("Three invoices overdue since March.")
    expect(admin.locator("[id^=status-action-]")).to_have_text("Reactivate account…")
    expect(admin.locator("[id^=status-action-]")).to_be_focused()  # focus came back to the opener

    manager = new_page()
    browser_login(manager, world.manager.email)
    expect(manager.get_by_test_id("suspension-banner")).to_have_text(BANNER)
    manager.get_by_role("link", name="Reservations").click()
    expect(manager.get_by_test_id("suspension-banner")).to_have_text(BANNER)
    expect(manager.get_by_test_id("booking-refused")).to_contain_text("account is suspended")

    member.get_by_role("link", name="Reservations").click()  # the open page's next request
    expect(member).to_have_url(re.compile(r"/login"))
    expect(member.locator("#flashes")).to_contain_text(REFUSED)
    assert "remember_token" not in [c["name"] for c in member.context.cookies()]
    browser_login(member, world.member.email)
    expect(member.get_by_test_id("login-error")).to_have_text(REFUSED)

    dialog = open_status_dialog(admin)
    expect(dialog.get_by_label(re.compile("I confirm"))).to_have_count(0)  # reactivating is not destructive
    fill_reason(dialog, "Paid", "Paid in full by phone.")
    dialog.get_by_role("button", name="Reactivate account").click()
    expect(admin.locator("main section").get_by_test_id("status-badge")).to_have_text("Active")
    events = admin.get_by_test_id("timeline-event")
    expect(events).to_have_count(2)
    expect(events.nth(0)).to_contain_text("Reactivated")
    expect(events.nth(0)).to_contain_text("Paid in full by phone.")
    expect(events.nth(1)).to_contain_text("Suspended")

    manager.reload()
    expect(manager.get_by_test_id("suspension-banner")).to_have_count(0)
    browser_login(member, world.member.email)
    expect(member.get_by_role("heading", name="Reservations", exact=True)).to_be_visible()
    expect(member.get_by_label("Guests")).to_be_visible()


def test_escape_closes_the_dialog_and_focus_returns(page, world):
    browser_login(page, world.admin.email)
    page.goto(f"/accounts/{world.account}")
    open_status_dialog(page)
    expect(page.get_by_label("Reason")).to_be_focused()
    page.keyboard.press("Escape")
    expect(page.get_by_role("dialog")).to_have_count(0)
    expect(page.locator("[id^=status-action-]")).to_be_focused()
    dialog = open_status_dialog(page)
    dialog.get_by_role("link", name="Cancel").click()
    expect(page.get_by_role("dialog")).to_have_count(0)
    expect(page).to_have_url(re.compile(rf"/accounts/{world.account}$"))


def test_errors_show_inside_the_dialog_and_keep_what_was_typed(page, app, world):
    browser_login(page, world.admin.email)
    page.goto(f"/accounts/{world.account}")
    dialog = open_status_dialog(page)
    dialog.get_by_label("Note").fill("Policy breach reported twice.")
    dialog.get_by_role("button", name="Suspend account").click()
    expect(dialog.locator("#reason_category-error")).to_have_text("Choose a reason.")
    expect(dialog.locator("#confirm-error")).to_be_visible()
    expect(dialog.get_by_label("Reason")).to_be_focused()
    with app.app_context():  # another admin suspends it meanwhile
        suspension.suspend(db.session.get(User, world.admin2.id), world.account, "other", "Meanwhile.")
        db.session.remove()
    fill_reason(dialog, "Policy violation", "Policy breach reported twice.")
    dialog.get_by_role("button", name="Suspend account").click()
    expect(dialog.get_by_test_id("status-form-error")).to_contain_text("changed since you opened this form")
    expect(dialog.get_by_label("Note")).to_have_value("Policy breach reported twice.")
    expect(page.locator("#toast")).to_be_hidden()


def test_without_javascript_the_dialog_is_a_page_and_the_form_still_works(browser, live_server, world):
    context = browser.new_context(base_url=live_server.url, java_script_enabled=False)
    try:
        page = context.new_page()
        browser_login(page, world.admin.email)
        page.goto(f"/accounts/{world.account}")
        page.locator("[id^=status-action-]").click()
        expect(page).to_have_url(re.compile(r"/status-dialog"))
        fill_reason(page, "Inactivity", "No bookings for fourteen months.")
        page.get_by_role("button", name="Suspend account").click()
        expect(page).to_have_url(re.compile(rf"/accounts/{world.account}$"))
        expect(page.locator("main section").get_by_test_id("status-badge")).to_have_text("Suspended")
        expect(page.locator("#flashes")).to_contain_text("is now suspended")
    finally:
        context.close()
