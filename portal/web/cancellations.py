"""Cancellation requests: the log, logging a request, one request with its retention attempts.

Support and super admins log and read; only super admins record retention (the outcome) and cancel
(portal/web/account_cancel.py). The import and the overview add their pages to this blueprint.
"""
from flask import Blueprint, flash, request, url_for
from flask_login import current_user

from portal.domain.accounts import get_account
from portal.domain.cancellations import choices, log, requests, retention
from portal.domain.cancellations.fields import display_phone
from portal.domain.errors import DomainError, ValidationFailed
from portal.domain.money import dollars
from portal.web.access import STAFF, SUPER_ADMIN, roles_required
from portal.web.csv_download import csv_download
from portal.web.helpers import redirect_after_post, render

bp = Blueprint("cancellations", __name__, url_prefix="/cancellations")
REQUEST_FIELDS = ("account_id", "channel", "contact_name", "phone", "request_date", "collected", "months",
                  "reason_code", "reason")
ATTEMPT_FIELDS = ("offer", "answer", "note", "outcome", "pause_until")


@bp.app_template_filter("phone")
def phone_filter(e164):
    """Show a stored E.164 number as people write it."""
    return display_phone(e164)


@bp.app_template_global()
def cancellation_choices():
    """The short lists (channels, reasons, offers, answers, outcomes) for the templates."""
    return choices


@bp.route("")
@roles_required(STAFF)
def index():
    """Show the log, newest first, with filters, search and keyset pages."""
    f = log.parse_log_filters(request.args)
    rows, after = log.log_page(f)
    return render("cancellations/index.html", block="log_results", filters=f, rows=rows,
                  next_url=url_for("cancellations.index", **f.args(after)) if after else None,
                  export_url=url_for("cancellations.export", **f.args()), loggers=log.loggers())


@bp.route("/export.csv")
@roles_required(STAFF)
def export():
    """Download the requests matching the filters as CSV (the spreadsheet's columns, then the portal's)."""
    return csv_download(log.csv_rows(log.parse_log_filters(request.args)), "cancellation-requests.csv",
                        "export of cancellation requests")


def _form_page(form, errors=None, status=200, account=None, block=None):
    q = (request.args.get("q") or "").strip()[:100]
    found = requests.find_accounts(q) if q else []
    return render("cancellations/new.html", block=block, status=status, form=form, errors=errors or {},
                  account=account, q=q, found=found)


@bp.route("/new")
@roles_required(STAFF)
def new():
    """Show the form to log a request: find the account, then the contact, figures and reason."""
    form = {"channel": "call", "reason_code": ""}
    account = None
    if request.args.get("account_id"):
        account = get_account(current_user, request.args.get("account_id"))
        filled = requests.prefill(account)
        form.update(account_id=str(account.id), collected=dollars(filled["collected_cents"]).lstrip("$"),
                    months=str(filled["months"]), contact_name=account.contact_name or "",
                    phone=account.contact_phone or "")
    return _form_page(form, account=account, block="account_results" if request.args.get("q") else None)


@bp.route("", methods=["POST"])
@roles_required(STAFF)
def create():
    """Log a request; 422 with the errors at the fields."""
    form = {key: request.form.get(key, "") for key in REQUEST_FIELDS}
    try:
        created = requests.log_request(current_user._get_current_object(), form["account_id"], form)
    except ValidationFailed as exc:
        account = _maybe_account(form["account_id"])
        return _form_page(form, exc.field_errors, 422, account, block="request_form")
    flash(f"Request #{created.id} logged for account {created.account.number}.", "success")
    return redirect_after_post("cancellations.detail", request_id=created.id)


def _maybe_account(account_id):
    try:
        return get_account(current_user, account_id)
    except DomainError:
        return None


def _detail(request_id, status=200, block=None, **extra):
    found = requests.get_request(request_id)
    return render("cancellations/detail.html", block=block, status=status, item=found,
                  attempts=requests.attempts_of(found.id), can_decide=current_user.role in SUPER_ADMIN,
                  **dict({"form": {"outcome": "open"}, "errors": {}}, **extra))


@bp.route("/<int:request_id>")
@roles_required(STAFF)
def detail(request_id):
    """Show one request: the contact, figures, reason, its retention attempts and outcome."""
    return _detail(request_id)


@bp.route("/<int:request_id>/attempts", methods=["POST"])
@roles_required(SUPER_ADMIN)
def record_attempt(request_id):
    """Record a retention attempt and, if it decides, how the request ends."""
    form = {key: request.form.get(key, "") for key in ATTEMPT_FIELDS}
    try:
        retention.record_retention(current_user._get_current_object(), request_id, form["offer"], form["answer"],
                                   form["note"], outcome=form["outcome"] or "open", pause_until=form["pause_until"])
    except ValidationFailed as exc:
        return _detail(request_id, 422, block="retention_form", form=form, errors=exc.field_errors)
    except DomainError as exc:
        return _detail(request_id, exc.status_code, block="retention_form", form=form, errors={},
                       error=exc.message)
    flash("Retention attempt recorded.", "success")
    return redirect_after_post("cancellations.detail", request_id=request_id)
