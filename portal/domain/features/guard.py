"""Asking the gate for a customer's change, and making sure the answer still holds when the change is written.

A change to a listing or a profile is asked of the gate against the account as read at the start. Before it
commits, `confirm_allowed` flushes the change and reads the account again with a row lock (PostgreSQL: a
suspension arriving now waits for this transaction; SQLite: the flush already took the database's write
lock), then asks the gate once more. A suspension committed between the first answer and the write is seen
there, and nothing is written: an edit racing a suspension either lands before it or is refused.
"""
from sqlalchemy import select

from portal.domain.errors import AccountNotFound, PermissionDenied
from portal.domain.gate import may, require
from portal.extensions import db
from portal.models import Account


def fresh_account(account_id):
    """Return the account read fresh from the database (never a stale copy from the session), or None."""
    if account_id is None:
        return None
    return db.session.get(Account, account_id, populate_existing=True)


def account_for(actor, action, account_id):
    """Return the account, read fresh, if the gate lets actor do action on it.

    Raises:
        AccountNotFound: no such account.
        PermissionDenied: the gate refuses; its message says why.
    """
    account = fresh_account(account_id)
    if account is None:
        raise AccountNotFound()
    require(actor, action, account)
    return account


def confirm_allowed(actor, action, account):
    """Inside the writing transaction, lock the account, read it again and ask the gate again.

    Raises:
        PermissionDenied: the account changed meanwhile and the gate now refuses; the transaction is rolled
            back, so nothing was written.
    """
    db.session.flush()
    account = db.session.execute(select(Account).where(Account.id == account.id).with_for_update(of=Account)
                                 .execution_options(populate_existing=True)).scalar_one_or_none()
    decision = may(actor, action, account)
    if not decision:
        db.session.rollback()
        raise PermissionDenied(decision.message)
