"""How the list's rows are found without scanning the table.

Either an index narrows the filter to a small set of ids (read by primary key, then sorted), or the sort's own
index is walked from the position in windows, at most SCAN_BUDGET entries, the filter tested on the way.
"""
import json

from sqlalchemy import Integer, and_, any_, bindparam, cast, func, literal, or_, select, text, true
from sqlalchemy.dialects import postgresql

from portal.domain import account_search as limits  # SMALL_SET, SEARCH_SET, WINDOWS, SCAN_BUDGET: read at call time
from portal.domain.account_search.conditions import (NARROWING_KEYS, SEARCH_KEYS, IdText, filter_clause, id_text,
                                                     narrowing, prefix_ranges, search_ids, search_ranges)
from portal.domain.account_search.words import split_words
from portal.domain.account_search.keyset import beyond, hinted, order, up_to
from portal.domain.account_search.rows import LIST_COLUMNS, fetch
from portal.extensions import db
from portal.models import Account
from portal.models.accounts import RARE_STATUS_SQL, RARE_STATUSES


def read(f, sort, pos, asc, limit, seen=None):
    """Return (up to limit rows in walk order, frontier where a budget-limited walk stopped, or None).

    A walk under a filter first counts its matches (up to what this page could show): none means an empty
    page at once, without walking; and a walk stopped at its budget has no frontier once every match is
    among the rows read so far (`seen` matches came before pos), so "keep looking" only shows when more may come.
    """
    if _quick_walk_first(f):
        rows, _frontier = _walk(sort, filter_clause(f, walking=True), true(), pos, asc, limit,
                                windows=(limits.SEARCH_SET,))
        if len(rows) >= limit:  # a word in 1 % or more fills the page within the window: no index lookup
            return rows, None
    few = None  # counted once, and only where it decides something
    if f.status and f.q and not narrowing(f):
        few = status_is_few(f.status)
        if few:  # a search among a few accounts: read them all, no trigram lookup
            return by_status(f.status, sort, filter_clause(f, walking="ids"), pos, asc, limit), None
    ids, restrict, extra, common = plan(f, sort)
    split = _typed_prefix_split(f.q, sort, ids) if isinstance(ids, IdText) else None
    if split is not None:  # (the list only: the export reads the candidates as they are)
        ids, (restrict, extra), common = None, split, True
    # a common search is tested on the rows walked: its trigram index is not asked again (SQLite would build
    # the whole set, tens of thousands of ids, to count or merge)
    clause = filter_clause(f, walking=common)
    index, rare_walk = None, rare_status_walk(f, sort, extra)
    if rare_walk:
        restrict, index = and_(restrict, text(RARE_STATUS_SQL)), "ix_accounts_rare_status_name"
    if ids is not None:
        return by_ids(ids, sort, filter_clause(f, walking="ids"), pos, asc, limit), None
    few = bool(f.status) and not extra and (status_is_few(f.status) if few is None else few)
    if few and not rare_walk:
        return by_status(f.status, sort, filter_clause(f, walking="ids"), pos, asc, limit), None
    narrowed = f.narrowed
    bound = (seen or 0) + limit
    # (a common search's matches are not counted: only its trigram index could count them without a walk)
    matches = count_upto(clause, bound) if narrowed and not common else None
    if matches == 0:
        return [], None
    windows = limits.WINDOWS[:1] if few else None  # few: a short look along the rare index, then all of them
    rows, frontier = _walk(sort, filter_clause(f, walking=True), restrict, pos, asc, limit, index=index,
                           index_checks=bool(narrowing(f)) or f.exempt is not None, windows=windows)
    if extra:
        end = (rows[-1].sort_key, rows[-1].id) if len(rows) >= limit else frontier
        walked = {r.id for r in rows}  # (an account in the walked range may be among the extra ones too)
        merged = by_ids(extra, sort, filter_clause(f, walking="ids"), pos, asc, limit, end)
        rows = rows + [r for r in merged if r.id not in walked]
        rows.sort(key=lambda r: (r.sort_key, r.id), reverse=not asc)
        rows = rows[:limit]
    if frontier is not None and few:  # a rare match among a rare status's few accounts: read them all
        return by_status(f.status, sort, filter_clause(f, walking="ids"), pos, asc, limit), None
    if frontier is not None and matches is not None and seen is not None and asc != sort.descending \
            and matches < bound and matches <= seen + len(rows):
        frontier = None  # walking forward, every match is now shown
    return rows, frontier


