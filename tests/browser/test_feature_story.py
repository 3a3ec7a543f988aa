"""What a suspension pauses, in a real browser: the manager edits the profile, starts a campaign and brings in
visits; a super admin suspends the account from its page; the public profile stays, ingestion is refused, the
campaign is held, publishing is refused, posts keep arriving without alerts; reactivation brings each back."""
import re
from datetime import timedelta

import pytest
from markupsafe import escape
from playwright.sync_api import expect
from sqlalchemy import select

from portal.domain import gate
from portal.domain.features import campaign_job, listings, social, social_profiles, surveys
from portal.extensions import db
from portal.models import Account, OutboxEmail, User
from portal.timeutil import utcnow
from tests.browser.test_suspension_story import fill_reason, new_page, open_status_dialog  # noqa: F401
from tests.conftest import browser_login
from tests.social_feeds import feeds, json_feed  # noqa: F401 - the fixture

pytestmark = pytest.mark.browser

READ_ONLY = gate.MANAGER_READ_ONLY.format(billing_contact="billing@portal.test")


@pytest.fixture
def app_config():
    return {"LOGIN_RATE_LIMIT": "1000 per minute", "SOCIAL_FEED_ALLOW_PRIVATE": True, "SOCIAL_FETCH_TIMEOUT": 2.0}


def post_item(n):
    return {"id": f"post-{n}", "content_text": f"Review number {n}: lovely fish.", "url": f"https://social.test/p/{n}",
            "date_published": f"2026-11-2{n}T20:00:00Z", "author": {"name": f"Guest {n}"}}


def in_app(app, work):
    """Run work (a job, a look at the outbox) in the app, as a worker would; return what it returns."""
    with app.app_context():
        try:
            return work()
        finally:
            db.session.remove()


def emails(kind):
    return [e.to_addr for e in db.session.scalars(select(OutboxEmail).where(OutboxEmail.kind == kind)
                                                  .order_by(OutboxEmail.id))]


def prepare(app, world, feeds):  # noqa: F811 - the fixture's value
    """What the account had before today: a survey, a listing with a connection, a feed with one post."""
    def work():
        manager = db.session.get(User, world.manager.id)
        surveys.create_survey(manager, "survey", "How was your dinner?", "Tell us in one minute.")
        listing = listings.create_listing(manager, {"name": "Harbour front", "address": "1 Quay St"})
        listings.connect_directory(manager, listing.id, {"directory": "Maps directory", "external_ref": "maps:1"})
        url = feeds.set("/bistro.json", json_feed(post_item(1)))
        social_profiles.connect_profile(manager, "reviews", "@bistro", url)
        assert social.poll_due()["imported"] == 1  # its alert is sent
        return db.session.get(Account, world.account).number, listing.id
    return in_app(app, work)


def manager_starts_the_day(page, tmp_path):
    """Edit the profile, start a campaign, create an ingestion key and upload two visits; return the key."""
    page.goto("/profile")
    page.get_by_label("Headline").fill("Seafood by the harbour")
    page.get_by_role("button", name="Save profile").click()
    expect(page.get_by_text("Public profile saved.")).to_be_visible()
    page.get_by_role("link", name="Campaigns").click()
    page.get_by_label("Name").fill("After dinner")
    page.get_by_label("Survey or reminder it sends").select_option(label="How was your dinner? (survey)")
    page.get_by_label("Hours after a visit").fill("1")
    page.get_by_role("button", name="Start the campaign").click()
    expect(page.get_by_role("heading", name="After dinner")).to_be_visible()
    campaign_url = page.url
    page.get_by_role("link", name="Data").click()
    page.get_by_label("Name of a new key").fill("Till in the shop")
    page.get_by_role("button", name="Create a key").click()
    key = page.get_by_test_id("new-key-text").input_value()
    visited = f"{utcnow() - timedelta(hours=3):%Y-%m-%dT%H:%M}"
    csv = (f"name,email,visited_at,external_id\nRita Guest,rita@example.com,{visited},v-1\n"
           f"Bo Guest,bo@example.com,{visited},v-2\n")
    page.get_by_label("CSV file").set_input_files(files=[{"name": "visits.csv", "mimeType": "text/csv",
                                                          "buffer": csv.encode()}])
    page.get_by_role("button", name="Upload").click()
    expect(page.get_by_test_id("upload-summary")).to_have_text(
        "2 accepted, 0 duplicates, 0 rejected; 2 survey requests planned.")
    expect(page.get_by_test_id("record-row")).to_have_count(2)  # the records' list follows the upload
    page.screenshot(path=str(tmp_path / "1-data-before.png"), full_page=True)
    return key, campaign_url


