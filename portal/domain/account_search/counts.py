"""How many accounts: per status for the list's chips (capped under a filter), exactly for confirmations."""
from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy import func, select

from portal.domain import account_search as limits  # COUNT_CAP: read at call time
from portal.domain.account_search.conditions import filter_clause
from portal.extensions import db
from portal.models import Account
from portal.timeutil import utcnow



@dataclass
class StatusCounts:
    """Accounts per status; when `capped`, each number is a lower bound ("10,000+")."""

    counts: dict
    total: int
    capped: bool
    as_of: datetime | None = None
    cached: bool = False
    filtered: bool = False


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
    matching = select(Account.status).where(filter_clause(f, with_status=False)).limit(cap + 1).subquery()
    counts = dict(db.session.execute(select(matching.c.status, func.count()).group_by(matching.c.status)).all())
    total = sum(counts.values())
    return StatusCounts(counts, min(total, cap), total > cap, now, filtered=True)


def _global_counts(now):
    """Counts over all accounts: the overview's exact counts, counted again as soon as a status changes.

    Both pages read portal.domain.status_counts, so the list's chips and the overview never disagree.
    """
    from portal.domain import status_counts

    totals = status_counts.current(now)
    counts = {status: n for status, n in totals.counts.items() if n}
    return StatusCounts(counts, totals.total, False, totals.as_of, cached=totals.cached)


def count_matching(f):
    """Return the exact number of accounts matching the filters (may read many rows; for confirmations)."""
    return db.session.scalar(select(func.count()).select_from(Account).where(filter_clause(f)))
