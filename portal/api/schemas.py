"""The API's shapes (marshmallow): what requests may carry (unknown fields refused) and what answers hold.

Input schemas check only shape and bounds the database imposes (types, lengths, integer ranges); every rule
about the values (which reasons exist, which dates are allowed, ...) is the domain's, and its refusal comes
back as a `validation` problem naming the field.
"""
from collections.abc import Mapping
from datetime import timezone

from marshmallow import RAISE, Schema, ValidationError, fields, pre_load, validate

from portal.domain.account_search import PAGE_SIZES, Q_MAX, SORTS
from portal.domain.gate import REASONS, STATE_LABELS, STATES
from portal.domain.suspension import DUNNING_OVERRIDE_REASONS, REACTIVATION_REASONS
from portal.domain.money import MAX_CENTS
from portal.domain.parsing import ID_MAX, bad_character, text_problem

TEXT_MAX = 2000  # no text field of the portal takes more; the domain says each field's own limit


def text(required=False, max_length=TEXT_MAX, **kwargs):
    """A string field of at most max_length characters."""
    return fields.String(required=required, validate=validate.Length(max=max_length), **kwargs)


def cents(required=True, low=1, description="An amount in cents"):
    """An amount in integer cents within what the portal stores."""
    return fields.Integer(required=required, strict=True, validate=validate.Range(low, MAX_CENTS),
                          metadata={"description": description})


def version():
    """The optional account version a client last saw: the change is refused (409) if the account moved since."""
    return fields.Integer(strict=True, validate=validate.Range(0, 2**31 - 1), metadata={
        "description": "The account `version` last read; if the account changed since, 409 and nothing changes."})


class UtcDateTime(fields.DateTime):
    """A date-time the portal stores as naive UTC, written with its offset (RFC 3339: 2026-12-01T14:30:00+00:00)."""

    def _serialize(self, value, attr, obj, **kwargs):
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return super()._serialize(value, attr, obj, **kwargs)


class Strict(Schema):
    """Refuse unknown fields (marshmallow's RAISE), so a misspelt field is an error, not silently dropped, and text
    no field can hold (NUL, a lone surrogate, a noncharacter), as the pages refuse NUL in every form."""

    class Meta:
        unknown = RAISE

    @pre_load
    def refuse_unusable_text(self, data, **_kwargs):
        if isinstance(data, Mapping):
            errors = {name: text_problem(value, "This value") for name, value in data.items()
                      if isinstance(value, str) and bad_character(value) is not None}
            errors.update({name: "This value contains a character that can't be used."
                           for name, value in data.items() if isinstance(value, list)
                           and any(isinstance(v, str) and bad_character(v) is not None for v in value)})
            if errors:
                raise ValidationError(errors)
        return data


# ---------------------------------------------------------------- problems

class InvoiceOwedSchema(Schema):
    seq = fields.Integer(required=True)
    owed_cents = fields.Integer(required=True)
    due_date = fields.Date(required=True)


class ProblemSchema(Schema):
    """A problem document (RFC 9457)."""

    type = fields.String(required=True, metadata={"description": "A stable URI reference naming the problem"})
    title = fields.String(required=True)
    status = fields.Integer(required=True)
    detail = fields.String(required=True, metadata={"description": "What happened, in words to show"})
    instance = fields.String()
    errors = fields.Dict(keys=fields.String(), values=fields.String(),
                         metadata={"description": "validation: the message for each field"})
    invoices = fields.List(fields.Nested(InvoiceOwedSchema), metadata={"description": "unpaid-invoices: the "
                                                                                      "open invoices"})
    current_status = fields.String(metadata={"description": "invalid-transition, conflict: the account's status"})
    required_scope = fields.String(metadata={"description": "forbidden: the scope the token lacks"})


# ---------------------------------------------------------------- accounts

STATUS_KEYS = tuple(STATE_LABELS)


class AccountSummarySchema(Schema):
    """One row of the account list."""

    number = fields.String(required=True)
    name = fields.String(required=True)
    email = fields.String(required=True)
    status = fields.String(required=True, validate=validate.OneOf(STATES),
                           metadata={"description": "The stored status, which the gate reads"})
    label = fields.String(required=True, metadata={"description": "What the pages show (the dunning labels)"})
    customer_class = fields.String(allow_none=True, required=True)
    exempt = fields.Boolean(required=True)
    balance_cents = fields.Integer(required=True)
    last_activity_at = UtcDateTime(allow_none=True, required=True)
    created_at = UtcDateTime(required=True)


class AccountListSchema(Schema):
    items = fields.List(fields.Nested(AccountSummarySchema), required=True)
    next_cursor = fields.String(allow_none=True, required=True,
                                metadata={"description": "Pass as `cursor` for the next page; null on the last"})
    prev_cursor = fields.String(allow_none=True, required=True)
    next_is_continuation = fields.Boolean(required=True, metadata={
        "description": "The search stopped at its budget before the page was full: follow next_cursor to go on"})


