"""The cancellation log, for a helpdesk or phone system: log a request, read the log newest first with the log
page's filters, one request with its retention attempts, record a retention attempt and outcome, the CSV.
"""
from flask_smorest import Blueprint
from marshmallow import RAISE, Schema, fields, validate
from sqlalchemy import select

from portal.api.accounts import day
from portal.api.auth import SUPER_ADMIN, current_actor, rate_limited, token_required
from portal.api.schemas import Strict, UtcDateTime, text
from portal.domain.cancellations import log, requests, retention
from portal.domain.cancellations.choices import ANSWERS, CHANNELS, OFFERS, OUTCOMES, REASON_CODES
from portal.domain.cancellations.fields import MONTHS_MAX
from portal.domain.errors import ValidationFailed
from portal.domain.money import MAX_CENTS
from portal.domain.parsing import ID_MAX, InvalidValue, clean_text
from portal.extensions import db
from portal.models import Account, User
from portal.web.csv_download import csv_download

blp = rate_limited(Blueprint("api_cancellations", __name__, url_prefix="/api/v1/cancellation-requests",
                             description="Cancellation requests: the log support keeps, and retention."))


class RequestInSchema(Strict):
    account_number = text(required=True, max_length=64)
    channel = fields.String(required=True, validate=validate.Length(max=20),
                            metadata={"description": "One of: " + ", ".join(CHANNELS)})
    contact_name = text(required=True, max_length=2000)
    phone = text(max_length=100, allow_none=True)
    request_date = fields.Date(allow_none=True, metadata={"description": "Default today; not in the future"})
    collected_cents = fields.Integer(strict=True, allow_none=True, validate=validate.Range(0, MAX_CENTS),
                                     metadata={"description": "Total collected; default: the account's payments"})
    months = fields.Integer(strict=True, allow_none=True, validate=validate.Range(0, MONTHS_MAX),
                            metadata={"description": "Months in the program; default: since the account began"})
    reason_code = fields.String(required=True, validate=validate.Length(max=30),
                                metadata={"description": "One of: " + ", ".join(REASON_CODES)})
    reason = text(max_length=2000, load_default="", metadata={"description": "Free text (needed with other)"})


class AttemptInSchema(Strict):
    offer = fields.String(required=True, validate=validate.Length(max=20),
                          metadata={"description": "One of: " + ", ".join(OFFERS)})
    answer = fields.String(required=True, validate=validate.Length(max=20),
                           metadata={"description": "One of: " + ", ".join(ANSWERS)})
    note = text(max_length=2000, load_default="")
    outcome = fields.String(load_default="open", validate=validate.Length(max=20),
                            metadata={"description": "open (still open), retained, paused or withdrawn"})
    pause_until = fields.Date(allow_none=True, metadata={"description": "For paused: the day the pause ends"})


class LogQuerySchema(Strict):
    outcome = fields.String(validate=validate.OneOf(tuple(OUTCOMES)))
    channel = fields.String(validate=validate.OneOf(tuple(CHANNELS)))
    reason_code = fields.String(validate=validate.OneOf(tuple(REASON_CODES)))
    date_from = fields.Date()
    date_to = fields.Date()
    logged_by = fields.Integer(strict=False, validate=validate.Range(1, ID_MAX),
                               metadata={"description": "The id of the person (or token owner) who logged it"})
    q = text(max_length=log.Q_MAX)
    after = text(max_length=100, metadata={"description": "The next_cursor of the previous page"})


class AttemptSchema(Schema):
    id = fields.Integer(required=True)
    attempted_at = UtcDateTime(required=True)
    offer = fields.String(required=True)
    answer = fields.String(required=True)
    note = fields.String(allow_none=True, required=True)


class RequestSchema(Schema):
    id = fields.Integer(required=True)
    account_number = fields.String(required=True)
    contact_name = fields.String(required=True)
    phone = fields.String(allow_none=True, required=True, metadata={"description": "E.164"})
    channel = fields.String(required=True)
    request_date = fields.Date(required=True)
    collected_cents = fields.Integer(required=True)
    months = fields.Integer(required=True)
    reason_code = fields.String(required=True)
    reason = fields.String(required=True)
    outcome = fields.String(required=True, validate=validate.OneOf(tuple(OUTCOMES)))
    outcome_note = fields.String(allow_none=True, required=True)
    pause_until = fields.Date(allow_none=True, required=True)
    logged_by = fields.String(allow_none=True, required=True, metadata={"description": "The email of who logged it"})
    created_at = UtcDateTime(required=True)
    resolved_at = UtcDateTime(allow_none=True, required=True)
    attempts = fields.List(fields.Nested(AttemptSchema))


