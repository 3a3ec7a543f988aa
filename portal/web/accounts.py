"""Staff pages about accounts: the list (search, filters, pages, counts), export, and bulk actions."""
import json
from urllib.parse import urlencode, urlsplit

from flask import Blueprint, abort, flash, redirect, request, url_for
from flask_login import current_user

from portal.domain import account_search, action_previews, bulk
from portal.domain.cancellations.requests import with_open_request
from portal.domain.dunning import status as dunning_status
from portal.domain.errors import ValidationFailed
from portal.domain.gate import STATE_LABELS
from portal.web.access import STAFF, SUPER_ADMIN, roles_required
from portal.web.csv_download import csv_download, download_name
from portal.web.helpers import is_fragment_request, redirect_after_post, render
from portal.web.safe_next import safe_next
from portal.web.words import local_today

bp = Blueprint("accounts", __name__, url_prefix="/accounts")


def list_url(args):
    """Return the list's URL for these query arguments."""
    query = urlencode(args)
    return url_for("accounts.index") + (f"?{query}" if query else "")


FIELD_NAMES = {"q", "class", "balance_min", "balance_max", "active_after", "active_before", "exempt", "sort",
               "per_page"}  # the filter form's fields that a wrong value marks
ROW_ACTIONS = {"active": "Suspend…", "limited": "Change status…", "suspended": "Reactivate…"}


def row_links(here, rows=()):
    """What every row's links share, built once per page (url_for per row is a large part of a 200-row page).

    `dunning` holds the dunning schedule's status of the rows that owe something ("Limitation pending"),
    so the list says what the account page says; `open_requests` the ids of rows with an open
    cancellation request (one query per page).
    """
    return {"root": url_for("accounts.index"), "next_query": "?" + urlencode({"next": here}) if here else "",
            "labels": STATE_LABELS, "actions": ROW_ACTIONS, "dunning": dunning_status.list_labels(rows),
            "open_requests": with_open_request([row.id for row in rows])}


def _list_context(f):
    page = account_search.list_page(f)
    here = list_url(f.args(_cursor(f)))
    return dict(filters=f, page=page, sorts=account_search.SORTS, page_sizes=account_search.PAGE_SIZES,
                classes=account_search.class_names(), list_url=list_url, here=here, links=row_links(here, page.rows),
                can_change=current_user.role in SUPER_ADMIN, fragment=is_fragment_request(),
                scan_budget=account_search.SCAN_BUDGET)


def _cursor(f):
    token = request.args.get("cursor")
    return token if f.cursor is not None and token else None


@bp.route("")
@roles_required(STAFF)
def index():
    """List accounts: search, filters, sort and keyset pages (the results block alone for htmx)."""
    f = account_search.parse_filters(request.args)
    context = _list_context(f)
    # a live filter's wrong value answers 422 with its field marked (the list still shows, without it)
    status = 422 if context["fragment"] and set(f.problems) & FIELD_NAMES else 200
    response = render("accounts/index.html", block="results", status=status, **context)
    if context["fragment"] and request.headers.get("HX-Trigger") != "account-results" \
            and _current_url() != context["here"]:
        response.headers["HX-Push-Url"] = context["here"]  # the canonical URL: a link reproduces this view
    return response


def _current_url():
    """The path and query the browser shows now (htmx sends it), so the same view is not pushed twice."""
    current = urlsplit(request.headers.get("HX-Current-URL", ""))
    return current.path + (f"?{current.query}" if current.query else "")


@bp.route("/counts")
@roles_required(STAFF)
def counts():
    """Show the status chips with their counts (their own request, so counting never slows the list)."""
    f = account_search.parse_filters(request.args)
    if not is_fragment_request():
        return redirect(list_url(f.args()))
    return render("accounts/index.html", block="status_chips", filters=f, list_url=list_url,
                  counts=account_search.count_by_status(f), counts_loaded=True)


@bp.route("/<int:account_id>/row")
@roles_required(STAFF)
def row(account_id):
    """Show one account's row of the list (rows re-fetch themselves when their status changes)."""
    account = account_search.get_row(account_id)
    if account is None or not is_fragment_request():
        return redirect(url_for("accounts.detail", account_id=account_id))
    return render("accounts/_row.html", account=account, classes=account_search.class_names(),
                  can_change=current_user.role in SUPER_ADMIN,
                  links=row_links(safe_next(request.args.get("next")), [account]))


