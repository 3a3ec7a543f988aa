"""The account list as CSV rows: every account matching the filters, read in chunks so memory stays flat.

Besides the list's columns each row says why and when the status last changed and what changed it: the
reason (its label) and note, status_changed_at, status_source (manual, pause, sweep, bulk, dunning) and run, the
run the account's current restriction came from (suspended_by_run_id: empty for an account a person changed,
and for one a run reactivated, which the account does not record; the audit log has those). Times are ISO 8601
with the zone (+00:00).
"""
from dataclasses import replace
from decimal import Decimal

from sqlalchemy import func, select

from portal.domain import account_search as limits  # SMALL_SET, EXPORT_CHUNK: read at call time
from portal.domain.account_search.by_run import changed_ids_after
from portal.domain.account_search.conditions import filter_clause
from portal.domain.account_search.keyset import SORTS
from portal.domain.account_search.reading import id_in, by_ids, plan
from portal.domain.account_search.rows import LIST_COLUMNS, class_names, fetch
from portal.domain.audit_log import cell
from portal.domain.gate import REASONS
from portal.extensions import db
from portal.models import Account
from portal.timeutil import iso_utc

EXPORT_HEADER = ("number", "name", "email", "status", "status_reason", "status_note", "status_changed_at",
                 "status_source", "run", "customer_class", "balance", "exempt", "last_activity_at", "created_at")
# The list's columns and the status's story; all on the accounts row, so the export reads nothing more per chunk.
EXPORT_COLUMNS = LIST_COLUMNS + (Account.status_note, Account.status_changed_at, Account.status_source,
                                 Account.suspended_by_run_id)


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
    sort = SORTS[f.sort]
    ids, _restrict, _extra, common = plan(f, sort)
    if ids is not None:
        return [_with_status_story(by_ids(ids, sort, filter_clause(f, walking="ids"), None, not sort.descending,
                                          len(ids) + 1))]
    clause = filter_clause(f, walking=common)  # a common search: each chunk's rows tested, no trigram set
    if f.run_id is not None:
        return _run_chunks(f)
    # two statements: SQLite answers min() or max() alone from the primary key, but scans for both at once
    low = db.session.scalar(select(func.min(Account.id)))
    high = db.session.scalar(select(func.max(Account.id)))
    step = limits.EXPORT_CHUNK
    return (fetch(select(*EXPORT_COLUMNS).where(Account.id >= start, Account.id < start + step, clause)
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
        yield fetch(select(*EXPORT_COLUMNS).where(id_in(ids), others).order_by(Account.id)).all()
        after = ids[-1]


def _with_status_story(rows):
    """The small set's rows (in the list's order) with EXPORT_COLUMNS: one more primary-key read of those ids."""
    if not rows:
        return rows
    full = {r.id: r for r in fetch(select(*EXPORT_COLUMNS).where(id_in([r.id for r in rows]))).all()}
    return [full[r.id] for r in rows if r.id in full]


def _csv_row(r, names):
    reason = REASONS.get(r.status_reason, r.status_reason) if r.status_reason else ""
    return (r.number, r.name, r.email, r.status, reason, cell(r.status_note), iso_utc(r.status_changed_at),
            r.status_source or "", r.suspended_by_run_id or "", names.get(r.customer_class_id, ""),
            f"{Decimal(r.balance_cents) / 100:.2f}", "yes" if r.exempt else "no",
            iso_utc(r.last_activity_at), iso_utc(r.created_at))
