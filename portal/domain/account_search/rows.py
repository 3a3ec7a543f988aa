"""The account list's row: the columns read, how they are read, one row, and the class names rows show."""
from flask import g
from sqlalchemy import func, select

from portal.extensions import db
from portal.models import Account, CustomerClass

LIST_COLUMNS = (Account.id, Account.number, Account.name, Account.email, Account.status, Account.status_reason,
                Account.customer_class_id, Account.exempt, Account.balance_cents, Account.last_activity_at,
                Account.created_at, Account.version)


def fetch(stmt):
    """Execute a Core select on the session's connection: plain rows, without the ORM's per-row work."""
    return db.session.connection().execute(stmt)


def get_row(account_id):
    """Return the list row of one account, or None."""
    key = func.lower(Account.name)
    return fetch(select(*LIST_COLUMNS, key.label("sort_key")).where(Account.id == account_id)).first()


def class_names():
    """Return {customer class id: name} (a handful of rows; read once per app context)."""
    if "account_class_names" not in g:
        g.account_class_names = dict(fetch(select(CustomerClass.id, CustomerClass.name)
                                           .order_by(CustomerClass.name)).all())
    return g.account_class_names
