"""The list's sort orders, keyset positions along them as SQL bounds, and the signed cursors that carry them.

A position is (sort key, account id); the id breaks ties in a sort key that is not unique. A cursor also
carries how many matching accounts come before it, so a page knows its place ("51–100").

Last activity is an expression with an index on exactly it (portal/models/accounts.py):
`coalesce(last_activity_at, NEVER)`, so accounts with no activity sort as the oldest (first when oldest
first, last when newest first) and the key is never NULL.

Status is walked one status at a time (`Sort.segments`): a status holds up to 800,000 accounts, and SQLite
does not seek past the ties of `status >= k AND (status > k OR id > i)` (nor of the row value) by the id,
so a walk's position is `status = k AND id > i` on the (status, id) index, and the next status starts afresh.
"""
from dataclasses import dataclass
from datetime import datetime

from flask import current_app
from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy import DateTime, and_, func, literal_column, or_, true
from sqlalchemy.dialects.sqlite.base import SQLiteCompiler

from portal.models import Account
from portal.models.accounts import ACTIVITY_SORT_SQL

STATUS_ORDER = ("active", "cancelled", "limited", "suspended")  # by label, A to Z


@dataclass(frozen=True)
class Sort:
    """One sort order: the key column, its direction, and the index (SQLite hint) that serves it."""

    label: str
    key: str
    descending: bool
    unique: bool
    index: str | None

    @property
    def segments(self):
        """The values walked one at a time, in walk order when ascending (status), or None."""
        return STATUS_ORDER if self.key == "status" else None

    def column(self):
        if self.key == "activity":
            return activity_key()
        return {"name": func.lower(Account.name), "number": Account.number, "status": Account.status,
                "balance": Account.balance_cents}[self.key]


def activity_key():
    """The last-activity sort key: the time, or NEVER for an account with none (the index's expression)."""
    return literal_column(ACTIVITY_SORT_SQL.replace("last_activity_at", "accounts.last_activity_at"), DateTime)


SORTS = {
    "name": Sort("Name, A to Z", "name", False, False, "ix_accounts_name_lower"),
    "-name": Sort("Name, Z to A", "name", True, False, "ix_accounts_name_lower"),
    "number": Sort("Account number, ascending", "number", False, True, None),
    "-number": Sort("Account number, descending", "number", True, True, None),
    "-balance": Sort("Balance, highest first", "balance", True, False, "ix_accounts_balance_cents"),
    "balance": Sort("Balance, lowest first", "balance", False, False, "ix_accounts_balance_cents"),
    "-activity": Sort("Last activity, newest first (never last)", "activity", True, False,
                      "ix_accounts_activity_sort"),
    "activity": Sort("Last activity, oldest first (never first)", "activity", False, False,
                     "ix_accounts_activity_sort"),
    "status": Sort("Status, A to Z (active first)", "status", False, False, "ix_accounts_status_id"),
    "-status": Sort("Status, Z to A (suspended first)", "status", True, False, "ix_accounts_status_id"),
}


# ---------------------------------------------------------------- positions in SQL

def order(sort, asc):
    """Return the ORDER BY of a walk along sort, ascending or descending."""
    key = sort.column()
    return (key.asc(), Account.id.asc()) if asc else (key.desc(), Account.id.desc())


def beyond(sort, pos, asc, within=False):
    """Strictly after pos in walk order. Written without row values: SQLite uses an expression index for
    `lower(name) >= ?` but not for `(lower(name), id) > (?, ?)`.

    `within`: a segmented sort's walk stays in pos's segment (`status = k AND id > i`, a seek on the index);
    otherwise (a small set of ids) every later segment counts too.
    """
    if pos is None:
        return true()
    key, (k, i) = sort.column(), pos
    if sort.segments and within:
        return and_(key == k, Account.id > i) if asc else and_(key == k, Account.id < i)
    if sort.unique:
        return key > k if asc else key < k
    if asc:
        return and_(key >= k, or_(key > k, Account.id > i))
    return and_(key <= k, or_(key < k, Account.id < i))


def up_to(sort, pos, asc, within=False):
    """At or before pos in walk order (the end of a window; `within` as for beyond)."""
    if pos is None:
        return true()
    key, (k, i) = sort.column(), pos
    if sort.segments and within:
        return and_(key == k, Account.id <= i) if asc else and_(key == k, Account.id >= i)
    if sort.unique:
        return key <= k if asc else key >= k
    if asc:
        return and_(key <= k, or_(key < k, Account.id <= i))
    return and_(key >= k, or_(key > k, Account.id >= i))


def _sqlite_from_hint(compiler, table, text):  # noqa: ARG001
    return text


# SQLAlchemy's SQLite compiler drops table hints; SQLite's INDEXED BY is one, so render it as given.
if "get_from_hint_text" not in SQLiteCompiler.__dict__:
    SQLiteCompiler.get_from_hint_text = _sqlite_from_hint


def hinted(stmt, sort, index=None):
    """Keep SQLite on the sort's index, or `index` (without ANALYZE it may prefer an equality index and sort
    everything)."""
    index = index or sort.index
    if index:
        return stmt.with_hint(Account, f"INDEXED BY {index}", "sqlite")
    return stmt


# ---------------------------------------------------------------- signed cursors

def _serializer():
    return URLSafeSerializer(current_app.secret_key, salt="account-list-cursor")


def encode_cursor(sort, direction, key, account_id, seen=None):
    """Return the signed token of a keyset position (sort order, "after"|"before", sort key, id).

    `seen`: how many matching accounts come before the page this cursor opens ("after": up to and
    including the position; "before": before the position), or None when not known.
    """
    if isinstance(key, datetime):
        key = key.isoformat()
    value = [sort, direction, key, account_id]
    if seen is not None:
        value.append(seen)
    return _serializer().dumps(value)


def decode_cursor(token, sort):
    """Return (direction, key, id, seen or None) from a token made for this sort order, or None if forged or foreign."""
    try:
        value = _serializer().loads(token)
    except (BadSignature, ValueError, TypeError):
        return None
    if not (isinstance(value, list) and len(value) in (4, 5) and value[0] == sort
            and value[1] in ("after", "before") and isinstance(value[3], int)):
        return None
    seen = value[4] if len(value) == 5 else None
    if seen is not None and not (isinstance(seen, int) and seen >= 0):
        return None
    key = _key_value(SORTS[sort].key, value[2])
    if key is None:
        return None
    return value[1], key, value[3], seen


def _key_value(key_name, raw):
    """The sort key a cursor carries, as the database compares it, or None if it is of the wrong kind."""
    if key_name == "balance":
        return raw if isinstance(raw, int) and not isinstance(raw, bool) else None
    if not isinstance(raw, str):
        return None
    if key_name == "activity":
        try:
            return datetime.fromisoformat(raw)
        except ValueError:
            return None
    return raw
