"""Accounts, the people who work in them, and customer classes."""
import hashlib
import hmac
from datetime import date, datetime

from flask_login import UserMixin
from sqlalchemy import (JSON, BigInteger, Boolean, Date, DateTime, ForeignKey, Index, Integer, String, Text, false, func,
                        literal_column, text, true)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.extensions import db
from portal.timeutil import utcnow

# Every account's searchable text as one string (PostgreSQL's trigram index is on it; the search tests it).
SEARCH_TEXT_SQL = "lower((((name || ' ') || email) || ' ') || number)"

STAFF_ROLES = ("super_admin", "support")
CUSTOMER_ROLES = ("account_manager", "tier_manager", "user")
ROLES = STAFF_ROLES + CUSTOMER_ROLES
ROLE_LABELS = {
    "super_admin": "Super admin",
    "support": "Support",
    "account_manager": "Account manager",
    "tier_manager": "Tier manager",
    "user": "User",
}


# The list's sort keys that are expressions, written once here for the index and the queries alike
# (SQLite uses an expression index only for the same expression, with literals, not bound parameters).
# No activity sorts as the oldest. The literal is written as SQLite stores times and PostgreSQL prints them.
ACTIVITY_SORT_SQL = "coalesce(last_activity_at, '1900-01-01 00:00:00.000001')"
RARE_STATUSES = ("limited", "cancelled")
RARE_STATUS_SQL = "status IN ('limited', 'cancelled')"


def _digest(key, message):
    """Return 16 hex digits of HMAC-SHA256(key, message)."""
    return hmac.new(key, message.encode(), hashlib.sha256).hexdigest()[:16]


class CustomerClass(db.Model):
    """A class of customers with its dunning schedule (days after the oldest overdue due date)."""

    __tablename__ = "customer_classes"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    description: Mapped[str | None] = mapped_column(String(500))
    limit_after_days: Mapped[int | None] = mapped_column(Integer)
    suspend_after_days: Mapped[int | None] = mapped_column(Integer)
    least_amount_cents: Mapped[int] = mapped_column(BigInteger, default=1, server_default="1")
    warning_days: Mapped[int | None] = mapped_column(Integer)  # warn K days before each step
    created_at: Mapped[datetime | None] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime | None] = mapped_column(DateTime, default=utcnow)


