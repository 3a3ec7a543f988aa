"""How the list's rows are found without scanning the table.

Either an index narrows the filter to a small set of ids (read by primary key, then sorted), or the sort's own
index is walked from the position in windows, at most SCAN_BUDGET entries, the filter tested on the way.
"""
from sqlalchemy import Integer, any_, bindparam, func, or_, select, true
from sqlalchemy.dialects import postgresql

from portal.domain import account_search as limits  # SMALL_SET, WINDOWS, SCAN_BUDGET: read at call time
from portal.domain.account_search.conditions import (NARROWING_KEYS, SEARCH_KEYS, filter_clause, narrowing,
                                                     search_ranges)
from portal.domain.account_search.keyset import beyond, hinted, order, up_to
from portal.domain.account_search.rows import LIST_COLUMNS, fetch
from portal.extensions import db
from portal.models import Account


def read(f, sort, pos, asc, limit):
    """Return (up to limit rows in walk order, frontier where a budget-limited walk stopped, or None)."""
    clause = filter_clause(f)
    ids, restrict, extra = plan(f, sort)
    if ids is not None:
        return by_ids(ids, sort, clause, pos, asc, limit), None
    rows, frontier = _walk(sort, filter_clause(f, walking=True), restrict, pos, asc, limit,
                           index_checks=bool(narrowing(f)) or f.exempt is not None)
    if extra:
        end = (rows[-1].sort_key, rows[-1].id) if len(rows) >= limit else frontier
        rows = rows + by_ids(extra, sort, clause, pos, asc, limit, end)
        rows.sort(key=lambda r: (r.sort_key, r.id), reverse=not asc)
        rows = rows[:limit]
    return rows, frontier


def _probe(clause, order_by):
    """Return the ids matching clause if there are at most SMALL_SET of them, else None.

    Counted first (one row back, from the index alone where it can), the ids fetched only when few.
    Ordering by the indexed column keeps PostgreSQL on the index (else it may guess a LIMITed table scan).
    """
    stmt = select(Account.id).where(clause).limit(limits.SMALL_SET + 1)
    if order_by is not None:
        stmt = stmt.order_by(order_by)
    if fetch(select(func.count()).select_from(stmt.subquery())).scalar() > limits.SMALL_SET:
        return None
    return fetch(stmt).scalars().all()


def plan(f, sort):
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
    for name, clause in narrowing(f):
        ids = _probe(clause, NARROWING_KEYS[name]())
        if ids is not None:
            return ids, true(), []
    return None, restrict, extra


def _id_in(ids):
    """`id IN ids`: one array parameter on PostgreSQL (not a thousand), a plain IN list on SQLite."""
    if db.engine.dialect.name == "postgresql":
        return Account.id == any_(bindparam("ids", list(ids), type_=postgresql.ARRAY(Integer)))
    return Account.id.in_(ids)


def by_ids(ids, sort, clause, pos, asc, limit, end=None):
    """Return up to limit rows among ids matching clause, between pos and end in walk order."""
    key = sort.column()
    stmt = (select(*LIST_COLUMNS, key.label("sort_key"))
            .where(_id_in(ids), clause, beyond(sort, pos, asc), up_to(sort, end, asc))
            .order_by(*order(sort, asc)).limit(limit))  # primary-key lookups, then a small sort
    return fetch(stmt).all()


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
    for size in limits.WINDOWS:
        end = fetch(hinted(
            select(key, Account.id).where(beyond(sort, start, asc), restrict)
            .order_by(*order(sort, asc)).offset(size - 1).limit(1), sort)).first()
        end = tuple(end) if end is not None else None
        stmt = (select(*LIST_COLUMNS, key.label("sort_key"))
                .where(beyond(sort, start, asc), up_to(sort, end, asc), restrict, clause)
                .order_by(*order(sort, asc)).limit(limit - len(rows)))
        rows.extend(fetch(hinted(stmt, sort)).all())
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
    budget = limits.SCAN_BUDGET
    key = sort.column()
    walk_order = order(sort, asc)
    window = (select(*LIST_COLUMNS, key.label("sort_key"),
                     func.row_number().over(order_by=walk_order).label("walked"), clause.label("hit"))
              .where(beyond(sort, pos, asc), restrict).order_by(*walk_order).limit(budget).subquery())
    w_order = ((window.c.sort_key.asc(), window.c.id.asc()) if asc
               else (window.c.sort_key.desc(), window.c.id.desc()))
    stmt = (select(window).where(or_(window.c.hit, window.c.walked == budget))
            .order_by(*w_order).limit(limit + 1))
    found = fetch(stmt).all()
    rows = [r for r in found if r.hit][:limit]
    sentinel = next((r for r in found if r.walked == budget), None)
    if len(rows) >= limit or sentinel is None:
        return rows, None
    return rows, (sentinel.sort_key, sentinel.id)
