"""Cancellation requests logged by support and resolved by a super admin."""
from datetime import date, datetime

from sqlalchemy import BigInteger, Date, DateTime, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.extensions import db
from portal.timeutil import utcnow


class CancellationRequest(db.Model):
    """A customer's request to leave, taken by call, text or email, and its retention outcome."""

    __tablename__ = "cancellation_requests"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    contact_name: Mapped[str] = mapped_column(String(200))
    phone: Mapped[str | None] = mapped_column(String(50))
    channel: Mapped[str] = mapped_column(String(10), default="call")  # call | text | email
    request_date: Mapped[date] = mapped_column(Date)
    amount_collected_cents: Mapped[int] = mapped_column(BigInteger, default=0)
    months_in_program: Mapped[int] = mapped_column(Integer, default=0)
    reason: Mapped[str] = mapped_column(Text)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    outcome: Mapped[str] = mapped_column(String(20), default="open")  # open|retained|cancelled|suspended
    outcome_note: Mapped[str | None] = mapped_column(Text)
    resolved_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime)

    account = relationship("Account")

    __table_args__ = (
        Index("ix_cancellation_requests_created", "created_at", "id"),
        Index("ix_cancellation_requests_account_id", "account_id"),
    )
