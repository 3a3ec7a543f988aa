"""Billing pushed by a billing system: invoices and payments (with an Idempotency-Key), and write-offs.

A payment that leaves nothing overdue clears a non-payment restriction in the same request (the ledger does
it in the payment's transaction); the answer says so in `restored` and shows the account's new state.
"""
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate

from portal.api.accounts import day, find_account, state
from portal.api.auth import SUPER_ADMIN, current_actor, rate_limited, token_required
from portal.api.idempotency import IdempotencyHeaderSchema, run_once
from portal.api.schemas import AccountSchema, Strict, UtcDateTime, cents, text
from portal.domain.billing import ledger
from portal.domain.parsing import ID_MAX

blp = rate_limited(Blueprint("api_billing", __name__, url_prefix="/api/v1/accounts",
                             description="Billing: invoices and payments pushed by a billing system, write-offs."))


class InvoiceInSchema(Strict):
    amount_cents = cents()
    due_date = fields.Date(required=True)


class PaymentInSchema(Strict):
    amount_cents = cents()
    invoice_seq = fields.Integer(strict=True, validate=validate.Range(1, ID_MAX), allow_none=True, metadata={
        "description": "The invoice paid (its sequence number); null or absent: the oldest open ones first"})
    reference = text(max_length=ledger.REFERENCE_MAX, allow_none=True,
                     metadata={"description": "The billing system's reference for the payment"})


class WriteOffInSchema(Strict):
    reason = text(required=True, max_length=2000, metadata={"description": "Why (up to 500 characters)"})


class InvoiceSchema(Schema):
    seq = fields.Integer(required=True)
    amount_cents = fields.Integer(required=True)
    paid_cents = fields.Integer(required=True)
    due_date = fields.Date(required=True)
    issued_at = UtcDateTime(required=True)
    status = fields.String(required=True, validate=validate.OneOf(("open", "paid", "written_off")))


class InvoiceAddedSchema(Schema):
    invoice = fields.Nested(InvoiceSchema, required=True)
    account = fields.Nested(AccountSchema, required=True)


class SettledSchema(Schema):
    seq = fields.Integer(required=True)
    cents = fields.Integer(required=True)


class PaymentRecordedSchema(Schema):
    payment_id = fields.Integer(required=True)
    amount_cents = fields.Integer(required=True)
    settled = fields.List(fields.Nested(SettledSchema), required=True,
                          metadata={"description": "The invoices it settled and how much of each"})
    credit_cents = fields.Integer(required=True, metadata={"description": "More than was owed, kept as credit"})
    restored = fields.Boolean(required=True, metadata={
        "description": "Nothing is overdue any more and a non-payment restriction was cleared by this payment"})
    message = fields.String(required=True)
    account = fields.Nested(AccountSchema, required=True)


class WrittenOffSchema(Schema):
    invoice = fields.Nested(InvoiceSchema, required=True)
    restored = fields.Boolean(required=True)
    account = fields.Nested(AccountSchema, required=True)


def _invoice(invoice):
    status = "written_off" if invoice.written_off_at else ("paid" if invoice.paid_at else "open")
    return {"seq": invoice.seq, "amount_cents": invoice.amount_cents, "paid_cents": invoice.paid_cents,
            "due_date": invoice.due_date, "issued_at": invoice.issued_at, "status": status}


@blp.route("/<number>/invoices", methods=["POST"])
@token_required("billing:write", SUPER_ADMIN)
@blp.arguments(IdempotencyHeaderSchema, location="headers")
@blp.arguments(InvoiceInSchema)
@blp.response(201, InvoiceAddedSchema)
def add_invoice(headers, body, number):
    """Add an invoice (the next sequence number); credit kept from earlier payments settles it first."""
    account = find_account(number)

    def push(keep):
        def answer(invoice, facts):
            keep(201, InvoiceAddedSchema().dump({"invoice": _invoice(invoice), "account": state(account, facts)}))

        ledger.add_invoice(current_actor(), account.id, body["amount_cents"], day(body["due_date"], "due_date"),
                           before_commit=answer)

    return run_once(current_actor(), headers["key"], push)


@blp.route("/<number>/payments", methods=["POST"])
@token_required("billing:write", SUPER_ADMIN)
@blp.arguments(IdempotencyHeaderSchema, location="headers")
@blp.arguments(PaymentInSchema)
@blp.response(201, PaymentRecordedSchema)
def record_payment(headers, body, number):
    """Record a payment: the named invoice first, then the oldest open ones; the rest kept as credit."""
    account = find_account(number)

    def push(keep):
        def answer(outcome):  # inside the payment's transaction: the answer is stored with it
            keep(201, PaymentRecordedSchema().dump({
                "payment_id": outcome.payment_id, "amount_cents": outcome.amount_cents,
                "settled": [{"seq": seq, "cents": c} for seq, c in outcome.settled],
                "credit_cents": outcome.credit_cents, "restored": outcome.restored, "message": outcome.message,
                "account": state(account, outcome.facts)}))

        ledger.record_payment(current_actor(), account.id, body["amount_cents"], invoice_seq=body.get("invoice_seq"),
                              reference=body.get("reference"), before_commit=answer)

    return run_once(current_actor(), headers["key"], push)


@blp.route("/<number>/invoices/<int:seq>/write-off", methods=["POST"])
@token_required("billing:write", SUPER_ADMIN)
@blp.arguments(WriteOffInSchema)
@blp.response(200, WrittenOffSchema)
def write_off(body, number, seq):
    """Write off an open invoice with a reason (audited); the balance and the schedule follow."""
    account = find_account(number)
    invoice, restored = ledger.write_off(current_actor(), account.id, seq, body["reason"])
    return {"invoice": _invoice(invoice), "restored": restored, "account": state(account)}
