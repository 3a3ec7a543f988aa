"""Billing: invoices, payments and write-offs, with the account's balance kept equal to what its open
invoices still owe. A payment or write-off that leaves nothing overdue ends the account's dunning episode
and clears a restriction applied automatically for non-payment, in the same transaction.
"""
from sqlalchemy import select

from portal.extensions import db
from portal.models import Invoice


def open_invoices(account_id, include_paid=False, limit=100):
    """Return the account's invoices (open ones only unless include_paid), by sequence number, newest first."""
    stmt = select(Invoice).where(Invoice.account_id == account_id)
    if not include_paid:
        stmt = stmt.where(Invoice.paid_at.is_(None), Invoice.written_off_at.is_(None))
    return list(db.session.scalars(stmt.order_by(Invoice.seq.desc()).limit(limit)))
