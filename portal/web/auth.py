"""Sign in and sign out."""
from flask import Blueprint, flash, redirect, request, session, url_for
from flask_login import current_user, login_user, logout_user

from portal.domain import auth as auth_domain
from portal.domain.errors import InvalidCredentials, LoginRefused
from portal.web.access import EVERYONE, public, roles_required
from portal.web.helpers import render
from portal.web.safe_next import is_page, safe_next
from portal.web.throttle import limit_failed_sign_ins, record_failure

bp = Blueprint("auth", __name__)


def home_url_for(user):
    """Return the landing page of the user's role."""
    if user.is_staff:
        return url_for("overview.index")
    if user.role == "account_manager":
        return url_for("home.my_account")
    return url_for("reservations.index")


@bp.route("/login", methods=["GET", "POST"])
@public
@limit_failed_sign_ins
def login():
    """Show the sign-in form; sign in on POST."""
    if request.method == "GET":
        if current_user.is_authenticated:
            return redirect(home_url_for(current_user))
        return render("auth/login.html", email="", errors={})
    email, password = request.form.get("email", ""), request.form.get("password", "")
    errors = {}
    if not email.strip():
        errors["email"] = "Enter your email address."
    if not password:
        errors["password"] = "Enter your password."
    if errors:
        return render("auth/login.html", block="login_form", status=422, email=email, errors=errors)
    try:
        user = auth_domain.authenticate(email, password)
    except (InvalidCredentials, LoginRefused) as exc:
        if isinstance(exc, InvalidCredentials):  # a right password the gate refuses is no guess
            record_failure()
        return render("auth/login.html", block="login_form", status=422,
                      email=email, errors={}, form_error=exc.message)
    session.clear()  # a new session on every sign-in
    login_user(user, remember=bool(request.form.get("remember")))
    target = safe_next(request.args.get("next"))
    if is_page(target, url_for("auth.login")) or is_page(target, url_for("auth.logout")):
        target = None  # never back to the sign-in form (the signed-in user would only be sent home from there)
    target = target or home_url_for(user)
    if request.headers.get("HX-Request") == "true":
        return "", 204, {"HX-Redirect": target}
    return redirect(target, code=303)


@bp.route("/logout", methods=["POST"])
@roles_required(EVERYONE)
def logout():
    """Sign out: end this session and every other session of the user."""
    auth_domain.end_all_sessions(current_user._get_current_object())
    logout_user()
    session.clear()
    flash("You have signed out.", "info")
    return redirect(url_for("auth.login"), code=303)
