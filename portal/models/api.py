"""The JSON API's tables: tokens and their log, idempotency keys, webhook endpoints and deliveries.

    api_tokens          a named bearer token with scopes: shown once, stored as a SHA-256 digest
    api_token_events    every use and refusal of the API (the token, when one was recognised)
    idempotency_keys    the first answer to a push, replayed for the same key and body
    webhook_endpoints   URLs that receive signed events
    webhook_deliveries  one event to one endpoint: the outbox row the delivery job works through
    webhook_relay       how far the relay has read the audit trail into deliveries (portal.domain.webhooks)
"""
from datetime import datetime

from sqlalchemy import JSON, Boolean, DateTime, ForeignKey, Index, Integer, String, Text, UniqueConstraint, true
from sqlalchemy.orm import Mapped, mapped_column

from portal.extensions import db
from portal.timeutil import utcnow


class ApiToken(db.Model):
    """A named bearer token for the API: its scopes (space-separated), expiry and revocation."""

    __tablename__ = "api_tokens"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    prefix: Mapped[str] = mapped_column(String(16))  # the first characters, shown so people can tell tokens apart
    digest: Mapped[str] = mapped_column(String(64), unique=True)
    scopes: Mapped[str] = mapped_column(String(300))
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime)
    revoked_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))

    @property
    def scope_list(self):
        """The token's scopes, in the order stored."""
        return self.scopes.split()


class ApiTokenEvent(db.Model):
    """One request to the API: answered (outcome ok, or the domain's refusal) or refused at the door.

    token_id is empty when no token was recognised (none sent, or an unknown one); prefix then holds
    the first characters of what was sent, if anything. Old rows are pruned (see portal.api.tokens).
    """

    __tablename__ = "api_token_events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_id: Mapped[int | None] = mapped_column(ForeignKey("api_tokens.id"))
    prefix: Mapped[str | None] = mapped_column(String(16))
    method: Mapped[str] = mapped_column(String(10))
    path: Mapped[str] = mapped_column(String(300))
    status: Mapped[int] = mapped_column(Integer)
    # ok | refused (a domain error) | unauthorized | expired | revoked | forbidden | rate_limited
    outcome: Mapped[str] = mapped_column(String(20))
    at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    remote_addr: Mapped[str | None] = mapped_column(String(45))

    __table_args__ = (
        Index("ix_api_token_events_token", "token_id", "id"),  # a token's log, newest first
        Index("ix_api_token_events_at", "at"),  # pruning by age
    )


class IdempotencyKey(db.Model):
    """A push's Idempotency-Key: the request it came with (fingerprint) and the answer it got.

    The row is added to the push's own transaction, so the unique (token, key) pair is the dedupe:
    a second push with the key at the same moment fails to commit and writes nothing.
    """

    __tablename__ = "idempotency_keys"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_id: Mapped[int] = mapped_column(ForeignKey("api_tokens.id"))
    key: Mapped[str] = mapped_column(String(255))
    # SHA-256 over method, path and body: the same key with another request is refused
    fingerprint: Mapped[str] = mapped_column(String(64))
    response_status: Mapped[int | None] = mapped_column(Integer)
    response_body: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    __table_args__ = (
        UniqueConstraint("token_id", "key", name="uq_idempotency_keys_token_key"),
        Index("ix_idempotency_keys_created_at", "created_at"),  # pruning by age
    )


class WebhookEndpoint(db.Model):
    """A URL that receives the events it subscribes to (space-separated), signed with its secret.

    The secret is kept in clear because the portal signs with it (HMAC-SHA256, the Stripe scheme);
    the pages show it once, when the endpoint is created or its secret rolled.
    """

    __tablename__ = "webhook_endpoints"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    url: Mapped[str] = mapped_column(String(2000))
    description: Mapped[str | None] = mapped_column(String(200))
    events: Mapped[str] = mapped_column(String(500))
    secret: Mapped[str] = mapped_column(String(100))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime | None] = mapped_column(DateTime)
    # the last audit event before the endpoint existed: it receives the events after this one
    starts_after_event_id: Mapped[int] = mapped_column(Integer, default=0, server_default="0")

    @property
    def event_list(self):
        """The event types this endpoint subscribes to."""
        return self.events.split()


class WebhookDelivery(db.Model):
    """One event for one endpoint: pending, sending, delivered or failed, with its attempts.

    Written by the relay from the change's audit event (event_id is the audit event's id; see
    portal.domain.webhooks); unique per endpoint and event id, so an event is never queued twice for one
    endpoint. "Send again" resets the row.
    """

    __tablename__ = "webhook_deliveries"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    endpoint_id: Mapped[int] = mapped_column(ForeignKey("webhook_endpoints.id"))
    event_type: Mapped[str] = mapped_column(String(50))
    event_id: Mapped[str] = mapped_column(String(64))
    payload: Mapped[str] = mapped_column(Text)  # the JSON body, exactly as signed and sent
    status: Mapped[str] = mapped_column(String(10), default="pending")  # pending | sending | delivered | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime)
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime)

    __table_args__ = (
        UniqueConstraint("endpoint_id", "event_id", name="uq_webhook_deliveries_endpoint_event"),
        Index("ix_webhook_deliveries_due", "status", "next_attempt_at", "id"),  # the delivery job's scan
        Index("ix_webhook_deliveries_endpoint", "endpoint_id", "id"),  # an endpoint's log, newest first
    )


class WebhookRelay(db.Model):
    """The relay's place in the append-only audit trail (one row, id 1).

    Every audit event up to cursor_id has been turned into deliveries, except the ids listed in gaps:
    ids passed while not yet visible (the transaction that holds them had not committed, or rolled back),
    watched until they appear or until they are old enough to be given up (portal.domain.webhooks.relay).
    """

    __tablename__ = "webhook_relay"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    cursor_id: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    gaps: Mapped[list | None] = mapped_column(JSON)  # [[first id, last id, first seen (ISO time)], ...]
    updated_at: Mapped[datetime | None] = mapped_column(DateTime)
