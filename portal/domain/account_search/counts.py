"""How many accounts: per status for the list's chips (capped under a filter), exactly for confirmations."""
import json
from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy import func, select

from portal.domain import account_search as limits  # COUNT_CAP: read at call time
from portal.domain.account_search.conditions import filter_clause
from portal.extensions import db, get_redis
from portal.models import Account
from portal.timeutil import utcnow

GLOBAL_COUNTS_TTL = 60  # seconds the unfiltered counts by status are kept in Redis
_REDIS_KEY = "portal:accounts:status-counts"


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

    Unfiltered: exact counts over the whole table, cached for a minute. Filtered: counts over at most
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
    """Counts over all accounts: one pass over the table, kept GLOBAL_COUNTS_TTL seconds in Redis."""
    try:
        cached = get_redis().get(_REDIS_KEY)
    except Exception:  # Redis down: count anyway, the page must not fail
        cached = None
    if cached:
        data = json.loads(cached)
        return StatusCounts(data["counts"], sum(data["counts"].values()), False,
                            datetime.fromisoformat(data["as_of"]), cached=True)
    counts = dict(db.session.execute(select(Account.status, func.count()).group_by(Account.status)).all())
    try:
        get_redis().set(_REDIS_KEY, json.dumps({"counts": counts, "as_of": now.isoformat()}), ex=GLOBAL_COUNTS_TTL)
    except Exception:
        pass
    return StatusCounts(counts, sum(counts.values()), False, now)


def count_matching(f):
    """Return the exact number of accounts matching the filters (may read many rows; for confirmations)."""
    return db.session.scalar(select(func.count()).select_from(Account).where(filter_clause(f)))
