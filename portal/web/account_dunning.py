"""The account page's dunning card and its dialogs (super admin): class, Reschedule, Change status, Cancel dates.

Each dialog is a <dialog> fragment for htmx and a plain page without JavaScript. A change answers as the
status dialog does: HX-Trigger events (the cards refresh themselves) and an out-of-band flash for htmx,
a flash and a 303 otherwise; errors come back at their fields with 422, refusals in the dialog with 409.
"""
import json

from flask import flash, make_response, redirect, render_template, request, url_for
from flask_login import current_user

from portal.domain import suspension
from portal.domain.accounts import get_account
from portal.domain.dunning import business_days, classes, overrides
from portal.domain.errors import Conflict, InvalidTransition, ValidationFailed
from portal.domain.gate import STATE_LABELS
from portal.domain.parsing import InvalidValue, date_message, iso_date
from portal.web.access import STAFF, SUPER_ADMIN, roles_required
from portal.web.account_pages import _detail
from portal.web.accounts import bp
from portal.web.dunning_card import dunning_context
from portal.web.helpers import is_fragment_request, render

REASON_FIELDS = ("reason_category", "reason_note", "version")
STEP_WORDS = {"limitation": "limitation", "suspension": "suspension", "reapply": "the restriction applies again"}


@bp.route("/<int:account_id>/dunning")
@roles_required(STAFF)
def dunning_card(account_id):
    """Show the account's dunning card (re-fetched when anything on the account changes)."""
    return _detail(account_id, block="dunning_card")


@bp.route("/<int:account_id>/class", methods=["POST"])
@roles_required(SUPER_ADMIN)
def set_class(account_id):
    """Put the account in a customer class (or none); its schedule follows at once."""
    chosen = request.form.get("customer_class", "")
    try:
        account = classes.set_class(current_user._get_current_object(), account_id, chosen)
    except classes.ClassNotFound as exc:
        return _detail(account_id, block="dunning_card", status=422, class_errors={"customer_class": exc.message})
    where = f"the class {account.customer_class.name!r}" if account.customer_class else "no class"
    return _changed(account.id, f"Account {account.number} is now in {where}.", "account-class-set")


# Each dialog's action, for its reasons (suspension.reasons_for), and the reason chosen at first.
DIALOG_ACTIONS = {"reschedule": ("shift", "promise_to_pay"), "change_status": ("lift", "promise_to_pay"),
                  "cancel_dates": ("cancel_dates", "promise_not_kept")}


def _dialog(account, kind, block="dunning_dialog", status=200, form=None, errors=None, form_error=None):
    """Render one of the dialogs (fragment for htmx) or its page (no JavaScript)."""
    action, first_reason = DIALOG_ACTIONS[kind]
    form = form or {"reason_category": first_reason}
    return render("accounts/_dunning_dialog.html", block=block, status=status, account=account, kind=kind,
                  reasons=suspension.reasons_for(action),
                  form=form, errors=errors or {}, form_error=form_error, note_max=suspension.NOTE_MAX,
                  choices=business_days.lift_choices(), lift_max_days=overrides.lift_max_days(),
                  back_url=url_for("accounts.detail", account_id=account.id), as_dialog=is_fragment_request(),
                  **dunning_context(current_user._get_current_object(), account))


def _form(*fields):
    return {key: request.form.get(key, "") for key in fields + REASON_FIELDS}


def _dates(form, kind, *fields):
    """Parse the typed dates (blank: None); bad ones are refused at their fields with the reason's problems."""
    values, errors = {}, {}
    for name in fields:
        try:
            values[name] = iso_date(form[name], date_message("the date")) \
                if form[name].strip() else None
        except InvalidValue as exc:
            errors[name] = exc.message
    if errors:
        raise ValidationFailed(dict(_reason_errors(form, kind), **errors))
    return values


def _reason_errors(form, kind):
    """The reason's problems as the dialog's action judges them (its own reasons, suspension.reasons_for)."""
    try:
        suspension.validate_reason(form["reason_category"], form["reason_note"], DIALOG_ACTIONS[kind][0])
    except ValidationFailed as exc:
        return exc.field_errors
    return {}