def _quick_walk_first(f):
    """PostgreSQL, a search alone: the GIN lookup of a common word reads every posting of its trigrams
    (66,000 rows' worth, 20 ms at a million accounts) where a short walk of the sort index fills the page;
    so a page first walks up to SEARCH_SET entries (the walk stops as soon as the page is full), and asks
    the index only when that did not fill it. Only for one word
    of letters: several words, or digits and punctuation (a number, an email), are rarely common, and
    would pay for the window as well as the lookup."""
    if db.engine.dialect.name != "postgresql" or not f.q or f.status or f.exempt is not None or narrowing(f):
        return False
    found = split_words(f.q)
    return len(found.all) == 1 and len(found.indexed) == 1 and found.indexed[0].isalpha()


def count_upto(clause, bound, index=None):
    """Return how many accounts match clause, counting at most `bound` of them (along `index` on SQLite, if named)."""
    inner = select(Account.id).where(clause).limit(bound)
    if index is not None:
        inner = inner.with_hint(Account, f"INDEXED BY {index}", "sqlite")
    inner = inner.subquery()
    return fetch(select(func.count()).select_from(inner)).scalar()


def _probe(clause, order_by, most=None):
    """Return the ids matching clause if there are at most `most` (default SMALL_SET) of them, else None.

    Counted first (one row back, from the index alone where it can), the ids fetched only when few.
    Ordering by the indexed column keeps PostgreSQL on the index (else it may guess a LIMITed table scan).
    """
    most = limits.SMALL_SET if most is None else most
    stmt = select(Account.id).where(clause).limit(most + 1)
    if order_by is not None:
        stmt = stmt.order_by(order_by)
    if fetch(select(func.count()).select_from(stmt.subquery())).scalar() > most:
        return None
    return fetch(stmt).scalars().all()


def plan(f, sort):
    """Choose how to read: (small id set or None, range restricting the walk, extra ids merged into the walk,
    whether the search is common: its index lookup found more than SEARCH_SET candidates).

    A search with a word of 3+ letters or digits asks its trigram index once, for up to SEARCH_SET + 1
    candidates: that many or fewer are the set (sorted in SQL by the page's order, each tested exactly);
    more, and the sort's index is walked, each row tested, and nothing else asks the trigram index again.
    One word that more than SEARCH_SET names start with is common without asking (_starts_many_names).
    (read() may then walk a range of those candidates' names instead: _typed_prefix_split.)
    """
    restrict, extra, common = true(), [], False
    if f.q:
        if _starts_many_names(f.q):  # common, known without the trigram lookup
            candidates, common = None, True
        else:
            candidates = search_ids(f.q, limits.SEARCH_SET)
            if candidates is not None and len(candidates) <= limits.SEARCH_SET:
                return candidates, restrict, extra, common
            common = candidates is not None
        ranges = search_ranges(f.q)
        found = {name: _probe(clause, SEARCH_KEYS[name]()) for name, clause in ranges.items()}
        dense = [name for name, ids in found.items() if ids is None]
        if ranges and not dense:
            return sorted({i for ids in found.values() for i in ids}), restrict, extra, common
        if dense == [sort.key]:  # the one big field is the sort's own index: walk only its range
            restrict = ranges[sort.key]
            extra = sorted({i for ids in found.values() if ids for i in ids})
    for name, clause in narrowing(f):
        ids = _probe(clause, NARROWING_KEYS[name]())
        if ids is not None:
            return ids, true(), [], common
    return None, restrict, extra, common


def _typed_prefix_split(q, sort, candidates):
    """In name order, for many candidates of which some names start with what was typed ("maple river"):
    return (that range of the name index, the other candidates as an IdText), else None.

    Every name in the range holds every word typed, and the range sits together in the name order, so the list
    walks it (each entry a match) and merges in the other candidates, found by a set difference of the ids
    with the range on the index alone, instead of reading and sorting every candidate's row; only when those
    others are at most PREFIX_SPLIT_FROM (else the candidates are read as they are).
    """
    if sort.key != "name" or len(candidates) <= limits.PREFIX_SPLIT_FROM:
        return None
    prefix = prefix_ranges(" ".join(q.split()))["name"]
    others = id_text(id_values(candidates).except_(select(Account.id).where(prefix)))
    n = len(others)
    if n == len(candidates) or n > limits.PREFIX_SPLIT_FROM:  # the range holds none, or too few, of them
        return None
    return prefix, others


def _starts_many_names(q):
    """A search of one indexed word that more than SEARCH_SET names start with: every one of those holds it, so
    the search is common. Counted on the name index (a range of it, at most SEARCH_SET + 1 entries), where the
    trigram lookup would read every posting of the word's trigrams first (15 ms on PostgreSQL for a word
    starting 5 % of a million names) only to say the same."""
    found = split_words(q)
    if len(found.all) != 1 or not found.indexed:
        return False
    return count_upto(prefix_ranges(found.indexed[0])["name"], limits.SEARCH_SET + 1) > limits.SEARCH_SET


