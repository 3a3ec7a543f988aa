"""Exact restoration, end to end: an account full of real feature data is suspended, every refused action and
every paused job is tried, it is reactivated, the jobs run again, and a snapshot of every row the account owns
is compared with the one taken before: identical but for the differences listed here, each one by name."""
import json
from datetime import datetime, timedelta
from types import SimpleNamespace

import pytest
from sqlalchemy import select

from portal import jobs
from portal.domain import gate, reservations, suspension
from portal.domain.errors import PermissionDenied
from portal.domain.features import (campaigns, ingestion, ingestion_keys, listings, profiles, social_posts,
                                    social_profiles, surveys)
from portal.extensions import db
from portal.models import (Account, Campaign, CampaignEvent, IngestionKey, IngestionRecord, Listing,
                           ListingConnection, OutboxEmail, Profile, Reservation, SocialPost, SocialProfile, Survey,
                           SurveyRequest, User)
from portal.models import features as feature_models
from tests.social_feeds import feeds, json_feed  # noqa: F401 - the fixture
from tests.test_suspension import OVERLAY_COLUMNS

T0 = datetime(2026, 11, 30, 9, 0)  # the account's ordinary day; every domain call takes its time from here
SUSPENDED_AT = T0 + timedelta(minutes=10)
BACK_AT = T0 + timedelta(hours=5)  # reactivation, and the jobs' first run after it
READ_ONLY = gate.MANAGER_READ_ONLY.format(billing_contact="billing@portal.test")
BOOKING_REFUSED = gate.BOOKING_SUSPENDED.format(billing_contact="billing@portal.test")
PROFILE_FORM = {"headline": "Seafood by the harbour", "body": "Fresh fish every morning since 1999.",
                "website": "https://bistro.example", "phone": "(201) 555-0123", "public": "1"}


@pytest.fixture
def app_config():
    return {"SOCIAL_FEED_ALLOW_PRIVATE": True, "SOCIAL_FETCH_TIMEOUT": 2.0}


def person(who):
    return db.session.get(User, who.id)


def post_item(n):
    return {"id": f"post-{n}", "content_text": f"Review number {n}", "url": f"https://social.test/p/{n}",
            "date_published": f"2026-11-2{n}T20:00:00Z", "author": {"name": f"Guest {n}"}}


def visit(n, at):
    return {"name": f"Guest {n}", "email": f"guest{n}@example.com", "visited_at": at.isoformat(),
            "external_id": f"visit-{n}"}


def refused(call, *args, **kwargs):
    """Call a domain function the gate must refuse; return its message (the transaction is left clean)."""
    with pytest.raises(PermissionDenied) as denied:
        call(*args, **kwargs)
    db.session.rollback()
    return denied.value.message


# ---------------------------------------------------------------- the snapshot and its differences

def owned_rows(account_id):
    """(model, condition) for every table holding the account's rows: its row, users, every feature table."""
    campaign_ids = select(Campaign.id).where(Campaign.account_id == account_id)
    listing_ids = select(Listing.id).where(Listing.account_id == account_id)
    by_account = [IngestionKey, IngestionRecord, Survey, Campaign, SurveyRequest, Listing, Profile, SocialProfile,
                  SocialPost, Reservation]
    return ([(Account, Account.id == account_id), (User, User.account_id == account_id)]
            + [(model, model.account_id == account_id) for model in by_account]
            + [(CampaignEvent, CampaignEvent.campaign_id.in_(campaign_ids)),
               (ListingConnection, ListingConnection.listing_id.in_(listing_ids))])


def snapshot(account_id):
    """{table: {id: {column: value}}}, every column (the account's row minus the suspension overlay), by id."""
    snap = {}
    for model, where in owned_rows(account_id):
        columns = [c for c in model.__table__.columns if not (model is Account and c.name in OVERLAY_COLUMNS)]
        rows = db.session.execute(select(*columns).where(where).order_by(model.id))
        snap[model.__tablename__] = {row.id: dict(row._mapping) for row in rows}
    db.session.rollback()
    return snap


def differences(before, after):
    """Compare two snapshots: ({(table, id): row} added, {(table, id): row} removed,
    {(table, id, column): (before, after)} changed)."""
    added, removed, changed = {}, {}, {}
    for table in before:
        old, new = before[table], after[table]
        added.update(((table, row_id), new[row_id]) for row_id in new.keys() - old.keys())
        removed.update(((table, row_id), old[row_id]) for row_id in old.keys() - new.keys())
        for row_id in old.keys() & new.keys():
            changed.update(((table, row_id, column), (value, new[row_id][column]))
                           for column, value in old[row_id].items() if new[row_id][column] != value)
    return added, removed, changed


