"""Finding accounts for staff: filters from a query string, keyset pages, counts by status, export rows,
and the bulk engine's "filter" selection, all built from one WHERE builder (`filter_clause`).

How a page is read at a million accounts without scanning the table:
- a filter that an index narrows to at most SMALL_SET accounts (a search prefix, exempt, a balance or
  activity range, a customer class) is read through that index, and only those accounts are sorted;
- otherwise the sort's own index is walked from the cursor in growing windows, at most SCAN_BUDGET entries
  per request; a page not filled within the budget ends with a "keep looking" cursor where the walk stopped.
`status` has no index on purpose (sweeps rewrite it, see STACK-NOTES), so a rare status is found by walking.
"""
import json
import re
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from decimal import Decimal, InvalidOperation

from flask import current_app, g
from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy import Integer, and_, any_, bindparam, func, or_, select, true
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.sqlite.base import SQLiteCompiler

from portal.domain import runs
from portal.domain.errors import ValidationFailed
from portal.domain.gate import STATE_LABELS
from portal.extensions import db, get_redis
from portal.models import Account, CustomerClass
from portal.timeutil import utcnow

PAGE_SIZES = (25, 50, 100, 200)
DEFAULT_PAGE_SIZE = 50
SMALL_SET = 2_000  # a narrowing filter matching at most this many accounts is read through its own index
WINDOWS = (2_000, 18_000)  # index entries walked per step; their sum is the per-request budget
SCAN_BUDGET = sum(WINDOWS)
COUNT_CAP = 10_000  # counts under a filter stop here ("10,000+")
GLOBAL_COUNTS_TTL = 60  # seconds the unfiltered counts by status are kept in Redis
Q_MAX = 100
BALANCE_LIMIT_CENTS = 10 ** 13
EXPORT_CHUNK = 5_000

LIST_COLUMNS = (Account.id, Account.number, Account.name, Account.email, Account.status, Account.status_reason,
                Account.customer_class_id, Account.exempt, Account.balance_cents, Account.last_activity_at,
                Account.created_at, Account.version)
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_ASCII_UPPER = str.maketrans("abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ")


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


@dataclass
class Filters:
    """What the staff asked for, validated; `problems` maps a field to why its value was ignored."""

    q: str = ""
    status: str = ""
    class_id: int | None = None
    balance_min: int | None = None  # cents
    balance_max: int | None = None
    active_after: date | None = None
    active_before: date | None = None
    exempt: bool | None = None
    sort: str = "name"
    per_page: int = DEFAULT_PAGE_SIZE
    cursor: tuple | None = None  # (direction "after"|"before", key, id)
    problems: dict = field(default_factory=dict)
    raw: dict = field(default_factory=dict)

    def args(self, cursor=None):
        """Return the canonical query arguments of this view (valid, non-default values only)."""
        out = {}
        if self.q:
            out["q"] = self.q
        if self.status:
            out["status"] = self.status
        if self.class_id is not None:
            out["class"] = str(self.class_id)
        for name in ("balance_min", "balance_max"):
            cents = getattr(self, name)
            if cents is not None:
                out[name] = f"{Decimal(cents) / 100:.2f}".rstrip("0").rstrip(".")
        for name in ("active_after", "active_before"):
            if getattr(self, name) is not None:
                out[name] = getattr(self, name).isoformat()
        if self.exempt is not None:
            out["exempt"] = "yes" if self.exempt else "no"
        if self.sort != "name":
            out["sort"] = self.sort
        if self.per_page != DEFAULT_PAGE_SIZE:
            out["per_page"] = str(self.per_page)
        if cursor:
            out["cursor"] = cursor
        return out

    def selection_filter(self):
        """Return the filter as stored in a bulk run's selection (no sort, page size or cursor)."""
        return {k: v for k, v in self.args().items() if k not in ("sort", "per_page", "cursor")}

    @property
    def narrowed(self):
        """True when anything other than sort and page size restricts the list."""
        return bool(self.selection_filter())


