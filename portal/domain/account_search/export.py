"""The account list as CSV rows: every account matching the filters, read in chunks so memory stays flat."""
from dataclasses import replace
from decimal import Decimal

from sqlalchemy import func, select

from portal.domain import account_search as limits  # SMALL_SET, EXPORT_CHUNK: read at call time
from portal.domain.account_search.by_run import changed_ids_after
from portal.domain.account_search.conditions import filter_clause
from portal.domain.account_search.keyset import SORTS
from portal.domain.account_search.reading import _id_in, by_ids, plan
from portal.domain.account_search.rows import LIST_COLUMNS, class_names, fetch
from portal.extensions import db
from portal.models import Account

EXPORT_HEADER = ("number", "name", "email", "status", "customer_class", "balance", "exempt", "last_activity_at",
                 "created_at")


def export_rows(f):
    """Yield the CSV header, then one tuple per matching account, reading EXPORT_CHUNK ids at a time.

    Memory stays flat however many accounts match: each chunk is its own short query over an id range
    (or over the small id set an index found), and nothing is kept between chunks.
    """
    names = class_names()
    yield EXPORT_HEADER
    for chunk in _chunks(f):
        for r in chunk:
            yield _csv_row(r, names)


def _chunks(f):
    """Return the matching rows as chunks: the small id set an index found, or id ranges read one by one."""
    clause = filter_clause(f)
    sort = SORTS[f.sort]
    ids, _restrict, _extra = plan(f, sort)
    if ids is not None:
        return [by_ids(ids, sort, clause, None, not sort.descending, limits.SMALL_SET + 1)]
    if f.run_id is not None:
        return _run_chunks(f)
    # two statements: SQLite answers min() or max() alone from the primary key, but scans for both at once
    low = db.session.scalar(select(func.min(Account.id)))
    high = db.session.scalar(select(func.max(Account.id)))
    step = limits.EXPORT_CHUNK
    return (fetch(select(*LIST_COLUMNS).where(Account.id >= start, Account.id < start + step, clause)
                  .order_by(Account.id)).all()
            for start in range(low or 0, (high or -1) + 1, step))


def _run_chunks(f):
    """The accounts a run changed, EXPORT_CHUNK ids at a time from the audit trail's run index (in id order),
    each chunk read by primary key and tested against the other filters."""
    others = filter_clause(replace(f, run_id=None))
    after = None
    while True:
        ids = changed_ids_after(f.run_id, after, limits.EXPORT_CHUNK)
        if not ids:
            return
        yield fetch(select(*LIST_COLUMNS).where(_id_in(ids), others).order_by(Account.id)).all()
        after = ids[-1]


def _csv_row(r, names):
    return (r.number, r.name, r.email, r.status, names.get(r.customer_class_id, ""),
            f"{Decimal(r.balance_cents) / 100:.2f}", "yes" if r.exempt else "no",
            r.last_activity_at.isoformat(sep=" ") if r.last_activity_at else "",
            r.created_at.isoformat(sep=" ") if r.created_at else "")