def test_the_snapshot_covers_every_feature_table(ctx, world):
    tables = {model.__tablename__ for model in vars(feature_models).values()
              if isinstance(model, type) and issubclass(model, db.Model)
              and model.__module__ == feature_models.__name__}
    assert tables <= set(snapshot(world.account)), "a feature table is missing from the restoration snapshot"


def test_the_compare_sees_one_changed_value_one_row_added_and_one_removed(ctx, world, make):
    features = make.features(world.account)
    before = snapshot(world.account)
    db.session.get(Listing, features.listing).description = "Rewritten"
    db.session.delete(db.session.get(ListingConnection, features.connection))
    db.session.add(Survey(account_id=world.account, kind="survey", subject="New"))
    db.session.commit()
    added, removed, changed = differences(before, snapshot(world.account))
    assert changed == {("listings", features.listing, "description"): (None, "Rewritten")}
    assert list(removed) == [("listing_connections", features.connection)]
    assert [key[0] for key in added] == ["surveys"]


# ---------------------------------------------------------------- filling the account

def fill(client, world, make, feeds):  # noqa: F811 - the fixture's value
    """Give the account users, settings and every feature, through the domain functions and the endpoint."""
    f = SimpleNamespace(second=make.user("account_manager", world.account, name="Max Manager"))
    manager, tier = person(world.manager), person(world.tier)
    account = db.session.get(Account, world.account)
    account.settings = {"timezone": "Europe/Lisbon", "reminders": True, "seats": 40}
    db.session.commit()
    f.number = account.number
    early = T0 - timedelta(hours=6)
    f.survey = surveys.create_survey(manager, "survey", "How was your dinner?", "Tell us in a minute.", now=early).id
    f.reminder = surveys.create_survey(manager, "reminder", "We miss you", "Come back soon.", now=early).id
    f.running = campaigns.create_campaign(manager, "After dinner", f.survey, "2", "50", now=early).id
    f.paused = campaigns.create_campaign(manager, "Win back", f.reminder, "24", "10", now=early).id
    _key, f.key_text = ingestion_keys.create_key(manager, world.account, "Till in the shop", now=early)
    db.session.commit()
    answer = client.post("/api/v1/ingest", headers={"Authorization": f"Bearer {f.key_text}"}, json={"records": [
        visit(1, T0 - timedelta(hours=5)), visit(2, T0 - timedelta(hours=4)), visit(3, T0 - timedelta(hours=1))]})
    assert answer.status_code == 200 and answer.get_json()["accepted"] == 3, answer.get_json()
    upload = ("name,email,visited_at,external_id\n"
              f"Guest 4,guest4@example.com,{T0 - timedelta(minutes=30):%Y-%m-%dT%H:%M},visit-4\n")
    assert ingestion.ingest_upload(manager, upload.encode(), now=T0 - timedelta(minutes=20)).counts["accepted"] == 1
    campaigns.change_state(manager, f.paused, "pause", now=T0 - timedelta(minutes=10))
    assert jobs.send_campaigns(now=T0)["sent"] == 2  # visits 1 and 2 are due; 3 and 4 wait (due T0+1h, T0+1h30)
    surveys.send_manual(tier, f.reminder, "Rita Guest", "rita@example.com", now=T0)
    f.main = listings.create_listing(manager, {"name": "Harbour front", "address": "1 Quay St",
                                               "phone": "(201) 555-0100", "description": "By the water."}, now=T0).id
    f.maps = listings.connect_directory(manager, f.main, {"directory": "Maps directory", "external_ref": "maps:1"},
                                        now=T0).id
    listings.connect_directory(manager, f.main, {"directory": "City guide"}, now=T0)  # pending
    listings.set_published(manager, f.main, True, now=T0)
    f.terrace = listings.create_listing(manager, {"name": "Terrace"}, now=T0).id  # not published
    profiles.update_profile(manager, world.account, PROFILE_FORM, now=T0)
    f.feed_url = feeds.set("/bistro.json", json_feed(post_item(2), post_item(1)))
    f.feed = social_profiles.connect_profile(manager, "reviews", "@bistro", f.feed_url, now=T0).id
    assert jobs.poll_social_feeds(now=T0)["imported"] == 2
    f.post = db.session.scalar(select(SocialPost.id).where(SocialPost.external_id == "post-1"))
    social_posts.act_on_post(manager, f.post, "flag", now=T0)
    reservations.book(person(world.member), "2026-12-24T19:30", "4", "Window table", now=T0)
    return f


