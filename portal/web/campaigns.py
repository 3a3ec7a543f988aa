"""Customers' campaigns: list and create them, one campaign with its history, pause, resume and end."""
from flask import Blueprint, flash, request
from flask_login import current_user

from portal.domain.errors import InvalidTransition, PermissionDenied, ValidationFailed
from portal.domain.features import campaigns as campaigns_domain
from portal.domain.features import surveys as surveys_domain
from portal.domain.gate import may
from portal.web.access import roles_required
from portal.web.helpers import is_fragment_request, redirect_after_post, render

bp = Blueprint("campaigns", __name__, url_prefix="/campaigns")
MANAGERS = ("account_manager",)
FIELDS = ("name", "survey_id", "delay_hours", "daily_limit")
DONE = {"pause": ("Campaign paused.", "campaign-paused"), "resume": ("Campaign resumed.", "campaign-resumed"),
        "end": ("Campaign ended.", "campaign-ended")}


def _index(status=200, form=None, errors=None, refusal=None):
    account = current_user.account
    return render("campaigns/index.html", block="campaign_form" if status != 200 else "campaign_list", status=status,
                  rows=campaigns_domain.list_campaigns(account.id), surveys=surveys_domain.list_surveys(account.id),
                  managing=may(current_user, "manage_campaigns", account), states=campaigns_domain.STATES,
                  form=form or {"delay_hours": "24", "daily_limit": "100"}, errors=errors or {}, refusal=refusal)


@bp.route("")
@roles_required(MANAGERS)
def index():
    """List the account's campaigns and show the form that starts one."""
    return _index()


@bp.route("", methods=["POST"])
@roles_required(MANAGERS)
def create():
    """Start a campaign, unless the gate refuses or a field is wrong."""
    form = {name: request.form.get(name, "") for name in FIELDS}
    try:
        campaign = campaigns_domain.create_campaign(current_user, *(form[name] for name in FIELDS))
    except ValidationFailed as exc:
        return _index(422, form, exc.field_errors)
    except PermissionDenied as exc:
        return _index(422, form, refusal=exc.message)
    flash(f"Campaign “{campaign.name}” started.", "success")
    return redirect_after_post("campaigns.detail", campaign_id=campaign.id)


def _detail(campaign, status=200, refusal=None, block=None):
    return render("campaigns/detail.html", block=block, status=status, campaign=campaign,
                  survey=surveys_domain.find_survey(campaign.account_id, campaign.survey_id),
                  events=campaigns_domain.history(campaign.id), states=campaigns_domain.STATES,
                  managing=may(current_user, "manage_campaigns", current_user.account), refusal=refusal)


@bp.route("/<int:campaign_id>")
@roles_required(MANAGERS)
def detail(campaign_id):
    """Show one campaign: its settings, its actions and its history."""
    return _detail(campaigns_domain.get_campaign(current_user, campaign_id), block="campaign_panel")


def _change(campaign_id, action):
    campaign = campaigns_domain.get_campaign(current_user, campaign_id)
    try:
        campaign = campaigns_domain.change_state(current_user, campaign.id, action)
    except (PermissionDenied, InvalidTransition) as exc:  # nothing changed; say why in place of the actions
        return _detail(campaigns_domain.get_campaign(current_user, campaign_id), 422, exc.message, "campaign_panel")
    message, event = DONE[action]
    if is_fragment_request():  # the panel swapped in place shows the new state and history
        response = _detail(campaign, block="campaign_panel")
        response.headers["HX-Trigger"] = event
        return response
    flash(message, "success")
    return redirect_after_post("campaigns.detail", campaign_id=campaign.id)


@bp.route("/<int:campaign_id>/pause", methods=["POST"])
@roles_required(MANAGERS)
def pause(campaign_id):
    """Pause a running campaign (its pending requests wait)."""
    return _change(campaign_id, "pause")


@bp.route("/<int:campaign_id>/resume", methods=["POST"])
@roles_required(MANAGERS)
def resume(campaign_id):
    """Resume a paused campaign (it carries on with its pending requests)."""
    return _change(campaign_id, "resume")


@bp.route("/<int:campaign_id>/end", methods=["POST"])
@roles_required(MANAGERS)
def end(campaign_id):
    """End a campaign for good (its pending requests are cancelled)."""
    return _change(campaign_id, "end")
