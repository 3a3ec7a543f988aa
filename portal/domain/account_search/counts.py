"""How many accounts: per status for the list's chips (capped under a filter), exactly for confirmations."""
from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy import and_, func, null, select, text, union_all

from portal.domain import account_search as limits  # COUNT_CAP: read at call time
from portal.domain.account_search import words
from portal.domain.account_search.conditions import filter_clause
from portal.domain.account_search.reading import count_upto
from portal.domain.account_search.rows import fetch
from portal.domain.account_search.words import split_words
from portal.extensions import db
from portal.models import Account
from portal.models.accounts import RARE_STATUS_SQL, RARE_STATUSES
from portal.timeutil import utcnow



@dataclass
class StatusCounts:
    """Accounts per status; when `capped`, each number is a lower bound ("10,000+") except those in `exact`.

    The numbers never contradict each other: the total is the sum when exact, and no number that is a lower
    bound exceeds the total it is part of (each is at most `cap`).
    """

    counts: dict
    total: int
    capped: bool
    as_of: datetime | None = None
    cached: bool = False
    filtered: bool = False
    cap: int | None = None
    exact: frozenset = frozenset()  # statuses counted exactly even when the others are capped

    def number(self, status=""):
        """The count shown for a status ("" for all)."""
        return self.total if not status else self.counts.get(status, 0)

    def is_lower_bound(self, status=""):
        """True when the number for this status ("" for all) means "at least"."""
        return self.capped and (not status or status not in self.exact)


def count_by_status(f, now=None):
    """Count accounts per status under the filters other than status, for the status chips.

    Unfiltered: exact counts over the whole table, kept until a status changes. Filtered: counts over at most
    COUNT_CAP + 1 matching accounts; beyond that every number is a lower bound and `capped` is set.

    Args:
        f: Filters (its status is ignored: every status gets a count).
        now: the time the counts are taken (default now).
    """
    now = now or utcnow()
    if not replace(f, status="").narrowed:
        return _global_counts(now)
    cap = limits.COUNT_CAP
    found = split_words(f.q)
    if found.indexed:
        return _search_counts(f, found, cap, now)
    matching = select(Account.status).where(filter_clause(f, with_status=False)).limit(cap + 1).subquery()
    counts = dict(db.session.execute(select(matching.c.status, func.count()).group_by(matching.c.status)).all())
    total = sum(counts.values())
    if total <= cap:
        return StatusCounts(counts, total, False, now, filtered=True, cap=cap)
    # Beyond the cap every number is "at least", and none may exceed "All": at most cap each. The chosen
    # status is counted on its own (up to the cap), so the page can say "of 2,345" when it is exact.
    counts = {status: min(n, cap) for status, n in counts.items()}
    exact = frozenset()
    if f.status:
        n = _count_status(f, cap + 1)
        counts[f.status] = min(n, cap)
        exact = frozenset([f.status]) if n <= cap else exact
    return StatusCounts(counts, cap, True, now, filtered=True, cap=cap, exact=exact)


def _count_status(f, bound):
    """How many accounts match the filters with their status, counting at most `bound`. A rare status is counted
    along its own index, which carries the filters' columns and status: its entries alone decide."""
    if f.status not in RARE_STATUSES:
        return count_upto(filter_clause(f), bound)
    return count_upto(and_(filter_clause(f), text(RARE_STATUS_SQL)), bound, index="ix_accounts_rare_status_name")


def _search_counts(f, found, cap, now):
    """Counts of a search with an indexed word, from one trigram lookup of at most cap + 1 candidates, in one
    statement (the candidates stay in the database: thousands of ids as Python objects cost more than the
    counting, in garbage collection).

    All of them found: the counts are exact. More: the counts are of the matches among the first cap + 1
    candidates, each a lower bound ("10,000+" when all of them matched), and none exceeds "All".
    """
    if db.engine.dialect.name == "postgresql":
        n_candidates, counts = _search_counts_postgresql(f, found, cap)
    else:
        found_ids = words.candidates(found, "sqlite", cap + 1).cte("candidates").prefix_with("MATERIALIZED")
        in_set = and_(Account.id.in_(select(found_ids.c[0])), filter_clause(f, with_status=False, walking="ids"))
        grouped = (select(Account.status.label("status"), func.count().label("n")).where(in_set)
                   .group_by(Account.status))
        candidates = select(null().label("status"),
                            select(func.count()).select_from(found_ids).scalar_subquery().label("n"))
        rows = fetch(union_all(candidates, grouped)).all()
        n_candidates = next(r.n for r in rows if r.status is None)
        counts = {r.status: r.n for r in rows if r.status is not None}
    total = sum(counts.values())
    if n_candidates <= cap:
        return StatusCounts(counts, total, False, now, filtered=True, cap=cap)
    counts = {status: min(n, cap) for status, n in counts.items()}
    return StatusCounts(counts, min(total, cap), True, now, filtered=True, cap=cap)


def _search_counts_postgresql(f, found, cap):
    """PostgreSQL: (candidates, {status: matches}) in one read of each candidate row. The GIN index's LIKEs
    are exact for the indexed words, so the candidates are read with their status and the rest of the filter
    (short words, other filters) judged on the same row, not fetched again by id."""
    judged = filter_clause(f, with_status=False, walking="ids")
    sample = (select(Account.status.label("status"), judged.label("hit")).where(words.contains_all(found.indexed))
              .limit(cap + 1).subquery())
    rows = fetch(select(sample.c.status, sample.c.hit, func.count().label("n"))
                 .group_by(sample.c.status, sample.c.hit)).all()
    return sum(r.n for r in rows), {r.status: r.n for r in rows if r.hit}


def _global_counts(now):
    """Counts over all accounts: the overview's exact counts, counted again as soon as a status changes.

    Both pages read portal.domain.status_counts, so the list's chips and the overview never disagree.
    """
    from portal.domain import status_counts

    totals = status_counts.current(now)
    counts = {status: n for status, n in totals.counts.items() if n}
    return StatusCounts(counts, totals.total, False, totals.as_of, cached=totals.cached, cap=limits.COUNT_CAP)


def count_matching(f):
    """Return the exact number of accounts matching the filters (may read many rows; for confirmations)."""
    return db.session.scalar(select(func.count()).select_from(Account).where(filter_clause(f)))
