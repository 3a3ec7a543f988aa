"""Invoices, payments and write-offs: each one short transaction that keeps the balance exact.

The account's balance_cents always equals the sum of what its open invoices still owe; money paid
beyond that is kept as credit (credit_cents) and settles the next invoice added. Each operation ends
with the dunning schedule's bookkeeping (account_state.after_billing), so a payment that leaves
nothing overdue clears an automatic non-payment restriction in the same transaction.
"""
from dataclasses import dataclass, field
from datetime import date

from sqlalchemy import func, select

from portal.domain import audit, notify
from portal.domain.dunning.account_state import (after_billing, day_of, lock_account, moment_of, view_of)
from portal.domain.dunning.facts import hold
from portal.domain.errors import InvalidTransition, ValidationFailed
from portal.domain.gate import require
from portal.domain.money import dollars, parse_amount
from portal.domain.parsing import InvalidValue, clean_text, iso_date, text_problem, whole_number
from portal.extensions import db
from portal.models import Account, Invoice, Payment

NOTE_MAX = 500
REFERENCE_MAX = 100  # payments.reference


@dataclass
class PaymentOutcome:
    """What a payment did: the invoices it settled (seq, cents), the credit kept, service restored."""

    payment_id: int
    amount_cents: int
    settled: list = field(default_factory=list)
    credit_cents: int = 0
    restored: bool = False
    status: str = ""
    facts: object = None  # the account's dunning Facts after the payment (calendar.Facts)

    @property
    def message(self):
        parts = [f"Payment of {dollars(self.amount_cents)} recorded"]
        if self.settled:
            parts.append("settling " + ", ".join(f"invoice #{seq} ({dollars(c)})" for seq, c in self.settled))
        text = "; ".join(parts) + "."
        if self.credit_cents:
            text += f" {dollars(self.credit_cents)} more than was owed is kept as credit for the next invoice."
        if self.restored:
            text += " Nothing is overdue any more: service is restored."
        return text


def sync_balance(account, held=None):
    """Set balance_cents to what the open invoices still owe; return it.

    With held (facts.Held: every open invoice of the locked account, as changed in this transaction), it is
    summed from those rows; otherwise read from the database.
    """
    if held is not None:
        account.balance_cents = held.owed_cents()
        return account.balance_cents
    owed = db.session.scalar(select(func.coalesce(func.sum(Invoice.amount_cents - Invoice.paid_cents), 0))
                             .where(Invoice.account_id == account.id, Invoice.paid_at.is_(None),
                                    Invoice.written_off_at.is_(None)))
    account.balance_cents = int(owed)
    return account.balance_cents


def _settle(invoice, cents, now):
    """Apply up to cents to the invoice; return what was applied."""
    take = min(cents, invoice.amount_cents - invoice.paid_cents)
    invoice.paid_cents += take
    if invoice.paid_cents >= invoice.amount_cents:
        invoice.paid_at = now
    return take


def parse_due_date(value, field="due"):
    """A due date typed as YYYY-MM-DD (or a date)."""
    if isinstance(value, date):
        return value
    try:
        return iso_date(value, "Enter the due date as YYYY-MM-DD, like 2026-09-30.")
    except InvalidValue as exc:  # also years past 2200: the schedule's dates after them would overflow
        raise ValidationFailed({field: exc.message}) from None


