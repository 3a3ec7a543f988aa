"""Accounts: the list (the list page's filters and keyset cursors), one account, its timeline, and the status
changes the account page makes (suspend, reactivate, shift, lift, exempt, cancel), each answering the new state.
"""
from datetime import date
from decimal import Decimal

from flask_smorest import Blueprint
from marshmallow import RAISE
from sqlalchemy import select

from portal.api.auth import SUPER_ADMIN, current_actor, rate_limited, token_required
from portal.api.schemas import (AccountListQuerySchema, AccountListSchema, AccountSchema, CancelledSchema,
                                CancelSchema, ExemptionSchema, LiftSchema, ReactivationReasonSchema, ReasonSchema,
                                ShiftSchema, TimelineQuerySchema, TimelineSchema)
from portal.domain import account_search, audit, exemptions, suspension
from portal.domain.accounts import get_account
from portal.domain.cancellations.cancelling import cancel_account
from portal.domain.dunning import overrides
from portal.domain.dunning import status as dunning_status
from portal.domain.errors import AccountNotFound, ValidationFailed
from portal.domain.gate import STATE_LABELS
from portal.domain.parsing import InvalidValue, clean_text, iso_date
from portal.extensions import db
from portal.models import Account

blp = rate_limited(Blueprint("api_accounts", __name__, url_prefix="/api/v1/accounts",
                             description="Accounts: read them, and change their status as the account page does."))


def find_account(number):
    """Return the account with this number (as given or upper-case), as the token's owner may see it.

    Raises:
        AccountNotFound.
    """
    try:
        text = clean_text(number, "The account number")[:64]
    except InvalidValue:
        raise AccountNotFound() from None
    found = db.session.scalars(select(Account).where(Account.number.in_({text, text.upper()}))).first()
    if found is None:
        raise AccountNotFound()
    return get_account(current_actor(), found.id)  # the row is in the session: no second read


def state(account, facts=None):
    """The account as the API shows it: stored status, the dunning record's label and pending step.

    Read after the domain's commit, which expired the object, its columns are loaded afresh here; inside
    the domain's transaction (a push's stored answer) they are as the change left them, and facts are the
    account's dunning Facts the domain function holds.
    """
    record = dunning_status.record(account, facts=facts)
    return {
        "number": account.number, "name": account.name, "email": account.email, "status": account.status,
        "dunning_status": record["status"], "label": record["label"], "status_reason": account.status_reason,
        "status_note": account.status_note, "pending_action": record["pending_action"],
        "pending_date": _date(record["pending_date"]), "overdue_invoices": record["overdue_invoices"],
        "overdue_cents": record["overdue_cents"], "service": record["service"],
        "customer_class": record["customer_class"], "exempt": account.exempt, "exempt_reason": account.exempt_reason,
        "balance_cents": account.balance_cents, "credit_cents": account.credit_cents, "version": account.version,
        "as_of": _date(record["as_of"]), "created_at": account.created_at, "last_activity_at": account.last_activity_at,
    }


def _date(text):
    return date.fromisoformat(text) if text else None


def day(value, field):
    """A date from the body, held to the portal's range of years (as the pages' date fields are)."""
    if value is None:
        return None
    try:
        return iso_date(value.isoformat())
    except InvalidValue as exc:
        raise ValidationFailed({field: exc.message}) from None


def _list_args(args):
    """The API's typed query as the list page's query arguments (parse_filters reads and checks them)."""
    out = {}
    for name in ("q", "status", "sort", "cursor"):
        if args.get(name):
            out[name] = args[name]
    if args.get("customer_class") is not None:
        out["class"] = str(args["customer_class"])
    for name in ("balance_min", "balance_max"):
        if args.get(name) is not None:
            out[name] = f"{Decimal(args[name]) / 100:.2f}"
    for name in ("active_after", "active_before"):
        if args.get(name) is not None:
            out[name] = args[name].isoformat()
    if args.get("exempt") is not None:
        out["exempt"] = "yes" if args["exempt"] else "no"
    if args.get("per_page") is not None:
        out["per_page"] = str(args["per_page"])
    return out


@blp.route("")
@token_required("accounts:read")
@blp.arguments(AccountListQuerySchema, location="query", unknown=RAISE)
@blp.response(200, AccountListSchema)
def list_accounts(args):
    """List accounts with the list page's filters, sorted, in keyset pages (follow `next_cursor`).

    A filter the list page would ignore (an unknown class, a range the wrong way round, a cursor from
    another sort) is refused here as a `validation` problem naming it.
    """
    f = account_search.parse_filters(_list_args(args))
    if f.problems:
        raise ValidationFailed({("customer_class" if k == "class" else k): v for k, v in f.problems.items()})
    page = account_search.list_page(f)
    labels = dunning_status.list_labels(page.rows)
    classes = account_search.class_names()
    items = [{"number": r.number, "name": r.name, "email": r.email, "status": r.status,
              "label": STATE_LABELS[labels.get(r.id, r.status)], "customer_class": classes.get(r.customer_class_id),
              "exempt": r.exempt, "balance_cents": r.balance_cents, "last_activity_at": r.last_activity_at,
              "created_at": r.created_at} for r in page.rows]
    return {"items": items, "next_cursor": page.next_cursor, "prev_cursor": page.prev_cursor,
            "next_is_continuation": page.next_is_continuation}


