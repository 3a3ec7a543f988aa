"""Suspension rules, sweep runs and the recurring schedule."""
from datetime import datetime

from sqlalchemy import JSON, BigInteger, Boolean, DateTime, ForeignKey, Index, Integer, String, Text, func, true
from sqlalchemy.orm import Mapped, mapped_column

from portal.extensions import db
from portal.timeutil import utcnow


class SuspensionRule(db.Model):
    """A rule whose conditions must all hold; an account matches if any enabled rule matches."""

    __tablename__ = "suspension_rules"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    inactivity_months: Mapped[int | None] = mapped_column(Integer)
    min_balance_cents: Mapped[int | None] = mapped_column(BigInteger)
    overdue_days: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    # Two rules never share a name, whatever its case (names are stored trimmed): the database decides, so two
    # admins adding "Dormant" at once get one rule and one "already taken" at the field (portal/domain/rules.py).
    __table_args__ = (Index("ux_suspension_rules_name_lower", func.lower(name), unique=True),)


class SweepSchedule(db.Model):
    """When the recurring sweep runs: monthly (day and time, UTC) or a cron expression."""

    __tablename__ = "sweep_schedules"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    mode: Mapped[str] = mapped_column(String(10), default="monthly")
    day_of_month: Mapped[int] = mapped_column(Integer, default=1)
    time_of_day: Mapped[str] = mapped_column(String(5), default="03:00")
    cron: Mapped[str | None] = mapped_column(String(100))
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))


class SweepRun(db.Model):
    """One run of set-based work over accounts, with its progress kept here so it can resume."""

    __tablename__ = "sweep_runs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))  # cleanup | recurring | undo | bulk
    action: Mapped[str] = mapped_column(String(20), default="suspend")  # suspend | reactivate
    status: Mapped[str] = mapped_column(String(20), default="queued")  # queued|running|done|failed
    dry_run: Mapped[bool] = mapped_column(Boolean, default=False)
    as_of: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    rules_snapshot: Mapped[list | None] = mapped_column(JSON)
    params: Mapped[dict | None] = mapped_column(JSON)
    trigger: Mapped[str] = mapped_column(String(20), default="user")  # user | schedule | cli
    triggered_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    schedule_id: Mapped[int | None] = mapped_column(ForeignKey("sweep_schedules.id"))
    period_key: Mapped[str | None] = mapped_column(String(40), unique=True)
    # "sweep" while an exclusive run (clean-up, recurring, undo) is queued or running: one at a time.
    lock_key: Mapped[str | None] = mapped_column(String(20), unique=True)
    undo_of_run_id: Mapped[int | None] = mapped_column(ForeignKey("sweep_runs.id"))
    reason_category: Mapped[str | None] = mapped_column(String(30))
    reason_note: Mapped[str | None] = mapped_column(Text)
    min_id: Mapped[int | None] = mapped_column(Integer)
    max_id: Mapped[int | None] = mapped_column(Integer)
    cursor_id: Mapped[int | None] = mapped_column(Integer)
    chunk_size: Mapped[int] = mapped_column(Integer, default=20000)
    matched: Mapped[int] = mapped_column(Integer, default=0)
    changed: Mapped[int] = mapped_column(Integer, default=0)
    skipped: Mapped[int] = mapped_column(Integer, default=0)
    skip_reasons: Mapped[dict | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime)
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime)


class SweepRunChunk(db.Model):
    """One id range of a run. Workers claim chunks, and a chunk is marked done in the same transaction
    that changes its accounts, so a killed worker's chunk is simply claimed again and done once."""

    __tablename__ = "sweep_run_chunks"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("sweep_runs.id"))
    lo: Mapped[int] = mapped_column(Integer)  # first account id (inclusive)
    hi: Mapped[int] = mapped_column(Integer)  # last account id (exclusive)
    claimed_at: Mapped[datetime | None] = mapped_column(DateTime)
    claimed_by: Mapped[str | None] = mapped_column(String(100))
    done_at: Mapped[datetime | None] = mapped_column(DateTime)
    matched: Mapped[int] = mapped_column(Integer, default=0)
    changed: Mapped[int] = mapped_column(Integer, default=0)
    skipped: Mapped[int] = mapped_column(Integer, default=0)
    skip_reasons: Mapped[dict | None] = mapped_column(JSON)

    __table_args__ = (Index("ix_sweep_run_chunks_run_id", "run_id", "id"),)