class Account(db.Model):
    """A customer account. `status` is the stored base state; overlays are read by the gate."""

    __tablename__ = "accounts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    number: Mapped[str] = mapped_column(String(20), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(20), default="active", server_default="active")
    status_reason: Mapped[str | None] = mapped_column(String(30))
    status_note: Mapped[str | None] = mapped_column(Text)
    status_source: Mapped[str | None] = mapped_column(String(20))
    status_changed_at: Mapped[datetime | None] = mapped_column(DateTime)
    suspended_by_run_id: Mapped[int | None] = mapped_column(Integer)
    customer_class_id: Mapped[int | None] = mapped_column(ForeignKey("customer_classes.id"))
    exempt: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    exempt_reason: Mapped[str | None] = mapped_column(String(500))
    balance_cents: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    credit_cents: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    # The dunning schedule: the start of the current episode of overdue invoices once something pinned it
    # (a payment or invoice during the episode), the next day the daily run must look at the account, and
    # the step last warned about ("limitation:2026-09-15").
    dunning_since: Mapped[date | None] = mapped_column(Date)
    dunning_next_on: Mapped[date | None] = mapped_column(Date)
    dunning_warned: Mapped[str | None] = mapped_column(String(30))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    last_activity_at: Mapped[datetime | None] = mapped_column(DateTime)
    contact_name: Mapped[str | None] = mapped_column(String(200))
    contact_phone: Mapped[str | None] = mapped_column(String(50))
    settings: Mapped[dict] = mapped_column(JSON, default=dict)
    version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")

    customer_class = relationship(CustomerClass, lazy="joined")
    users = relationship("User", back_populates="account", lazy="select", order_by="User.id")

    __table_args__ = (
        # The list's index: name order for pages, then the columns its filters test, so a filtered walk
        # checks them in the index and reads only candidate rows; name, email and number last (migration 0011),
        # so a walk testing a search reads rows only for its matches (PostgreSQL: an index-only walk; name also
        # lets it find where a window of the name order ends on the index alone). No status here: sweeps
        # rewrite status.
        Index("ix_accounts_name_lower", func.lower(name), "id", "customer_class_id", "balance_cents",
              "last_activity_at", "exempt", "name", "email", "number"),
        Index("ix_accounts_email_lower", func.lower(email)),
        Index("ix_accounts_customer_class_id", "customer_class_id"),
        Index("ix_accounts_last_activity_at", "last_activity_at"),
        Index("ix_accounts_balance_cents", "balance_cents", "id"),  # keyset pages sorted by balance
        # keyset pages sorted by last activity and by status (see portal/domain/account_search/keyset.py);
        # the status one also finds the accounts of one status, e.g. the few cancelled ones
        Index("ix_accounts_activity_sort", text(ACTIVITY_SORT_SQL), "id"),
        Index("ix_accounts_status_id", "status", "id"),
        # the rare statuses in name order, with the columns the list's filters test (like the name index) and
        # status itself (migration 0011: limited told from cancelled on the index alone, as counts under a filter
        # need) and the searched text; a sweep (active to suspended) writes no entry here.
        Index("ix_accounts_rare_status_name", func.lower(name), "id", "customer_class_id", "balance_cents",
              "last_activity_at", "exempt", "status", "name", "email", "number", sqlite_where=text(RARE_STATUS_SQL),
              postgresql_where=text(RARE_STATUS_SQL)),
        # partial: written as SQLAlchemy renders `Account.exempt` in a WHERE on each database, so the planner uses it
        Index("ix_accounts_exempt", "id", sqlite_where=text("exempt = 1"), postgresql_where=text("exempt")),
        # the daily dunning run reads only the accounts due a look, so its cost follows what it changes
        Index("ix_accounts_dunning_next_on", "dunning_next_on", "id", sqlite_where=text("dunning_next_on IS NOT NULL"),
              postgresql_where=text("dunning_next_on IS NOT NULL")),
        # Search inside names, emails and numbers (PostgreSQL, pg_trgm; migration 0008): the expression the
        # search's LIKE tests (portal.domain.account_search.words). SQLite has an FTS5 table instead.
        Index("ix_accounts_search_trgm", literal_column(SEARCH_TEXT_SQL).label("search_text"), postgresql_using="gin",
              postgresql_ops={"search_text": "gin_trgm_ops"}).ddl_if(dialect="postgresql"),
    )

    def __repr__(self):
        return f"<Account {self.number} {self.status}>"


class User(UserMixin, db.Model):
    """A person who signs in: staff (no account) or a customer inside one account."""

    __tablename__ = "users"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String(255), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(20))
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"), index=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    session_token: Mapped[str] = mapped_column(String(64))
    disabled: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    email_notifications: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(DateTime)

    account = relationship(Account, back_populates="users")

    @property
    def is_staff(self):
        return self.role in STAFF_ROLES

    @property
    def role_label(self):
        return ROLE_LABELS.get(self.role, self.role)

    def session_key(self):
        """Return the key a session and a remember-me cookie carry: two parts, both from the session token.

        The first changes only when the token rotates (sign-out everywhere); the second also changes
        whenever the account's status does. Every status change (one account, a sweep, bulk change,
        undo or dunning run) writes status_changed_at, so a cookie copied before a suspension is
        refused after the reactivation too, with no per-account work in the runs.
        """
        if self.account is None:
            state = "no account"
        else:
            changed = self.account.status_changed_at
            state = f"{self.account.status}|{changed.isoformat() if changed else '-'}"
        token = self.session_token.encode()
        return _digest(token, "session") + _digest(token, state)

    def get_id(self):
        """Identify the session by user and session key: a new token or account status ends older sessions."""
        return f"{self.id}:{self.session_key()}"
