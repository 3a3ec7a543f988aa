"""The list's sort orders, keyset positions along them as SQL bounds, and the signed cursors that carry them.

A position is (sort key, account id); the id breaks ties in a sort key that is not unique.
"""
from dataclasses import dataclass

from flask import current_app
from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy import and_, func, or_, true
from sqlalchemy.dialects.sqlite.base import SQLiteCompiler

from portal.models import Account


@dataclass(frozen=True)
class Sort:
    """One sort order: the key column, its direction, and the index (SQLite hint) that serves it."""

    label: str
    key: str
    descending: bool
    unique: bool
    index: str | None

    def column(self):
        return {"name": func.lower(Account.name), "number": Account.number,
                "balance": Account.balance_cents}[self.key]


SORTS = {
    "name": Sort("Name, A to Z", "name", False, False, "ix_accounts_name_lower"),
    "-name": Sort("Name, Z to A", "name", True, False, "ix_accounts_name_lower"),
    "number": Sort("Account number, ascending", "number", False, True, None),
    "-number": Sort("Account number, descending", "number", True, True, None),
    "-balance": Sort("Balance, highest first", "balance", True, False, "ix_accounts_balance_cents"),
    "balance": Sort("Balance, lowest first", "balance", False, False, "ix_accounts_balance_cents"),
}


# ---------------------------------------------------------------- positions in SQL

def order(sort, asc):
    """Return the ORDER BY of a walk along sort, ascending or descending."""
    key = sort.column()
    return (key.asc(), Account.id.asc()) if asc else (key.desc(), Account.id.desc())


def beyond(sort, pos, asc):
    """Strictly after pos in walk order. Written without row values: SQLite uses an expression index for
    `lower(name) >= ?` but not for `(lower(name), id) > (?, ?)`."""
    if pos is None:
        return true()
    key, (k, i) = sort.column(), pos
    if sort.unique:
        return key > k if asc else key < k
    if asc:
        return and_(key >= k, or_(key > k, Account.id > i))
    return and_(key <= k, or_(key < k, Account.id < i))


def up_to(sort, pos, asc):
    """At or before pos in walk order (the end of a window)."""
    if pos is None:
        return true()
    key, (k, i) = sort.column(), pos
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


def hinted(stmt, sort):
    """Keep SQLite on the sort's index (without ANALYZE it may prefer an equality index and sort everything)."""
    if sort.index:
        return stmt.with_hint(Account, f"INDEXED BY {sort.index}", "sqlite")
    return stmt


# ---------------------------------------------------------------- signed cursors

def _serializer():
    return URLSafeSerializer(current_app.secret_key, salt="account-list-cursor")


def encode_cursor(sort, direction, key, account_id):
    """Return the signed token of a keyset position (sort order, "after"|"before", sort key, id)."""
    return _serializer().dumps([sort, direction, key, account_id])


def decode_cursor(token, sort):
    """Return (direction, key, id) from a token made for this sort order, or None if forged or foreign."""
    try:
        value = _serializer().loads(token)
    except (BadSignature, ValueError, TypeError):
        return None
    if not (isinstance(value, list) and len(value) == 4 and value[0] == sort and value[1] in ("after", "before")
            and isinstance(value[3], int)):
        return None
    key_type = int if SORTS[sort].key == "balance" else str
    if not isinstance(value[2], key_type):
        return None
    return value[1], value[2], value[3]