# ---------------------------------------------------------------- parsing

def _text(args, name):
    value = args.get(name)
    return value.strip() if isinstance(value, str) else ""


def _parse_money(text):
    try:
        value = Decimal(text.replace(",", "").replace("$", "").strip())
    except InvalidOperation:
        return None
    if not value.is_finite() or abs(value * 100) >= BALANCE_LIMIT_CENTS:
        return None
    return int((value * 100).to_integral_value())


def _parse_date(text):
    try:
        value = date.fromisoformat(text)
    except ValueError:
        return None
    return value if 1900 <= value.year <= 2200 else None


def parse_filters(args):
    """Read and validate list filters from query arguments; nonsense values are dropped and explained.

    Args:
        args: a mapping of query arguments (request.args, or a stored selection filter).

    Returns:
        Filters, whose `problems` maps each ignored field to a message for the page.
    """
    f = Filters(raw={k: _text(args, k) for k in ("q", "status", "class", "balance_min", "balance_max",
                                                  "active_after", "active_before", "exempt", "sort", "per_page")})
    p = f.problems
    q = re.sub(r"\s+", " ", f.raw["q"])
    if len(q) > Q_MAX:
        p["q"] = f"Searches use the first {Q_MAX} characters; the rest was ignored."
        q = q[:Q_MAX].rstrip()
    f.q = q
    status = f.raw["status"]
    if status in STATE_LABELS:
        f.status = status
    elif status:
        p["status"] = "Unknown status; showing every status."
    if f.raw["class"]:
        class_id = int(f.raw["class"]) if f.raw["class"].isdigit() and len(f.raw["class"]) < 10 else None
        if class_id is not None and class_id in class_names():
            f.class_id = class_id
        else:
            p["class"] = "Unknown customer class; showing every class."
    for name in ("balance_min", "balance_max"):
        if f.raw[name]:
            cents = _parse_money(f.raw[name])
            if cents is None:
                p[name] = "Enter an amount in dollars, such as 25 or 25.50; this value was ignored."
            setattr(f, name, cents)
    if f.balance_min is not None and f.balance_max is not None and f.balance_min > f.balance_max:
        p["balance_max"] = "The highest balance is below the lowest; the range was ignored."
        f.balance_min = f.balance_max = None
    for name in ("active_after", "active_before"):
        if f.raw[name]:
            value = _parse_date(f.raw[name])
            if value is None:
                p[name] = "Enter a date as YYYY-MM-DD; this value was ignored."
            setattr(f, name, value)
    if f.active_after and f.active_before and f.active_after >= f.active_before:
        p["active_before"] = "“Before” must be later than “on or after”; the dates were ignored."
        f.active_after = f.active_before = None
    exempt = f.raw["exempt"].lower()
    if exempt in ("yes", "no"):
        f.exempt = exempt == "yes"
    elif exempt:
        p["exempt"] = "Choose yes or no; showing exempt and non-exempt accounts."
    sort = f.raw["sort"]
    if sort in SORTS:
        f.sort = sort
    elif sort:
        p["sort"] = "Unknown sort order; sorted by name."
    per_page = f.raw["per_page"]
    if per_page:
        n = int(per_page) if per_page.isdigit() and len(per_page) < 10 else None
        if n is None or n < 1:
            p["per_page"] = f"Page size must be a number; showing {DEFAULT_PAGE_SIZE} per page."
        elif n > PAGE_SIZES[-1]:
            p["per_page"] = f"At most {PAGE_SIZES[-1]} accounts are shown per page."
            f.per_page = PAGE_SIZES[-1]
        else:
            f.per_page = max(n, 10)
    if _text(args, "cursor"):
        f.cursor = decode_cursor(_text(args, "cursor"), f.sort)
        if f.cursor is None:
            p["cursor"] = "That page link is not valid (it may come from another sort order); showing the first page."
    return f


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


