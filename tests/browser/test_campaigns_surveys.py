"""Surveys and campaigns in a real browser: write a survey, start a campaign (errors swapped in place), pause and
resume it in place, send a survey by hand; while suspended the pages say why and the job's note is in the history."""
import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from portal.domain.features import campaign_job
from portal.extensions import db
from portal.models import Campaign
from tests.campaign_helpers import suspend
from tests.conftest import browser_login

pytestmark = pytest.mark.browser

READ_ONLY = ("Your account is suspended, so this can't be changed right now. "
             "To reactivate your account, please contact billing@portal.test.")


@pytest.fixture
def app_config():
    return {"LOGIN_RATE_LIMIT": "1000 per minute"}


def test_a_manager_writes_a_survey_runs_a_campaign_and_sends_one_by_hand(app, page, live_server, world, tmp_path):
    browser_login(page, world.manager.email)
    page.goto("/surveys")
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#subject-error")).to_contain_text("Enter the subject")  # swapped in place (422)
    page.get_by_label("Subject").fill("How was your dinner?")
    page.get_by_label("Text").fill("Tell us in one minute.")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text("Saved.")).to_be_visible()

    page.get_by_label("Survey or reminder").select_option(label="How was your dinner? (survey)")
    page.get_by_label("Customer's email").fill("not an address")
    page.get_by_role("button", name="Send").click()
    expect(page.locator("#recipient_email-error")).to_contain_text("Enter an email address")
    page.get_by_label("Customer's email").fill("rita@example.com")
    page.get_by_role("button", name="Send").click()
    expect(page.get_by_text("Sent to rita@example.com.")).to_be_visible()
    expect(page.locator("[data-testid=survey-request]")).to_contain_text("By hand")
    page.screenshot(path=str(tmp_path / "surveys.png"), full_page=True)

    page.get_by_role("link", name="Campaigns").click()
    page.get_by_label("Name").fill("After dinner")
    page.get_by_label("Survey or reminder it sends").select_option(label="How was your dinner? (survey)")
    page.get_by_label("Hours after a visit").fill("0")
    page.get_by_role("button", name="Start the campaign").click()
    expect(page.locator("#delay_hours-error")).to_contain_text("from 1 to")
    page.get_by_label("Hours after a visit").fill("2")
    page.get_by_role("button", name="Start the campaign").click()
    expect(page.get_by_role("heading", name="After dinner")).to_be_visible()
    page.get_by_role("button", name="Pause").click()
    expect(page.locator("#campaign-panel [data-testid=campaign-state]")).to_have_text("Paused")  # swapped in place
    page.get_by_role("button", name="Resume").click()
    expect(page.locator("#campaign-panel [data-testid=campaign-state]")).to_have_text("Running")
    expect(page.locator("[data-testid=campaign-event]").first).to_contain_text("Resumed.")
    page.screenshot(path=str(tmp_path / "campaign.png"), full_page=True)

    with app.app_context():
        suspend(world)
        campaign_job.send_due()
        campaign_id = db.session.scalar(select(Campaign.id))
        db.session.remove()
    browser_login(page, world.manager.email)  # the suspension ended the session; account managers sign in again
    expect(page.get_by_test_id("suspension-banner")).to_be_visible()
    page.goto(f"/campaigns/{campaign_id}")
    expect(page.locator("[data-testid=campaign-held]")).to_have_text("paused: account suspended")
    expect(page.locator("[data-testid=campaign-event]").first).to_contain_text("paused: account suspended")
    expect(page.locator("[data-testid=campaign-refused]")).to_have_text(READ_ONLY)
    expect(page.get_by_role("button", name="Pause")).to_have_count(0)
    page.goto("/surveys")
    expect(page.locator("[data-testid=send-refused]")).to_have_text(READ_ONLY)
    page.screenshot(path=str(tmp_path / "suspended.png"), full_page=True)
