"""What an account does, which a suspension gates but never rewrites.

    ingestion   keys (stored as digests) and the records they bring in (one per external id)
    campaigns   automated campaigns, their history, the surveys they send and the requests sent
    listings    listings with their connections to outside directories
    profiles    the public profile
    social      connected social profiles (feeds) and the posts imported from them
"""
from datetime import datetime

from sqlalchemy import Boolean, DateTime, ForeignKey, Index, Integer, String, Text, UniqueConstraint, false, true
from sqlalchemy.orm import Mapped, mapped_column

from portal.extensions import db
from portal.timeutil import utcnow


# ---------------------------------------------------------------- ingestion

class IngestionKey(db.Model):
    """A per-account key for the ingestion endpoint: shown once, stored as a SHA-256 digest."""

    __tablename__ = "ingestion_keys"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    prefix: Mapped[str] = mapped_column(String(16))  # the first characters, shown so people can tell keys apart
    digest: Mapped[str] = mapped_column(String(64), unique=True)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime)
    revoked_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))


class IngestionRecord(db.Model):
    """One transaction brought in (a customer's visit); unique per account and external id."""

    __tablename__ = "ingestion_records"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    source: Mapped[str] = mapped_column(String(50))  # upload | api | ...
    external_id: Mapped[str] = mapped_column(String(100))
    customer_name: Mapped[str | None] = mapped_column(String(200))
    customer_email: Mapped[str | None] = mapped_column(String(255))
    visited_at: Mapped[datetime | None] = mapped_column(DateTime)
    key_id: Mapped[int | None] = mapped_column(ForeignKey("ingestion_keys.id"))
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    payload: Mapped[str] = mapped_column(Text)  # the row as received (JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    __table_args__ = (
        UniqueConstraint("account_id", "external_id", name="uq_ingestion_records_account_external"),
        Index("ix_ingestion_records_account_created", "account_id", "created_at", "id"),
    )


# ---------------------------------------------------------------- surveys and campaigns

class Survey(db.Model):
    """A survey (or reminder) an account sends to its customers: its subject and text."""

    __tablename__ = "surveys"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    kind: Mapped[str] = mapped_column(String(10), default="survey")  # survey | reminder
    subject: Mapped[str] = mapped_column(String(200))
    body: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Campaign(db.Model):
    """An automated campaign: sends its survey a delay after each ingested visit, up to a daily limit."""

    __tablename__ = "campaigns"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    automated: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    state: Mapped[str] = mapped_column(String(20), default="active")  # draft | active | paused | ended
    survey_id: Mapped[int | None] = mapped_column(ForeignKey("surveys.id"))
    delay_hours: Mapped[int] = mapped_column(Integer, default=24, server_default="24")
    daily_limit: Mapped[int] = mapped_column(Integer, default=100, server_default="100")
    # set by the campaign job while the gate stops it ("paused: account suspended"), cleared when it resumes
    held_reason: Mapped[str | None] = mapped_column(String(200))
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime | None] = mapped_column(DateTime)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime)


class CampaignEvent(db.Model):
    """The campaign's history: created, paused, resumed, ended, sent N, held by the gate and released."""

    __tablename__ = "campaign_events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id"))
    at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    kind: Mapped[str] = mapped_column(String(30))
    message: Mapped[str] = mapped_column(String(500))
    count: Mapped[int | None] = mapped_column(Integer)
    actor_label: Mapped[str | None] = mapped_column(String(255))

    __table_args__ = (Index("ix_campaign_events_campaign", "campaign_id", "id"),)