def outbox_since(email_id):
    return list(db.session.scalars(select(OutboxEmail).where(OutboxEmail.id > email_id).order_by(OutboxEmail.id)))


def last_email_id():
    return db.session.scalar(select(OutboxEmail.id).order_by(OutboxEmail.id.desc()).limit(1)) or 0


def history(campaign_id):
    return [(e.kind, e.message) for e in campaigns.history(campaign_id)][::-1]


# ---------------------------------------------------------------- while suspended

def try_ingestion_and_campaigns(client, world, f):
    manager = person(world.manager)
    counts = (len(snapshot(world.account)["ingestion_records"]), len(snapshot(world.account)["survey_requests"]))
    answer = client.post("/api/v1/ingest", headers={"Authorization": f"Bearer {f.key_text}"},
                         json={"records": [visit(5, T0)]})
    assert (answer.status_code, answer.get_json()) == (423, {"error": "Ingestion paused", "message": gate.PAUSED})
    upload = b"email,visited_at\nguest6@example.com,2026-11-30T08:00\n"
    assert refused(ingestion.ingest_upload, manager, upload, now=T0 + timedelta(hours=1)) == READ_ONLY
    assert refused(ingestion_keys.create_key, manager, world.account, "Another till") == READ_ONLY
    snap = snapshot(world.account)
    assert (len(snap["ingestion_records"]), len(snap["survey_requests"])) == counts  # nothing inserted
    assert refused(campaigns.create_campaign, manager, "Brunch", f.survey, "1", "5") == READ_ONLY
    assert refused(campaigns.change_state, manager, f.running, "pause") == READ_ONLY
    assert refused(campaigns.change_state, manager, f.running, "end") == READ_ONLY
    assert refused(campaigns.change_state, manager, f.paused, "resume") == READ_ONLY
    assert refused(surveys.create_survey, manager, "survey", "New one", "") == READ_ONLY
    assert refused(surveys.update_survey, manager, f.survey, "survey", "Changed", "") == READ_ONLY
    for survey_id in (f.survey, f.reminder):  # a manual survey and a manual reminder
        assert refused(surveys.send_manual, manager, survey_id, "Rita", "rita@example.com") == READ_ONLY
        assert refused(surveys.send_manual, person(world.tier), survey_id, "", "rita@example.com") == (
            gate.MEMBER_SUSPENDED)
    # The campaign job sends nothing (visits 3 and 4 are due now) and says why in the history, once.
    for minutes in (180, 210):
        assert jobs.send_campaigns(now=T0 + timedelta(minutes=minutes)) == {"campaigns": 1, "sent": 0, "held": 1}
    assert history(f.running)[-1] == ("held", "paused: account suspended")
    assert [kind for kind, _ in history(f.running)].count("held") == 1
    assert "held" not in [kind for kind, _ in history(f.paused)]  # paused by the manager: nothing to hold


