"""One ingested row and one request body: the checks every row passes, whichever way it comes in.

A row's fields: email and visited_at are required, name and external_id optional. Text may not hold
control characters or what no field can store (parsing.text_problem); name is at most 200 characters,
email 254 (an address, checked by email_validator without asking DNS), external_id 100, the row 4,096
bytes as JSON. visited_at is ISO: a date (its midnight, UTC), or a date and time in UTC or with an offset;
not more than a day ahead (a time written in local time without an offset can be hours "in the future").
Without an external_id a row gets "auto-" and 32 hex digits of SHA-256(lower(email) "|" visit), so the
same visit sent twice is the same record.
"""
import hashlib
import json
import os
from datetime import timedelta

from email_validator import EmailNotValidError, validate_email
from flask import current_app, has_app_context

from portal.domain.errors import DomainError
from portal.domain.parsing import InvalidValue, iso_datetime, text_problem

DEFAULTS = {"INGEST_MAX_ROWS": 1000, "INGEST_MAX_BYTES": 1024 * 1024, "INGEST_UPLOAD_MAX_ROWS": 5000,
            "INGEST_UPLOAD_MAX_BYTES": 2 * 1024 * 1024}
NAME_MAX, EMAIL_MAX, EXTERNAL_ID_MAX, ROW_MAX_BYTES = 200, 254, 100, 4096
FUTURE_ALLOWANCE = timedelta(days=1)  # a visit written in local time without an offset may be hours "ahead"
FIELDS = ("name", "email", "visited_at", "external_id")
DATE_HELP = "use YYYY-MM-DD or YYYY-MM-DDTHH:MM[:SS], optionally with an offset such as Z or +02:00"


class MalformedBatch(DomainError):
    """The request is not a batch of records: not JSON, not {"records": [...]}, or a field of the wrong type."""

    status_code = 400


class BatchTooLarge(DomainError):
    """More records or bytes than one request may carry."""

    status_code = 413


def setting(name):
    """Return a limit: the app's setting, else PORTAL_<name> from the environment, else the default."""
    value = current_app.config.get(name) if has_app_context() else None
    if value is None:
        value = os.environ.get(f"PORTAL_{name}", DEFAULTS[name])
    return int(value)


def size_text(size):
    """Say a size in bytes the way people read it: "2 MB", "500 kB", "100 bytes"."""
    for unit, scale in (("MB", 1024 * 1024), ("kB", 1024)):
        if size >= scale:
            return f"{size / scale:.3g} {unit}"
    return f"{size:,} bytes"


# ---------------------------------------------------------------- one row

def _text(value, what, limit):
    text = (value or "").strip()
    problem = text_problem(text, what)
    if problem is None and any(ord(c) < 32 or ord(c) == 127 for c in text):
        problem = f"{what} contains a control character"
    if problem:
        raise InvalidValue(problem)
    if len(text) > limit:
        raise InvalidValue(f"{what} is over {limit} characters (it has {len(text):,})")
    return text


def _email(value):
    text = _text(value, "email", EMAIL_MAX)
    if not text:
        raise InvalidValue("email is missing")
    try:
        return validate_email(text, check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise InvalidValue(f"email {text[:60]!r} is not a valid address: {exc}") from None


def _visit(value, now):
    text = _text(value, "visited_at", 40)
    if not text:
        raise InvalidValue("visited_at is missing")
    try:
        visited = iso_datetime(text)
    except InvalidValue:
        raise InvalidValue(f"visited_at {text!r} is not a date ({DATE_HELP})") from None
    if visited > now + FUTURE_ALLOWANCE:
        raise InvalidValue(f"visited_at {text!r} is more than a day in the future")
    return visited


def derived_external_id(email, visited_at):
    """The external id of a row sent without one: the same visit always gets the same id."""
    seed = f"{email.lower()}|{visited_at.isoformat(timespec='seconds')}"
    return "auto-" + hashlib.sha256(seed.encode("utf-8")).hexdigest()[:32]


def check_row(values, now):
    """Return the row's clean values {name, email, visited_at, external_id}.

    Args:
        values: the row's text per field (missing fields None or absent).
        now: the time of ingestion (a visit may not be more than a day after it).

    Raises:
        InvalidValue: every problem of the row, in one message.
    """
    problems, clean = [], {}
    checks = (("name", lambda v: _text(v, "name", NAME_MAX) or None), ("email", _email),
              ("visited_at", lambda v: _visit(v, now)), ("external_id", lambda v: _text(v, "external_id",
                                                                                      EXTERNAL_ID_MAX) or None))
    for name, check in checks:
        try:
            clean[name] = check(values.get(name))
        except InvalidValue as exc:
            problems.append(exc.message)
    if problems:
        raise InvalidValue("; ".join(problems))
    clean["external_id"] = clean["external_id"] or derived_external_id(clean["email"], clean["visited_at"])
    return clean


# ---------------------------------------------------------------- a request body

def _field_type_problem(position, name, value):
    if value is None or isinstance(value, str):
        return None
    if name == "external_id" and isinstance(value, int) and not isinstance(value, bool):
        return None
    kind = {bool: "a boolean", int: "a number", float: "a number", list: "a list", dict: "an object"}.get(
        type(value), type(value).__name__)
    allowed = "a string or an integer" if name == "external_id" else "a string"
    return f"records[{position}].{name} must be {allowed}, not {kind}."


def parse_batch(body, max_rows=None):
    """Read a request body {"records": [{name, email, visited_at, external_id}, ...]} into rows.

    Returns:
        [(index, {field: text or None}, payload JSON, None)] in order.

    Raises:
        MalformedBatch: not UTF-8 JSON, not an object with a list of objects, or a field not a string.
        BatchTooLarge: more than max_rows (INGEST_MAX_ROWS) records.
    """
    def refuse_constant(name):
        raise ValueError(f"{name} is not a JSON value")

    try:
        document = json.loads(body.decode("utf-8"), parse_constant=refuse_constant)
    except UnicodeDecodeError:
        raise MalformedBatch("The body is not UTF-8 text; send JSON encoded as UTF-8.") from None
    except RecursionError:
        raise MalformedBatch("The body is nested too deeply to be a batch of records.") from None
    except ValueError as exc:
        raise MalformedBatch(f"The body is not valid JSON: {exc}.") from None
    if not isinstance(document, dict) or "records" not in document:
        raise MalformedBatch('The body must be a JSON object with a "records" list: {"records": [{"name": ..., '
                             '"email": ..., "visited_at": ..., "external_id": ...}]}.')
    records = document["records"]
    if not isinstance(records, list):
        raise MalformedBatch('"records" must be a list of objects.')
    if not records:
        raise MalformedBatch('"records" is empty; send at least one record.')
    max_rows = max_rows or setting("INGEST_MAX_ROWS")
    if len(records) > max_rows:
        raise BatchTooLarge(f"{len(records):,} records in one request; send at most {max_rows:,} per request.")
    rows = []
    for position, record in enumerate(records):
        if not isinstance(record, dict):
            raise MalformedBatch(f"records[{position}] must be an object with name, email, visited_at and "
                                 "external_id.")
        problem = next((p for p in (_field_type_problem(position, n, record.get(n)) for n in FIELDS) if p), None)
        if problem:
            raise MalformedBatch(problem)
        values = {n: (str(record[n]) if record.get(n) is not None else None) for n in FIELDS}
        rows.append((position, values, json.dumps(record, sort_keys=True), None))
    return rows
