"""Sweep pages (super admin): run history, clean-up with preview and confirmation, a run's live
progress and report, pause, resume, cancel and undo, and the recurring schedule."""
from flask import Blueprint, abort, flash, request
from flask_login import current_user

from portal.domain import runs, schedule, sweeps
from portal.domain.background import BackgroundUnavailable
from portal.domain.errors import Conflict, InvalidTransition, ValidationFailed
from portal.domain.parsing import record_id
from portal.domain.runs import pace
from portal.web.access import SUPER_ADMIN, roles_required
from portal.web.helpers import redirect_after_post, render

bp = Blueprint("sweeps", __name__, url_prefix="/sweeps")
PAGE = 25


@bp.app_template_filter("duration")
def duration(seconds):
    """A length of time as people say it (45 s, 3 min, 1 h 5 min)."""
    return pace.duration_text(seconds)


def _actor():
    return current_user._get_current_object()


@bp.route("")
@roles_required(SUPER_ADMIN)
def index():
    """List runs, newest first, with the schedule and its next run time."""
    before = _before()
    rows = sweeps.list_runs(limit=PAGE + 1, before_id=before)
    current = schedule.get_schedule()
    return render("sweeps/index.html", block="history" if before else None, rows=rows[:PAGE],
                  older=rows[PAGE - 1]["run"].id if len(rows) > PAGE else None, schedule=current,
                  schedule_text=schedule.describe(current), next_run_at=schedule.next_run_time(current),
                  schedule_problem=schedule.schedule_problem(current), running_id=runs.running_exclusive_run())


def _before():
    """The run id the history page starts below (its "older" link), or None for the newest; refuse a bad one."""
    raw = request.args.get("before", "")
    if not raw:
        return None
    before = record_id(raw)
    if before is None:
        abort(400, "That page link of the run history is not valid (it names no run). Open Sweeps again.")
    return before


def _cleanup_page(form=None, errors=None, status=200, block=None, form_error=None, sample_size=20):
    summary = sweeps.preview(sample_size=sample_size)
    return render("sweeps/cleanup.html", block=block, status=status, preview=summary, errors=errors or {},
                  form=form or {"reason_category": sweeps.BY_RULE, "reason_note": ""}, form_error=form_error)


@bp.route("/cleanup")
@roles_required(SUPER_ADMIN)
def cleanup():
    """Preview the enabled rules (dry run) beside the form that starts the clean-up."""
    return _cleanup_page()


@bp.route("/cleanup", methods=["POST"])
@roles_required(SUPER_ADMIN)
def start_cleanup():
    """Start the one-time clean-up (typed count above the threshold)."""
    form = {key: request.form.get(key, "") for key in ("reason_category", "reason_note", "confirm_count")}
    try:
        run = sweeps.start_cleanup(_actor(), form["reason_category"], form["reason_note"],
                                   confirm_count=form["confirm_count"])
    except ValidationFailed as exc:
        return _cleanup_page(form, exc.field_errors, 422, block="cleanup_form", sample_size=0)
    except (Conflict, BackgroundUnavailable) as exc:
        return _cleanup_page(form, status=exc.status_code, block="cleanup_form", form_error=exc.message,
                             sample_size=0)
    flash(f"Clean-up run #{run.id} started.", "success")
    return redirect_after_post("sweeps.run", run_id=run.id)


def _run_page(run_id, block=None, status=200, undo_form=None, undo_errors=None, form_error=None,
              control_error=None):
    details = sweeps.run_details(run_id)
    return render("sweeps/run.html", block=block, status=status, undo_form=undo_form or {},
                  undo_errors=undo_errors or {}, form_error=form_error, control_error=control_error, **details)


@bp.route("/runs/<int:run_id>")
@roles_required(SUPER_ADMIN)
def run(run_id):
    """Show a run: what it applied, its live progress, its report, and undo or resume."""
    return _run_page(run_id)


@bp.route("/runs/<int:run_id>/progress")
@roles_required(SUPER_ADMIN)
def progress(run_id):
    """Show a run's live part (it polls itself only while the run is queued or running)."""
    return _run_page(run_id, block="live")


