"""Demo data for the gated features of the first accounts, so a new user sees each one in use at once.

Each demo account gets two surveys (a survey and a reminder), a running campaign and a paused one with their
history, an ingestion key, customers' visits brought in by upload and through the endpoint with the survey
requests they led to (some sent, some still pending), two listings with their directory connections, the
public profile, a connected social profile and a few posts. Every table is written with one multi-row insert
for all the demo accounts; ids come back in the rows' order (RETURNING) for the rows that point at them.

The social profile's feed is an example address under feeds.example.invalid (no such host can exist) whose
next poll is set ten years ahead: the poller takes profiles whose next_poll_at is unset or past, so the demo's
worker never tries it. Its posts were "imported" before the demo began, their alerts already sent.
"""
import json
import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import insert

from portal.domain.features.ingestion_keys import KEY_START, PREFIX_LENGTH, digest_of
from portal.models import (Campaign, CampaignEvent, IngestionKey, IngestionRecord, Listing, ListingConnection,
                           Profile, SocialPost, SocialProfile, Survey, SurveyRequest)

FEED_HOST = "https://feeds.example.invalid"
NO_POLL_FOR = timedelta(days=3650)
GUESTS = [("Alex", "Nguyen"), ("Jordan", "Garcia"), ("Casey", "Okafor"), ("Riley", "Rossi"), ("Morgan", "Silva"),
          ("Avery", "Tanaka"), ("Quinn", "Haddad"), ("Drew", "Schmidt")]
# Hours before now of each demo visit; its survey is due 24 h later, so the first four are sent, the rest pending.
# The odd ones were uploaded (CSV), the even ones came through the endpoint, each INGESTED_AFTER its visit.
VISIT_HOURS_AGO = (150, 120, 75, 30, 10, 2)
INGESTED_AFTER = timedelta(minutes=30)
POSTS = [("Priya K.", "Lovely evening, great service! We'll be back.", 52),
         ("Tom B.", "Booked for six at short notice and they made it work.", 28),
         ("Lena M.", "The new seasonal menu is excellent.", 5)]


@dataclass(frozen=True)
class DemoAccount:
    """What the feature rows of one demo account need to know about it."""

    id: int
    number: str
    name: str
    phone: str | None
    manager_id: int | None
    manager_label: str


def _insert(conn, model, rows):
    """Insert rows in one statement; return their new ids in the rows' order."""
    table = model.__table__
    return conn.execute(insert(table).returning(table.c.id, sort_by_parameter_order=True), rows).scalars().all()


def _slug(name):
    return "".join(ch if ch.isalnum() else "-" for ch in name.lower()).strip("-")


def seed_features(conn, now, accounts):
    """Write the demo features of accounts (a list of DemoAccount) in the caller's transaction."""
    if not accounts:
        return
    surveys = _surveys(conn, now, accounts)
    campaigns = _campaigns(conn, now, accounts, surveys)
    _ingestion_and_requests(conn, now, accounts, surveys, campaigns)
    _listings(conn, now, accounts)
    _profiles_and_social(conn, now, accounts)


def _surveys(conn, now, accounts):
    """Return {(account_id, kind): (survey id, subject)}."""
    rows = []
    for a in accounts:
        rows.append(dict(account_id=a.id, kind="survey", subject=f"How was your visit to {a.name}?",
                         body="Tell us in one minute what you liked and what we could do better.",
                         created_at=now - timedelta(days=40)))
        rows.append(dict(account_id=a.id, kind="reminder", subject="A quick reminder: how was your visit?",
                         body="We'd still love to hear from you; it takes a minute.",
                         created_at=now - timedelta(days=40)))
    ids = _insert(conn, Survey, rows)
    return {(row["account_id"], row["kind"]): (id_, row["subject"]) for row, id_ in zip(rows, ids)}