def status_is_few(status):
    """True when at most RARE_SET accounts have this status (counted on the status index alone)."""
    counted = select(Account.id).where(Account.status == status).order_by(Account.status)
    return fetch(select(func.count()).select_from(counted.limit(limits.RARE_SET + 1).subquery())).scalar() \
        <= limits.RARE_SET


def by_status(status, sort, clause, pos, asc, limit):
    """Return the page's rows among the few accounts of a status (status_is_few), all of them read.

    SQLite reads that status's rows along the (status, id) index and sorts them (no list of ids to bind);
    PostgreSQL reads them by their ids (one array parameter): for a rare status, first the page's ids alone,
    which the rare statuses' index answers by itself (it carries every sort key and the searched text), then
    those rows (asked for every column at once, the planner reads all the status's rows).
    """
    in_status = Account.status == status
    if db.engine.dialect.name == "postgresql":
        ids = fetch(select(Account.id).where(in_status).order_by(Account.status)).scalars().all()
        if status in RARE_STATUSES:
            ids = fetch(select(Account.id).where(id_in(ids), in_status, clause, beyond(sort, pos, asc))
                        .order_by(*order(sort, asc)).limit(limit)).scalars().all()
            clause = true()
        return by_ids(ids, sort, clause, pos, asc, limit)
    key = sort.column()
    stmt = (select(*LIST_COLUMNS, key.label("sort_key")).where(in_status, clause, beyond(sort, pos, asc))
            .order_by(*order(sort, asc)).limit(limit).with_hint(Account, "INDEXED BY ix_accounts_status_id", "sqlite"))
    return fetch(stmt).all()


def rare_status_walk(f, sort, extra):
    """True when a walk in name order goes along the rare statuses' own index (a page of limited or cancelled
    accounts is found within a few hundred entries there; one stopped at its budget is read by_status if few)."""
    return f.status in RARE_STATUSES and sort.key == "name" and not extra


JSON_IDS_FROM = 200  # SQLite: a longer list of ids is sent as one JSON text (binding thousands costs more)


def id_in(ids):
    """`id IN ids`: one array parameter on PostgreSQL (not a thousand); on SQLite a plain IN list, or for a
    long one `id IN (SELECT value FROM json_each(?))` (still primary-key lookups, one parameter)."""
    if isinstance(ids, IdText):  # the text as the database wrote it: parsed there
        if db.engine.dialect.name == "postgresql":
            return Account.id == any_(_id_array(ids))
        return Account.id.in_(id_values(ids))
    if db.engine.dialect.name == "postgresql":
        return Account.id == any_(bindparam("ids", list(ids), type_=postgresql.ARRAY(Integer)))
    if len(ids) > JSON_IDS_FROM:
        listed = func.json_each(bindparam("ids_json", json.dumps(list(ids)))).table_valued("value")
        return Account.id.in_(select(listed.c.value))
    return Account.id.in_(ids)


def _id_array(ids):
    """PostgreSQL: an IdText's text as an integer array, parsed by the database (one parameter)."""
    return cast(func.string_to_array(bindparam("ids_text", ids.text), ","), postgresql.ARRAY(Integer))


def id_values(ids):
    """SELECT the ids of an IdText, one per row, parsed by the database."""
    if db.engine.dialect.name == "postgresql":
        return select(func.unnest(_id_array(ids)).label("id"))
    listed = func.json_each(literal("[").op("||")(bindparam("ids_text", ids.text)).op("||")(literal("]")))
    return select(listed.table_valued("value").c.value)


def by_ids(ids, sort, clause, pos, asc, limit, end=None):
    """Return up to limit rows among ids matching clause, between pos and end in walk order."""
    key = sort.column()
    stmt = (select(*LIST_COLUMNS, key.label("sort_key"))
            .where(id_in(ids), clause, beyond(sort, pos, asc), up_to(sort, end, asc))
            .order_by(*order(sort, asc)).limit(limit))  # primary-key lookups, then a small sort
    return fetch(stmt).all()


def _walk(sort, clause, restrict, pos, asc, limit, index=None, index_checks=False, windows=None):
    """Walk the sort index from pos, at most SCAN_BUDGET entries; return (rows, frontier or None at the end).

    `index_checks`: some filter columns are in the name index (class, balance, activity, exempt), so a
    key-range window lets the database test them on index entries and read only candidate rows.
    `index`: walk this index instead of the sort's own (SQLite hint). `windows`: a shorter walk than WINDOWS.
    """
    if sort.segments:
        return _walk_segments(sort, clause, restrict, pos, asc, limit, index)
    return _walk_one(sort, clause, restrict, pos, asc, limit, index, index_checks, windows)


