"""The rule that unpaid invoices block the way out: suspending at the customer's request or cancelling."""
from sqlalchemy import select

from portal import plurals
from portal.domain.errors import UnpaidInvoices
from portal.domain.money import dollars
from portal.extensions import db
from portal.models import Invoice


def unpaid(account_id):
    """Return the account's open invoices as dicts (seq, owed_cents, due_date), oldest due first."""
    stmt = (select(Invoice).where(Invoice.account_id == account_id, Invoice.paid_at.is_(None),
                                  Invoice.written_off_at.is_(None)).order_by(Invoice.due_date, Invoice.seq))
    return [{"seq": inv.seq, "owed_cents": inv.amount_cents - inv.paid_cents, "due_date": inv.due_date}
            for inv in db.session.scalars(stmt)]


def refuse_if_unpaid(account, what):
    """Raise UnpaidInvoices listing the account's open invoices, if it has any.

    Args:
        account: the Account.
        what: the action refused, as a phrase ("cancel", "suspend at the customer's request").

    Raises:
        UnpaidInvoices: its message names each invoice (#seq, amount still owed, due date); `invoices` lists them.
    """
    invoices = unpaid(account.id)
    if not invoices:
        return
    listed = "; ".join(f"#{i['seq']}: {dollars(i['owed_cents'])} due {i['due_date'].isoformat()}" for i in invoices)
    total = sum(i["owed_cents"] for i in invoices)
    count = plurals.count(len(invoices), "unpaid invoice")
    db.session.rollback()
    raise UnpaidInvoices(f"Account {account.number} can't {what}: it has {count} ({dollars(total)}): {listed}. "
                         "Write them off or collect them first. Nothing was changed.", invoices)
