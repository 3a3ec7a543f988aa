"""The dunning schedule's own tables: an episode's manual dates (shift and lift) and the daily run's time."""
from datetime import date, datetime

from sqlalchemy import Boolean, Date, DateTime, ForeignKey, Index, Integer, String, Text, text, true
from sqlalchemy.orm import Mapped, mapped_column

from portal.extensions import db
from portal.timeutil import utcnow

LIVE_OVERRIDE = text("ended_at IS NULL")


class ScheduleOverride(db.Model):
    """A super admin's manual dates for one account's current episode of overdue invoices.

    A shift moves an approaching step to a later date (limitation_date, suspension_date); a lift holds
    an applied restriction off until lift_until. Each holds off every restriction until its date. The
    row belongs to the episode that began on episode_start and ends with it (ended_at); at most one row
    per account is live, which the database enforces. `version` guards two admins changing it at once.
    """

    __tablename__ = "schedule_overrides"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    episode_start: Mapped[date] = mapped_column(Date)
    limitation_date: Mapped[date | None] = mapped_column(Date)
    suspension_date: Mapped[date | None] = mapped_column(Date)
    lift_until: Mapped[date | None] = mapped_column(Date)
    reason_category: Mapped[str | None] = mapped_column(String(30))
    reason_note: Mapped[str | None] = mapped_column(Text)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime)
    end_reason: Mapped[str | None] = mapped_column(String(30))
    version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")

    __table_args__ = (
        Index("ix_schedule_overrides_live", "account_id", unique=True,
              sqlite_where=LIVE_OVERRIDE, postgresql_where=LIVE_OVERRIDE),
        Index("ix_schedule_overrides_account_id", "account_id", "id"),
    )


class DunningSchedule(db.Model):
    """When the daily dunning evaluation runs (UTC time of day); one row."""

    __tablename__ = "dunning_schedules"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    time_of_day: Mapped[str] = mapped_column(String(5), default="02:00", server_default="02:00")
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
