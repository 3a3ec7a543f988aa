"""Flask-Login wiring: who is signed in, and the gate asked on every request."""
from flask import flash, make_response, redirect, request, url_for
from flask_login import current_user, logout_user

from portal.domain.auth import load_session_user
from portal.domain.gate import may
from portal.extensions import login_manager


def _to_login(message=None, category="error"):
    if message:
        flash(message, category)
    target = url_for("auth.login", next=request.full_path if request.method == "GET" else None)
    if request.headers.get("HX-Request") == "true":
        response = make_response("", 401)
        response.headers["HX-Redirect"] = target
        return response
    return redirect(target, code=303 if request.method != "GET" else 302)


def init_app(app):
    """Install the user loader, the unauthorised handler and the per-request gate check."""
    login_manager.login_view = "auth.login"
    login_manager.login_message = "Please sign in to continue."
    login_manager.session_protection = "basic"
    login_manager.user_loader(load_session_user)

    @login_manager.unauthorized_handler
    def unauthorized():
        return _to_login(login_manager.login_message, "info")

    @app.before_request
    def end_refused_sessions():
        """End the session of anyone the gate no longer lets use the portal (e.g. a suspended member)."""
        if request.endpoint in (None, "static") or not current_user.is_authenticated:
            return None
        decision = may(current_user, "use_portal", current_user.account)
        if decision:
            return None
        logout_user()
        return _to_login(decision.message)
