"""The account's features that suspension gates (never rewrites): campaigns, surveys, listings, profile, posts."""
from datetime import datetime

from sqlalchemy import Boolean, DateTime, ForeignKey, Integer, String, Text, false, true
from sqlalchemy.orm import Mapped, mapped_column

from portal.extensions import db
from portal.timeutil import utcnow


class Campaign(db.Model):
    """A marketing campaign; automated ones run on their own and pause while suspended."""

    __tablename__ = "campaigns"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    automated: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    state: Mapped[str] = mapped_column(String(20), default="active")  # draft | active | ended
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Survey(db.Model):
    """A survey or reminder sent to the account's customers."""

    __tablename__ = "surveys"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    kind: Mapped[str] = mapped_column(String(10), default="survey")  # survey | reminder
    manual: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    subject: Mapped[str] = mapped_column(String(200))
    sent_at: Mapped[datetime | None] = mapped_column(DateTime)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Listing(db.Model):
    """A business listing connected to an outside directory."""

    __tablename__ = "listings"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    connection: Mapped[str | None] = mapped_column(String(100))
    published: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Profile(db.Model):
    """The account's public profile; it stays visible while the account is suspended."""

    __tablename__ = "profiles"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), unique=True)
    public: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    headline: Mapped[str] = mapped_column(String(200))
    body: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class SocialPost(db.Model):
    """A post imported by the social monitor; alerts and actions on it are gated."""

    __tablename__ = "social_posts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    network: Mapped[str] = mapped_column(String(30))
    content: Mapped[str] = mapped_column(Text)
    imported_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    alert_sent_at: Mapped[datetime | None] = mapped_column(DateTime)
    action_taken: Mapped[str | None] = mapped_column(String(30))


class IngestionRecord(db.Model):
    """A row brought in by automated data ingestion (paused while suspended)."""

    __tablename__ = "ingestion_records"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    source: Mapped[str] = mapped_column(String(50))
    payload: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
