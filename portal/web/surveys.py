"""Customers' surveys and reminders: write them, send one to a customer by hand, see the recent requests."""
from flask import Blueprint, flash, request
from flask_login import current_user

from portal.domain.errors import Conflict, PermissionDenied, ValidationFailed
from portal.domain.features import surveys as surveys_domain
from portal.domain.gate import may
from portal.web.access import roles_required
from portal.web.helpers import redirect_after_post, render

bp = Blueprint("surveys", __name__, url_prefix="/surveys")
MANAGERS = ("account_manager",)
SENDERS = ("account_manager", "tier_manager")
SURVEY_FIELDS = ("kind", "subject", "body")
SEND_FIELDS = ("survey_id", "recipient_name", "recipient_email")


def _index(status=200, block="requests_list", **forms):
    account = current_user.account
    return render("surveys/index.html", block=block, status=status, kinds=surveys_domain.KINDS,
                  surveys=surveys_domain.list_surveys(account.id),
                  requests=surveys_domain.recent_requests(account.id),
                  managing=current_user.role in MANAGERS and may(current_user, "manage_campaigns", account),
                  can_write=current_user.role in MANAGERS,
                  sending=may(current_user, "send_survey", account),
                  survey_form=forms.get("survey_form") or {"kind": "survey"}, survey_errors=forms.get("survey_errors", {}),
                  survey_refusal=forms.get("survey_refusal"),
                  send_form=forms.get("send_form") or {}, send_errors=forms.get("send_errors", {}),
                  send_refusal=forms.get("send_refusal"))


@bp.route("")
@roles_required(SENDERS)
def index():
    """List the account's surveys and recent requests; show the forms to write and to send one."""
    return _index()


@bp.route("", methods=["POST"])
@roles_required(MANAGERS)
def create():
    """Add a survey or reminder, unless the gate refuses or a field is wrong."""
    form = {name: request.form.get(name, "") for name in SURVEY_FIELDS}
    try:
        surveys_domain.create_survey(current_user, *(form[name] for name in SURVEY_FIELDS))
    except ValidationFailed as exc:
        return _index(422, "survey_form", survey_form=form, survey_errors=exc.field_errors)
    except PermissionDenied as exc:
        return _index(422, "survey_form", survey_form=form, survey_refusal=exc.message)
    flash("Saved.", "success")
    return redirect_after_post("surveys.index")


@bp.route("/send", methods=["POST"])
@roles_required(SENDERS)
def send():
    """Send a survey or reminder to one customer by hand, unless the gate refuses."""
    form = {name: request.form.get(name, "") for name in SEND_FIELDS}
    try:
        sent = surveys_domain.send_manual(current_user, *(form[name] for name in SEND_FIELDS))
    except ValidationFailed as exc:
        return _index(422, "send_form", send_form=form, send_errors=exc.field_errors)
    except (PermissionDenied, Conflict) as exc:  # nothing was stored; say why in place of the form
        return _index(422, "send_form", send_form=form, send_refusal=exc.message)
    flash(f"Sent to {sent.recipient_email}.", "success")
    return redirect_after_post("surveys.index")


def _edit(survey, status=200, form=None, errors=None, refusal=None):
    form = form or {"kind": survey.kind, "subject": survey.subject, "body": survey.body or ""}
    return render("surveys/edit.html", block="survey_form" if status != 200 else None, status=status,
                  survey=survey, kinds=surveys_domain.KINDS, form=form, errors=errors or {}, refusal=refusal,
                  managing=may(current_user, "manage_campaigns", current_user.account))


@bp.route("/<int:survey_id>")
@roles_required(MANAGERS)
def edit(survey_id):
    """Show the form that changes one survey or reminder."""
    return _edit(surveys_domain.get_survey(current_user, survey_id))


@bp.route("/<int:survey_id>", methods=["POST"])
@roles_required(MANAGERS)
def update(survey_id):
    """Save a survey's changes, unless the gate refuses or a field is wrong."""
    survey = surveys_domain.get_survey(current_user, survey_id)
    form = {name: request.form.get(name, "") for name in SURVEY_FIELDS}
    try:
        surveys_domain.update_survey(current_user, survey.id, *(form[name] for name in SURVEY_FIELDS))
    except ValidationFailed as exc:
        return _edit(survey, 422, form, exc.field_errors)
    except PermissionDenied as exc:
        return _edit(survey, 422, form, refusal=exc.message)
    flash("Saved.", "success")
    return redirect_after_post("surveys.index")
