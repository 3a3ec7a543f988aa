"""Staff pages about one account: its page, the parts that refresh themselves, and the status dialog."""
import json

from flask import flash, make_response, redirect, render_template, request, url_for
from flask_login import current_user

from portal.domain import action_previews, audit, suspension
from portal.domain.accounts import get_account
from portal.domain.cancellations.requests import requests_of
from portal.domain.errors import Conflict, InvalidTransition, UnpaidInvoices, ValidationFailed
from portal.domain.gate import STATE_LABELS, may
from portal.web.access import STAFF, SUPER_ADMIN, roles_required
from portal.web.accounts import bp
from portal.web.dunning_card import billing_context, dunning_context
from portal.web.helpers import is_fragment_request, render
from portal.web.safe_next import safe_next

CHANGES = {"suspend": suspension.suspend, "reactivate": suspension.reactivate}
PAST = {"suspend": "suspended", "reactivate": "reactivated"}


def _detail(account_id, block=None, status=200, headers=None, **extra):
    """Render the account page (or one of its blocks); extra context (a form's errors) goes to the template."""
    account = get_account(current_user, account_id)
    actor = current_user._get_current_object()
    context = dict(dunning_context(actor, account), **billing_context(actor, account))
    context.update(extra)
    return render("accounts/detail.html", block=block, status=status, headers=headers, account=account,
                  status_actions=[a for a in suspension.actions_for(account) if may(current_user, a, account)],
                  people=[(person, may(person, "login", account)) for person in account.users],
                  events=audit.timeline(account.id), cancellation_requests=requests_of(account.id), **context)


@bp.route("/<int:account_id>")
@roles_required(STAFF)
def detail(account_id):
    """Show one account: status, people, invoices, timeline."""
    return _detail(account_id)


@bp.route("/<int:account_id>/status-card")
@roles_required(STAFF)
def status_card(account_id):
    """Show the account's status card (re-fetched when its status changes)."""
    return _detail(account_id, block="status_card")


@bp.route("/<int:account_id>/people")
@roles_required(STAFF)
def people(account_id):
    """Show the account's people and whether each may sign in now."""
    return _detail(account_id, block="people")


@bp.route("/<int:account_id>/timeline")
@roles_required(STAFF)
def timeline(account_id):
    """Show the account's timeline, newest first."""
    return _detail(account_id, block="timeline")


def _dialog(account, block, status=200, form=None, errors=None, form_error=None, next_url=None, version=None):
    """Render the status dialog (fragment for htmx) or its page (no JavaScript), with what the change will do."""
    next_url = safe_next(next_url)
    form = form or {}
    actions = suspension.actions_for(account)
    return render("accounts/_status_dialog.html", block=block, status=status, account=account,
                  actions=actions, form=form, errors=errors or {},
                  reason_sets={action: suspension.reasons_for(action) for action in actions},
                  form_error=form_error, next_url=next_url, note_max=suspension.NOTE_MAX,
                  back_url=next_url or url_for("accounts.detail", account_id=account.id),
                  as_dialog=is_fragment_request(), version=version or account.version,
                  preview=action_previews.status_preview(account, actions, form.get("reason_category", "")))


@bp.route("/<int:account_id>/status-dialog")
@roles_required(SUPER_ADMIN)
def status_dialog(account_id):
    """Show the suspend or reactivate form: a dialog for htmx, a page without JavaScript."""
    account = get_account(current_user, account_id)
    return _dialog(account, "status_dialog", next_url=request.args.get("next"))


@bp.route("/<int:account_id>/status-preview", methods=["GET", "POST"])
@roles_required(SUPER_ADMIN)
def status_preview(account_id):
    """Show what the change does for the reason chosen: htmx GET the preview alone; POST (Preview) the form again."""
    account = get_account(current_user, account_id)
    values = request.form if request.method == "POST" else request.args
    form = {key: values.get(key, "") for key in ("reason_category", "reason_note", "next")}
    block = "status_form" if request.method == "POST" else "status_preview"
    return _dialog(account, block, form=form, next_url=form["next"], version=values.get("version"))


@bp.route("/<int:account_id>/suspend", methods=["POST"])
@roles_required(SUPER_ADMIN)
def suspend(account_id):
    """Suspend the account with a reason."""
    return _change(account_id, "suspend")


@bp.route("/<int:account_id>/reactivate", methods=["POST"])
@roles_required(SUPER_ADMIN)
def reactivate(account_id):
    """Reactivate the account with a reason."""
    return _change(account_id, "reactivate")


def _change(account_id, action):
    """Parse the dialog's form, call the domain, and answer with the dialog again or the outcome."""
    form = {key: request.form.get(key, "") for key in ("reason_category", "reason_note", "version", "next")}
    form["confirm"] = bool(request.form.get("confirm"))
    try:
        if action == "suspend" and not form["confirm"]:  # only the destructive change asks for the tick
            raise ValidationFailed(dict(_reason_errors(form, action), confirm="Tick the box to confirm this change."))
        account = CHANGES[action](current_user._get_current_object(), account_id, form["reason_category"],
                                  form["reason_note"], expected_version=form["version"])
    except ValidationFailed as exc:
        return _dialog(get_account(current_user, account_id), "status_form", 422, form, exc.field_errors,
                       next_url=form["next"])
    except (Conflict, InvalidTransition, UnpaidInvoices) as exc:
        return _refused(account_id, form, exc)
    return _changed(account, action, form["next"])


def _reason_errors(form, action):
    try:
        suspension.validate_reason(form["reason_category"], form["reason_note"], action)
    except ValidationFailed as exc:
        return exc.field_errors
    return {}


def _refused(account_id, form, exc):
    """Show a conflict or impossible change in the dialog, keeping what was typed (fresh version)."""
    account = get_account(current_user, account_id)
    form = dict(form, confirm=False)
    return _dialog(account, "status_form", exc.status_code, form, form_error=exc.message, next_url=form["next"])


def _changed(account, action, next_url):
    """Announce the change: HX-Trigger events and an out-of-band flash for htmx; flash and 303 otherwise."""
    flash(f"Account {account.number} ({account.name}) is now {STATE_LABELS[account.status].lower()}.", "success")
    if request.headers.get("HX-Request") != "true":
        return redirect(safe_next(next_url) or url_for("accounts.detail", account_id=account.id), code=303)
    response = make_response(render_template("_flashes.html", oob=True))
    response.headers["HX-Trigger"] = json.dumps({
        "account-status-changed": {"id": account.id, "status": account.status},
        f"account-{PAST[action]}": {"id": account.id},
    })
    response.headers["HX-Retarget"] = "#status-dialog"  # replacing the dialog with nothing closes it
    response.headers["HX-Reswap"] = "outerHTML"
    response.vary.add("HX-Request")
    return response