# ---------------------------------------------------------------- WHERE

def _next_prefix(text):
    return text[:-1] + chr(ord(text[-1]) + 1)


def search_ranges(q):
    """Return {field: index-friendly prefix range} for a case-insensitive prefix search on name, email, number."""
    lo = q.translate(_ASCII_LOWER)
    up = q.translate(_ASCII_UPPER)
    name, email = func.lower(Account.name), func.lower(Account.email)
    return {
        "name": and_(name >= func.lower(lo), name < func.lower(_next_prefix(lo))),
        "email": and_(email >= func.lower(lo), email < func.lower(_next_prefix(lo))),
        "number": and_(Account.number >= up, Account.number < _next_prefix(up)),
    }


SEARCH_KEYS = {"name": lambda: func.lower(Account.name), "email": lambda: func.lower(Account.email),
               "number": lambda: Account.number}
NARROWING_KEYS = {"exempt": lambda: None, "balance": lambda: Account.balance_cents,
                  "activity": lambda: None, "class": lambda: None}  # activity: "before" ORs IS NULL


def _narrowing(f):
    """Return [(name, clause)] of the filters an index can narrow, most selective first."""
    out = []
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


def filter_clause(f, with_status=True):
    """Return the SQL condition over Account columns for these filters (the list, export and bulk runs share it).

    Args:
        f: Filters from parse_filters.
        with_status: False to leave the status filter out (the counts by status).
    """
    parts = [clause for _name, clause in _narrowing(f)]
    if f.q:
        parts.append(or_(*search_ranges(f.q).values()))
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


# ---------------------------------------------------------------- reading a page

@dataclass
class Page:
    """One page of the list, in display order, with signed cursors for the pager."""

    rows: list
    next_cursor: str | None = None
    prev_cursor: str | None = None
    next_is_continuation: bool = False  # the walk stopped at its budget before the page was full
    prev_is_continuation: bool = False
    at_start: bool = True


def _order(sort, asc):
    key = sort.column()
    return (key.asc(), Account.id.asc()) if asc else (key.desc(), Account.id.desc())


def _beyond(sort, pos, asc):
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


def _up_to(sort, pos, asc):
    """At or before pos in walk order (the end of a window)."""
    if pos is None:
        return true()
    key, (k, i) = sort.column(), pos
    if sort.unique:
        return key <= k if asc else key >= k
    if asc:
        return and_(key <= k, or_(key < k, Account.id <= i))
    return and_(key >= k, or_(key > k, Account.id >= i))


def _run(stmt):
    """Execute a Core select on the session's connection: plain rows, without the ORM's per-row work."""
    return db.session.connection().execute(stmt)


def _sqlite_from_hint(compiler, table, text):  # noqa: ARG001
    return text


# SQLAlchemy's SQLite compiler drops table hints; SQLite's INDEXED BY is one, so render it as given.
if "get_from_hint_text" not in SQLiteCompiler.__dict__:
    SQLiteCompiler.get_from_hint_text = _sqlite_from_hint


def _hinted(stmt, sort):
    """Keep SQLite on the sort's index (without ANALYZE it may prefer an equality index and sort everything)."""
    if sort.index:
        return stmt.with_hint(Account, f"INDEXED BY {sort.index}", "sqlite")
    return stmt


def _probe(clause, order):
    """Return the ids matching clause if there are at most SMALL_SET of them, else None.

    Counted first (one row back, from the index alone where it can), the ids fetched only when few.
    Ordering by the indexed column keeps PostgreSQL on the index (else it may guess a LIMITed table scan).
    """
    stmt = select(Account.id).where(clause).limit(SMALL_SET + 1)
    if order is not None:
        stmt = stmt.order_by(order)
    if _run(select(func.count()).select_from(stmt.subquery())).scalar() > SMALL_SET:
        return None
    return _run(stmt).scalars().all()


