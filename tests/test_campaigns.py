"""Campaigns: create, pause, resume, end, their history and pages; planning requests for ingested visits."""
import html
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from portal.domain.errors import InvalidTransition, PermissionDenied, ValidationFailed
from portal.domain.features import campaigns
from portal.domain.gate import LIMITED_FEATURE, MANAGER_READ_ONLY
from portal.extensions import db
from portal.models import Campaign, CampaignEvent, SurveyRequest, User
from tests.campaign_helpers import add_campaign, add_survey, count, events, ingest, set_status, statuses, suspend

NOW = datetime(2026, 11, 2, 9, 0)


@pytest.fixture
def app_config():
    return {"LOGIN_RATE_LIMIT": "1000 per minute"}


def manager(world):
    return db.session.get(User, world.manager.id)


# ---------------------------------------------------------------- the domain

def test_a_manager_starts_a_campaign_with_a_created_row_in_its_history(ctx, world):
    survey = add_survey(world.account)
    campaign = campaigns.create_campaign(manager(world), " After dinner ", str(survey.id), "24", "50", now=NOW)
    assert (campaign.name, campaign.state, campaign.delay_hours, campaign.daily_limit, campaign.survey_id) == \
        ("After dinner", "active", 24, 50, survey.id)
    assert campaign.held_reason is None
    [(kind, message)] = events(campaign.id)
    assert kind == "created" and "24 h after each visit" in message and "at most 50 a day" in message


@pytest.mark.parametrize("field, name, delay, limit", [
    ("delay_hours", "Spring", "-3", "10"),
    ("delay_hours", "Spring", "0", "10"),
    ("delay_hours", "Spring", "soon", "10"),
    ("daily_limit", "Spring", "24", "0"),
    ("daily_limit", "Spring", "24", "-1"),
    ("daily_limit", "Spring", "24", "1e9"),
    ("name", "   ", "24", "10"),
    ("name", "x" * 201, "24", "10"),
])
def test_bad_campaign_fields_are_refused_at_the_field_and_nothing_is_stored(ctx, world, field, name, delay, limit):
    survey = add_survey(world.account)
    with pytest.raises(ValidationFailed) as caught:
        campaigns.create_campaign(manager(world), name, survey.id, delay, limit)
    assert set(caught.value.field_errors) == {field}
    assert count(Campaign) == count(CampaignEvent) == 0


def test_an_unknown_or_another_accounts_survey_is_refused(ctx, world):
    theirs = add_survey(world.other_account)
    for survey_id in (theirs.id, 999999, "", "abc", "99999999999999999999"):
        with pytest.raises(ValidationFailed) as caught:
            campaigns.create_campaign(manager(world), "Spring", survey_id, "24", "10")
        assert set(caught.value.field_errors) == {"survey_id"}
    assert count(Campaign) == 0


def test_pause_resume_and_end_are_compare_and_set_and_ending_is_final(ctx, world):
    survey = add_survey(world.account)
    campaign = campaigns.create_campaign(manager(world), "Spring", survey.id, "1", "10", now=NOW)
    ingest(world.account, NOW, count=2)
    assert campaigns.change_state(manager(world), campaign.id, "pause", now=NOW).state == "paused"
    with pytest.raises(InvalidTransition, match="Only a running campaign"):
        campaigns.change_state(manager(world), campaign.id, "pause")
    assert campaigns.change_state(manager(world), campaign.id, "resume", now=NOW).state == "active"
    ended = campaigns.change_state(manager(world), campaign.id, "end", now=NOW)
    assert (ended.state, ended.ended_at) == ("ended", NOW)
    assert statuses(campaign.id) == {"cancelled": 2}
    for action in ("pause", "resume", "end"):
        with pytest.raises(InvalidTransition):
            campaigns.change_state(manager(world), campaign.id, action)
    assert [kind for kind, _ in events(campaign.id)] == ["created", "paused", "resumed", "ended"]


