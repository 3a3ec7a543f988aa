"""The SQL condition of the list's filters, one builder (`filter_clause`) shared by the list, the counts,
the export and bulk runs; and the bulk engine's "filter" selection built on it."""
from datetime import datetime

from dataclasses import dataclass

from sqlalchemy import Text, and_, cast, func, literal, or_, select, true

from portal.domain import runs
from portal.domain.account_search import words
from portal.domain.account_search.by_run import changed_by_run
from portal.domain.account_search.filters import parse_filters
from portal.domain.account_search.rows import fetch
from portal.domain.errors import ValidationFailed
from portal.extensions import db
from portal.models import Account

_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_ASCII_UPPER = str.maketrans("abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ")


def _next_prefix(text):
    """The least text after every text starting with `text`: its last character plus one, skipping the surrogates
    (U+D800..U+DFFF), which no database driver sends. parse_filters refuses U+10FFFF, which has no successor."""
    point = ord(text[-1]) + 1
    return text[:-1] + chr(0xE000 if point == 0xD800 else point)


def prefix_ranges(q):
    """Return {field: index-friendly prefix range} for a case-insensitive prefix search on name, email, number."""
    lo = q.translate(_ASCII_LOWER)
    up = q.translate(_ASCII_UPPER)
    name, email = func.lower(Account.name), func.lower(Account.email)
    return {
        "name": and_(name >= func.lower(lo), name < func.lower(_next_prefix(lo))),
        "email": and_(email >= func.lower(lo), email < func.lower(_next_prefix(lo))),
        "number": and_(Account.number >= up, Account.number < _next_prefix(up)),
    }


def search_ranges(q):
    """Return {key: condition} of the prefix lookups of a search of short words only (name, email, number,
    as their btree indexes serve them), each probed on its own; {} for a search with an indexed word (those
    are found once by search_ids)."""
    found = words.split_words(q)
    if found.indexed:
        return {}
    return prefix_ranges(q)


@dataclass(frozen=True)
class IdText:
    """Ids as one comma-separated text (from the database, sent back to it as one parameter): thousands of
    ids as Python objects cost more in garbage collection than the lookup that found them."""

    count: int
    text: str

    def __len__(self):
        return self.count


def search_ids(q, most):
    """Return the ids of up to most + 1 accounts the trigram index finds for q, as an IdText (candidates: the
    rows still have to pass the exact test, filter_clause(f, walking="ids")), or None for a search of short
    words only.

    One lookup per request: at most `most` back is the whole candidate set; more means a common search.
    """
    found = words.split_words(q)
    if not found.indexed:
        return None
    return id_text(words.candidates(found, db.engine.dialect.name, most + 1))


def id_text(ids):
    """Return the ids a SELECT of one id column finds as an IdText, counted and joined by the database."""
    sub = ids.subquery()
    listed = (func.group_concat(sub.c[0]) if db.engine.dialect.name == "sqlite"
              else func.string_agg(cast(sub.c[0], Text), literal(",")))
    count, text = fetch(select(func.count(), listed).select_from(sub)).one()
    return IdText(count, text or "")


def search_clause(q, walking=False):
    """The search's condition over accounts: every word anywhere in name, email or number (see words.py)."""
    found = words.split_words(q)
    if not found.indexed:
        return or_(*prefix_ranges(q).values())
    return words.matching(found, db.engine.dialect.name, walking)


SEARCH_KEYS = {"name": lambda: func.lower(Account.name), "email": lambda: func.lower(Account.email),
               "number": lambda: Account.number, "text": lambda: None}
NARROWING_KEYS = {"run": lambda: None, "exempt": lambda: None, "balance": lambda: Account.balance_cents,
                  "activity": lambda: None, "class": lambda: None}  # activity: "before" ORs IS NULL


def narrowing(f):
    """Return [(name, clause)] of the filters an index can narrow, most selective first."""
    out = []
    if f.run_id is not None:  # the audit trail's run index: what one run changed
        out.append(("run", changed_by_run(f.run_id)))
    if f.exempt:
        out.append(("exempt", Account.exempt))
    if f.balance_min is not None or f.balance_max is not None:
        parts = []
        if f.balance_min is not None:
            parts.append(Account.balance_cents >= f.balance_min)
        if f.balance_max is not None:
            parts.append(Account.balance_cents <= f.balance_max)
        out.append(("balance", and_(*parts)))
    if f.active_after or f.active_before:
        parts = []
        if f.active_after:
            parts.append(Account.last_activity_at >= datetime.combine(f.active_after, datetime.min.time()))
        if f.active_before:
            parts.append(or_(Account.last_activity_at < datetime.combine(f.active_before, datetime.min.time()),
                             Account.last_activity_at.is_(None)) if not f.active_after else
                         Account.last_activity_at < datetime.combine(f.active_before, datetime.min.time()))
        out.append(("activity", and_(*parts)))
    if f.class_id is not None:
        out.append(("class", Account.customer_class_id == f.class_id))
    return out


def filter_clause(f, with_status=True, walking=False):
    """Return the SQL condition over Account columns for these filters (the list, export and bulk runs share it).

    Args:
        f: Filters from parse_filters.
        with_status: False to leave the status filter out (the counts by status).
        walking: the same set, written to test rows read another way (a walk of the list's order, or the ids
            an index found: "ids"): the search's own index lookup is left out (see words.matching).
    """
    parts = [clause for _name, clause in narrowing(f)]
    if f.q:
        parts.append(search_clause(f.q, walking))
    if with_status and f.status:
        parts.append(Account.status == f.status)
    if f.exempt is False:
        parts.append(~Account.exempt)
    return and_(*parts) if parts else true()


def selection_clause(selection, as_of=None):
    """Return the condition picking a bulk run's accounts from its stored selection.

    Args:
        selection: {"type": "filter", "filter": {query args}} or {"type": "ids", "ids": [...]}.
        as_of: unused (the list's filters are absolute); part of the run engine's signature.

    Raises:
        ValidationFailed: the selection is malformed or its stored filter no longer parses.
    """
    if selection.get("type") == "ids":
        ids = [int(i) for i in selection.get("ids") or []]
        return Account.id.in_(ids) if ids else Account.id.is_(None)
    if selection.get("type") == "filter":
        f = parse_filters(selection.get("filter") or {})
        if f.problems:
            raise ValidationFailed({"selection": "The stored filter is not valid: " + " ".join(f.problems.values())})
        return filter_clause(f)
    raise ValidationFailed({"selection": "Unknown selection."})


runs.register_selection("filter", selection_clause)
