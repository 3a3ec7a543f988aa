"""Errors of the JSON API as problem documents (RFC 9457, application/problem+json), one stable `type` each.

The pages keep their HTML errors: portal.web.errors calls these for paths under /api/ only.
"""
import json

from flask import current_app, request
from werkzeug.exceptions import HTTPException

from portal.domain.background import BackgroundUnavailable
from portal.domain.errors import (AccountNotFound, Conflict, InvalidTransition, PermissionDenied,
                                  UnpaidInvoices, ValidationFailed)
from portal.domain.runs import RunInProgress

CONTENT_TYPE = "application/problem+json"
TYPE_BASE = "/api/v1/problems/"

# Every type the API answers with, and its title (the same for every occurrence of the type).
TYPES = {
    "bad-request": "Bad request",
    "malformed-json": "The body is not valid JSON",
    "unauthorized": "A valid API token is needed",
    "forbidden": "The token lacks the scope this needs",
    "not-allowed": "Not allowed",
    "not-found": "Not found",
    "method-not-allowed": "Method not allowed",
    "conflict": "Conflict",
    "invalid-transition": "The account's state does not allow this",
    "unpaid-invoices": "Unpaid invoices are in the way",
    "run-in-progress": "Another run is in progress",
    "idempotency-key-reused": "The Idempotency-Key was used with another request",
    "idempotency-key-in-progress": "A request with this Idempotency-Key is still being answered",
    "payload-too-large": "The body is larger than the API accepts",
    "unsupported-media-type": "Send the body as application/json",
    "validation": "The request is not valid",
    "rate-limited": "Too many requests",
    "server-error": "Something went wrong on our side",
    "unavailable": "Temporarily unavailable",
}
BY_STATUS = {400: "bad-request", 401: "unauthorized", 403: "forbidden", 404: "not-found", 405: "method-not-allowed",
             409: "conflict", 413: "payload-too-large", 415: "unsupported-media-type", 422: "validation",
             429: "rate-limited", 503: "unavailable"}


class ApiProblem(HTTPException):
    """An HTTP error the API raises itself, with its problem type and any extension members."""

    def __init__(self, status, kind, detail, headers=None, **extra):
        super().__init__(detail)
        self.code = status
        self.kind = kind
        self.extra = extra
        self.extra_headers = headers or {}


def problem_response(status, kind, detail, headers=None, **extra):
    """Return a problem+json response: type, title, status, detail, instance, and extension members."""
    body = {"type": TYPE_BASE + kind, "title": TYPES[kind], "status": status, "detail": detail,
            "instance": request.path}
    body.update(extra)
    response = current_app.response_class(json.dumps(body), status=status, mimetype=CONTENT_TYPE)
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def _flat(messages, prefix=""):
    """webargs' nested messages ({"json": {"amount": ["..."]}}) as {"amount": "..."}."""
    out = {}
    for key, value in (messages or {}).items():
        name = str(key) if not prefix else f"{prefix}.{key}"
        if key in ("json", "query", "headers", "path", "view_args") and not prefix:
            name = ""
        if isinstance(value, dict):
            out.update(_flat(value, name))
        elif isinstance(value, (list, tuple)):
            out[name or "_body"] = " ".join(str(v) for v in value)
        else:
            out[name or "_body"] = str(value)
    return out


def from_domain_error(exc):
    """The problem document for a domain error (the same message the pages show)."""
    extra = {}
    if isinstance(exc, ValidationFailed):
        kind, extra["errors"] = "validation", {k: str(v) for k, v in exc.field_errors.items()}
    elif isinstance(exc, UnpaidInvoices):
        kind = "unpaid-invoices"
        extra["invoices"] = [{"seq": i["seq"], "owed_cents": i["owed_cents"], "due_date": i["due_date"].isoformat()}
                             for i in exc.invoices]
    elif isinstance(exc, InvalidTransition):
        kind = "invalid-transition"
    elif isinstance(exc, RunInProgress):
        kind = "run-in-progress"
    elif isinstance(exc, Conflict):
        kind = "conflict"
    elif isinstance(exc, PermissionDenied):
        kind = "not-allowed"
    elif isinstance(exc, AccountNotFound) or exc.status_code == 404:
        kind = "not-found"
    elif isinstance(exc, BackgroundUnavailable):
        kind = "unavailable"
    else:
        kind = BY_STATUS.get(exc.status_code, "bad-request")
    if "current_status" in exc.details:
        extra["current_status"] = exc.details["current_status"]
    return problem_response(exc.status_code, kind, exc.message, **extra)


MESSAGES = {
    401: "Send a valid API token as 'Authorization: Bearer TOKEN'.",
    404: "There is no such resource in the API.",
    405: "This method is not available on this resource.",
    413: "The request body is larger than the API accepts; nothing was changed.",
    415: "Send the body as JSON with 'Content-Type: application/json'.",
    429: "Too many requests for this token; wait a moment and try again.",
}


def from_http_exception(exc):
    """The problem document for an HTTP error: one the API raised, webargs' 422 or 400, or Flask's own."""
    if isinstance(exc, ApiProblem):
        return problem_response(exc.code, exc.kind, exc.description, exc.extra_headers, **exc.extra)
    status = exc.code or 500
    data = getattr(exc, "data", None) or {}
    headers = dict(exc.get_headers()) if status in (405, 429) else {}
    headers.pop("Content-Type", None)
    if status == 429 and getattr(exc, "retry_after", None):
        headers.setdefault("Retry-After", str(exc.retry_after))
    if "messages" in data:
        errors = _flat(data["messages"])
        if status == 400 or "_body" in errors and "JSON" in errors["_body"]:
            return problem_response(400, "malformed-json", "The body could not be read as JSON; nothing was changed.")
        return problem_response(422, "validation", "Please correct the fields named in `errors`; nothing was "
                                "changed.", errors=errors)
    detail = MESSAGES.get(status) or exc.description or TYPES.get(BY_STATUS.get(status, "bad-request"))
    return problem_response(status, BY_STATUS.get(status, "server-error" if status >= 500 else "bad-request"),
                            detail, headers)


def server_error():
    """The problem document for an unexpected error (logged by the caller)."""
    return problem_response(500, "server-error", "Something went wrong on our side; nothing was changed. "
                            "Please try again.")