def _campaigns(conn, now, accounts, surveys):
    """Write a running and a paused campaign per account with their history; return {account_id: running id}."""
    rows = []
    for a in accounts:
        rows.append(dict(account_id=a.id, name="After-visit survey", automated=True, state="active",
                         survey_id=surveys[(a.id, "survey")][0], delay_hours=24, daily_limit=200,
                         created_by_id=a.manager_id, created_at=now - timedelta(days=30),
                         updated_at=now - timedelta(days=30)))
        rows.append(dict(account_id=a.id, name="Second-visit reminder", automated=True, state="paused",
                         survey_id=surveys[(a.id, "reminder")][0], delay_hours=72, daily_limit=50,
                         created_by_id=a.manager_id, created_at=now - timedelta(days=20),
                         updated_at=now - timedelta(days=5)))
    ids = _insert(conn, Campaign, rows)
    labels = {a.id: a.manager_label for a in accounts}
    subjects = {id_: subject for id_, subject in surveys.values()}
    events, running = [], {}
    for row, campaign_id in zip(rows, ids):
        label = labels[row["account_id"]]
        events.append(dict(campaign_id=campaign_id, at=row["created_at"], kind="created", count=None,
                           actor_label=label, message=f"Created: sends “{subjects[row['survey_id']]}” "
                                                      f"{row['delay_hours']} h after each visit, "
                                                      f"at most {row['daily_limit']:,} a day."))
        if row["state"] == "paused":
            events.append(dict(campaign_id=campaign_id, at=row["updated_at"], kind="paused", count=None,
                               actor_label=label, message="Paused."))
            continue
        running[row["account_id"]] = campaign_id
        for hours in VISIT_HOURS_AGO:
            if hours > 24:  # this visit's survey fell due and was sent
                events.append(dict(campaign_id=campaign_id, at=now - timedelta(hours=hours - 24), kind="sent",
                                   count=1, actor_label="system", message="sent 1 survey request"))
    conn.execute(insert(CampaignEvent.__table__), events)
    return running


def _ingestion_and_requests(conn, now, accounts, surveys, campaigns):
    """Write a key, the visits (half uploaded, half through the endpoint) and their survey requests."""
    keys = [dict(account_id=a.id, name="Till in the shop", created_by_id=a.manager_id,
                 created_at=now - timedelta(days=35),
                 last_used_at=now - timedelta(hours=min(VISIT_HOURS_AGO[1::2])) + INGESTED_AFTER,
                 **_unknown_key()) for a in accounts]
    key_ids = dict(zip((a.id for a in accounts), _insert(conn, IngestionKey, keys)))
    records = []
    for a in accounts:
        for n, hours in enumerate(VISIT_HOURS_AGO, start=1):
            first, last = GUESTS[(a.id * 3 + n) % len(GUESTS)]
            visited = now - timedelta(hours=hours)
            row = {"name": f"{first} {last}", "email": f"{first}.{last}@guests.example".lower(),
                   "visited_at": visited.isoformat(timespec="minutes"), "external_id": f"visit-{n:04d}"}
            by_api = n % 2 == 0  # keep in step with last_used_at above
            records.append(dict(account_id=a.id, source="api" if by_api else "upload", external_id=row["external_id"],
                                customer_name=row["name"], customer_email=row["email"], visited_at=visited,
                                key_id=key_ids[a.id] if by_api else None,
                                created_by_id=None if by_api else a.manager_id, payload=json.dumps(row),
                                created_at=visited + INGESTED_AFTER))
    record_ids = _insert(conn, IngestionRecord, records)
    requests = []
    for record, record_id in zip(records, record_ids):
        due = record["visited_at"] + timedelta(hours=24)
        sent = due <= now
        requests.append(dict(account_id=record["account_id"], survey_id=surveys[(record["account_id"], "survey")][0],
                             campaign_id=campaigns[record["account_id"]], ingestion_record_id=record_id,
                             kind="survey", manual=False, recipient_name=record["customer_name"],
                             recipient_email=record["customer_email"], due_at=due,
                             status="sent" if sent else "pending", sent_at=due if sent else None,
                             created_by_id=None, created_at=record["created_at"]))
    for a in accounts:  # and a reminder sent by hand to the first visitor
        first = next(r for r in records if r["account_id"] == a.id)
        requests.append(dict(account_id=a.id, survey_id=surveys[(a.id, "reminder")][0], campaign_id=None,
                             ingestion_record_id=None, kind="reminder", manual=True,
                             recipient_name=first["customer_name"], recipient_email=first["customer_email"],
                             due_at=now - timedelta(days=2), status="sent", sent_at=now - timedelta(days=2),
                             created_by_id=a.manager_id, created_at=now - timedelta(days=2)))
    conn.execute(insert(SurveyRequest.__table__), requests)