def _walk_segments(sort, clause, restrict, pos, asc, limit, index):
    """Walk a segmented sort (status) one value at a time, from pos's value on, each with its own budget.

    At most one budget per status (four), and a page fills from the next status once one is done.
    """
    values = sort.segments if asc else sort.segments[::-1]
    if pos is not None and pos[0] not in values:
        return [], None
    rows = []
    for n, value in enumerate(values[values.index(pos[0]) if pos is not None else 0:]):
        at = pos if n == 0 else None
        part, frontier = _walk_one(sort, clause, and_(restrict, sort.column() == value), at, asc, limit - len(rows),
                                   index)
        rows.extend(part)
        if len(rows) >= limit or frontier is not None:
            return rows, None if len(rows) >= limit else frontier
    return rows, None


def _walk_one(sort, clause, restrict, pos, asc, limit, index=None, index_checks=False, windows=None):
    """Walk one stretch of the sort index (see _walk)."""
    windows = windows or limits.WINDOWS
    # (PostgreSQL: a segment's status is a constant, so the lazy query's outer ORDER BY would sort its whole
    # window, and the planner may take the primary key instead of (status, id): key-range windows there too.)
    if db.engine.dialect.name == "postgresql" and not (index_checks and sort.key == "name") and not sort.segments:
        return _walk_postgresql(sort, clause, restrict, pos, asc, limit, sum(windows))
    return _walk_ranges(sort, clause, restrict, pos, asc, limit, index, windows)


def _walk_ranges(sort, clause, restrict, pos, asc, limit, index=None, windows=None):
    """Find each window's last entry on the index alone (cheap), then read that bounded key range.

    SQLite always walks this way (it would materialise and sort a LIMITed subquery). The name index
    carries the filter columns, so rows failing class, balance, activity or exempt are skipped on the
    index entry; PostgreSQL finds each window's end on the index alone too (the index carries name).
    """
    key, within = sort.column(), bool(sort.segments)
    rows, start = [], pos
    for size in windows or limits.WINDOWS:
        end = fetch(hinted(
            select(key, Account.id).where(beyond(sort, start, asc, within), restrict)
            .order_by(*order(sort, asc)).offset(size - 1).limit(1), sort, index)).first()
        end = tuple(end) if end is not None else None
        stmt = (select(*LIST_COLUMNS, key.label("sort_key"))
                .where(beyond(sort, start, asc, within), up_to(sort, end, asc, within), restrict, clause)
                .order_by(*order(sort, asc)).limit(limit - len(rows)))
        rows.extend(fetch(hinted(stmt, sort, index)).all())
        if len(rows) >= limit or end is None:
            return rows, None
        start = end
    return rows, start


def _walk_postgresql(sort, clause, restrict, pos, asc, limit, budget=None):
    """PostgreSQL: one lazy query; the window's last entry comes back as a sentinel row that fails the filter.

    The window reads only the sort key, the id and the filter's verdict, so in name order, with a filter on the
    columns the name index carries (the search's name, email and number; class, balance, activity, exempt), it is
    an index-only scan; the list's columns are read for the matches (and the sentinel) alone. The filter stays out
    of the WHERE on purpose: there PostgreSQL could skip index entries unread and unbounded, or pick another
    index and sort everything.
    """
    budget = budget or limits.SCAN_BUDGET
    key = sort.column()
    walk_order = order(sort, asc)
    window = (select(key.label("sort_key"), Account.id.label("walked_id"),
                     func.row_number().over(order_by=walk_order).label("walked"), clause.label("hit"))
              .where(beyond(sort, pos, asc, bool(sort.segments)), restrict).order_by(*walk_order).limit(budget)
              .subquery())
    w_order = ((window.c.sort_key.asc(), window.c.walked_id.asc()) if asc
               else (window.c.sort_key.desc(), window.c.walked_id.desc()))
    picked = (select(window).where(or_(window.c.hit, window.c.walked == budget)).order_by(*w_order)
              .limit(limit + 1).subquery())
    p_order = ((picked.c.sort_key.asc(), picked.c.walked_id.asc()) if asc
               else (picked.c.sort_key.desc(), picked.c.walked_id.desc()))
    stmt = (select(*LIST_COLUMNS, picked.c.sort_key, picked.c.walked, picked.c.hit)
            .join_from(picked, Account, Account.id == picked.c.walked_id).order_by(*p_order))
    found = fetch(stmt).all()
    rows = [r for r in found if r.hit][:limit]
    sentinel = next((r for r in found if r.walked == budget), None)
    if len(rows) >= limit or sentinel is None:
        return rows, None
    return rows, (sentinel.sort_key, sentinel.id)