def _plan(f, sort):
    """Choose how to read: (small id set or None, range restricting the walk, extra ids merged into the walk)."""
    restrict, extra = true(), []
    if f.q:
        ranges = search_ranges(f.q)
        found = {name: _probe(clause, SEARCH_KEYS[name]()) for name, clause in ranges.items()}
        dense = [name for name, ids in found.items() if ids is None]
        if not dense:
            return sorted({i for ids in found.values() for i in ids}), restrict, extra
        if dense == [sort.key]:  # the one big field is the sort's own index: walk only its range
            restrict = ranges[sort.key]
            extra = sorted({i for ids in found.values() if ids for i in ids})
    for name, clause in _narrowing(f):
        ids = _probe(clause, NARROWING_KEYS[name]())
        if ids is not None:
            return ids, true(), []
    return None, restrict, extra


def _id_in(ids):
    """`id IN ids`: one array parameter on PostgreSQL (not a thousand), a plain IN list on SQLite."""
    if db.engine.dialect.name == "postgresql":
        return Account.id == any_(bindparam("ids", list(ids), type_=postgresql.ARRAY(Integer)))
    return Account.id.in_(ids)


def _by_ids(ids, sort, clause, pos, asc, limit, end=None):
    key = sort.column()
    stmt = (select(*LIST_COLUMNS, key.label("sort_key"))
            .where(_id_in(ids), clause, _beyond(sort, pos, asc), _up_to(sort, end, asc))
            .order_by(*_order(sort, asc)).limit(limit))  # primary-key lookups, then a small sort
    return _run(stmt).all()


def _walk(sort, clause, restrict, pos, asc, limit, index_checks=False):
    """Walk the sort index from pos, at most SCAN_BUDGET entries; return (rows, frontier or None at the end).

    `index_checks`: some filter columns are in the name index (class, balance, activity, exempt), so a
    key-range window lets the database test them on index entries and read only candidate rows.
    """
    if db.engine.dialect.name == "postgresql" and not (index_checks and sort.key == "name"):
        return _walk_postgresql(sort, clause, restrict, pos, asc, limit)
    return _walk_ranges(sort, clause, restrict, pos, asc, limit)


def _walk_ranges(sort, clause, restrict, pos, asc, limit):
    """Find each window's last entry on the index alone (cheap), then read that bounded key range.

    SQLite always walks this way (it would materialise and sort a LIMITed subquery). The name index
    carries the filter columns, so rows failing class, balance, activity or exempt are skipped on the
    index entry; PostgreSQL gets its index-only end-of-window lookup from the index's INCLUDE (name).
    """
    key = sort.column()
    rows, start = [], pos
    for size in WINDOWS:
        end = _run(_hinted(
            select(key, Account.id).where(_beyond(sort, start, asc), restrict)
            .order_by(*_order(sort, asc)).offset(size - 1).limit(1), sort)).first()
        end = tuple(end) if end is not None else None
        stmt = (select(*LIST_COLUMNS, key.label("sort_key"))
                .where(_beyond(sort, start, asc), _up_to(sort, end, asc), restrict, clause)
                .order_by(*_order(sort, asc)).limit(limit - len(rows)))
        rows.extend(_run(_hinted(stmt, sort)).all())
        if len(rows) >= limit or end is None:
            return rows, None
        start = end
    return rows, start


