"""Reading what the schedule needs about accounts: a few set-based queries for any number of them."""
from sqlalchemy import select

from portal.domain.dunning.calendar import Facts, OpenInvoice, Override
from portal.extensions import db
from portal.models import Account, CustomerClass, Invoice, ScheduleOverride

ACCOUNT_COLUMNS = (Account.id, Account.status, Account.status_reason, Account.status_source, Account.exempt,
                   Account.dunning_since, Account.customer_class_id, Account.version, Account.dunning_warned,
                   Account.dunning_next_on)


def classes_by_id():
    """Every customer class by id (few rows)."""
    return {c.id: c for c in db.session.scalars(select(CustomerClass))}


def open_invoices_by_account(account_ids):
    """The open invoices of these accounts, by account id."""
    found = {}
    if not account_ids:
        return found
    rows = db.session.execute(
        select(Invoice.account_id, Invoice.seq, Invoice.amount_cents, Invoice.paid_cents, Invoice.due_date)
        .where(Invoice.account_id.in_(account_ids), Invoice.paid_at.is_(None), Invoice.written_off_at.is_(None))
        .order_by(Invoice.account_id, Invoice.due_date, Invoice.seq))
    for account_id, seq, amount, paid, due in rows:
        found.setdefault(account_id, []).append(OpenInvoice(seq=seq, owed_cents=amount - (paid or 0), due_date=due,
                                                            amount_cents=amount, paid_cents=paid or 0))
    return found


def live_overrides(account_ids):
    """The live manual dates of these accounts, by account id."""
    if not account_ids:
        return {}
    rows = db.session.scalars(select(ScheduleOverride).where(ScheduleOverride.account_id.in_(account_ids),
                                                             ScheduleOverride.ended_at.is_(None)))
    return {o.account_id: Override(o.episode_start, o.limitation_date, o.suspension_date, o.lift_until) for o in rows}


def facts_for(row, cls, invoices, override):
    """Build Facts from an account row (ACCOUNT_COLUMNS or an Account), its class, invoices and override."""
    return Facts(status=row.status, status_reason=row.status_reason, status_source=row.status_source,
                 limit_after=cls.limit_after_days if cls else None,
                 suspend_after=cls.suspend_after_days if cls else None,
                 least_amount_cents=cls.least_amount_cents if cls else 1,
                 warning_days=cls.warning_days if cls else None,
                 invoices=tuple(invoices or ()), dunning_since=row.dunning_since, override=override,
                 exempt=bool(row.exempt))


def load_facts(account_ids):
    """Return {account id: (row, Facts)} for these accounts, in four queries whatever their number."""
    ids = list(account_ids)
    if not ids:
        return {}
    rows = db.session.execute(select(*ACCOUNT_COLUMNS).where(Account.id.in_(ids))).all()
    classes = classes_by_id()
    invoices = open_invoices_by_account(ids)
    overrides = live_overrides(ids)
    return {row.id: (row, facts_for(row, classes.get(row.customer_class_id), invoices.get(row.id),
                                    overrides.get(row.id))) for row in rows}


def account_facts(account):
    """Facts of one Account (fresh reads of its invoices and manual dates)."""
    cls = db.session.get(CustomerClass, account.customer_class_id) if account.customer_class_id else None
    return facts_for(account, cls, open_invoices_by_account([account.id]).get(account.id),
                     live_overrides([account.id]).get(account.id))
