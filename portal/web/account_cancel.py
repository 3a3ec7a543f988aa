"""Cancelling an account (super admins): one dialog that writes off the chosen open invoices and cancels.

"Write off 2 invoices, $120.00, and cancel" is one post and one transaction; the account number must be
typed to confirm. Without JavaScript the dialog is a page whose form posts, answered with a 303.
"""
from flask import flash, request, url_for
from flask_login import current_user

from portal.domain.accounts import get_account
from portal.domain.billing import open_invoices
from portal.domain.cancellations.cancelling import cancel_account
from portal.domain.errors import Conflict, InvalidTransition, UnpaidInvoices, ValidationFailed
from portal.domain.suspension import NOTE_MAX
from portal.plurals import count
from portal.web.access import SUPER_ADMIN, roles_required
from portal.web.accounts import bp
from portal.web.helpers import is_fragment_request, redirect_after_post, render

FIELDS = ("reason_category", "reason_note", "confirm_number", "write_off_note", "version")


def _dialog(account_id, block="cancel_dialog", status=200, form=None, errors=None, form_error=None):
    account = get_account(current_user, account_id)
    invoices = sorted(open_invoices(account.id), key=lambda inv: (inv.due_date, inv.seq))
    form = form or {"reason_category": "customer_request", "write_off": [str(inv.seq) for inv in invoices]}
    return render("accounts/_cancel_dialog.html", block=block, status=status, account=account, invoices=invoices,
                  form=form, errors=errors or {}, form_error=form_error, note_max=NOTE_MAX,
                  back_url=url_for("accounts.detail", account_id=account.id), as_dialog=is_fragment_request())


@bp.route("/<int:account_id>/cancel")
@roles_required(SUPER_ADMIN)
def cancel_dialog(account_id):
    """Show the cancel form: the open invoices to write off, the reason, the number typed to confirm."""
    return _dialog(account_id)


@bp.route("/<int:account_id>/cancel", methods=["POST"])
@roles_required(SUPER_ADMIN)
def cancel(account_id):
    """Write off the ticked invoices and cancel the account, all or nothing."""
    form = {key: request.form.get(key, "") for key in FIELDS}
    form["write_off"] = request.form.getlist("write_off")
    try:
        account, written = cancel_account(current_user._get_current_object(), account_id, form["reason_category"],
                                          form["reason_note"], form["confirm_number"], write_off=form["write_off"],
                                          write_off_note=form["write_off_note"], expected_version=form["version"])
    except ValidationFailed as exc:
        return _dialog(account_id, "cancel_form", 422, form, exc.field_errors)
    except (Conflict, InvalidTransition, UnpaidInvoices) as exc:
        return _dialog(account_id, "cancel_form", exc.status_code, form, form_error=exc.message)
    done = f"{count(len(written), 'invoice')} written off; " if written else ""
    flash(f"{done}account {account.number} ({account.name}) is cancelled.", "success")
    return redirect_after_post("accounts.detail", account_id=account.id)
