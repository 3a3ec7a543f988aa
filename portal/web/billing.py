"""Payments and invoices on the account page (super admin): record a payment, add an invoice.

The outcome (or the errors, at the fields) comes back in the account's billing card for htmx, with an
account-status-changed event so the status and dunning cards refresh; without JavaScript a flash and a
303 back to the account page, or the page again with 422.
"""
import json

from flask import flash, redirect, request, url_for
from flask_login import current_user

from portal.domain.billing import ledger
from portal.domain.errors import InvalidTransition, ValidationFailed
from portal.web.access import SUPER_ADMIN, roles_required
from portal.web.account_pages import _detail
from portal.web.accounts import bp
from portal.web.helpers import is_fragment_request


def _answer(account_id, event, message):
    """Announce a billing change: the card with the message (htmx), or a flash and a 303."""
    if not is_fragment_request():
        flash(message, "success")
        return redirect(url_for("accounts.detail", account_id=account_id), code=303)
    trigger = {"account-status-changed": {"id": account_id}, event: {"id": account_id}}
    return _detail(account_id, block="billing", billing_message=message, headers={"HX-Trigger": json.dumps(trigger)})


@bp.route("/<int:account_id>/payments", methods=["POST"])
@roles_required(SUPER_ADMIN)
def record_payment(account_id):
    """Record a payment: the named invoice first, then the oldest open ones; the rest kept as credit."""
    form = {key: request.form.get(key, "") for key in ("amount", "invoice", "reference")}
    try:
        outcome = ledger.record_payment(current_user._get_current_object(), account_id, form["amount"],
                                        invoice_seq=form["invoice"] or None, reference=form["reference"])
    except ValidationFailed as exc:
        return _detail(account_id, block="billing", status=422, payment_form=form, payment_errors=exc.field_errors)
    except InvalidTransition as exc:
        return _detail(account_id, block="billing", status=409, payment_form=form, billing_error=exc.message)
    return _answer(account_id, "payment-recorded", outcome.message)


@bp.route("/<int:account_id>/invoices", methods=["POST"])
@roles_required(SUPER_ADMIN)
def add_invoice(account_id):
    """Add an invoice (the next sequence number); credit kept from earlier payments settles it first."""
    form = {key: request.form.get(key, "") for key in ("amount", "due")}
    try:
        invoice = ledger.add_invoice(current_user._get_current_object(), account_id, form["amount"], form["due"])
    except ValidationFailed as exc:
        return _detail(account_id, block="billing", status=422, invoice_form=form, invoice_errors=exc.field_errors)
    except InvalidTransition as exc:
        return _detail(account_id, block="billing", status=409, invoice_form=form, billing_error=exc.message)
    message = f"Invoice #{invoice.seq} of ${invoice.amount_cents / 100:,.2f} added, due {invoice.due_date.isoformat()}."
    if invoice.paid_cents:
        how = "in full" if invoice.paid_at else "in part"
        message += f" ${invoice.paid_cents / 100:,.2f} of credit settled it {how}."
    return _answer(account_id, "invoice-added", message)