@bp.route("/runs/<int:run_id>/undo", methods=["POST"])
@roles_required(SUPER_ADMIN)
def undo(run_id):
    """Start undoing a run: reactivate what it suspended and still holds."""
    form = {key: request.form.get(key, "") for key in ("reason_category", "reason_note")}
    try:
        undo_run = sweeps.start_undo(_actor(), run_id, form["reason_category"], form["reason_note"])
    except ValidationFailed as exc:
        return _run_page(run_id, "undo_form", 422, form, exc.field_errors)
    except (Conflict, InvalidTransition, BackgroundUnavailable) as exc:
        return _run_page(run_id, "undo_form", exc.status_code, form, form_error=exc.message)
    flash(f"Undo run #{undo_run.id} started.", "success")
    return redirect_after_post("sweeps.run", run_id=undo_run.id)


def _control(run_id, act, done):
    """Pause, resume or cancel a run; a refusal shows the run's live part with why (nothing changed)."""
    try:
        act(_actor(), run_id)
    except (Conflict, InvalidTransition, BackgroundUnavailable) as exc:
        return _run_page(run_id, "live", exc.status_code, control_error=exc.message)
    flash(done, "success")
    return redirect_after_post("sweeps.run", run_id=run_id)


@bp.route("/runs/<int:run_id>/pause", methods=["POST"])
@roles_required(SUPER_ADMIN)
def pause(run_id):
    """Pause a running run: its workers stop after the chunk in hand."""
    return _control(run_id, runs.pause_run, f"Run #{run_id} paused: its workers stop after the chunk in hand.")


@bp.route("/runs/<int:run_id>/resume", methods=["POST"])
@roles_required(SUPER_ADMIN)
def resume(run_id):
    """Queue a paused, failed or stalled run again."""
    return _control(run_id, runs.resume_run, f"Run #{run_id} resumed.")


@bp.route("/runs/<int:run_id>/cancel", methods=["POST"])
@roles_required(SUPER_ADMIN)
def cancel(run_id):
    """Cancel a run: it stops after the chunk in hand and keeps what it finished."""
    return _control(run_id, runs.cancel_run, f"Run #{run_id} cancelled; what it finished stays done.")


SCHEDULE_FIELDS = ("mode", "day_of_month", "time_of_day", "cron")


def _schedule_page(form, errors=None, status=200, block=None):
    current = schedule.get_schedule()
    return render("sweeps/schedule.html", block=block, status=status, form=form, errors=errors or {},
                  schedule=current, next_run_at=schedule.next_run_time(current),
                  schedule_problem=schedule.schedule_problem(current), preview=schedule.preview(form))


def _stored_form():
    current = schedule.get_schedule()
    return {k: getattr(current, k) for k in schedule.DEFAULTS} if current else dict(schedule.DEFAULTS)


@bp.route("/schedule")
@roles_required(SUPER_ADMIN)
def schedule_form():
    """Show the recurring sweep's schedule form (?mode=cron|monthly shows that kind's fields, without JavaScript)."""
    form = _stored_form()
    if request.args.get("mode") in schedule.MODES:
        form["mode"] = request.args["mode"]
    return _schedule_page(form)


@bp.route("/schedule/preview")
@roles_required(SUPER_ADMIN)
def schedule_preview():
    """Show a schedule as typed in plain words with its next five runs, or what is wrong with it (live, htmx)."""
    form = {key: request.args.get(key, "").strip() for key in SCHEDULE_FIELDS}
    form["enabled"] = True
    return _schedule_page(form, block="schedule_preview")


@bp.route("/schedule", methods=["POST"])
@roles_required(SUPER_ADMIN)
def save_schedule():
    """Save the schedule."""
    form = _stored_form()  # the other kind's fields are disabled, so not sent: they show as stored if it comes back
    form.update({key: request.form[key].strip() for key in SCHEDULE_FIELDS if key in request.form})
    form["enabled"] = bool(request.form.get("enabled"))
    try:
        saved = schedule.save_schedule(_actor(), form)
    except ValidationFailed as exc:
        return _schedule_page(form, exc.field_errors, 422, block="schedule_form")
    nxt = schedule.next_run_time(saved)
    flash("Schedule saved. " + (f"Next sweep: {nxt:%Y-%m-%d %H:%M} UTC." if nxt else "Sweeps are paused."),
          "success")
    return redirect_after_post("sweeps.index")
