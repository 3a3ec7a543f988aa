"""Surveys and reminders: writing them, sending one by hand (refused while suspended), the requests list, held mail."""
import html
from datetime import datetime

import pytest
from sqlalchemy import select

from portal.domain import notify
from portal.domain.errors import PermissionDenied, ValidationFailed
from portal.domain.features import surveys
from portal.domain.gate import LIMITED_FEATURE, MANAGER_READ_ONLY, MEMBER_SUSPENDED
from portal.extensions import db
from portal.models import OutboxEmail, Survey, SurveyRequest, User
from tests.campaign_helpers import (add_campaign, add_survey, count, ingest, reactivate, set_status, survey_emails,
                                    suspend)

NOW = datetime(2026, 11, 2, 9, 0)
CONTACT = "billing@portal.test"


@pytest.fixture
def app_config():
    return {"LOGIN_RATE_LIMIT": "1000 per minute"}


def person(world, who="manager"):
    return db.session.get(User, getattr(world, who).id)


def text(response):
    return html.unescape(response.get_data(as_text=True))


# ---------------------------------------------------------------- writing surveys

def test_a_manager_writes_and_edits_a_survey(ctx, world):
    survey = surveys.create_survey(person(world), "reminder", " Your table awaits ", "See you Friday.", now=NOW)
    assert (survey.kind, survey.subject, survey.body, survey.account_id) == \
        ("reminder", "Your table awaits", "See you Friday.", world.account)
    surveys.update_survey(person(world), survey.id, "survey", "How was it?", "")
    db.session.expire_all()
    assert (survey.kind, survey.subject, survey.body) == ("survey", "How was it?", None)


@pytest.mark.parametrize("kind, subject, body, field", [
    ("poll", "Hi", "", "kind"), ("survey", "  ", "", "subject"), ("survey", "x" * 201, "", "subject"),
    ("survey", "Hi", "y" * 5001, "body"), ("survey", "Hi\ufffe", "", "subject"),
])
def test_bad_survey_fields_are_refused_at_the_field(ctx, world, kind, subject, body, field):
    with pytest.raises(ValidationFailed) as caught:
        surveys.create_survey(person(world), kind, subject, body)
    assert set(caught.value.field_errors) == {field}
    assert count(Survey) == 0


def test_writing_surveys_is_refused_while_suspended_and_another_accounts_survey_is_not_found(ctx, world):
    theirs = add_survey(world.other_account)
    with pytest.raises(surveys.SurveyNotFound):
        surveys.update_survey(person(world), theirs.id, "survey", "Mine now", "")
    set_status(world.account, "suspended")
    with pytest.raises(PermissionDenied) as caught:
        surveys.create_survey(person(world), "survey", "Hi", "")
    assert caught.value.message == MANAGER_READ_ONLY.format(billing_contact=CONTACT)
    assert count(Survey) == 1


# ---------------------------------------------------------------- sending by hand

@pytest.mark.parametrize("who", ["manager", "tier"])
def test_a_manager_sends_a_survey_by_hand_through_the_outbox(ctx, world, who):
    survey = add_survey(world.account)
    sent = surveys.send_manual(person(world, who), survey.id, "Rita Guest", " Rita@Example.test ", now=NOW)
    request = db.session.scalars(select(SurveyRequest)).one()
    assert (request.id, request.manual, request.status, request.sent_at, request.kind) == \
        (sent.id, True, "sent", NOW, "survey")
    assert (request.recipient_name, request.recipient_email, request.created_by_id) == \
        ("Rita Guest", "Rita@example.test", getattr(world, who).id)
    [email] = survey_emails()
    assert (email.id, email.to_addr, email.kind, email.status, email.subject) == \
        (request.outbox_email_id, "Rita@example.test", "manual_survey", "pending", "How was your visit?")
    assert "Hello Rita Guest" in email.body and "Tell us in one minute." in email.body


