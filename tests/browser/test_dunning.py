"""The dunning walk in a real browser: an overdue account, Reschedule, Record payment, service restored."""
import re
from datetime import timedelta

import pytest
from playwright.sync_api import expect

from portal.domain.billing import ledger
from portal.extensions import db
from portal.models import Account, User
from portal.timeutil import utcnow
from tests.conftest import browser_login

pytestmark = pytest.mark.browser


@pytest.fixture
def app_config():
    return {"LOGIN_RATE_LIMIT": "1000 per minute"}


@pytest.fixture
def limited_account(app, world, make):
    """The world's account in a class that limits after 15 days and suspends after 20; $49.00 due 16 days ago."""
    class_id = make.customer_class("Standard", limit_after_days=15, suspend_after_days=20)
    with app.app_context():
        account = db.session.get(Account, world.account)
        account.customer_class_id = class_id
        db.session.commit()
        ledger.add_invoice(db.session.get(User, world.admin.id), world.account, "49.00",
                           utcnow().date() - timedelta(days=16))
        assert db.session.get(Account, world.account).status == "limited"
        db.session.remove()
    return world.account


def test_admin_shifts_the_suspension_then_a_payment_restores_service(page, world, limited_account):
    today = utcnow().date()
    browser_login(page, world.admin.email)
    page.goto(f"/accounts/{limited_account}")
    card = page.get_by_test_id("dunning-card")
    expect(card.get_by_test_id("dunning-label")).to_have_text("Limited")
    suspension_on = (today + timedelta(days=4)).isoformat()
    expect(card.get_by_test_id("dunning-next")).to_contain_text(f"Suspension on {suspension_on}")
    expect(card.get_by_test_id("dunning-invoices")).to_contain_text("#1")

    card.get_by_role("link", name="Reschedule…").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_be_visible()
    shifted = (today + timedelta(days=14)).isoformat()
    dialog.get_by_label("New suspension date").fill(shifted)
    dialog.get_by_label("Note").fill("Promised to pay by the end of next week.")
    dialog.get_by_role("button", name="Save the new dates").click()
    expect(page.get_by_role("dialog")).to_have_count(0)
    expect(page.locator("#flashes")).to_contain_text(f"next: suspension on {shifted}")
    card = page.get_by_test_id("dunning-card")
    expect(card.get_by_test_id("dunning-next")).to_contain_text(f"Suspension on {shifted}")
    expect(card.get_by_test_id("dunning-manual-dates")).to_contain_text(f"Suspension shifted to {shifted}")
    expect(page.get_by_test_id("timeline-event").first).to_contain_text("Promised to pay by the end of next week.")

    billing = page.get_by_test_id("billing-card")
    billing.get_by_label("Amount ($)").first.fill("0")
    billing.get_by_role("button", name="Record payment").click()
    expect(page.get_by_test_id("billing-card").locator(".field-error")).to_have_text("Enter an amount above zero.")
    expect(page.get_by_test_id("dunning-label")).to_have_text("Limited")  # nothing changed

    billing = page.get_by_test_id("billing-card")
    billing.get_by_test_id("payment-form").get_by_label("Amount ($)").fill("49.00")
    billing.get_by_test_id("payment-form").get_by_label(re.compile("Reference")).fill("CHK-1001")
    billing.get_by_role("button", name="Record payment").click()
    expect(page.get_by_test_id("billing-message")).to_contain_text("service is restored")
    expect(page.get_by_test_id("dunning-label")).to_have_text("Active")
    expect(page.get_by_test_id("dunning-next")).to_contain_text("Nothing is overdue")
    expect(page.locator("main section").first.get_by_test_id("status-badge")).to_have_text("Active")
    expect(page.get_by_test_id("invoice").first).to_contain_text("Paid")


def test_without_javascript_the_dialog_is_a_page_and_the_form_posts(browser, live_server, world, limited_account):
    context = browser.new_context(base_url=live_server.url, java_script_enabled=False)
    context.set_default_timeout(10_000)
    page = context.new_page()
    try:
        page.goto("/login")
        page.get_by_label("Email").fill(world.admin.email)
        page.get_by_label("Password").fill("correct horse battery staple")
        page.get_by_role("button", name="Sign in").click()
        page.goto(f"/accounts/{limited_account}")
        page.get_by_role("link", name="Change status…").click()
        expect(page).to_have_url(re.compile(r"/change-status$"))
        page.get_by_label(re.compile("^1 week")).check()
        page.get_by_role("button", name="Lift the restriction").click()
        expect(page.get_by_label("Note")).to_have_attribute("aria-invalid", "true")  # the reason is required
        page.get_by_label(re.compile("^1 week")).check()
        page.get_by_label("Note").fill("Paying within the week.")
        page.get_by_role("button", name="Lift the restriction").click()
        expect(page).to_have_url(re.compile(rf"/accounts/{limited_account}$"))
        expect(page.get_by_test_id("dunning-label")).to_have_text("Service limitation delayed")
        expect(page.locator("#flashes")).to_contain_text("now reads “Service limitation delayed”")
    finally:
        context.close()


def test_set_class_for_ticked_accounts_from_the_list(page, app, world, make):
    gold = make.customer_class("Gold", limit_after_days=30, suspend_after_days=40)
    with app.app_context():
        from portal.models import CustomerClass

        gold_name = db.session.get(CustomerClass, gold).name
        db.session.remove()
    browser_login(page, world.admin.email)
    page.goto("/accounts")
    page.get_by_label(re.compile(r"^Select Blue Harbor Bistro")).check()
    page.get_by_label(re.compile(r"^Select Copper Fox Cafe")).check()
    page.get_by_role("button", name="Set class…").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("Set the class of 2 accounts")
    dialog.get_by_label("Class").select_option(label=gold_name)
    dialog.get_by_test_id("class-bulk-apply").click()
    expect(dialog.get_by_test_id("class-bulk-summary")).to_contain_text(f"Put 2 accounts in the class '{gold_name}'")
    dialog.get_by_role("link", name="Close").click()
    expect(page.get_by_role("dialog")).to_have_count(0)
    expect(page.get_by_test_id("account-row").filter(has_text="Blue Harbor Bistro")).to_contain_text(gold_name)
