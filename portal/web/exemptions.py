"""Exempting an account from sweeps (super admin), on the account page: set or clear, with a reason."""
import json

from flask import flash, make_response, redirect, render_template, request, url_for
from flask_login import current_user

from portal.domain import exemptions
from portal.domain.accounts import get_account
from portal.domain.errors import Conflict, InvalidTransition, ValidationFailed
from portal.web.access import SUPER_ADMIN, roles_required
from portal.web.accounts import bp
from portal.web.helpers import is_fragment_request, render

CHANGES = {"set": exemptions.set_exempt, "clear": exemptions.clear_exempt}


@bp.route("/<int:account_id>/exempt", methods=["POST"])
@roles_required(SUPER_ADMIN)
def set_exempt(account_id):
    """Exempt the account from sweeps, with a reason."""
    return _change(account_id, "set")


@bp.route("/<int:account_id>/exempt/clear", methods=["POST"])
@roles_required(SUPER_ADMIN)
def clear_exempt(account_id):
    """Let sweeps consider the account again, with a reason."""
    return _change(account_id, "clear")


def _change(account_id, which):
    """Call the domain; answer with the exemption card (htmx), or flash and 303 to the account page."""
    reason = request.form.get("exempt_reason", "")
    try:
        account = CHANGES[which](current_user._get_current_object(), account_id, reason)
    except ValidationFailed as exc:
        return _card(account_id, 422, {"exempt_reason": reason}, exc.field_errors)
    except (Conflict, InvalidTransition) as exc:
        return _card(account_id, exc.status_code, {"exempt_reason": reason}, form_error=exc.message)
    message = (f"Account {account.number} is exempt from sweeps." if account.exempt
               else f"Account {account.number} is no longer exempt from sweeps.")
    flash(message, "success")
    if not is_fragment_request():
        return redirect(url_for("accounts.detail", account_id=account.id), code=303)
    body = render_template("accounts/_exempt.html", account=account, exempt_form={}, exempt_errors={}) + \
        render_template("_flashes.html", oob=True)
    response = make_response(body)
    response.headers["HX-Trigger"] = json.dumps(
        {"account-exempted" if account.exempt else "account-exemption-cleared": {"id": account.id}})
    response.vary.add("HX-Request")
    return response


def _card(account_id, status, form, errors=None, form_error=None):
    account = get_account(current_user, account_id)
    return render("accounts/exempt.html", block="exempt_card", status=status, account=account, exempt_form=form,
                  exempt_errors=errors or {}, exempt_error=form_error)