def try_listings_profile_social_and_booking(world, f, feeds):  # noqa: F811 - the fixture's value
    manager, tier, admin = person(world.manager), person(world.tier), person(world.admin)
    edited = {"name": "Harbour front (closed)", "address": "1 Quay St"}
    assert refused(listings.update_listing, manager, f.main, edited) == READ_ONLY
    assert refused(listings.update_listing, tier, f.main, edited) == gate.MEMBER_SUSPENDED
    assert refused(listings.set_published, manager, f.terrace, True) == READ_ONLY
    assert refused(listings.set_published, manager, f.main, False) == READ_ONLY
    assert refused(listings.connect_directory, manager, f.main, {"directory": "Food guide"}) == READ_ONLY
    assert refused(listings.disconnect_directory, manager, f.main, f.maps) == READ_ONLY
    assert refused(listings.create_listing, manager, {"name": "Pop-up"}) == READ_ONLY
    assert refused(profiles.update_profile, manager, world.account, dict(PROFILE_FORM, headline="Closed")) == (
        READ_ONLY)
    # A super admin may edit the profile while the account is suspended, and it is public at once; the test
    # puts the text back (the save's who-and-when stays: an allowed difference, below).
    closed = dict(PROFILE_FORM, headline="Closed until further notice")
    assert profiles.update_profile(admin, world.account, closed, now=T0 + timedelta(hours=2)) == ["headline"]
    assert profiles.public_profile(f.number)[1].headline == "Closed until further notice"
    assert profiles.update_profile(admin, world.account, PROFILE_FORM, now=f.profile_put_back) == ["headline"]
    assert profiles.public_profile(f.number)[1].headline == PROFILE_FORM["headline"]  # visible all along
    # Posts keep arriving, their alerts are held.
    feeds.set("/bistro.json", json_feed(post_item(4), post_item(3), post_item(2), post_item(1)))
    during = jobs.poll_social_feeds(now=T0 + timedelta(hours=3))
    assert (during["imported"], during["profiles"][0]["alerts"]) == (2, "held")
    feeds.set("/bistro.json", json_feed(post_item(5), post_item(4), post_item(3), post_item(2), post_item(1)))
    during = jobs.poll_social_feeds(now=T0 + timedelta(hours=3, minutes=20))
    assert (during["imported"], during["profiles"][0]["alerts"], during["summaries"]) == (1, "held", [])
    for action in ("reply", "flag", "hide"):
        assert refused(social_posts.act_on_post, manager, f.post, action, note="Thank you!") == READ_ONLY
        assert refused(social_posts.act_on_post, tier, f.post, action, note="Thank you!") == gate.MEMBER_SUSPENDED
    assert refused(social_profiles.connect_profile, manager, "x", "@bistro2", feeds.url("/other.json")) == READ_ONLY
    assert refused(social_profiles.disconnect_profile, manager, f.feed) == READ_ONLY
    assert refused(reservations.book, manager, "2026-12-31T20:00", "2") == BOOKING_REFUSED
    assert refused(reservations.book, person(world.member), "2026-12-31T20:00", "2") == gate.MEMBER_SUSPENDED


# ---------------------------------------------------------------- the differences allowed, each by name

def allowed_differences(world, f, before, after):
    """The changes a suspension and reactivation may leave, built from what the test did.

    (a) the posts imported while suspended: there, alert summarised in the one summary after reactivation;
    (b) the campaign's history: held ("paused: account suspended"), released, and the backlog's send;
        the backlog's requests sent then (status, time, their email); the feed's poll bookkeeping;
    (c) the super admin's save of the profile while suspended: the text is put back, who and when remain.
    """
    polled = {"post-3": T0 + timedelta(hours=3), "post-4": T0 + timedelta(hours=3),
              "post-5": T0 + timedelta(hours=3, minutes=20)}
    summarised = {("social_posts", post_id): {
        "id": post_id, "account_id": world.account, "social_profile_id": f.feed, "external_id": post["external_id"],
        "network": "reviews", "author": f"Guest {post['external_id'][-1]}", "url": post["url"],
        "content": f"Review number {post['external_id'][-1]}", "posted_at": post["posted_at"],
        "imported_at": polled.get(post["external_id"]), "alert_state": "summarised", "alert_sent_at": BACK_AT,
        "action_taken": None, "action_note": None, "acted_by_id": None, "acted_at": None}
        for post_id, post in after["social_posts"].items() if post_id not in before["social_posts"]}
    events = {("campaign_events", event_id): event for event_id, event in after["campaign_events"].items()
              if event_id not in before["campaign_events"]}
    emails = {e.to_addr: e.id for e in db.session.scalars(select(OutboxEmail).where(
        OutboxEmail.kind == "campaign_survey", OutboxEmail.created_at == BACK_AT))}
    backlog = {request_id: request for request_id, request in before["survey_requests"].items()
               if request["campaign_id"] == f.running and request["status"] == "pending"}
    changed = {}
    for request_id, request in backlog.items():
        changed.update({("survey_requests", request_id, "status"): ("pending", "sent"),
                        ("survey_requests", request_id, "sent_at"): (None, BACK_AT),
                        ("survey_requests", request_id, "outbox_email_id"): (None, emails[request["recipient_email"]])})
    feed = before["social_profiles"][f.feed]
    for column, value in (("last_polled_at", BACK_AT), ("last_success_at", BACK_AT),
                          ("next_poll_at", BACK_AT + timedelta(minutes=15))):
        changed[("social_profiles", f.feed, column)] = (feed[column], value)
    profile_id, profile = next(iter(before["profiles"].items()))
    changed[("profiles", profile_id, "updated_by_id")] = (world.manager.id, world.admin.id)
    changed[("profiles", profile_id, "updated_at")] = (T0, f.profile_put_back)
    return summarised, events, changed, backlog