@pytest.mark.parametrize("status, message", [("suspended", MANAGER_READ_ONLY), ("limited", LIMITED_FEATURE)])
def test_managing_campaigns_is_refused_with_the_gates_message_while_suspended_or_limited(ctx, world, status, message):
    survey = add_survey(world.account)
    campaign = add_campaign(world.account, survey.id)
    set_status(world.account, status)
    expected = message.format(billing_contact="billing@portal.test")
    with pytest.raises(PermissionDenied) as caught:
        campaigns.create_campaign(manager(world), "Spring", survey.id, "24", "10")
    assert caught.value.message == expected
    for action in ("pause", "end"):
        with pytest.raises(PermissionDenied):
            campaigns.change_state(manager(world), campaign.id, action)
    assert db.session.get(Campaign, campaign.id, populate_existing=True).state == "active"
    assert count(Campaign) == 1 and count(CampaignEvent) == 0


def test_another_accounts_campaign_is_not_found(ctx, world):
    theirs = add_campaign(world.other_account, add_survey(world.other_account).id)
    with pytest.raises(campaigns.CampaignNotFound):
        campaigns.change_state(manager(world), theirs.id, "pause")
    assert db.session.get(Campaign, theirs.id).state == "active"


# ---------------------------------------------------------------- planning requests (ingestion calls it)

def test_plan_requests_adds_one_request_per_running_campaign_and_visit_with_an_email(ctx, world):
    survey = add_survey(world.account)
    reminder = add_survey(world.account, kind="reminder", subject="See you soon")
    a = add_campaign(world.account, survey.id, delay_hours=24)
    b = add_campaign(world.account, reminder.id, delay_hours=2)
    add_campaign(world.account, survey.id, state="paused")
    add_campaign(world.account, survey.id, state="ended")
    add_campaign(world.other_account, add_survey(world.other_account).id)
    visit = datetime(2026, 11, 1, 19, 30)
    assert ingest(world.account, visit, count=3) == 6
    assert ingest(world.account, visit, count=2, email=False) == 0
    rows = db.session.scalars(select(SurveyRequest).order_by(SurveyRequest.id)).all()
    assert len(rows) == 6
    assert {(r.campaign_id, r.kind, r.due_at, r.status, r.manual) for r in rows} == {
        (a.id, "survey", visit + timedelta(hours=24), "pending", False),
        (b.id, "reminder", visit + timedelta(hours=2), "pending", False)}
    assert all(r.recipient_email.endswith("@example.test") and r.recipient_name for r in rows)


def test_planning_a_visit_twice_keeps_one_request(ctx, world):
    from portal.models import Account, IngestionRecord

    campaign = add_campaign(world.account, add_survey(world.account).id)
    ingest(world.account, NOW, count=1)
    record = db.session.scalars(select(IngestionRecord)).one()
    assert campaigns.plan_requests(db.session.get(Account, world.account), [record], NOW) == 0
    db.session.commit()
    assert statuses(campaign.id) == {"pending": 1}


def test_plan_requests_with_no_running_campaign_plans_nothing(ctx, world):
    add_campaign(world.account, add_survey(world.account).id, state="paused")
    assert ingest(world.account, NOW, count=2) == 0
    assert count(SurveyRequest) == 0


# ---------------------------------------------------------------- pages

def test_the_campaigns_page_lists_them_and_answers_a_fragment_to_htmx(app, auth, world):
    with app.app_context():
        add_campaign(world.account, add_survey(world.account).id, name="Spring <b>visits</b>")
        db.session.remove()
    auth.login(world.manager.email)
    page = auth.client.get("/campaigns")
    body = page.get_data(as_text=True)
    assert page.status_code == 200 and "<html" in body and "Start the campaign" in body
    assert "Spring &lt;b&gt;visits&lt;/b&gt;" in body
    fragment = auth.client.get("/campaigns", headers={"HX-Request": "true"})
    text = fragment.get_data(as_text=True)
    assert fragment.status_code == 200 and "<html" not in text and 'id="campaign-list"' in text
    assert "HX-Request" in fragment.headers["Vary"]


