"""The list's "changed by run #N" filter: the accounts a run changed, read from the audit trail's run index.

Why the audit trail and not accounts.suspended_by_run_id: every kind of run writes exactly one audit event
per account it changes, in the transaction that changes it, with the run's id in actor_run_id (a chunk of a
clean-up, scheduled sweep, bulk change or undo, the daily dunning run, and a small bulk change made at once,
runs.inline). suspended_by_run_id only says which run an account is *still* suspended by: a reactivating run
(an undo, a bulk reactivation) never sets it, a dunning run sets it when it only limits, and it is cleared
as soon as anyone reactivates the account, so a run that was undone would show nothing.

`actor_run_id = N` is a range of the index (actor_run_id, account_id): the accounts' ids come from the index
alone, in id order, and accounts are then read by primary key.
"""
from sqlalchemy import select

from portal.extensions import db
from portal.models import Account, AuditEvent, SweepRun


def run_exists(run_id):
    """True if there is a run with this id."""
    return db.session.get(SweepRun, run_id) is not None


def changed_by_run(run_id):
    """The SQL condition over accounts: changed by this run.

    The subquery names actor_run_id alone, so the run index is the only one that serves it (the run's own
    events, whose account_id is NULL, never equal an account's id).
    """
    return Account.id.in_(select(AuditEvent.account_id).where(AuditEvent.actor_run_id == run_id))


def changed_ids_after(run_id, after, limit):
    """Up to `limit` ids of accounts the run changed, greater than `after`, in id order (from the index alone)."""
    query = (select(AuditEvent.account_id).distinct()
             .where(AuditEvent.actor_run_id == run_id, AuditEvent.account_id > (after if after is not None else -1))
             .order_by(AuditEvent.account_id).limit(limit))
    return list(db.session.scalars(query))