def _walk_postgresql(sort, clause, restrict, pos, asc, limit):
    """PostgreSQL: one lazy query; the window's last entry comes back as a sentinel row that fails the filter.

    (An index on lower(name) cannot serve index-only scans, so finding the window's end separately would read
    every row twice.) The filter stays out of the WHERE on purpose: there PostgreSQL could skip index
    entries unread and unbounded, or pick another index and sort everything.
    """
    key = sort.column()
    order = _order(sort, asc)
    window = (select(*LIST_COLUMNS, key.label("sort_key"), func.row_number().over(order_by=order).label("walked"),
                     clause.label("hit"))
              .where(_beyond(sort, pos, asc), restrict).order_by(*order).limit(SCAN_BUDGET).subquery())
    w_order = ((window.c.sort_key.asc(), window.c.id.asc()) if asc
               else (window.c.sort_key.desc(), window.c.id.desc()))
    stmt = (select(window).where(or_(window.c.hit, window.c.walked == SCAN_BUDGET))
            .order_by(*w_order).limit(limit + 1))
    found = _run(stmt).all()
    rows = [r for r in found if r.hit][:limit]
    sentinel = next((r for r in found if r.walked == SCAN_BUDGET), None)
    if len(rows) >= limit or sentinel is None:
        return rows, None
    return rows, (sentinel.sort_key, sentinel.id)


def _read(f, sort, pos, asc, limit):
    """Return (up to limit rows in walk order, frontier where a budget-limited walk stopped, or None)."""
    clause = filter_clause(f)
    ids, restrict, extra = _plan(f, sort)
    if ids is not None:
        return _by_ids(ids, sort, clause, pos, asc, limit), None
    rows, frontier = _walk(sort, clause, restrict, pos, asc, limit,
                           index_checks=bool(_narrowing(f)) or f.exempt is not None)
    if extra:
        end = (rows[-1].sort_key, rows[-1].id) if len(rows) >= limit else frontier
        rows = rows + _by_ids(extra, sort, clause, pos, asc, limit, end)
        rows.sort(key=lambda r: (r.sort_key, r.id), reverse=not asc)
        rows = rows[:limit]
    return rows, frontier


def list_page(f):
    """Return one page of accounts for these filters, sort and cursor, never scanning the whole table.

    Args:
        f: Filters from parse_filters.

    Returns:
        Page: rows (id, number, name, email, status, ... sort_key) and signed next/previous cursors.
    """
    sort = SORTS[f.sort]
    limit = f.per_page + 1
    direction, pos = ("after", None) if f.cursor is None else (f.cursor[0], (f.cursor[1], f.cursor[2]))
    backward = direction == "before"
    asc = sort.descending == backward
    rows, frontier = _read(f, sort, pos, asc, limit)
    enc = lambda d, r: encode_cursor(f.sort, d, r[0], r[1])  # noqa: E731
    if not backward:
        full = len(rows) == limit
        rows = rows[:f.per_page]
        page = Page(rows, at_start=pos is None)
        if full:
            page.next_cursor = enc("after", (rows[-1].sort_key, rows[-1].id))
        elif frontier is not None:
            page.next_cursor, page.next_is_continuation = enc("after", frontier), True
        if pos is not None and rows:
            page.prev_cursor = enc("before", (rows[0].sort_key, rows[0].id))
        return page
    if len(rows) < limit and frontier is None:  # reached the start: show the real first page
        return list_page(replace(f, cursor=None))
    full = len(rows) == limit
    rows = rows[:f.per_page][::-1]
    page = Page(rows, at_start=False)
    if full:
        page.prev_cursor = enc("before", (rows[0].sort_key, rows[0].id))
    else:
        page.prev_cursor, page.prev_is_continuation = enc("before", frontier), True
    page.next_cursor = enc("after", (rows[-1].sort_key, rows[-1].id)) if rows else enc("after", frontier)
    return page


def get_row(account_id):
    """Return the list row of one account, or None."""
    key = func.lower(Account.name)
    return _run(select(*LIST_COLUMNS, key.label("sort_key")).where(Account.id == account_id)).first()


def class_names():
    """Return {customer class id: name} (a handful of rows; read once per app context)."""
    if "account_class_names" not in g:
        g.account_class_names = dict(_run(select(CustomerClass.id, CustomerClass.name)
                                          .order_by(CustomerClass.name)).all())
    return g.account_class_names


def sample(f, size=10):
    """Return the first `size` accounts of the list for these filters (shown in bulk confirmations)."""
    return list_page(replace(f, per_page=size, cursor=None)).rows


