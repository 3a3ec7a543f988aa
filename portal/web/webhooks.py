"""Webhooks (super admins): register URLs for events (the secret shown once), each endpoint's settings, its
delivery log (status, attempts, last answer, body) and "send again"."""
from flask import Blueprint, flash, request
from flask_login import current_user

from portal.domain import webhooks
from portal.domain.errors import Conflict, InvalidTransition, ValidationFailed
from portal.domain.parsing import record_id
from portal.domain.webhooks.delivery import STATUSES
from portal.web.access import SUPER_ADMIN, roles_required
from portal.web.helpers import redirect_after_post, render

bp = Blueprint("webhooks", __name__, url_prefix="/settings/webhooks")
PAGE = 50


def _actor():
    return current_user._get_current_object()


def _form():
    return {"url": request.form.get("url", ""), "description": request.form.get("description", ""),
            "events": request.form.getlist("events")}


def _index(status=200, form=None, errors=None, new_endpoint=None, secret=None):
    endpoints = webhooks.list_endpoints()
    return render("webhooks/index.html", block="endpoints" if status != 200 or new_endpoint else None,
                  status=status, endpoints=endpoints, counts=webhooks.status_counts([e.id for e in endpoints]),
                  event_types=webhooks.EVENT_TYPES, form=form or {"events": []}, errors=errors or {},
                  new_endpoint=new_endpoint, secret=secret)


@bp.route("")
@roles_required(SUPER_ADMIN)
def index():
    """List the webhook endpoints and show the form that registers one."""
    return _index()


@bp.route("", methods=["POST"])
@roles_required(SUPER_ADMIN)
def create():
    """Register an endpoint; its signing secret is shown on this answer only."""
    form = _form()
    try:
        endpoint, secret = webhooks.create_endpoint(_actor(), form["url"], form["events"], form["description"])
    except ValidationFailed as exc:
        return _index(422, form, exc.field_errors)
    return _index(new_endpoint=endpoint, secret=secret)


def _detail(endpoint_id, status=200, block=None, form=None, errors=None, form_error=None, secret=None):
    endpoint = webhooks.get_endpoint(endpoint_id)
    shown = request.args.get("status") if request.args.get("status") in STATUSES else None
    before = record_id(request.args.get("before")) if request.args.get("before") else None
    rows = webhooks.deliveries_of(endpoint.id, shown, before, PAGE + 1)
    form = form or {"url": endpoint.url, "description": endpoint.description or "", "events": endpoint.event_list}
    return render("webhooks/detail.html", block=block, status=status, endpoint=endpoint, deliveries=rows[:PAGE],
                  older=rows[PAGE - 1].id if len(rows) > PAGE else None, paged=bool(before), shown=shown,
                  statuses=STATUSES, counts=webhooks.status_counts([endpoint.id]).get(endpoint.id, {}),
                  event_types=webhooks.EVENT_TYPES, form=form, errors=errors or {}, form_error=form_error,
                  secret=secret)


@bp.route("/<int:endpoint_id>")
@roles_required(SUPER_ADMIN)
def detail(endpoint_id):
    """Show an endpoint: its settings and its deliveries, newest first (filtered by status)."""
    return _detail(endpoint_id, block="deliveries" if request.args.get("before") or "status" in request.args else None)


@bp.route("/<int:endpoint_id>", methods=["POST"])
@roles_required(SUPER_ADMIN)
def update(endpoint_id):
    """Change the endpoint's address, events and description."""
    form = _form()
    try:
        webhooks.update_endpoint(_actor(), endpoint_id, form["url"], form["events"], form["description"])
    except ValidationFailed as exc:
        return _detail(endpoint_id, 422, "settings_form", form, exc.field_errors)
    flash("The endpoint's settings are saved.", "success")
    return redirect_after_post("webhooks.detail", endpoint_id=endpoint_id)


@bp.route("/<int:endpoint_id>/enabled", methods=["POST"])
@roles_required(SUPER_ADMIN)
def set_enabled(endpoint_id):
    """Enable or disable the endpoint."""
    enable = request.form.get("enabled") == "1"
    try:
        webhooks.set_enabled(_actor(), endpoint_id, enable)
    except InvalidTransition as exc:
        return _detail(endpoint_id, 409, "state_form", form_error=exc.message)
    flash("The endpoint is enabled: it receives the events from now on." if enable else
          "The endpoint is disabled: nothing is queued or sent for it until it is enabled again.", "success")
    return redirect_after_post("webhooks.detail", endpoint_id=endpoint_id)


@bp.route("/<int:endpoint_id>/secret", methods=["POST"])
@roles_required(SUPER_ADMIN)
def roll_secret(endpoint_id):
    """Give the endpoint a new signing secret (the box must be ticked); it is shown on this answer only."""
    if not request.form.get("confirm"):
        return _detail(endpoint_id, 422, "secret_form", errors={"confirm": "Tick the box to confirm the new secret."})
    _endpoint, secret = webhooks.roll_secret(_actor(), endpoint_id)
    return _detail(endpoint_id, block="secret_form", secret=secret)


def _delivery(endpoint_id, delivery_id, status=200, form_error=None):
    delivery = webhooks.get_delivery(endpoint_id, delivery_id)
    return render("webhooks/delivery.html", block="resend_form" if status != 200 else None, status=status,
                  endpoint=webhooks.get_endpoint(endpoint_id), delivery=delivery, form_error=form_error)


@bp.route("/<int:endpoint_id>/deliveries/<int:delivery_id>")
@roles_required(SUPER_ADMIN)
def delivery(endpoint_id, delivery_id):
    """Show one delivery: its status, attempts, last answer and the body signed."""
    return _delivery(endpoint_id, delivery_id)


@bp.route("/<int:endpoint_id>/deliveries/<int:delivery_id>/resend", methods=["POST"])
@roles_required(SUPER_ADMIN)
def resend(endpoint_id, delivery_id):
    """Send a delivered or failed delivery again."""
    try:
        webhooks.resend(_actor(), endpoint_id, delivery_id, request.form.get("attempts", ""))
    except (InvalidTransition, Conflict) as exc:
        return _delivery(endpoint_id, delivery_id, 409, exc.message)
    flash("The delivery is queued to be sent again.", "success")
    return redirect_after_post("webhooks.delivery", endpoint_id=endpoint_id, delivery_id=delivery_id)