@bp.route("/export.csv")
@roles_required(STAFF)
def export():
    """Download the accounts matching the filters as CSV, streamed row by row (refused if a filter is not valid)."""
    f = account_search.parse_filters(request.args)
    rows = bulk.export(current_user, f)
    problems = [message for name, message in f.problems.items() if name in bulk.FILTER_FIELDS + ("sort",)]
    if problems:  # a download cannot show what was ignored: it would hold other accounts than asked for
        abort(422, "Nothing was exported: " + " ".join(problems))
    name = download_name("accounts", local_today(), [(k, request.args.get(k, "")) for k in bulk.FILTER_FIELDS])
    return csv_download(rows, name, "export of accounts")


def _selection_form():
    form = request.form
    return dict(action=form.get("action", ""), scope=form.get("scope", "selected"), ids=form.getlist("ids"),
                filter={k: form.get(k, "") for k in bulk.FILTER_FIELDS if form.get(k)},
                next=safe_next(form.get("next")) or url_for("accounts.index"))


@bp.route("/bulk/confirm", methods=["POST"])
@roles_required(SUPER_ADMIN)
def bulk_confirm():
    """Show what a bulk change would do (exact count and a sample) and ask for the reason."""
    form = _selection_form()
    try:
        preview = bulk.preview(current_user._get_current_object(), form["action"], form["scope"], form["ids"],
                               form["filter"])
    except ValidationFailed as exc:
        return render("accounts/_bulk.html", block="bulk_dialog", status=422, form=form,
                      problem=" ".join(exc.field_errors.values()), as_dialog=is_fragment_request())
    return render("accounts/_bulk.html", block="bulk_dialog", preview=preview, form=form, errors={},
                  as_dialog=is_fragment_request(), reach=action_previews.bulk_reach(preview))


@bp.route("/bulk", methods=["POST"])
@roles_required(SUPER_ADMIN)
def bulk_apply():
    """Suspend or reactivate the selected accounts with one reason: inline when few, as a run when many."""
    form = _selection_form()
    form.update({key: request.form.get(key, "") for key in ("reason_category", "reason_note", "confirm_count")})
    actor = current_user._get_current_object()
    try:
        outcome = bulk.apply(actor, form["action"], form["scope"], form["ids"], form["filter"],
                             form["reason_category"], form["reason_note"], confirm_count=form["confirm_count"])
    except ValidationFailed as exc:
        return _apply_refused(actor, form, exc)
    if outcome.queued:
        if is_fragment_request():
            return _progress(outcome.run_id, form["next"])
        return redirect(url_for("accounts.bulk_progress", run_id=outcome.run_id, next=form["next"]), code=303)
    if not is_fragment_request():
        flash(f"{outcome.summary} It is recorded as run #{outcome.run_id}.", "success")
        return redirect_after_post(form["next"])
    return render("accounts/_bulk.html", block="bulk_body", outcome=outcome, form=form, as_dialog=True,
                  headers={"HX-Trigger": json.dumps({"accounts-bulk-finished": {"ids": outcome.changed_ids}})})


def _apply_refused(actor, form, exc):
    """Show the confirmation again with the problems next to the fields (or alone if the selection is gone)."""
    try:
        preview = bulk.preview(actor, form["action"], form["scope"], form["ids"], form["filter"])
    except ValidationFailed as selection_exc:
        return render("accounts/_bulk.html", block="bulk_body", status=422, form=form,
                      problem=" ".join(selection_exc.field_errors.values()), as_dialog=is_fragment_request())
    return render("accounts/_bulk.html", block="bulk_body", status=422, preview=preview, form=form,
                  errors=exc.field_errors, as_dialog=is_fragment_request(),
                  reach=action_previews.bulk_reach(preview))


def _progress(run_id, next_url=None):
    progress = bulk.progress(current_user._get_current_object(), run_id)
    headers = {"HX-Trigger": json.dumps({"accounts-bulk-finished": {"run_id": run_id}})} \
        if progress["finished"] else None
    return render("accounts/_bulk.html", block="bulk_body", progress=progress, as_dialog=is_fragment_request(),
                  form={"next": safe_next(next_url) or url_for("accounts.index")}, headers=headers)


@bp.route("/bulk/runs/<int:run_id>")
@roles_required(SUPER_ADMIN)
def bulk_progress(run_id):
    """Show a bulk run's progress (polled while it runs), then its summary."""
    return _progress(run_id, request.args.get("next"))