class AccountListQuerySchema(Strict):
    q = text(max_length=Q_MAX, metadata={"description": (
        "Words to find, in any order, anywhere in the name, email or account number: every word must occur, "
        "3 or more letters or digits match inside words (\"bay bak\", \"2629\"); a search of words of 1-2 "
        "characters only matches the start of the name, email or number. Capitals do not matter")})
    status = fields.String(validate=validate.OneOf(STATUS_KEYS))
    customer_class = fields.Integer(data_key="class", strict=False, validate=validate.Range(1, ID_MAX))
    balance_min = fields.Integer(strict=False, validate=validate.Range(-MAX_CENTS, MAX_CENTS),
                                 metadata={"description": "Cents"})
    balance_max = fields.Integer(strict=False, validate=validate.Range(-MAX_CENTS, MAX_CENTS),
                                 metadata={"description": "Cents"})
    active_after = fields.Date()
    active_before = fields.Date()
    exempt = fields.Boolean()
    sort = fields.String(validate=validate.OneOf(tuple(SORTS)))
    per_page = fields.Integer(strict=False, validate=validate.Range(10, PAGE_SIZES[-1]))
    cursor = text(max_length=500)


class AccountSchema(Schema):
    """One account: its status, the dunning schedule's label and pending step, its overdue invoices."""

    number = fields.String(required=True)
    name = fields.String(required=True)
    email = fields.String(required=True)
    status = fields.String(required=True, validate=validate.OneOf(STATES),
                           metadata={"description": "The stored status, which the gate reads"})
    dunning_status = fields.String(required=True, validate=validate.OneOf(STATUS_KEYS), metadata={
        "description": "The status as the schedule reads it today (limitation_pending, suspension_delayed, ...)"})
    label = fields.String(required=True, metadata={"description": "What the pages show: Active, Suspension "
                                                                 "delayed, ..."})
    status_reason = fields.String(allow_none=True, required=True)
    status_note = fields.String(allow_none=True, required=True)
    pending_action = fields.String(allow_none=True, required=True,
                                   metadata={"description": "limitation, suspension or reapply; null if none"})
    pending_date = fields.Date(allow_none=True, required=True)
    overdue_invoices = fields.List(fields.Integer(), required=True,
                                   metadata={"description": "Sequence numbers of the overdue invoices behind it"})
    overdue_cents = fields.Integer(required=True)
    service = fields.String(required=True)
    customer_class = fields.String(allow_none=True, required=True)
    exempt = fields.Boolean(required=True)
    exempt_reason = fields.String(allow_none=True, required=True)
    balance_cents = fields.Integer(required=True)
    credit_cents = fields.Integer(required=True)
    version = fields.Integer(required=True)
    as_of = fields.Date(required=True)
    created_at = UtcDateTime(required=True)
    last_activity_at = UtcDateTime(allow_none=True, required=True)


class EventSchema(Schema):
    id = fields.Integer(required=True)
    at = UtcDateTime(required=True)
    actor = fields.String(required=True)
    action = fields.String(required=True)
    reason_category = fields.String(allow_none=True, required=True)
    reason_note = fields.String(allow_none=True, required=True)
    state_before = fields.String(allow_none=True, required=True)
    state_after = fields.String(allow_none=True, required=True)
    data = fields.Dict(allow_none=True, required=True)


class TimelineSchema(Schema):
    items = fields.List(fields.Nested(EventSchema), required=True)


class TimelineQuerySchema(Strict):
    limit = fields.Integer(strict=False, load_default=100, validate=validate.Range(1, 100))


def reason_schema(name, reasons):
    """A Strict schema named name taking a reason_category (described as one of reasons), a note and a version."""
    return type(name, (Strict,), {
        "reason_category": fields.String(required=True, validate=validate.Length(max=30),
                                         metadata={"description": "One of: " + ", ".join(reasons)}),
        "reason_note": text(required=True, max_length=2000, metadata={"description": "Why (up to 500 characters)"}),
        "expected_version": version(),
        "__module__": __name__,
    })


ReasonSchema = reason_schema("ReasonSchema", REASONS)
ReactivationReasonSchema = reason_schema("ReactivationReasonSchema", REACTIVATION_REASONS)
OverrideReasonSchema = reason_schema("OverrideReasonSchema", DUNNING_OVERRIDE_REASONS)


class ShiftSchema(OverrideReasonSchema):
    limitation_date = fields.Date(metadata={"description": "The new limitation date"})
    suspension_date = fields.Date(metadata={"description": "The new suspension date"})


class LiftSchema(OverrideReasonSchema):
    until = fields.Date(required=True, metadata={"description": "Full service until this day"})


class ExemptionSchema(Strict):
    exempt = fields.Boolean(required=True, metadata={"description": "true: exempt from sweeps; false: no longer"})
    reason = text(required=True, max_length=2000)


class CancelSchema(ReasonSchema):
    confirm_number = text(required=True, max_length=100, metadata={"description": "The account number, to confirm"})
    write_off = fields.List(fields.Integer(strict=True, validate=validate.Range(1, ID_MAX)), load_default=list,
                            validate=validate.Length(max=1000),
                            metadata={"description": "Sequence numbers of open invoices to write off first"})
    write_off_note = text(max_length=2000, metadata={"description": "Why they are written off (needed with "
                                                                    "write_off)"})


class CancelledSchema(Schema):
    account = fields.Nested(AccountSchema, required=True)
    written_off = fields.List(fields.Integer(), required=True)