def count_matching(f):
    """Return the exact number of accounts matching the filters (may read many rows; for confirmations)."""
    return db.session.scalar(select(func.count()).select_from(Account).where(filter_clause(f)))


# ---------------------------------------------------------------- counts by status

@dataclass
class StatusCounts:
    """Accounts per status; when `capped`, each number is a lower bound ("10,000+")."""

    counts: dict
    total: int
    capped: bool
    as_of: datetime | None = None
    cached: bool = False
    filtered: bool = False


def _global_counts(now):
    """Counts over all accounts: one pass over the table, kept GLOBAL_COUNTS_TTL seconds in Redis."""
    redis_key = "portal:accounts:status-counts"
    try:
        cached = get_redis().get(redis_key)
    except Exception:  # Redis down: count anyway, the page must not fail
        cached = None
    if cached:
        data = json.loads(cached)
        return StatusCounts(data["counts"], sum(data["counts"].values()), False,
                            datetime.fromisoformat(data["as_of"]), cached=True)
    counts = dict(db.session.execute(select(Account.status, func.count()).group_by(Account.status)).all())
    try:
        get_redis().set(redis_key, json.dumps({"counts": counts, "as_of": now.isoformat()}), ex=GLOBAL_COUNTS_TTL)
    except Exception:
        pass
    return StatusCounts(counts, sum(counts.values()), False, now)


def count_by_status(f, now=None):
    """Count accounts per status under the filters other than status, for the status chips.

    Unfiltered: exact counts over the whole table, cached for a minute. Filtered: counts over at most
    COUNT_CAP + 1 matching accounts; beyond that every number is a lower bound and `capped` is set.

    Args:
        f: Filters (its status is ignored: every status gets a count).
        now: the time the counts are taken (default now).
    """
    now = now or utcnow()
    if not replace(f, status="").narrowed:
        return _global_counts(now)
    matching = select(Account.status).where(filter_clause(f, with_status=False)).limit(COUNT_CAP + 1).subquery()
    counts = dict(db.session.execute(select(matching.c.status, func.count()).group_by(matching.c.status)).all())
    total = sum(counts.values())
    return StatusCounts(counts, min(total, COUNT_CAP), total > COUNT_CAP, now, filtered=True)


# ---------------------------------------------------------------- export

EXPORT_HEADER = ("number", "name", "email", "status", "customer_class", "balance", "exempt", "last_activity_at",
                 "created_at")


def export_rows(f):
    """Yield the CSV header, then one tuple per matching account, reading EXPORT_CHUNK ids at a time.

    Memory stays flat however many accounts match: each chunk is its own short query over an id range
    (or over the small id set an index found), and nothing is kept between chunks.
    """
    names = class_names()
    yield EXPORT_HEADER
    clause = filter_clause(f)
    sort = SORTS[f.sort]
    ids, _restrict, _extra = _plan(f, sort)
    if ids is not None:
        chunks = [_by_ids(ids, sort, clause, None, not sort.descending, SMALL_SET + 1)]
    else:
        # two statements: SQLite answers min() or max() alone from the primary key, but scans for both at once
        low = db.session.scalar(select(func.min(Account.id)))
        high = db.session.scalar(select(func.max(Account.id)))
        chunks = (_run(select(*LIST_COLUMNS).where(Account.id >= start, Account.id < start + EXPORT_CHUNK,
                                                                  clause).order_by(Account.id)).all()
                  for start in range(low or 0, (high or -1) + 1, EXPORT_CHUNK))
    for chunk in chunks:
        for r in chunk:
            yield (r.number, r.name, r.email, r.status, names.get(r.customer_class_id, ""),
                   f"{Decimal(r.balance_cents) / 100:.2f}", "yes" if r.exempt else "no",
                   r.last_activity_at.isoformat(sep=" ") if r.last_activity_at else "",
                   r.created_at.isoformat(sep=" ") if r.created_at else "")