def test_starting_a_campaign_from_the_page_redirects_to_it(app, auth, world):
    with app.app_context():
        survey_id = add_survey(world.account).id
        db.session.remove()
    auth.login(world.manager.email)
    data = {"name": "Spring", "survey_id": survey_id, "delay_hours": "24", "daily_limit": "10"}
    response = auth.post("/campaigns", data)
    assert response.status_code == 303
    page = auth.client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Spring" in page and "Created" in page and "Pause" in page
    data["name"] = "Again"
    hx = auth.post("/campaigns", data, htmx=True)
    assert hx.status_code == 204 and hx.headers["HX-Redirect"].startswith("/campaigns/")


@pytest.mark.parametrize("htmx", [False, True])
def test_bad_input_on_the_page_is_shown_at_the_fields_with_422(app, auth, world, htmx):
    with app.app_context():
        theirs = add_survey(world.other_account).id
        add_survey(world.account)
        db.session.remove()
    auth.login(world.manager.email)
    response = auth.post("/campaigns", {"name": "", "survey_id": theirs, "delay_hours": "-1", "daily_limit": "0"},
                         htmx=htmx)
    body = html.unescape(response.get_data(as_text=True))
    assert response.status_code == 422
    for field in ("name", "survey_id", "delay_hours", "daily_limit"):
        assert f'id="{field}-error"' in body
    assert ("<html" in body) is not htmx
    with app.app_context():
        assert count(Campaign) == 0
        db.session.remove()


def test_pausing_from_the_page_with_and_without_htmx(app, auth, world):
    with app.app_context():
        campaign_id = add_campaign(world.account, add_survey(world.account).id).id
        db.session.remove()
    auth.login(world.manager.email)
    plain = auth.post(f"/campaigns/{campaign_id}/pause", page=f"/campaigns/{campaign_id}")
    assert plain.status_code == 303 and plain.headers["Location"] == f"/campaigns/{campaign_id}"
    hx = auth.post(f"/campaigns/{campaign_id}/resume", htmx=True, page=f"/campaigns/{campaign_id}")
    text = hx.get_data(as_text=True)
    assert hx.status_code == 200 and hx.headers["HX-Trigger"] == "campaign-resumed"
    assert "<html" not in text and 'id="campaign-panel"' in text and "Resumed." in text
    again = auth.post(f"/campaigns/{campaign_id}/resume", htmx=True, page=f"/campaigns/{campaign_id}")
    assert again.status_code == 422 and "Only a paused campaign can be resumed." in again.get_data(as_text=True)


def test_while_suspended_the_page_shows_the_gates_message_and_a_post_is_refused(app, auth, world):
    with app.app_context():
        survey_id = add_survey(world.account).id
        campaign_id = add_campaign(world.account, survey_id).id
        suspend(world)
        db.session.remove()
    auth.login(world.manager.email)
    message = MANAGER_READ_ONLY.format(billing_contact="billing@portal.test")

    def text(response):
        return html.unescape(response.get_data(as_text=True))

    assert message in text(auth.client.get("/campaigns"))
    detail = text(auth.client.get(f"/campaigns/{campaign_id}"))
    assert message in detail and 'data-testid="campaign-pause"' not in detail
    refused = auth.post(f"/campaigns/{campaign_id}/pause", page="/campaigns")
    assert refused.status_code == 422 and message in text(refused)
    created = auth.post("/campaigns", {"name": "S", "survey_id": survey_id, "delay_hours": "1", "daily_limit": "1"})
    assert created.status_code == 422 and message in text(created)
    with app.app_context():
        assert db.session.get(Campaign, campaign_id).state == "active" and count(Campaign) == 1
        db.session.remove()


def test_the_history_is_shown_on_the_campaign_page(app, auth, world):
    with app.app_context():
        campaign_id = add_campaign(world.account, add_survey(world.account).id).id
        db.session.add(CampaignEvent(campaign_id=campaign_id, kind="held", message="paused: account suspended",
                                     actor_label="system"))
        db.session.commit()
        db.session.remove()
    auth.login(world.manager.email)
    page = auth.client.get(f"/campaigns/{campaign_id}").get_data(as_text=True)
    assert "paused: account suspended" in page


def test_only_account_managers_reach_the_campaign_pages(app, auth, world):
    auth.login(world.tier.email)
    assert auth.client.get("/campaigns").status_code == 403