def test_a_reminder_is_sent_as_a_reminder(ctx, world):
    reminder = add_survey(world.account, kind="reminder", subject="See you soon", body="Your booking is Friday.")
    surveys.send_manual(person(world), reminder.id, "", "guest@example.test", now=NOW)
    request = db.session.scalars(select(SurveyRequest)).one()
    assert (request.kind, request.recipient_name) == ("reminder", None)
    assert [(e.kind, "A reminder from" in e.body) for e in survey_emails()] == [("manual_reminder", True)]


@pytest.mark.parametrize("status, who, message", [
    ("suspended", "manager", MANAGER_READ_ONLY), ("limited", "manager", LIMITED_FEATURE),
    ("suspended", "tier", MEMBER_SUSPENDED), ("limited", "tier", LIMITED_FEATURE),
])
@pytest.mark.parametrize("kind", ["survey", "reminder"])
def test_sending_by_hand_is_refused_with_the_gates_message_and_nothing_is_stored(ctx, world, status, who, message,
                                                                                 kind):
    survey = add_survey(world.account, kind=kind)
    set_status(world.account, status)
    outbox_before = count(OutboxEmail)
    for survey_id, address in ((survey.id, "guest@example.test"), ("", "not an address")):  # the gate before fields
        with pytest.raises(PermissionDenied) as caught:
            surveys.send_manual(person(world, who), survey_id, "Guest", address)
        assert caught.value.message == message.format(billing_contact=CONTACT)
    assert count(SurveyRequest) == 0 and count(OutboxEmail) == outbox_before


@pytest.mark.parametrize("address", ["", "guest", "guest@", "a b@example.test", "guest@example..test",
                                     "x" * 250 + "@example.test"])
def test_a_bad_recipient_email_is_refused_at_the_field(ctx, world, address):
    survey = add_survey(world.account)
    with pytest.raises(ValidationFailed) as caught:
        surveys.send_manual(person(world), survey.id, "Guest", address)
    assert set(caught.value.field_errors) == {"recipient_email"}
    assert count(SurveyRequest) == count(OutboxEmail) == 0


def test_an_unknown_or_another_accounts_survey_cannot_be_sent(ctx, world):
    theirs = add_survey(world.other_account)
    for survey_id in (theirs.id, 999999, "abc"):
        with pytest.raises(ValidationFailed) as caught:
            surveys.send_manual(person(world), survey_id, "Guest", "guest@example.test")
        assert set(caught.value.field_errors) == {"survey_id"}
    assert count(SurveyRequest) == 0


def test_a_manual_email_queued_before_a_suspension_is_held_at_delivery_and_released_on_reactivation(ctx, world):
    survey = add_survey(world.account)
    surveys.send_manual(person(world), survey.id, "Guest", "guest@example.test")
    set_status(world.account, "suspended")  # e.g. a bulk sweep, which does not look at the outbox
    assert notify.deliver_pending() == (0, 0)  # nothing sent, nothing tried (no SMTP server listens)
    [email] = survey_emails()
    assert email.status == "held"
    set_status(world.account, "limited")
    reactivate(world)
    db.session.expire_all()
    assert survey_emails()[0].status == "pending"


def test_staff_and_manager_mail_is_not_held_by_the_customer_mail_rule(ctx, world):
    survey = add_survey(world.account)
    surveys.send_manual(person(world), survey.id, "Guest", "guest@example.test")
    suspend(world)  # the managers' suspension email is queued; the manual one is held at delivery
    notify.deliver_pending()
    rows = {(e.to_addr, e.status) for e in db.session.scalars(select(OutboxEmail))}
    assert ("guest@example.test", "held") in rows
    assert (world.manager.email, "pending") in rows  # tried (SMTP is down here) and waiting, never held


def test_recent_requests_list_manual_and_campaign_ones_with_their_status(ctx, world):
    survey = add_survey(world.account)
    campaign = add_campaign(world.account, survey.id, name="After dinner")
    ingest(world.account, NOW, count=1)
    surveys.send_manual(person(world, "tier"), survey.id, "Walk In", "walkin@example.test", now=NOW)
    rows = surveys.recent_requests(world.account)
    assert [(r.manual, r.status, campaign_name, sender) for r, _subject, campaign_name, sender, _ in rows] == [
        (True, "sent", None, "Theo Tier"), (False, "pending", campaign.name, None)]


