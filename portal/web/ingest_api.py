"""POST /api/v1/ingest: an account's records, brought in with one of its ingestion keys.

    curl -X POST https://portal.example.com/api/v1/ingest -H "Authorization: Bearer ik_..." \
         -H "Content-Type: application/json" \
         -d '{"records": [{"name": "Rita Guest", "email": "rita@example.com", "visited_at": "2026-12-01T19:30Z",
                           "external_id": "visit-1"}]}'

Answers (always JSON): 200 with counts and a result per row; 400 malformed JSON or a field of the wrong type;
401 a missing, wrong or revoked key (one answer for all, with WWW-Authenticate: Bearer); 413 more records
or bytes than a request may carry; 415 not sent as JSON; 423 the gate refuses (account suspended or
limited; nothing is inserted); 429 too many requests with one key (INGEST_RATE_LIMIT or
PORTAL_INGEST_RATE_LIMIT, per key; 60 per minute).
"""
import hashlib
import math
import os
import time

from flask import Blueprint, current_app, jsonify, make_response, request
from flask_limiter.util import get_remote_address
from werkzeug.exceptions import RequestEntityTooLarge

from portal.domain.errors import DomainError, PermissionDenied
from portal.domain.features import ingestion, ingestion_keys
from portal.extensions import limiter
from portal.web.access import bearer_api

bp = Blueprint("ingest_api", __name__, url_prefix="/api/v1")

RATE_LIMIT = "60 per minute"
TITLES = {400: "Bad request", 401: "Unauthorized", 409: "Conflict", 413: "Request too large",
          415: "Unsupported media type", 423: "Ingestion paused", 429: "Too many requests"}


def _answer(status, message, headers=None):
    response = make_response(jsonify(error=TITLES.get(status, "Error"), message=message), status)
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def _rate_limit():
    return current_app.config.get("INGEST_RATE_LIMIT") or os.environ.get("PORTAL_INGEST_RATE_LIMIT") or RATE_LIMIT


def _limit_key():
    """Count requests per key (by a digest: Redis holds no keys), or per address without one."""
    authorization = request.headers.get("Authorization", "")[:ingestion_keys.HEADER_MAX]
    if not authorization:
        return "ingest-address:" + get_remote_address()
    return "ingest-key:" + hashlib.sha256(authorization.encode("utf-8", "replace")).hexdigest()[:32]


def _too_many(request_limit):
    wait = max(1, math.ceil(request_limit.reset_at - time.time()))
    return _answer(429, f"Too many requests with this key (at most {request_limit.limit}). Try again in {wait} "
                        "seconds; nothing was inserted.", {"Retry-After": str(wait)})


def _is_json():
    return request.mimetype == "application/json" or request.mimetype.endswith("+json")


def _read_body():
    """The request body; RequestEntityTooLarge past INGEST_MAX_BYTES (reading no further than that).

    The stream was opened before this view (the NUL check reads the form), so the app's own larger limit
    holds on it; this one is checked here, on the declared length and on what is read.
    """
    limit = ingestion.setting("INGEST_MAX_BYTES")
    if (request.content_length or 0) > limit:
        raise RequestEntityTooLarge()
    body = request.stream.read(limit + 1)
    if len(body) > limit:
        raise RequestEntityTooLarge()
    return body


@bp.route("/ingest", methods=["POST"])
@bearer_api
@limiter.limit(_rate_limit, key_func=_limit_key, on_breach=_too_many)
def ingest():
    """Ingest a batch of records for the key's account; answer counts and a result per row."""
    try:
        key = ingestion_keys.authenticate(request.headers.get("Authorization"))
    except ingestion_keys.InvalidKey as exc:
        return _answer(401, exc.message, {"WWW-Authenticate": "Bearer"})
    if not _is_json():
        return _answer(415, "Send the records as JSON, with the header 'Content-Type: application/json'.")
    try:
        result = ingestion.ingest_batch(key, _read_body())
    except RequestEntityTooLarge:
        return _answer(413, f"The body is over {ingestion.setting('INGEST_MAX_BYTES'):,} bytes; send fewer "
                            "records per request. Nothing was inserted.")
    except PermissionDenied as exc:  # the gate: the account is suspended or limited; nothing was written
        return _answer(423, exc.message)
    except DomainError as exc:  # malformed (400), too many records (413), the account changed meanwhile (409)
        return _answer(exc.status_code, exc.message)
    return jsonify(result.as_json())