def add_invoice(actor, account_id, amount, due, as_of=None, before_commit=None):
    """Add an invoice to an account (the next sequence number); existing credit settles it first.

    Args:
        actor: who adds it (a super admin User, or a label for an integration).
        account_id: the account.
        amount: dollars as typed ("120.00") or cents as an int.
        due: the due date (YYYY-MM-DD or a date).
        as_of: the day it is added (default today).
        before_commit: called as before_commit(invoice, facts) inside the transaction, just before the commit
            (facts: the account's dunning Facts after it), so a caller's own bookkeeping (the API's stored
            answer to an idempotent push) is written with the invoice or not at all.

    Returns:
        The new Invoice.

    Raises:
        AccountNotFound, PermissionDenied, ValidationFailed (amount, due), InvalidTransition (cancelled account).
    """
    cents = amount if isinstance(amount, int) else parse_amount(amount)
    if cents <= 0:
        raise ValidationFailed({"amount": "Enter an amount above zero."})
    due_date = parse_due_date(due)
    now, day = moment_of(as_of), day_of(as_of)
    account, held = _locked(actor, "add_invoice", account_id)
    if account.status == "cancelled":
        raise InvalidTransition(f"Account {account.number} is cancelled; no invoice can be added.")
    start_before = view_of(account, day, held).episode_start
    seq = (db.session.scalar(select(func.max(Invoice.seq)).where(Invoice.account_id == account.id)) or 0) + 1
    invoice = Invoice(account_id=account.id, seq=seq, amount_cents=cents, paid_cents=0, due_date=due_date,
                      issued_at=now, paid_at=None, written_off_at=None)
    db.session.add(invoice)
    held.invoices.append(invoice)
    if account.credit_cents:
        account.credit_cents -= _settle(invoice, account.credit_cents, now)
    sync_balance(account, held)
    audit.record("invoice_added", account.id, actor, data={"seq": seq, "amount_cents": cents,
                                                          "due_date": due_date.isoformat(),
                                                          "paid_from_credit_cents": invoice.paid_cents}, now=now)
    after_billing(account, start_before, day, actor, now, "invoice", held)
    if before_commit is not None:
        before_commit(invoice, held.facts(account))
    db.session.commit()
    return invoice


def record_payment(actor, account_id, amount, invoice_seq=None, as_of=None, reference=None, before_commit=None):
    """Record money received: settle the named invoice first, then the oldest open ones; keep the rest as credit.

    If nothing counts as overdue afterwards, the episode ends (its manual dates with it) and a restriction
    applied automatically for non-payment is cleared at once, audited and emailed, in this transaction.

    Args:
        actor: who records it (a super admin User, or a label for an integration).
        account_id: the account.
        amount: dollars as typed ("120.00") or cents as an int.
        invoice_seq: the sequence number of the invoice paid (None: oldest first).
        as_of: the day of the payment (default today).
        reference: the payment's reference, if any.
        before_commit: called as before_commit(outcome) inside the transaction, just before the commit, so a
            caller's own bookkeeping (the API's stored answer to an idempotent push) is written with the
            payment or not at all.

    Returns:
        PaymentOutcome.

    Raises:
        AccountNotFound, PermissionDenied, ValidationFailed (amount, invoice, reference), InvalidTransition
        (cancelled).
    """
    cents = amount if isinstance(amount, int) else parse_amount(amount)
    if cents <= 0:
        raise ValidationFailed({"amount": "Enter an amount above zero."})
    reference = _reference(reference)
    now, day = moment_of(as_of), day_of(as_of)
    account, held = _locked(actor, "record_payment", account_id)  # its dunning facts, read once for the payment
    if account.status == "cancelled":
        raise InvalidTransition(f"Account {account.number} is cancelled; record its payments in billing.")
    invoices = held.invoices
    named = _named_invoice(account, invoices, invoice_seq)
    start_before = view_of(account, day, held).episode_start
    order = ([named] if named else []) + [inv for inv in invoices if inv is not named]
    left, settled = cents, []
    for invoice in order:
        if not left:
            break
        applied = _settle(invoice, left, now)
        if applied:
            settled.append((invoice.seq, applied))
            left -= applied
    payment = Payment(account_id=account.id, invoice_id=named.id if named else None, amount_cents=cents,
                      paid_at=now, method="recorded", reference=(reference or None),
                      recorded_by_id=getattr(actor, "id", None), credit_cents=left)
    db.session.add(payment)
    db.session.flush()  # the payment's id for its audit event (and the invoices settled)
    account.credit_cents += left  # the account's changes after the flush: written once, at the commit
    sync_balance(account, held)
    audit.record("payment_recorded", account.id, actor,
                 data={"amount_cents": cents, "settled": settled, "credit_cents": left, "payment_id": payment.id},
                 now=now)
    restored = after_billing(account, start_before, day, actor, now, "payment", held)
    outcome = PaymentOutcome(payment.id, cents, settled, left, restored, account.status, held.facts(account))
    if before_commit is not None:
        before_commit(outcome)
    db.session.commit()
    notify.kick_delivery()
    return outcome


