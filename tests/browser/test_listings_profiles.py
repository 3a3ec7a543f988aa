"""Listings and the public profile in a real browser: htmx swaps the field errors in place, saving reloads the
page with its message, a suspension makes both read-only, and the public page stays there for a stranger."""
import re

import pytest
from playwright.sync_api import expect

from portal.domain import suspension
from portal.extensions import db
from portal.models import User
from tests.conftest import browser_login

pytestmark = pytest.mark.browser

READ_ONLY = ("Your account is suspended, so this can't be changed right now. "
             "To reactivate your account, please contact billing@portal.test.")


@pytest.fixture
def app_config():
    return {"LOGIN_RATE_LIMIT": "1000 per minute"}


def test_edit_a_listing_and_the_profile_then_a_suspension_leaves_them_read_only_and_public(
        app, page, browser, live_server, world, make, tmp_path):
    features = make.features(world.account)
    browser_login(page, world.manager.email)

    page.goto(f"/listings/{features.listing}")
    page.get_by_label("Phone").fill("not a phone")
    page.get_by_role("button", name="Save listing").click()
    expect(page.locator("#phone-error")).to_contain_text("Enter a phone number")  # swapped in place (422)
    page.get_by_label("Phone").fill("(201) 555-0123")
    page.get_by_role("button", name="Save listing").click()
    expect(page.get_by_text("Listing saved.")).to_be_visible()
    expect(page.get_by_label("Phone")).to_have_value("(201) 555-0123")
    page.get_by_label("Directory", exact=True).fill("City guide")
    page.get_by_role("button", name="Connect", exact=True).click()
    expect(page.locator("[data-testid=connection]", has_text="City guide")).to_contain_text("Pending")
    page.screenshot(path=str(tmp_path / "listing.png"), full_page=True)

    page.get_by_role("link", name="Profile").click()
    expect(page).to_have_url(re.compile(r"/profile$"))
    page.get_by_label("Website").fill("javascript:alert(1)")
    page.get_by_role("button", name="Save profile").click()
    expect(page.locator("#website-error")).to_contain_text("http:// or https://")
    page.get_by_label("Website").fill("https://bistro.example")
    page.get_by_label("Headline").fill("Seafood by the harbour")
    page.get_by_role("button", name="Save profile").click()
    expect(page.get_by_text("Public profile saved.")).to_be_visible()
    page.screenshot(path=str(tmp_path / "profile.png"), full_page=True)

    with app.app_context():
        suspension.suspend(db.session.get(User, world.admin.id), world.account, "non_payment", "Overdue.")
        db.session.remove()
    browser_login(page, world.manager.email)  # the suspension ended the session; managers may sign in again
    page.goto("/profile")
    expect(page.locator("[data-testid=profile-refused]")).to_have_text(READ_ONLY)
    expect(page.get_by_label("Headline")).not_to_be_editable()
    expect(page.get_by_role("button", name="Save profile")).to_have_count(0)
    page.goto(f"/listings/{features.listing}")
    expect(page.locator("[data-testid=publish-refused]")).to_have_text(READ_ONLY)
    expect(page.get_by_role("button", name="Unpublish listing")).to_have_count(0)
    expect(page.locator("[data-testid=connection]")).to_have_count(2)  # the connections are kept

    stranger = browser.new_context(base_url=live_server.url)
    public = stranger.new_page()
    public.goto(f"/p/{features.number}")
    expect(public).to_have_title("Blue Harbor Bistro · Seafood by the harbour")
    expect(public.get_by_role("link", name="https://bistro.example")).to_have_attribute(
        "href", "https://bistro.example")
    expect(public.get_by_role("navigation")).to_have_count(0)
    public.screenshot(path=str(tmp_path / "public.png"), full_page=True)
    stranger.close()