def change_status(admin, world, reason, note, button):
    admin.goto(f"/accounts/{world.account}")
    dialog = open_status_dialog(admin)
    fill_reason(dialog, reason, note)
    dialog.get_by_role("button", name=button).click()
    expect(admin.get_by_role("dialog")).to_have_count(0)


def ingest(page, key, external_id):
    visit = {"name": "Cy Guest", "email": "cy@example.com", "visited_at": f"{utcnow():%Y-%m-%dT%H:%M}Z",
             "external_id": external_id}
    return page.request.post("/api/v1/ingest", headers={"Authorization": f"Bearer {key}"},
                             data={"records": [visit]})


def test_a_suspension_pauses_each_feature_and_reactivation_brings_each_back(
        app, page, new_page, world, feeds, tmp_path):  # noqa: F811 - the fixtures' values
    number, listing_id = prepare(app, world, feeds)
    browser_login(page, world.manager.email)
    key, campaign_url = manager_starts_the_day(page, tmp_path)

    admin = new_page()
    browser_login(admin, world.admin.email)
    change_status(admin, world, "Non-payment", "Three invoices overdue.", "Suspend account")
    expect(admin.locator("main section").get_by_test_id("status-badge")).to_have_text("Suspended")

    stranger = new_page()  # nobody signed in: the public profile is still there
    stranger.goto(f"/p/{number}")
    expect(stranger).to_have_title("Blue Harbor Bistro · Seafood by the harbour")
    stranger.screenshot(path=str(tmp_path / "2-public-while-suspended.png"), full_page=True)

    browser_login(page, world.manager.email)  # the suspension ended the session; managers may sign in again
    page.get_by_role("link", name="Data").click()
    expect(page.get_by_test_id("upload-refused")).to_have_text(READ_ONLY)
    expect(page.get_by_label("CSV file")).to_have_count(0)
    token = page.locator("input[name=csrf_token]").first.get_attribute("value")
    late = {"name": "late.csv", "mimeType": "text/csv", "buffer": b"email,visited_at\ncy@example.com,2026-11-30\n"}
    upload = page.request.post("/data/upload", headers={"X-CSRFToken": token}, multipart={"file": late})
    assert upload.status == 422 and str(escape(READ_ONLY)) in upload.text()  # a form posted anyway is refused
    refused = ingest(page, key, "v-3")
    assert (refused.status, refused.json()) == (423, {"error": "Ingestion paused", "message": gate.PAUSED})
    page.reload()
    expect(page.get_by_test_id("record-row")).to_have_count(2)  # nothing came in
    page.screenshot(path=str(tmp_path / "3-data-suspended.png"), full_page=True)
    page.get_by_role("link", name="Profile").click()
    expect(page.get_by_test_id("profile-refused")).to_have_text(READ_ONLY)  # only a super admin may edit it now
    expect(page.get_by_label("Headline")).to_have_value("Seafood by the harbour")
    expect(page.get_by_label("Headline")).not_to_be_editable()
    expect(page.get_by_role("button", name="Save profile")).to_have_count(0)

    assert in_app(app, campaign_job.send_due)["sent"] == 0  # both visits are due: the job holds them
    page.goto(campaign_url)
    expect(page.get_by_test_id("campaign-held")).to_have_text("paused: account suspended")
    expect(page.get_by_test_id("campaign-event").first).to_contain_text("paused: account suspended")
    expect(page.get_by_test_id("campaign-refused")).to_have_text(READ_ONLY)
    expect(page.locator(".facts dd").nth(1)).to_have_text("1 hour")
    page.screenshot(path=str(tmp_path / "4-campaign-suspended.png"), full_page=True)

    page.goto(f"/listings/{listing_id}")
    expect(page.get_by_test_id("publish-refused")).to_have_text(READ_ONLY)
    expect(page.get_by_role("button", name="Publish listing")).to_have_count(0)
    expect(page.get_by_test_id("connection")).to_have_count(1)  # kept as it was
    page.screenshot(path=str(tmp_path / "5-listing-suspended.png"), full_page=True)

    feeds.set("/bistro.json", json_feed(post_item(3), post_item(2), post_item(1)))
    polled = in_app(app, lambda: social.poll_due(utcnow() + timedelta(minutes=16)))  # the feed's next poll
    assert (polled["imported"], polled["profiles"][0]["alerts"]) == (2, "held")
    page.get_by_role("link", name="Social").click()
    expect(page.locator(".social-posts").get_by_text("Alert held")).to_have_count(2)
    expect(page.locator(".social-post-content")).to_have_text(
        ["Review number 3: lovely fish.", "Review number 2: lovely fish.", "Review number 1: lovely fish."])
    expect(page.get_by_test_id("social-actions-refused")).to_have_text(READ_ONLY)
    expect(page.get_by_role("button", name="Flag")).to_have_count(0)
    page.screenshot(path=str(tmp_path / "6-social-suspended.png"), full_page=True)
    assert in_app(app, lambda: (emails("social_alert"), emails("campaign_survey"))) == ([world.manager.email], [])

    change_status(admin, world, "Customer request", "Paid in full by phone.", "Reactivate account")
    expect(admin.locator("main section").get_by_test_id("status-badge")).to_have_text("Active")

    browser_login(page, world.manager.email)
    expect(page.get_by_test_id("suspension-banner")).to_have_count(0)
    page.goto("/profile")
    page.get_by_label("Headline").fill("Seafood by the harbour, open again")
    page.get_by_role("button", name="Save profile").click()
    expect(page.get_by_text("Public profile saved.")).to_be_visible()

    assert in_app(app, campaign_job.send_due)["sent"] == 2  # the backlog, once
    page.goto(campaign_url)
    expect(page.get_by_test_id("campaign-held")).to_have_count(0)
    expect(page.get_by_test_id("campaign-event").nth(0)).to_contain_text("sent 2 survey requests")
    expect(page.get_by_test_id("campaign-event").nth(1)).to_contain_text("resumed: account reactivated")
    expect(page.get_by_role("button", name="Pause")).to_be_visible()
    page.screenshot(path=str(tmp_path / "7-campaign-resumed.png"), full_page=True)

    page.goto(f"/listings/{listing_id}")
    page.get_by_role("button", name="Publish listing").click()
    expect(page.locator("#flashes")).to_contain_text("Listing published.")
    expect(page.get_by_role("button", name="Unpublish listing")).to_be_visible()

    summaries = in_app(app, lambda: social.poll_due()["summaries"])  # the feed is not due: only the summary
    assert summaries == [{"account_id": world.account, "posts": 2, "emails": 1}]
    outbox = in_app(app, lambda: (emails("social_alert"), emails("social_summary"), emails("campaign_survey")))
    assert outbox == ([world.manager.email], [world.manager.email], ["rita@example.com", "bo@example.com"])
    page.get_by_role("link", name="Social").click()
    expect(page.locator(".social-posts").get_by_text("In the summary")).to_have_count(2)
    expect(page.get_by_role("button", name="Flag")).to_have_count(3)
    assert ingest(page, key, "v-3").status == 200
    page.screenshot(path=str(tmp_path / "8-social-after.png"), full_page=True)
    stranger.reload()
    expect(stranger).to_have_title(re.compile("open again"))