def _attempt(account_id, kind, form, change):
    """Call the domain; answer with the dialog again (422 at the fields, 409 refused) or the outcome."""
    try:
        view = change(current_user._get_current_object())
    except ValidationFailed as exc:
        errors = dict(_reason_errors(form, kind), **exc.field_errors)
        return _dialog(get_account(current_user, account_id), kind, "dunning_form", 422, form, errors)
    except (Conflict, InvalidTransition) as exc:
        return _dialog(get_account(current_user, account_id), kind, "dunning_form", exc.status_code, form,
                       form_error=exc.message)
    account = get_account(current_user, account_id)
    message = f"Account {account.number} ({account.name}) now reads “{STATE_LABELS[view.status]}”"
    if view.pending_action:
        message += f"; next: {STEP_WORDS[view.pending_action]} on {view.pending_date.isoformat()}"
    return _changed(account.id, message + ".", EVENTS[kind])


def _changed(account_id, message, event):
    """Flash and 303 (no JavaScript), or close the dialog with an out-of-band flash and HX-Trigger events."""
    flash(message, "success")
    if request.headers.get("HX-Request") != "true":
        return redirect(url_for("accounts.detail", account_id=account_id), code=303)
    response = make_response(render_template("_flashes.html", oob=True))
    response.headers["HX-Trigger"] = json.dumps({"account-status-changed": {"id": account_id},
                                                 event: {"id": account_id}})
    response.headers["HX-Retarget"] = "#dunning-dialog" if event != "account-class-set" \
        else f"#account-dunning-{account_id}"
    response.headers["HX-Reswap"] = "outerHTML" if event != "account-class-set" else "none"
    response.vary.add("HX-Request")
    return response


EVENTS = {"reschedule": "account-rescheduled", "change_status": "account-lifted",
          "cancel_dates": "account-dates-cancelled"}


@bp.route("/<int:account_id>/reschedule")
@roles_required(SUPER_ADMIN)
def reschedule_dialog(account_id):
    """Show the Reschedule form: move an approaching limitation or suspension to a later date."""
    return _dialog(get_account(current_user, account_id), "reschedule")


@bp.route("/<int:account_id>/reschedule", methods=["POST"])
@roles_required(SUPER_ADMIN)
def reschedule(account_id):
    """Shift the approaching limitation and/or suspension to later dates (the later date wins)."""
    form = _form("limitation_date", "suspension_date")

    def change(actor):
        dates = _dates(form, "reschedule", "limitation_date", "suspension_date")
        return overrides.shift(actor, account_id, dates["limitation_date"], dates["suspension_date"],
                               form["reason_category"], form["reason_note"], expected_version=form["version"])

    return _attempt(account_id, "reschedule", form, change)


@bp.route("/<int:account_id>/change-status")
@roles_required(SUPER_ADMIN)
def change_status_dialog(account_id):
    """Show the Change status form: full service until 2 business days, 1 week or a date."""
    return _dialog(get_account(current_user, account_id), "change_status",
                   form={"reason_category": DIALOG_ACTIONS["change_status"][1], "until_choice": "2bd"})


@bp.route("/<int:account_id>/change-status", methods=["POST"])
@roles_required(SUPER_ADMIN)
def change_status(account_id):
    """Lift an applied non-payment restriction until a date (or change the date of a lift in force)."""
    form = _form("until_choice", "until_date")

    def change(actor):
        until = business_days.until_date(form["until_choice"], form["until_date"])
        return overrides.lift(actor, account_id, until, form["reason_category"], form["reason_note"],
                              expected_version=form["version"])

    return _attempt(account_id, "change_status", form, change)


@bp.route("/<int:account_id>/cancel-dates")
@roles_required(SUPER_ADMIN)
def cancel_dates_dialog(account_id):
    """Show the Cancel dates form: the class schedule applies again at once."""
    return _dialog(get_account(current_user, account_id), "cancel_dates")


@bp.route("/<int:account_id>/cancel-dates", methods=["POST"])
@roles_required(SUPER_ADMIN)
def cancel_dates(account_id):
    """Cancel the account's shifted or lifted dates; a step that is due applies at once."""
    form = _form()

    def change(actor):
        return overrides.cancel(actor, account_id, form["reason_category"], form["reason_note"],
                                expected_version=form["version"])

    return _attempt(account_id, "cancel_dates", form, change)
