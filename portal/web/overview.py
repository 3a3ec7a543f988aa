"""The staff overview (the staff's home page): a page shell, then each panel in its own request.

The shell answers at once, whatever the data; each panel `hx-get`s its own fragment on load, so a slow
figure never holds up the page or the other panels (the account list's status chips work the same way).
Without JavaScript each panel's placeholder is a plain link to that panel's own page (the same URL answers
the whole page without HX-Request), so every figure is reachable without script. Rendering the panels
inline for requests without HX-Request was not chosen: the first load of the page is never an htmx
request, so it would make every visit wait for the slowest panel.
"""
from flask import Blueprint, current_app, request
from flask_login import current_user

from portal.domain import overview
from portal.domain.errors import ValidationFailed
from portal.timeutil import utcnow
from portal.web.access import STAFF, roles_required
from portal.web.dunning import ACTIONS as STEP_LABELS
from portal.web.helpers import is_fragment_request, render

bp = Blueprint("overview", __name__, url_prefix="/overview")

PANELS = {  # name: heading (the order of the page)
    "status": "Accounts by status",
    "activity": "Suspensions and reactivations",
    "runs": "Last runs",
    "emails": "Emails",
    "upcoming": "Due in the next 7 days",
    "cancellations": "Cancellation save rate",
}
RANGE_ARGS = ("days", "date_from", "date_to")
OPTIONAL_PAGES = ("audit_log.index", "outbox.index")  # linked to once they exist


def _panel(name, **context):
    """The panel's block for htmx, else the panel alone on a page of its own."""
    optional = {endpoint for endpoint in OPTIONAL_PAGES if endpoint in current_app.view_functions}
    return render("overview/panel.html", block="panel", panel=name, heading=PANELS[name], optional=optional,
                  **context)


@bp.route("")
@roles_required(STAFF)
def index():
    """Show the overview's shell; each panel loads in its own request."""
    range_args = {key: request.args[key] for key in RANGE_ARGS if request.args.get(key)}
    return render("overview/index.html", panels=PANELS, range_args=range_args)


@bp.route("/status")
@roles_required(STAFF)
def status():
    """Show the accounts per status (exact; cached until a status changes)."""
    return _panel("status", totals=overview.account_statuses())


@bp.route("/activity")
@roles_required(STAFF)
def activity():
    """Show suspensions and reactivations per day by source, as a chart and as a table (range: days or dates)."""
    form = {key: request.args.get(key, "") for key in RANGE_ARGS}
    try:
        start, end = overview.activity_range(form["days"], form["date_from"], form["date_to"], utcnow().date())
    except ValidationFailed as exc:  # the message at its field; the chart shown stays as it was
        retarget = {"HX-Retarget": "#activity-form", "HX-Reswap": "outerHTML"} if is_fragment_request() else None
        return render("overview/panel.html", block="activity_form", status=422, headers=retarget, panel="activity",
                      heading=PANELS["activity"], form=form, errors=exc.field_errors, activity=None)
    if not form["date_from"]:
        form["days"] = str((end - start).days + 1)
    return _panel("activity", activity=overview.activity(start, end), form=form, errors={},
                  sources=overview.SOURCES, measures=overview.MEASURES)


@bp.route("/runs")
@roles_required(STAFF)
def runs():
    """Show the newest runs with their outcome."""
    return _panel("runs", rows=overview.last_runs(), run_links=current_user.role == "super_admin")


@bp.route("/emails")
@roles_required(STAFF)
def emails():
    """Show the emails waiting, retrying, held and failed."""
    return _panel("emails", mail=overview.emails())


@bp.route("/upcoming")
@roles_required(STAFF)
def upcoming():
    """Show the accounts due to be limited or suspended in the next 7 days."""
    return _panel("upcoming", steps=overview.upcoming_steps(utcnow().date()), actions=STEP_LABELS)


@bp.route("/cancellations")
@roles_required(STAFF)
def cancellations():
    """Show the cancellation save rate over the last 30 and 90 days."""
    return _panel("cancellations", periods=overview.save_rates(utcnow().date()))
