"""Who calls the API: the bearer token, the scope each operation needs, the rate limit, and the log of every use.

Only `Authorization: Bearer …` is read; the pages' session cookie is never looked at (the views never touch
current_user, and portal.web.session skips bearer views), so no other site can drive the API from a
signed-in browser, and the API needs no CSRF token.
"""
import logging
from collections import namedtuple
from functools import wraps

from flask import current_app, g, request
from flask_smorest import Blueprint

from portal.api.problems import ApiProblem
from portal.domain import api_tokens
from portal.domain.gate import STAFF_ONLY_MESSAGE
from portal.extensions import db, limiter
from portal.web.access import bearer_api

log = logging.getLogger(__name__)
STAFF = ("super_admin", "support")
SUPER_ADMIN = ("super_admin",)
REFUSALS = {
    "unauthorized": "Send a valid API token as 'Authorization: Bearer TOKEN'.",
    "revoked": "This API token has been revoked; a super admin can create a new one.",
    "expired": "This API token has expired; a super admin can create a new one.",
    "owner_disabled": "The person who created this API token can no longer use the portal, so neither can "
                      "the token; a super admin can create a new one.",
}


# what the request log needs of the token, kept from the authentication: a push's commit expires the row,
# and reading these off it afterwards would load it again
SeenToken = namedtuple("SeenToken", "id prefix last_used_at")


def identify():
    """Return (token, actor, outcome) for this request's Authorization header, read once per request.

    token is a SeenToken (id, prefix, last_used_at) of the token found, or None.
    """
    if "api_auth" not in g:
        text = api_tokens.bearer_text(request.headers.get("Authorization"))
        token, actor, outcome = api_tokens.authenticate(text) if text else (None, None, "unauthorized")
        seen = SeenToken(token.id, token.prefix, token.last_used_at) if token is not None else None
        g.api_auth = (seen, actor, outcome)
    return g.api_auth


def current_actor():
    """The TokenActor of this request (set by token_required)."""
    return g.api_actor


def token_required(scope, roles=STAFF):
    """Let the view run only for a valid token holding `scope`, made by someone whose role is in `roles`.

    401 (unauthorized) without a usable token, 403 (forbidden) without the scope, 403 (not-allowed) when the
    token's maker no longer has a role the operation needs (as @roles_required on the pages). The view is
    marked for the route walk as a bearer API (portal.web.access.bearer_api: no session, no CSRF).
    """
    if scope not in api_tokens.SCOPES:
        raise ValueError(f"unknown scope {scope!r}")

    def decorator(view):
        @wraps(view)
        def wrapped(*args, **kwargs):
            _token, actor, outcome = identify()
            if actor is None:
                raise ApiProblem(401, "unauthorized", REFUSALS[outcome], {"WWW-Authenticate": 'Bearer realm="api"'})
            if not actor.has_scope(scope):
                g.api_outcome = "forbidden"
                raise ApiProblem(403, "forbidden", f"This needs a token with the {scope} scope.",
                                 required_scope=scope)
            if actor.role not in roles:
                g.api_outcome = "forbidden"
                raise ApiProblem(403, "not-allowed", STAFF_ONLY_MESSAGE)
            g.api_actor = actor
            return view(*args, **kwargs)

        documented = Blueprint.doc(security=[{"bearerAuth": [scope]}],
                                   responses={401: "UNAUTHORIZED", 403: "FORBIDDEN", 429: "TOO_MANY_REQUESTS"},
                                   **{"x-required-scope": scope})(wrapped)
        documented.required_scope = scope
        return bearer_api(documented)

    return decorator


def log_with_push(status):
    """Add this request's log line to the push's transaction, written with its answer (see log_use).

    Not when the token's last-used time is due: log_use writes both after the answer, so the push's transaction
    never takes the token's row lock. Returns True if the line was added.
    """
    token, _actor, _outcome = identify()
    if token is None or api_tokens.last_used_due(token):
        return False
    api_tokens.add_use(token, request.method, request.path, status, "ok", request.remote_addr)
    g.api_use_pending = True
    return True


def push_committed(done):
    """The push's transaction committed (done) or rolled back: its log line is written, or still to write."""
    g.api_use_logged = bool(done and g.pop("api_use_pending", False))
    g.pop("api_use_pending", None)


def rate_key():
    """The rate limit's key: the token (by a digest of what was sent), or the address when none was sent."""
    text = api_tokens.bearer_text(request.headers.get("Authorization"))
    if text:
        return "api-token:" + api_tokens.digest_of(text)[:24]
    return "api-anonymous:" + (request.remote_addr or "")


def _api_limit():
    return current_app.config["API_RATE_LIMIT"]


def rate_limited(blueprint):
    """Share one rate limit per token across every operation of the blueprint (429 rate-limited)."""
    limiter.shared_limit(_api_limit, scope="api-v1", key_func=rate_key)(blueprint)
    return blueprint


def _outcome(status):
    if status == 429:
        return "rate_limited"
    if status >= 500:
        return "error"
    return "ok" if status < 400 else "refused"


def init_app(app, blueprint_names):
    """Limit request bodies on the API and log every request a known token makes (api_token_events)."""

    @app.before_request
    def limit_body():
        if request.blueprint in blueprint_names:
            request.max_content_length = app.config["API_MAX_BODY_BYTES"]

    @app.after_request
    def log_use(response):
        if request.blueprint not in blueprint_names or request.endpoint is None:
            return response
        if g.pop("api_use_logged", False):  # written with the push (log_with_push)
            return response
        try:
            token, _actor, outcome = identify()
        except Exception:  # noqa: BLE001 - the database is down: the answer still goes out
            db.session.rollback()
            log.exception("could not read the API token of %s %s", request.method, request.path)
            return response
        if token is None:
            log.info("API %s %s refused without a known token from %s (%s)", request.method, request.path,
                     request.remote_addr, response.status_code)
            return response
        if outcome == "ok":
            outcome = g.get("api_outcome") or _outcome(response.status_code)
        try:
            api_tokens.record_use(token, request.method, request.path, response.status_code, outcome,
                                  request.remote_addr)
        except Exception:  # noqa: BLE001 - losing one log line must not lose the answer
            db.session.rollback()
            log.exception("could not log the API request %s %s", request.method, request.path)
        return response