class LogSchema(Schema):
    items = fields.List(fields.Nested(RequestSchema), required=True)
    next_cursor = fields.String(allow_none=True, required=True)


def _request(item, number=None, with_attempts=False):
    logged_by = db.session.get(User, item.created_by_id) if item.created_by_id else None
    out = {"id": item.id, "account_number": number or item.account.number, "contact_name": item.contact_name,
           "phone": item.phone, "channel": item.channel, "request_date": item.request_date,
           "collected_cents": item.amount_collected_cents, "months": item.months_in_program,
           "reason_code": item.reason_code, "reason": item.reason, "outcome": item.outcome,
           "outcome_note": item.outcome_note, "pause_until": item.pause_until,
           "logged_by": logged_by.email if logged_by else None, "created_at": item.created_at,
           "resolved_at": item.resolved_at}
    if with_attempts:
        out["attempts"] = [{"id": a.id, "attempted_at": a.attempted_at, "offer": a.offer, "answer": a.answer,
                            "note": a.note} for a in requests.attempts_of(item.id)]
    return out


def _filters(args):
    """The typed query as the log page's query arguments; a filter the page would ignore is refused here."""
    raw = {k: (v.isoformat() if hasattr(v, "isoformat") else str(v)) for k, v in args.items()}
    f = log.parse_log_filters(raw)
    if f.problems:
        raise ValidationFailed(dict(f.problems))
    return f


@blp.route("")
@token_required("accounts:read")
@blp.arguments(LogQuerySchema, location="query", unknown=RAISE)
@blp.response(200, LogSchema)
def list_requests(args):
    """List cancellation requests newest first (by date of request), with the log page's filters."""
    rows, after = log.log_page(_filters(args))
    return {"items": [_request(item, account.number) for item, account in rows],
            "next_cursor": f"{after[0].isoformat()}_{after[1]}" if after else None}


@blp.route("/export.csv")
@token_required("accounts:read")
@blp.arguments(LogQuerySchema, location="query", unknown=RAISE)
@blp.response(200, {"type": "string"}, content_type="text/csv",
              description="The log as CSV: the spreadsheet's columns, then the portal's")
def export(args):
    """Download the requests matching the filters as CSV."""
    return csv_download(log.csv_rows(_filters(args)), "cancellation-requests.csv", "API export of cancellation requests")


def _account_id(number):
    """The id of the account with this number, or None (log_request answers that at the account field)."""
    try:
        value = clean_text(number, "The account number")[:64]
    except InvalidValue:
        return None
    return db.session.scalar(select(Account.id).where(Account.number.in_({value, value.upper()})))


@blp.route("", methods=["POST"])
@token_required("cancellations:write")
@blp.arguments(RequestInSchema)
@blp.response(201, RequestSchema)
def create(body):
    """Log a customer's request to cancel: the contact, the figures and the reason (the log page's fields)."""
    form = {"channel": body["channel"], "contact_name": body["contact_name"], "phone": body.get("phone") or "",
            "request_date": day(body.get("request_date"), "request_date") or "",
            "collected": body.get("collected_cents") if body.get("collected_cents") is not None else "",
            "months": body.get("months") if body.get("months") is not None else "",
            "reason_code": body["reason_code"], "reason": body.get("reason") or ""}
    account_id = _account_id(body["account_number"])
    try:
        created = requests.log_request(current_actor(), account_id, form)
    except ValidationFailed as exc:
        errors = {("account_number" if k == "account" else ("collected_cents" if k == "collected" else k)): v
                  for k, v in exc.field_errors.items()}
        raise ValidationFailed(errors) from None
    return _request(created, with_attempts=True), 201


@blp.route("/<int:request_id>")
@token_required("accounts:read")
@blp.response(200, RequestSchema)
def get_one(request_id):
    """Read one request with its retention attempts and outcome."""
    return _request(requests.get_request(request_id), with_attempts=True)


@blp.route("/<int:request_id>/retention-attempts", methods=["POST"])
@token_required("cancellations:write", SUPER_ADMIN)
@blp.arguments(AttemptInSchema)
@blp.response(201, RequestSchema)
def record_attempt(body, request_id):
    """Record a retention attempt and, if it decides, how the request ends (paused suspends until a date)."""
    retention.record_retention(current_actor(), request_id, body["offer"], body["answer"], body.get("note") or "",
                               outcome=body.get("outcome") or "open",
                               pause_until=day(body.get("pause_until"), "pause_until") or "")
    return _request(requests.get_request(request_id), with_attempts=True), 201

