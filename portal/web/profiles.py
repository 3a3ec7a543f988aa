"""The public profile page (/p/<number>), its editing by account managers, and by super admins (staff side)."""
from flask import Blueprint, flash, request, url_for
from flask_login import current_user

from portal.domain.accounts import get_account
from portal.domain.errors import Conflict, PermissionDenied, ValidationFailed
from portal.domain.features import profiles as profiles_domain
from portal.domain.gate import may
from portal.web.access import SUPER_ADMIN, public, roles_required
from portal.web.helpers import redirect_after_post, render

bp = Blueprint("profiles", __name__)

REFUSALS = (PermissionDenied, Conflict)  # nothing was stored; the message says why


@bp.route("/p/<number>")
@public
def show(number):
    """Show an account's public profile to anyone, signed in or not."""
    try:
        account, profile = profiles_domain.public_profile(number)
    except profiles_domain.ProfileGone as exc:
        return render("profiles/unavailable.html", status=410, message=exc.message)
    return render("profiles/public.html", account=account, profile=profile)


def _edit_page(account, staff, status=200, form=None, errors=None, refusal=None):
    profile = profiles_domain.profile_of(account.id)
    action = (url_for("profiles.staff_edit", account_id=account.id) if staff else url_for("profiles.edit"))
    return render("profiles/edit.html", block="profile_form" if status != 200 else None, status=status,
                  account=account, profile=profile, staff=staff, action=action,
                  editing=may(current_user, "edit_profile", account),
                  public_view=may(None, "view_public_profile", account),
                  form=form if form is not None else profiles_domain.form_values(profile),
                  errors=errors or {}, refusal=refusal)


def _save(account, staff, done):
    form = request.form.to_dict()
    try:
        changed = profiles_domain.update_profile(current_user, account.id, form)
    except ValidationFailed as exc:
        return _edit_page(account, staff, 422, form, exc.field_errors)
    except REFUSALS as exc:
        return _edit_page(account, staff, 422, form, refusal=exc.message)
    flash("Public profile saved." if changed else "Nothing to save: the profile was already so.", "success")
    return redirect_after_post(done, **({"account_id": account.id} if staff else {}))


@bp.route("/profile")
@roles_required("account_manager")
def edit():
    """Show the account's public profile to edit (read-only while the gate refuses editing)."""
    return _edit_page(current_user.account, staff=False)


@bp.route("/profile", methods=["POST"])
@roles_required("account_manager")
def save():
    """Save the account's public profile, unless the gate refuses."""
    return _save(current_user.account, False, "profiles.edit")


@bp.route("/accounts/<int:account_id>/profile")
@roles_required(SUPER_ADMIN)
def staff_edit(account_id):
    """Show an account's public profile to edit from the staff side (also while the account is suspended)."""
    return _edit_page(get_account(current_user, account_id), staff=True)


@bp.route("/accounts/<int:account_id>/profile", methods=["POST"])
@roles_required(SUPER_ADMIN)
def staff_save(account_id):
    """Save an account's public profile from the staff side, audited with who did it."""
    return _save(get_account(current_user, account_id), True, "profiles.staff_edit")