def test_suspend_try_everything_reactivate_and_every_row_is_as_it_was(ctx, client, world, make, feeds):  # noqa: F811
    f = fill(client, world, make, feeds)
    f.profile_put_back = T0 + timedelta(hours=2, minutes=5)
    before = snapshot(world.account)
    assert {table: len(rows) for table, rows in before.items()} == {
        "accounts": 1, "users": 4, "ingestion_keys": 1, "ingestion_records": 4, "surveys": 2, "campaigns": 2,
        "survey_requests": 9, "listings": 2, "profiles": 1, "social_profiles": 1, "social_posts": 2,
        "reservations": 1, "campaign_events": 4, "listing_connections": 2}
    assert sorted(r["status"] for r in before["survey_requests"].values()) == ["pending"] * 6 + ["sent"] * 3

    suspension.suspend(person(world.admin), world.account, "non_payment", "Three invoices overdue.", now=SUSPENDED_AT)
    mark = last_email_id()
    try_ingestion_and_campaigns(client, world, f)
    try_listings_profile_social_and_booking(world, f, feeds)
    assert outbox_since(mark) == []  # no survey, no reminder, no alert while suspended

    suspension.reactivate(person(world.admin), world.account, "paid", "Paid in full.", now=BACK_AT)
    reactivated = last_email_id()
    assert jobs.send_campaigns(now=BACK_AT)["sent"] == 2  # the backlog, once
    summaries = jobs.poll_social_feeds(now=BACK_AT)["summaries"]
    assert summaries == [{"account_id": world.account, "posts": 3, "emails": 2}]
    again = BACK_AT + timedelta(minutes=10)
    assert jobs.send_campaigns(now=again)["sent"] == 0 and jobs.poll_social_feeds(now=again)["summaries"] == []
    sent = outbox_since(reactivated)
    assert sorted((e.kind, e.to_addr) for e in sent) == sorted(
        [("campaign_survey", "guest3@example.com"), ("campaign_survey", "guest4@example.com"),
         ("social_summary", world.manager.email), ("social_summary", f.second.email)])
    summary = next(e for e in sent if e.kind == "social_summary")
    assert summary.subject == f"3 social posts arrived while your account {f.number} was suspended"
    assert all(f"Review number {n}" in summary.body for n in (3, 4, 5)) and "Review number 1" not in summary.body
    assert history(f.running)[-3:] == [("held", "paused: account suspended"),
                                       ("released", "resumed: account reactivated"), ("sent", "sent 2 survey requests")]

    after = snapshot(world.account)
    added, removed, changed = differences(before, after)
    summarised, events, allowed, backlog = allowed_differences(world, f, before, after)
    assert removed == {}
    assert {key: row for key, row in added.items() if key[0] == "social_posts"} == summarised
    assert sorted(row["external_id"] for row in summarised.values()) == ["post-3", "post-4", "post-5"]
    assert [(e["campaign_id"], e["kind"], e["count"], e["at"]) for e in events.values()] == [
        (f.running, "held", None, T0 + timedelta(hours=3)), (f.running, "released", None, BACK_AT),
        (f.running, "sent", 2, BACK_AT)]
    assert set(added) == set(summarised) | set(events), "rows added that no allowed difference explains"
    assert changed == allowed, "values changed that no allowed difference explains"
    assert sorted(r["recipient_email"] for r in backlog.values()) == ["guest3@example.com", "guest4@example.com"]

    works_again(client, world, f)


def works_again(client, world, f):
    """After the compare: each refused action works again for the same people."""
    manager = person(world.manager)
    answer = client.post("/api/v1/ingest", headers={"Authorization": f"Bearer {f.key_text}"},
                         json={"records": [visit(5, BACK_AT)]})
    assert answer.status_code == 200 and json.loads(answer.data)["accepted"] == 1
    assert profiles.update_profile(manager, world.account, dict(PROFILE_FORM, headline="Open again")) == ["headline"]
    assert listings.set_published(manager, f.terrace, True) is True
    assert social_posts.act_on_post(manager, f.post, "reply", note="Thank you!").action_taken == "replied"
    assert surveys.send_manual(person(world.tier), f.survey, "Rita", "rita@example.com").status == "sent"
    assert campaigns.change_state(manager, f.running, "pause").state == "paused"
    assert reservations.book(manager, "2026-12-31T20:00", "2").party_size == 2
