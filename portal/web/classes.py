"""The customer classes page (super admin): list, add, edit, delete (asked first; refused while accounts use it)."""
from flask import Blueprint, flash, request
from flask_login import current_user

from portal.domain.dunning import classes
from portal.domain.errors import Conflict, ValidationFailed
from portal.domain.money import dollars
from portal.web.access import SUPER_ADMIN, roles_required
from portal.web.helpers import is_fragment_request, redirect_after_post, render

bp = Blueprint("classes", __name__, url_prefix="/classes")
FIELDS = ("name", "description", "limit_after_days", "suspend_after_days", "least_amount", "warning_days")


def _form_of(cls):
    """The form values showing a saved class."""
    def days(value):
        return "" if value is None else str(value)

    return {"name": cls.name, "description": cls.description or "", "limit_after_days": days(cls.limit_after_days),
            "suspend_after_days": days(cls.suspend_after_days), "warning_days": days(cls.warning_days),
            "least_amount": dollars(cls.least_amount_cents or 1).lstrip("$")}


def _posted():
    return {key: request.form.get(key, "").strip() for key in FIELDS}


def _find(class_id):
    found = next(((c, n) for c, n in classes.list_classes() if c.id == class_id), None)
    if found is None:
        raise classes.ClassNotFound()
    return found


def _index(form=None, errors=None, status=200, block=None):
    return render("classes/index.html", block=block, status=status, rows=classes.list_classes(),
                  form=form or {"least_amount": "0.01"}, errors=errors or {})


@bp.route("")
@roles_required(SUPER_ADMIN)
def index():
    """List the classes with their schedules and account counts, with a form to add one."""
    return _index()


@bp.route("", methods=["POST"])
@roles_required(SUPER_ADMIN)
def create():
    """Add a class."""
    form = _posted()
    try:
        cls = classes.create_class(current_user._get_current_object(), form)
    except ValidationFailed as exc:
        return _index(form, exc.field_errors, 422, block="class_form")
    flash(f"Class “{cls.name}” added.", "success")
    return redirect_after_post("classes.index")


@bp.route("/<int:class_id>/edit")
@roles_required(SUPER_ADMIN)
def edit(class_id):
    """Show the form to change a class."""
    cls, count = _find(class_id)
    return render("classes/edit.html", cls=cls, count=count, form=_form_of(cls), errors={})


@bp.route("/<int:class_id>", methods=["POST"])
@roles_required(SUPER_ADMIN)
def update(class_id):
    """Save a changed class; its accounts' schedules follow."""
    form = _posted()
    try:
        cls = classes.update_class(current_user._get_current_object(), class_id, form)
    except ValidationFailed as exc:
        cls, count = _find(class_id)
        return render("classes/edit.html", block="class_form", status=422, cls=cls, count=count, form=form,
                      errors=exc.field_errors)
    flash(f"Class “{cls.name}” saved.", "success")
    return redirect_after_post("classes.index")


@bp.route("/<int:class_id>/delete")
@roles_required(SUPER_ADMIN)
def confirm_delete(class_id):
    """Ask before deleting a class (or say why it can't be: the accounts using it)."""
    cls, count = _find(class_id)
    return render("classes/delete.html", block="delete_dialog", cls=cls, count=count,
                  as_dialog=is_fragment_request())


@bp.route("/<int:class_id>/delete", methods=["POST"])
@roles_required(SUPER_ADMIN)
def delete(class_id):
    """Delete a class no account uses."""
    cls, count = _find(class_id)
    name = cls.name
    try:
        classes.delete_class(current_user._get_current_object(), class_id)
    except Conflict as exc:
        cls, count = _find(class_id)
        return render("classes/delete.html", block="delete_body", status=409, cls=cls, count=count,
                      form_error=exc.message, as_dialog=is_fragment_request())
    flash(f"Class “{name}” deleted.", "success")
    return redirect_after_post("classes.index")
