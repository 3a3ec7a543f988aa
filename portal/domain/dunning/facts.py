"""Reading what the schedule needs about accounts: a few set-based queries for any number of them.

One account changed in a transaction (a payment, an invoice, a write-off) is read once with hold(): its open
Invoice rows and its live manual dates, kept in a Held that the change updates in memory and that gives the
schedule's Facts at every step after, instead of reading them again from the database at each one.
"""
from dataclasses import dataclass, field

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


def account_facts(account, held=None):
    """Facts of one Account: from what the transaction holds (a Held), or else fresh reads of its invoices and
    manual dates."""
    if held is not None:
        return held.facts(account)
    cls = db.session.get(CustomerClass, account.customer_class_id) if account.customer_class_id else None
    return facts_for(account, cls, open_invoices_by_account([account.id]).get(account.id),
                     live_overrides([account.id]).get(account.id))


@dataclass
class Held:
    """What a transaction holds about one locked account: its open Invoice rows and its live manual dates.

    invoices are the rows that were open when read (by due date, then sequence number) plus any added in
    this transaction; the change settles or writes them off in memory, and facts() leaves out those no
    longer open. override_row is the live ScheduleOverride (None: the account has no manual dates).
    """

    invoices: list = field(default_factory=list)
    override_row: ScheduleOverride | None = None
    customer_class: CustomerClass | None = None  # held here too: the session keeps only rows someone refers to

    @property
    def override(self):
        row = self.override_row
        if row is None or row.ended_at is not None:
            return None
        return Override(row.episode_start, row.limitation_date, row.suspension_date, row.lift_until)

    def open_invoices(self):
        """The held invoices still open, by due date then sequence number."""
        return sorted((inv for inv in self.invoices if inv.paid_at is None and inv.written_off_at is None),
                      key=lambda inv: (inv.due_date, inv.seq))

    def owed_cents(self):
        """What the open invoices still owe (the account's balance)."""
        return sum(inv.amount_cents - (inv.paid_cents or 0) for inv in self.open_invoices())

    def facts(self, account):
        """The account's Facts as they stand in this transaction (no statement: the class is in the session)."""
        cls = self.customer_class
        if (cls.id if cls else None) != account.customer_class_id:
            cls = self.customer_class = (db.session.get(CustomerClass, account.customer_class_id)
                                         if account.customer_class_id else None)
        invoices = [OpenInvoice(seq=inv.seq, owed_cents=inv.amount_cents - (inv.paid_cents or 0),
                                due_date=inv.due_date, amount_cents=inv.amount_cents, paid_cents=inv.paid_cents or 0)
                    for inv in self.open_invoices()]
        return facts_for(account, cls, invoices, self.override)


def hold(account, customer_class=None):
    """Read a locked account's open Invoice rows and live manual dates once, for the rest of its transaction.

    customer_class: the account's class if the caller has it (else it is taken from the session or read).
    """
    account_id = account.id
    if customer_class is None or customer_class.id != account.customer_class_id:
        customer_class = (db.session.get(CustomerClass, account.customer_class_id)
                          if account.customer_class_id else None)
    invoices = list(db.session.scalars(select(Invoice).where(Invoice.account_id == account_id,
                                                             Invoice.paid_at.is_(None),
                                                             Invoice.written_off_at.is_(None))
                                       .order_by(Invoice.due_date, Invoice.seq)))
    override = db.session.scalar(select(ScheduleOverride).where(ScheduleOverride.account_id == account_id,
                                                                ScheduleOverride.ended_at.is_(None)))
    return Held(invoices, override, customer_class)
