"""The suspension rules page (super admin): list, add, edit, enable/disable, delete."""
from flask import Blueprint, flash, request
from flask_login import current_user

from portal.domain import sweeps
from portal.domain.errors import ValidationFailed
from portal.domain.rules import describe, snapshot
from portal.web.access import SUPER_ADMIN, roles_required
from portal.web.helpers import redirect_after_post, render

bp = Blueprint("rules", __name__, url_prefix="/rules")
FIELDS = ("name", "enabled", "inactivity_months", "min_balance", "overdue_days")


def _form_of(rule):
    """The form values showing a saved rule."""
    return {"name": rule.name, "enabled": rule.enabled, "inactivity_months": rule.inactivity_months or "",
            "min_balance": f"{rule.min_balance_cents / 100:.2f}" if rule.min_balance_cents is not None else "",
            "overdue_days": "" if rule.overdue_days is None else rule.overdue_days}


def _posted():
    form = {key: request.form.get(key, "").strip() for key in FIELDS}
    form["enabled"] = bool(request.form.get("enabled"))
    return form


def _index(form=None, errors=None, status=200, block=None):
    rules = [(rule, describe(snapshot(rule)), sweeps.rule_reason(snapshot(rule))) for rule in sweeps.list_rules()]
    return render("rules/index.html", block=block, status=status, rules=rules,
                  form=form or {"enabled": True}, errors=errors or {})


@bp.route("")
@roles_required(SUPER_ADMIN)
def index():
    """List the rules, with a form to add one."""
    return _index()


@bp.route("", methods=["POST"])
@roles_required(SUPER_ADMIN)
def create():
    """Add a rule."""
    form = _posted()
    try:
        rule = sweeps.create_rule(current_user._get_current_object(), form)
    except ValidationFailed as exc:
        return _index(form, exc.field_errors, 422, block="rule_form")
    flash(f"Rule “{rule.name}” added.", "success")
    return redirect_after_post("rules.index")


@bp.route("/<int:rule_id>/edit")
@roles_required(SUPER_ADMIN)
def edit(rule_id):
    """Show the form to change a rule."""
    rule = sweeps.get_rule(rule_id)
    return render("rules/edit.html", rule=rule, form=_form_of(rule), errors={})


@bp.route("/<int:rule_id>", methods=["POST"])
@roles_required(SUPER_ADMIN)
def update(rule_id):
    """Save a changed rule."""
    form = _posted()
    try:
        rule = sweeps.update_rule(current_user._get_current_object(), rule_id, form)
    except ValidationFailed as exc:
        return render("rules/edit.html", block="rule_form", status=422, rule=sweeps.get_rule(rule_id), form=form,
                      errors=exc.field_errors)
    flash(f"Rule “{rule.name}” saved.", "success")
    return redirect_after_post("rules.index")


@bp.route("/<int:rule_id>/enabled", methods=["POST"])
@roles_required(SUPER_ADMIN)
def set_enabled(rule_id):
    """Turn a rule on or off."""
    rule = sweeps.set_rule_enabled(current_user._get_current_object(), rule_id, request.form.get("enabled") == "1")
    flash(f"Rule “{rule.name}” {'enabled' if rule.enabled else 'disabled'}.", "success")
    return redirect_after_post("rules.index")


@bp.route("/<int:rule_id>/delete", methods=["POST"])
@roles_required(SUPER_ADMIN)
def delete(rule_id):
    """Delete a rule (past runs keep their copy)."""
    name = sweeps.get_rule(rule_id).name
    sweeps.delete_rule(current_user._get_current_object(), rule_id)
    flash(f"Rule “{name}” deleted.", "success")
    return redirect_after_post("rules.index")
