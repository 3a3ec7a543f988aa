"""Map domain errors and HTTP errors to friendly pages (or short fragments for htmx)."""
import logging

from flask import current_app, jsonify, make_response, render_template, request
from flask_login import current_user
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from portal.api import problems
from portal.domain.errors import DomainError
from portal.extensions import db
from portal.web import form_expiry
from portal.web.session import to_login

log = logging.getLogger(__name__)

TITLES = {
    400: "Bad request", 401: "Please sign in", 403: "Not allowed", 404: "Not found", 405: "Not allowed",
    409: "Conflict", 413: "Request too large", 422: "Please check your input", 429: "Too many attempts",
    500: "Something went wrong", 503: "Temporarily unavailable",
}


def _session_expired():
    """True when a signed-in-only page is posted to without a signed-in session (it expired or ended)."""
    view = current_app.view_functions.get(request.endpoint)
    return (view is not None and getattr(view, "allowed_roles", None) != "public"
            and not current_user.is_authenticated)


def _wants_json():
    return request.path.startswith("/api/")


def _wants_problem():
    """The JSON API (portal/api) answers problem documents; the ingestion endpoint keeps its own JSON shape."""
    return _wants_json() and request.blueprint != "ingest_api"


def error_response(status, message):
    """Render an error as JSON (API), a small fragment (htmx) or a full page."""
    title = TITLES.get(status, "Error")
    if _wants_problem():
        kind = problems.BY_STATUS.get(status, "server-error" if status >= 500 else "bad-request")
        return problems.problem_response(status, kind, message)
    if _wants_json():
        return make_response(jsonify(error=title, message=message), status)
    if request.headers.get("HX-Request") == "true":
        body = render_template("errors/_message.html", status=status, title=title, message=message)
    else:
        body = render_template("errors/error.html", status=status, title=title, message=message)
    response = make_response(body, status)
    response.vary.add("HX-Request")
    return response


def init_app(app):
    """Install the handlers."""

    @app.errorhandler(DomainError)
    def domain_error(exc):
        db.session.rollback()
        if _wants_problem():
            return problems.from_domain_error(exc)
        return error_response(exc.status_code, exc.message)

    @app.errorhandler(CSRFError)
    def csrf_error(exc):
        if _session_expired():
            return to_login("Your session has expired. Please sign in again.", "info")
        if not _wants_json() and form_expiry.resendable(exc):  # never acted on: sent again with a fresh token
            return form_expiry.response()
        return error_response(400, "Your form expired or was sent from elsewhere. Reload the page and try again.")

    @app.errorhandler(HTTPException)
    def http_error(exc):
        if exc.response is not None:  # it brings its own answer (a throttled sign-in: the form, saying how long)
            return exc.response
        if _wants_problem():
            return problems.from_http_exception(exc)
        messages = {
            403: "You don't have permission to see this page.",
            404: "We couldn't find that page or record.",
            405: "That action isn't available here.",
            413: "That request is larger than the portal accepts; nothing was changed.",
            429: "Too many attempts. Please wait a minute and try again.",
        }
        return error_response(exc.code or 500, messages.get(exc.code, exc.description))

    @app.errorhandler(Exception)
    def unexpected_error(exc):
        db.session.rollback()
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(500, "Something went wrong on our side; nothing was changed. Please try again.")
