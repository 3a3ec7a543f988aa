"""Invoices, payments and reservations."""
from datetime import date, datetime

from sqlalchemy import BigInteger, Date, DateTime, ForeignKey, Index, Integer, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from portal.extensions import db
from portal.timeutil import utcnow

OPEN_INVOICE = text("paid_at IS NULL AND written_off_at IS NULL")


class Invoice(db.Model):
    """An invoice, numbered per account (`seq`); open while neither paid nor written off."""

    __tablename__ = "invoices"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    seq: Mapped[int] = mapped_column(Integer)
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    paid_cents: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")  # settled so far
    issued_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    due_date: Mapped[date] = mapped_column(Date)
    paid_at: Mapped[datetime | None] = mapped_column(DateTime)
    written_off_at: Mapped[datetime | None] = mapped_column(DateTime)
    written_off_reason: Mapped[str | None] = mapped_column(String(500))
    written_off_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))

    __table_args__ = (
        UniqueConstraint("account_id", "seq", name="uq_invoices_account_seq"),
        Index("ix_invoices_open_due", "account_id", "due_date",
              sqlite_where=OPEN_INVOICE, postgresql_where=OPEN_INVOICE),
    )

    @property
    def is_open(self):
        return self.paid_at is None and self.written_off_at is None

    @property
    def owed_cents(self):
        """What the invoice still owes (0 once paid or written off)."""
        return self.amount_cents - self.paid_cents if self.is_open else 0


class Payment(db.Model):
    """Money received against an account (optionally against one invoice)."""

    __tablename__ = "payments"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    invoice_id: Mapped[int | None] = mapped_column(ForeignKey("invoices.id"))
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    paid_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    method: Mapped[str] = mapped_column(String(30), default="card")
    reference: Mapped[str | None] = mapped_column(String(100))
    recorded_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    credit_cents: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")  # kept as credit


class Reservation(db.Model):
    """A reservation made by a customer; the account's last one marks its last activity."""

    __tablename__ = "reservations"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    starts_at: Mapped[datetime] = mapped_column(DateTime)
    party_size: Mapped[int] = mapped_column(Integer, default=1)
    note: Mapped[str | None] = mapped_column(String(500))

    __table_args__ = (Index("ix_reservations_account_created", "account_id", "created_at"),)