def _reference(value):
    """A payment's reference: text up to REFERENCE_MAX characters, or None."""
    try:
        text = clean_text(value, "The reference")
    except InvalidValue as exc:
        raise ValidationFailed({"reference": exc.message}) from None
    if len(text) > REFERENCE_MAX:
        raise ValidationFailed({"reference": f"Keep the reference to {REFERENCE_MAX} characters (it has "
                                             f"{len(text)})."})
    return text or None


def _named_invoice(account, invoices, invoice_seq):
    if invoice_seq in (None, ""):
        return None
    try:
        seq = whole_number(str(invoice_seq).strip().lstrip("#"), 1)
    except InvalidValue:
        seq = None
    named = next((inv for inv in invoices if seq is not None and inv.seq == seq), None)
    if named is None:
        db.session.rollback()
        raise ValidationFailed({"invoice": f"Account {account.number} has no open invoice #{invoice_seq}."})
    return named


def write_off(actor, account_id, invoice_seq, reason, as_of=None):
    """Write off an open invoice with a reason (audited); the balance and the schedule follow.

    Raises:
        AccountNotFound, PermissionDenied, ValidationFailed (reason; unknown, paid or written-off invoice).
    """
    invoice, restored = write_off_in_transaction(actor, account_id, invoice_seq, reason, as_of)
    db.session.commit()
    notify.kick_delivery()
    return invoice, restored


def write_off_reason(reason):
    """Return the reason for a write-off, trimmed; raise ValidationFailed(reason) if missing or too long."""
    reason = (reason or "").strip()
    if not reason:
        raise ValidationFailed({"reason": "Say why the invoice is written off."})
    if text_problem(reason, "The reason"):
        raise ValidationFailed({"reason": text_problem(reason, "The reason")})
    if len(reason) > NOTE_MAX:
        raise ValidationFailed({"reason": f"Keep the reason to {NOTE_MAX} characters (it has {len(reason)})."})
    return reason


def write_off_in_transaction(actor, account_id, invoice_seq, reason, as_of=None):
    """Write off one open invoice inside the caller's transaction (the caller commits); see write_off.

    Returns:
        (Invoice, restored): restored is True if a non-payment restriction was cleared.

    Raises:
        AccountNotFound, PermissionDenied, ValidationFailed (reason; unknown, paid or written-off invoice).
    """
    reason = write_off_reason(reason)
    now, day = moment_of(as_of), day_of(as_of)
    account, held = _locked(actor, "write_off", account_id)
    invoice = _named_invoice(account, held.invoices, invoice_seq)
    if invoice is None:
        raise ValidationFailed({"invoice": "Choose the invoice to write off."})
    start_before = view_of(account, day, held).episode_start
    owed = invoice.amount_cents - invoice.paid_cents
    invoice.written_off_at, invoice.written_off_reason = now, reason
    invoice.written_off_by_id = getattr(actor, "id", None)
    sync_balance(account, held)
    audit.record("invoice_written_off", account.id, actor, reason_note=reason,
                 data={"seq": invoice.seq, "written_off_cents": owed}, now=now)
    restored = after_billing(account, start_before, day, actor, now, "write_off", held)
    db.session.flush()  # written for the caller, which may read or refresh the account before its commit
    return invoice, restored


def _locked(actor, action, account_id):
    """Ask the gate, lock the account and read what the change needs of it: (Account, facts.Held)."""
    account = db.session.get(Account, account_id)
    if account is None:
        from portal.domain.errors import AccountNotFound

        raise AccountNotFound()
    require(actor, action, account)
    cls = account.customer_class  # read with the account: kept, so the lock's fresh read does not read it again
    account = lock_account(account_id)
    return account, hold(account, cls)
