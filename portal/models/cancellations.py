"""Cancellation requests logged by support, the retention attempts on them, and their outcome."""
from datetime import date, datetime

from sqlalchemy import BigInteger, Date, DateTime, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.extensions import db
from portal.timeutil import utcnow


class CancellationRequest(db.Model):
    """A customer's request to leave, taken by call, text or email, and its retention outcome.

    outcome: open, then retained | paused (suspended at the customer's request until pause_until) |
    cancelled | withdrawn. import_key marks a row imported from the old spreadsheet (a digest of its
    values), so importing the same file twice creates nothing new.
    """

    __tablename__ = "cancellation_requests"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    contact_name: Mapped[str] = mapped_column(String(200))
    phone: Mapped[str | None] = mapped_column(String(50))  # E.164
    channel: Mapped[str] = mapped_column(String(10), default="call")  # call | text | email
    request_date: Mapped[date] = mapped_column(Date)
    amount_collected_cents: Mapped[int] = mapped_column(BigInteger, default=0)
    months_in_program: Mapped[int] = mapped_column(Integer, default=0)
    reason_code: Mapped[str] = mapped_column(String(30), default="other", server_default="other")
    reason: Mapped[str] = mapped_column(Text)  # free text, may be empty
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    outcome: Mapped[str] = mapped_column(String(20), default="open")
    outcome_note: Mapped[str | None] = mapped_column(Text)
    pause_until: Mapped[date | None] = mapped_column(Date)
    import_key: Mapped[str | None] = mapped_column(String(64))
    resolved_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime)

    account = relationship("Account")
    created_by = relationship("User", foreign_keys=[created_by_id])
    resolved_by = relationship("User", foreign_keys=[resolved_by_id])

    __table_args__ = (
        Index("ix_cancellation_requests_created", "created_at", "id"),
        Index("ix_cancellation_requests_account_id", "account_id"),
        Index("ix_cancellation_requests_date", "request_date", "id"),  # the log: newest first, keyset pages
        Index("ix_cancellation_requests_import_key", "import_key", unique=True),
    )


class RetentionAttempt(db.Model):
    """One attempt by a manager to keep a customer: when, the offer, the customer's answer, a note."""

    __tablename__ = "retention_attempts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("cancellation_requests.id"))
    attempted_at: Mapped[datetime] = mapped_column(DateTime)
    offer: Mapped[str] = mapped_column(String(20))  # discount | pause | downgrade | none
    answer: Mapped[str] = mapped_column(String(20))  # accepted | declined | undecided
    note: Mapped[str | None] = mapped_column(Text)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    created_by = relationship("User")

    __table_args__ = (Index("ix_retention_attempts_request_id", "request_id", "id"),)