class SurveyRequest(db.Model):
    """One survey or reminder to one customer: due from a campaign, or sent by hand."""

    __tablename__ = "survey_requests"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    survey_id: Mapped[int | None] = mapped_column(ForeignKey("surveys.id"))
    campaign_id: Mapped[int | None] = mapped_column(ForeignKey("campaigns.id"))
    ingestion_record_id: Mapped[int | None] = mapped_column(ForeignKey("ingestion_records.id"))
    kind: Mapped[str] = mapped_column(String(10), default="survey")  # survey | reminder
    manual: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    recipient_name: Mapped[str | None] = mapped_column(String(200))
    recipient_email: Mapped[str] = mapped_column(String(255))
    due_at: Mapped[datetime] = mapped_column(DateTime)
    status: Mapped[str] = mapped_column(String(12), default="pending")  # pending | sent | cancelled
    sent_at: Mapped[datetime | None] = mapped_column(DateTime)
    outbox_email_id: Mapped[int | None] = mapped_column(Integer)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    __table_args__ = (
        # one request per campaign and visit, whatever runs the campaign and however often
        UniqueConstraint("campaign_id", "ingestion_record_id", name="uq_survey_requests_campaign_record"),
        Index("ix_survey_requests_due", "status", "due_at", "id"),
        Index("ix_survey_requests_account", "account_id", "id"),
    )


# ---------------------------------------------------------------- listings and profile

class Listing(db.Model):
    """A business listing; its connections to outside directories are kept while the account is suspended."""

    __tablename__ = "listings"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    address: Mapped[str | None] = mapped_column(String(300))
    phone: Mapped[str | None] = mapped_column(String(50))
    description: Mapped[str | None] = mapped_column(Text)
    published: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    published_at: Mapped[datetime | None] = mapped_column(DateTime)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class ListingConnection(db.Model):
    """A listing's link to an outside directory (its name, status and the directory's own reference)."""

    __tablename__ = "listing_connections"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    listing_id: Mapped[int] = mapped_column(ForeignKey("listings.id"), index=True)
    directory: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(20), default="connected")  # connected | pending | error
    external_ref: Mapped[str | None] = mapped_column(String(200))
    connected_at: Mapped[datetime | None] = mapped_column(DateTime)


class Profile(db.Model):
    """The account's public profile (at /p/<account number>); it stays visible while the account is suspended."""

    __tablename__ = "profiles"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), unique=True)
    public: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    headline: Mapped[str] = mapped_column(String(200))
    body: Mapped[str | None] = mapped_column(Text)
    website: Mapped[str | None] = mapped_column(String(300))
    phone: Mapped[str | None] = mapped_column(String(50))
    updated_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


# ---------------------------------------------------------------- social monitor

class SocialProfile(db.Model):
    """A connected social profile: the feed (JSON or RSS) the social monitor polls for its posts."""

    __tablename__ = "social_profiles"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    network: Mapped[str] = mapped_column(String(30))
    handle: Mapped[str] = mapped_column(String(100))
    feed_url: Mapped[str] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    last_polled_at: Mapped[datetime | None] = mapped_column(DateTime)
    last_success_at: Mapped[datetime | None] = mapped_column(DateTime)
    last_error: Mapped[str | None] = mapped_column(String(500))
    failures: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    next_poll_at: Mapped[datetime | None] = mapped_column(DateTime, index=True)


class SocialPost(db.Model):
    """A post imported by the social monitor; alerts about it and actions on it are gated."""

    __tablename__ = "social_posts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    social_profile_id: Mapped[int | None] = mapped_column(ForeignKey("social_profiles.id"))
    external_id: Mapped[str | None] = mapped_column(String(200))
    network: Mapped[str] = mapped_column(String(30))
    author: Mapped[str | None] = mapped_column(String(200))
    url: Mapped[str | None] = mapped_column(String(500))
    content: Mapped[str] = mapped_column(Text)
    posted_at: Mapped[datetime | None] = mapped_column(DateTime)
    imported_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    # none | sent | held (the gate paused it) | summarised (in the one summary after reactivation)
    alert_state: Mapped[str] = mapped_column(String(12), default="none", server_default="none")
    alert_sent_at: Mapped[datetime | None] = mapped_column(DateTime)
    action_taken: Mapped[str | None] = mapped_column(String(30))  # replied | flagged | hidden
    action_note: Mapped[str | None] = mapped_column(Text)
    acted_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    acted_at: Mapped[datetime | None] = mapped_column(DateTime)

    __table_args__ = (
        UniqueConstraint("social_profile_id", "external_id", name="uq_social_posts_profile_external"),
        Index("ix_social_posts_alert_state", "alert_state", "account_id"),
    )
