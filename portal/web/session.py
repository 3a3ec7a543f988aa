"""Flask-Login wiring: who is signed in, and the checks on every request that end a session.

A session ends when the account's status has changed since it began (suspension, reactivation:
see User.session_key), when the gate no longer lets the person use the portal, and for staff when
it has been idle or open too long (staff_sessions). Each says why on the sign-in page.
"""
from urllib.parse import urlsplit

from flask import current_app, flash, make_response, redirect, request, session, url_for
from flask_login import current_user, logout_user

from portal.domain.auth import ended_by_status_change, load_session_user
from portal.domain.gate import may
from portal.extensions import login_manager
from portal.web import staff_sessions
from portal.web.safe_next import is_page, safe_next

STATUS_CHANGED = "Your account's status has changed, so you were signed out. Please sign in again."


def to_login(message=None, category="error"):
    """Send the browser to sign in: a redirect, or for htmx a 401 with HX-Redirect (never a fragment)."""
    if message:
        flash(message, category)
    htmx = request.headers.get("HX-Request") == "true"
    if htmx:  # come back to the page the fragment was on, not to the fragment
        page = urlsplit(request.headers.get("HX-Current-URL", ""))
        back = (page.path + (f"?{page.query}" if page.query else "")) if page.path else None
    else:
        back = request.full_path.rstrip("?") if request.method == "GET" else None
    if is_page(back, url_for("auth.login")):
        back = None  # a session ended on the sign-in page itself: after signing in, go home, not back to sign-in
    target = url_for("auth.login", next=safe_next(back))
    if htmx:
        response = make_response("", 401)
        response.headers["HX-Redirect"] = target
        return response
    return redirect(target, code=303 if request.method != "GET" else 302)


def _end_after_status_change():
    """Say why a session (or remember-me cookie) from before the account's last status change ended."""
    session_id = session.get("_user_id")
    user = ended_by_status_change(session_id) if session_id else None
    if user is None:
        return None
    decision = may(user, "use_portal", user.account)
    logout_user()  # also clears the remember-me cookie
    return to_login(STATUS_CHANGED if decision else decision.message)


def _end_if_refused():
    """End the session of anyone the gate no longer lets use the portal (e.g. a suspended member)."""
    decision = may(current_user, "use_portal", current_user.account)
    if decision:
        return None
    logout_user()
    return to_login(decision.message)


def _end_if_expired():
    """End a staff session idle or open too long."""
    if not current_user.is_staff:
        return None
    message = staff_sessions.expiry_message()
    if message is None:
        return None
    logout_user()
    staff_sessions.forget()
    return to_login(message, "info")


def init_app(app):
    """Install the user loader, the unauthorised handler and the per-request session checks."""
    login_manager.login_view = "auth.login"
    login_manager.login_message = "Please sign in to continue."
    login_manager.session_protection = "basic"
    login_manager.user_loader(load_session_user)
    staff_sessions.init_app(app)

    @login_manager.unauthorized_handler
    def unauthorized():
        return to_login(login_manager.login_message, "info")

    @app.before_request
    def end_sessions_that_no_longer_hold():
        """End a session from before a status change, a refused member's, or an expired staff session."""
        if request.endpoint in (None, "static"):
            return None
        if getattr(current_app.view_functions.get(request.endpoint), "allowed_roles", None) == "bearer":
            return None  # a bearer-token API view: the session cookie is never read, nor ended, nor refreshed
        if not current_user.is_authenticated:
            return _end_after_status_change()
        return _end_if_refused() or _end_if_expired()