def _unknown_key():
    """A key's stored parts for a secret nobody is shown: the demo lists it, but only a new key can be used."""
    text = KEY_START + secrets.token_urlsafe(32)
    return {"prefix": text[:PREFIX_LENGTH], "digest": digest_of(text)}


def _listings(conn, now, accounts):
    """Write a published listing with two connections and an unpublished one with a pending connection."""
    rows = []
    for a in accounts:
        rows.append(dict(account_id=a.id, name=f"{a.name} — Main location", address=f"{10 + a.id} Harbor Street",
                         phone=a.phone, description="Our original location, open every day.", published=True,
                         published_at=now - timedelta(days=60), updated_at=now - timedelta(days=60)))
        rows.append(dict(account_id=a.id, name=f"{a.name} — Market stall", address="Saturday market, stand 4",
                         phone=a.phone, description="Weekends only, from spring.", published=False, published_at=None,
                         updated_at=now - timedelta(days=9)))
    ids = _insert(conn, Listing, rows)
    connections = []
    for row, listing_id in zip(rows, ids):
        if row["published"]:
            connections.append(dict(listing_id=listing_id, directory="Maps directory", status="connected",
                                    external_ref=f"maps:{listing_id:06d}", connected_at=now - timedelta(days=58)))
            connections.append(dict(listing_id=listing_id, directory="City guide", status="connected",
                                    external_ref=f"guide-{listing_id}", connected_at=now - timedelta(days=45)))
        else:
            connections.append(dict(listing_id=listing_id, directory="Maps directory", status="pending",
                                    external_ref=None, connected_at=None))
    conn.execute(insert(ListingConnection.__table__), connections)


def _profiles_and_social(conn, now, accounts):
    """Write the public profile, a connected social profile (never polled by the demo) and its posts."""
    conn.execute(insert(Profile.__table__), [
        dict(account_id=a.id, public=True, headline="Neighbourhood favourite since 2019",
             body="Seasonal menu, friendly staff, and a table for you most nights.",
             website=f"https://{_slug(a.name)}.example", phone=a.phone, updated_by_id=a.manager_id,
             updated_at=now - timedelta(days=15)) for a in accounts])
    feeds = [dict(account_id=a.id, network="reviews", handle=f"@{_slug(a.name)}",
                  feed_url=f"{FEED_HOST}/{a.number.lower()}/reviews.json", created_at=now - timedelta(days=50),
                  last_polled_at=now - timedelta(hours=1), last_success_at=now - timedelta(hours=1), failures=0,
                  next_poll_at=now + NO_POLL_FOR) for a in accounts]
    feed_ids = _insert(conn, SocialProfile, feeds)
    posts = []
    for feed, feed_id in zip(feeds, feed_ids):
        for n, (author, content, hours) in enumerate(POSTS, start=1):
            imported = now - timedelta(hours=hours - 1)
            posts.append(dict(account_id=feed["account_id"], social_profile_id=feed_id, external_id=f"post-{n}",
                              network="reviews", author=author, url=f"{FEED_HOST}/posts/{feed_id}-{n}",
                              content=content, posted_at=now - timedelta(hours=hours), imported_at=imported,
                              alert_state="sent", alert_sent_at=imported))
    conn.execute(insert(SocialPost.__table__), posts)