@blp.route("/<number>")
@token_required("accounts:read")
@blp.response(200, AccountSchema)
def get_one(number):
    """Read one account: status, label, pending action and date, overdue invoices, class, exemption."""
    return state(find_account(number))


@blp.route("/<number>/timeline")
@token_required("accounts:read")
@blp.arguments(TimelineQuerySchema, location="query", unknown=RAISE)
@blp.response(200, TimelineSchema)
def timeline(args, number):
    """Read the account's audit timeline, newest first."""
    account = find_account(number)
    return {"items": [{"id": e.id, "at": e.created_at, "actor": e.actor_label, "action": e.action,
                       "reason_category": e.reason_category, "reason_note": e.reason_note,
                       "state_before": e.state_before, "state_after": e.state_after, "data": e.data}
                      for e in audit.timeline(account.id, limit=args["limit"])]}


def _status_change(change, body, number):
    account = find_account(number)
    change(current_actor(), account.id, body["reason_category"], body["reason_note"],
           expected_version=body.get("expected_version"))
    return state(account)


@blp.route("/<number>/suspend", methods=["POST"])
@token_required("accounts:write", SUPER_ADMIN)
@blp.arguments(ReasonSchema)
@blp.response(200, AccountSchema)
def suspend(body, number):
    """Suspend the account with a reason; its account managers are emailed."""
    return _status_change(suspension.suspend, body, number)


@blp.route("/<number>/reactivate", methods=["POST"])
@token_required("accounts:write", SUPER_ADMIN)
@blp.arguments(ReactivationReasonSchema)
@blp.response(200, AccountSchema)
def reactivate(body, number):
    """Reactivate a suspended or limited account with a reason: everything is as it was."""
    return _status_change(suspension.reactivate, body, number)


@blp.route("/<number>/shift", methods=["POST"])
@token_required("accounts:write", SUPER_ADMIN)
@blp.arguments(ShiftSchema)
@blp.response(200, AccountSchema)
def shift(body, number):
    """Shift the approaching limitation and/or suspension to later dates (the later date wins)."""
    account = find_account(number)
    overrides.shift(current_actor(), account.id, day(body.get("limitation_date"), "limitation_date"),
                    day(body.get("suspension_date"), "suspension_date"), body["reason_category"],
                    body["reason_note"], expected_version=body.get("expected_version"))
    return state(account)


@blp.route("/<number>/lift", methods=["POST"])
@token_required("accounts:write", SUPER_ADMIN)
@blp.arguments(LiftSchema)
@blp.response(200, AccountSchema)
def lift(body, number):
    """Lift an applied non-payment restriction until a date; unpaid then, it applies again by itself."""
    account = find_account(number)
    overrides.lift(current_actor(), account.id, day(body["until"], "until"), body["reason_category"],
                   body["reason_note"], expected_version=body.get("expected_version"))
    return state(account)


@blp.route("/<number>/exemption", methods=["POST"])
@token_required("accounts:write", SUPER_ADMIN)
@blp.arguments(ExemptionSchema)
@blp.response(200, AccountSchema)
def exemption(body, number):
    """Exempt the account from sweeps (`exempt: true`) or let sweeps consider it again (`false`), with a reason."""
    account = find_account(number)
    change = exemptions.set_exempt if body["exempt"] else exemptions.clear_exempt
    try:
        change(current_actor(), account.id, body["reason"])
    except ValidationFailed as exc:  # the page's field is exempt_reason; here it is reason
        raise ValidationFailed({("reason" if k == "exempt_reason" else k): v
                                for k, v in exc.field_errors.items()}) from None
    return state(account)


@blp.route("/<number>/cancel", methods=["POST"])
@token_required("accounts:write", SUPER_ADMIN)
@blp.arguments(CancelSchema)
@blp.response(200, CancelledSchema)
def cancel(body, number):
    """Cancel the account, writing off the named open invoices first, all or nothing.

    Refused with `unpaid-invoices` (listing them) while any invoice stays open.
    """
    account = find_account(number)
    cancelled, written = cancel_account(current_actor(), account.id, body["reason_category"], body["reason_note"],
                                        body["confirm_number"], write_off=body["write_off"],
                                        write_off_note=body.get("write_off_note"),
                                        expected_version=body.get("expected_version"))
    return {"account": state(cancelled), "written_off": [inv.seq for inv in written]}
