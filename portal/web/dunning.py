"""The dunning pages: today's preview, "Run now" and the daily time (super admin); Upcoming (staff)."""
from flask import Blueprint, abort, flash, request
from flask_login import current_user

from portal.domain.background import BackgroundUnavailable
from portal.domain.dunning import daily, schedule
from portal.domain.dunning.classes import class_choices
from portal.domain.errors import Conflict, ValidationFailed
from portal.domain.gate import STATE_LABELS
from portal.domain.parsing import record_id
from portal.web.access import STAFF, SUPER_ADMIN, roles_required
from portal.web.csv_download import csv_download
from portal.web.helpers import redirect_after_post, render

bp = Blueprint("dunning", __name__, url_prefix="/dunning")
ACTIONS = {"limitation": "Limitation", "suspension": "Suspension", "reapply": "Re-applied after a lift"}
CSV_HEADER = ("date", "action", "number", "name", "customer_class", "overdue", "overdue_invoices", "status")


def _page(block=None, status=200, form=None, errors=None, run_error=None):
    current = schedule.get_dunning_schedule()
    return render("dunning/index.html", block=block, status=status, preview=daily.preview(),
                  today_run=schedule.run_of_day(), schedule=current, describe=schedule.describe(current),
                  next_run_at=schedule.next_run_time(current), run_error=run_error, errors=errors or {},
                  form=form or {"enabled": current.enabled, "time_of_day": current.time_of_day})


@bp.route("")
@roles_required(SUPER_ADMIN)
def index():
    """Show what today's run would change, per step with a sample; Run now; the daily time."""
    return _page()


@bp.route("/run", methods=["POST"])
@roles_required(SUPER_ADMIN)
def run_now():
    """Start today's dunning run and go to its page (refused if today's run has already been started)."""
    try:
        run = schedule.run_now(current_user._get_current_object())
    except (Conflict, BackgroundUnavailable) as exc:
        return _page("run_now", exc.status_code, run_error=exc)
    flash(f"Today's dunning run #{run.id} started.", "success")
    return redirect_after_post("sweeps.run", run_id=run.id)


@bp.route("/schedule", methods=["POST"])
@roles_required(SUPER_ADMIN)
def save_schedule():
    """Save the time of day the daily run starts."""
    form = {"time_of_day": request.form.get("time_of_day", "").strip(), "enabled": bool(request.form.get("enabled"))}
    try:
        saved = schedule.save_dunning_schedule(current_user._get_current_object(), form)
    except ValidationFailed as exc:
        return _page("schedule_form", 422, form, exc.field_errors)
    flash(f"Daily dunning time saved: {schedule.describe(saved)}.", "success")
    return redirect_after_post("dunning.index")


def _class_filter():
    """The class filter of the Upcoming page: (class id or None, problem or None)."""
    raw = request.args.get("class", "")
    if not raw:
        return None, None
    class_id = record_id(raw)
    if class_id is None:
        return None, "That class is not one of the list; showing every class."
    return class_id, None


def _upcoming_context():
    class_id, problem = _class_filter()
    names = dict(class_choices())
    if class_id is not None and class_id not in names:
        class_id, problem = None, "That class no longer exists; showing every class."
    return {"rows": daily.upcoming(class_id=class_id), "class_id": class_id, "problem": problem, "classes": names,
            "actions": ACTIONS}


@bp.route("/upcoming")
@roles_required(STAFF)
def upcoming():
    """List the accounts that will be limited or suspended in the next 7 days, by date (staff call them first)."""
    return render("dunning/upcoming.html", block="upcoming_results", **_upcoming_context())


@bp.route("/upcoming.csv")
@roles_required(STAFF)
def upcoming_csv():
    """Download the Upcoming list as CSV (refused if the class filter is not valid)."""
    context = _upcoming_context()
    if context["problem"]:
        abort(422, "Nothing was exported: " + context["problem"])
    names = context["classes"]
    rows = [CSV_HEADER] + [(r["date"].isoformat(), r["action"], r["number"], r["name"], names.get(r["class_id"], ""),
                            f"{r['owed_cents'] / 100:.2f}", " ".join(f"#{s}" for s in r["invoices"]),
                            STATE_LABELS[r["label"]]) for r in context["rows"]]
    return csv_download(rows, "upcoming-dunning.csv", "export of upcoming dunning steps")
