"""The account list's "Set class…" for ticked accounts (super admin): confirm with the count, then one change."""
import json

from flask import flash, request, url_for
from flask_login import current_user

from portal.domain.dunning import class_bulk, classes
from portal.domain.errors import ValidationFailed
from portal.web.access import SUPER_ADMIN, roles_required
from portal.web.accounts import bp
from portal.web.helpers import is_fragment_request, redirect_after_post, render
from portal.web.safe_next import safe_next

SCOPE_MESSAGE = ("“Set class…” works on ticked accounts only (up to 1,000 at a time): choose “Ticked accounts” "
                 "and tick the ones to move.")


def _form():
    return {"ids": request.form.getlist("ids"), "scope": request.form.get("scope", "selected"),
            "customer_class": request.form.get("customer_class", ""),
            "next": safe_next(request.form.get("next")) or url_for("accounts.index")}


def _page(form, block, status=200, **context):
    return render("classes/_bulk.html", block=block, status=status, form=form, as_dialog=is_fragment_request(),
                  class_choices=classes.class_choices(), **context)


def _preview(form):
    if form["scope"] == "filter":
        raise ValidationFailed({"selection": SCOPE_MESSAGE})
    return class_bulk.preview_set_class(current_user._get_current_object(), form["ids"])


@bp.route("/bulk/set-class/confirm", methods=["POST"])
@roles_required(SUPER_ADMIN)
def bulk_class_confirm():
    """Show how many ticked accounts would move and ask for the class."""
    form = _form()
    try:
        preview = _preview(form)
    except ValidationFailed as exc:
        return _page(form, "class_bulk_dialog", 422, problem=" ".join(exc.field_errors.values()))
    return _page(form, "class_bulk_dialog", preview=preview, errors={})


@bp.route("/bulk/set-class", methods=["POST"])
@roles_required(SUPER_ADMIN)
def bulk_set_class():
    """Put the ticked accounts in the chosen class (or none), with one audit event per account moved."""
    form = _form()
    try:
        preview = _preview(form)
    except ValidationFailed as exc:
        return _page(form, "class_bulk_body", 422, problem=" ".join(exc.field_errors.values()))
    try:
        outcome = class_bulk.set_class_bulk(current_user._get_current_object(), form["ids"], form["customer_class"])
    except classes.ClassNotFound as exc:
        return _page(form, "class_bulk_body", 422, preview=preview, errors={"customer_class": exc.message})
    if not is_fragment_request():
        flash(outcome.summary, "success")
        return redirect_after_post(form["next"])
    trigger = {"accounts-bulk-finished": {"ids": outcome.changed_ids}}
    return _page(form, "class_bulk_body", outcome=outcome, headers={"HX-Trigger": json.dumps(trigger)})
