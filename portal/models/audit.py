"""The append-only audit trail and the email outbox."""
from datetime import datetime

from sqlalchemy import JSON, DateTime, Index, Integer, String, Text, event, text
from sqlalchemy.orm import Mapped, Session, mapped_column

from portal.extensions import db
from portal.timeutil import utcnow


class AuditEvent(db.Model):
    """One state change: who (a user, a sweep run or a schedule), what, why, when, before and after.

    Rows are inserted and never updated or deleted; account_id carries no foreign key on purpose
    (bulk sweeps insert many thousands of events per chunk, and events outlive what they describe).
    """

    __tablename__ = "audit_events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    account_id: Mapped[int | None] = mapped_column(Integer)
    actor_user_id: Mapped[int | None] = mapped_column(Integer)
    actor_run_id: Mapped[int | None] = mapped_column(Integer)
    actor_label: Mapped[str] = mapped_column(String(255))
    action: Mapped[str] = mapped_column(String(40))
    reason_category: Mapped[str | None] = mapped_column(String(30))
    reason_note: Mapped[str | None] = mapped_column(Text)
    state_before: Mapped[str | None] = mapped_column(String(30))
    state_after: Mapped[str | None] = mapped_column(String(30))
    data: Mapped[dict | None] = mapped_column(JSON)

    __table_args__ = (
        Index("ix_audit_events_account_id", "account_id", "id"),
        Index("ix_audit_events_actor_run_id", "actor_run_id", "account_id"),
        # The audit log's filters (portal/domain/audit_log.py), each newest first without a scan of the table:
        # a person or API token (partial: a scheduled run's rows name no person and cost this index nothing),
        # an action, a reason, a date range.
        Index("ix_audit_events_actor_user_id", "actor_user_id", "id",
              sqlite_where=text("actor_user_id IS NOT NULL"), postgresql_where=text("actor_user_id IS NOT NULL")),
        Index("ix_audit_events_action", "action", "id"),
        Index("ix_audit_events_reason", "reason_category", "id",
              sqlite_where=text("reason_category IS NOT NULL"), postgresql_where=text("reason_category IS NOT NULL")),
        Index("ix_audit_events_created_at", "created_at", "id"),
    )


@event.listens_for(Session, "before_flush")
def _refuse_audit_changes(session, flush_context, instances):
    """Keep the audit trail append-only at the ORM level."""
    for obj in list(session.dirty) + list(session.deleted):
        if isinstance(obj, AuditEvent):
            raise RuntimeError("Audit events are append-only: they cannot be edited or deleted.")


class OutboxEmail(db.Model):
    """An email waiting to be sent (pending), held while its account is suspended, sent, or failed."""

    __tablename__ = "outbox_emails"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    account_id: Mapped[int | None] = mapped_column(Integer, index=True)
    user_id: Mapped[int | None] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(40))
    to_addr: Mapped[str] = mapped_column(String(255))
    subject: Mapped[str] = mapped_column(String(255))
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(10), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(String(500))
    sent_at: Mapped[datetime | None] = mapped_column(DateTime)

    __table_args__ = (
        Index("ix_outbox_emails_status", "status", "id"),
        # The outbox page's filters (portal/domain/outbox.py): one recipient's emails, one kind of email.
        Index("ix_outbox_emails_to_addr", "to_addr", "id"),
        Index("ix_outbox_emails_kind", "kind", "id"),
    )
