"""Flask-Login wiring: who is signed in, and the gate asked on every request."""
from urllib.parse import urlsplit

from flask import flash, make_response, redirect, request, url_for
from flask_login import current_user, logout_user

from portal.domain.auth import load_session_user
from portal.domain.gate import may
from portal.extensions import login_manager
from portal.web.safe_next import safe_next


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
    target = url_for("auth.login", next=safe_next(back))
    if htmx:
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
        return to_login(login_manager.login_message, "info")

    @app.before_request
    def end_refused_sessions():
        """End the session of anyone the gate no longer lets use the portal (e.g. a suspended member)."""
        if request.endpoint in (None, "static") or not current_user.is_authenticated:
            return None
        decision = may(current_user, "use_portal", current_user.account)
        if decision:
            return None
        logout_user()
        return to_login(decision.message)