# ---------------------------------------------------------------- pages

def test_the_surveys_page_with_and_without_htmx(app, auth, world):
    with app.app_context():
        survey = add_survey(world.account, subject="Dinner <survey>")
        add_campaign(world.account, survey.id, name="After dinner")
        ingest(world.account, NOW, count=1)
        db.session.remove()
    auth.login(world.manager.email)
    page = auth.client.get("/surveys")
    body = page.get_data(as_text=True)
    assert page.status_code == 200 and "<html" in body and "Dinner &lt;survey&gt;" in body
    assert "Send one to a customer" in body and "Write one" in body and "Campaign: After dinner" in body
    fragment = auth.client.get("/surveys", headers={"HX-Request": "true"})
    assert "<html" not in fragment.get_data(as_text=True) and 'id="requests-list"' in fragment.get_data(as_text=True)
    assert "HX-Request" in fragment.headers["Vary"]


@pytest.mark.parametrize("htmx", [False, True])
def test_sending_from_the_page(app, auth, world, htmx):
    with app.app_context():
        survey_id = add_survey(world.account).id
        db.session.remove()
    auth.login(world.tier.email)
    ok = auth.post("/surveys/send", {"survey_id": survey_id, "recipient_name": "G", "recipient_email": "g@example.test"},
                   htmx=htmx)
    assert ok.status_code == (204 if htmx else 303)
    bad = auth.post("/surveys/send", {"survey_id": survey_id, "recipient_email": "nope"}, htmx=htmx)
    body = text(bad)
    assert bad.status_code == 422 and 'id="recipient_email-error"' in body and ("<html" in body) is not htmx
    with app.app_context():
        assert count(SurveyRequest) == 1
        db.session.remove()


@pytest.mark.parametrize("htmx", [False, True])
def test_sending_from_the_page_while_suspended_shows_the_gates_message(app, auth, world, htmx):
    with app.app_context():
        survey_id = add_survey(world.account).id
        suspend(world)
        db.session.remove()
    auth.login(world.manager.email)
    message = MANAGER_READ_ONLY.format(billing_contact=CONTACT)
    assert message in text(auth.client.get("/surveys"))
    refused = auth.post("/surveys/send", {"survey_id": survey_id, "recipient_email": "g@example.test"}, htmx=htmx)
    assert refused.status_code == 422 and message in text(refused)
    with app.app_context():
        assert count(SurveyRequest) == 0 and survey_emails() == []
        db.session.remove()


def test_writing_and_editing_from_the_page(app, auth, world):
    auth.login(world.manager.email)
    created = auth.post("/surveys", {"kind": "survey", "subject": "Hello", "body": "Tell us."})
    assert created.status_code == 303
    with app.app_context():
        survey_id = db.session.scalars(select(Survey.id)).one()
        db.session.remove()
    edit = auth.client.get(f"/surveys/{survey_id}")
    assert edit.status_code == 200 and 'value="Hello"' in edit.get_data(as_text=True)
    bad = auth.post(f"/surveys/{survey_id}", {"kind": "survey", "subject": ""}, htmx=True)
    assert bad.status_code == 422 and 'id="subject-error"' in text(bad) and "<html" not in text(bad)
    saved = auth.post(f"/surveys/{survey_id}", {"kind": "reminder", "subject": "Bye", "body": ""}, htmx=True)
    assert saved.status_code == 204 and saved.headers["HX-Redirect"] == "/surveys"
    with app.app_context():
        assert (db.session.get(Survey, survey_id).kind, db.session.get(Survey, survey_id).subject) == ("reminder", "Bye")
        db.session.remove()


def test_tier_managers_send_but_do_not_write_surveys(app, auth, world):
    with app.app_context():
        survey_id = add_survey(world.account).id
        db.session.remove()
    auth.login(world.tier.email)
    page = text(auth.client.get("/surveys"))
    assert "Send one to a customer" in page and "Write one" not in page
    assert auth.client.get(f"/surveys/{survey_id}").status_code == 403
    assert auth.post("/surveys", {"kind": "survey", "subject": "Mine"}).status_code == 403
