"""Logging a cancellation request (support and super admins), and reading requests back."""
from datetime import datetime

from sqlalchemy import func, select

from portal.domain import audit
from portal.domain.accounts import load_for_action
from portal.domain.cancellations import fields
from portal.domain.dunning.account_state import day_of, moment_of
from portal.domain.errors import DomainError, InvalidTransition, ValidationFailed
from portal.domain.parsing import InvalidValue, record_id
from portal.extensions import db
from portal.models import Account, CancellationRequest, Payment, RetentionAttempt


class RequestNotFound(DomainError):
    """No cancellation request with that id."""

    status_code = 404

    def __init__(self):
        super().__init__("Cancellation request not found.")


def months_between(start, day):
    """Whole months from start (a date or datetime) to day, never negative."""
    start = start.date() if isinstance(start, datetime) else start
    months = (day.year - start.year) * 12 + (day.month - start.month) - (1 if day.day < start.day else 0)
    return max(months, 0)


def prefill(account, as_of=None):
    """Return what the form starts with for this account: total collected (its payments) and months since it began.

    Returns:
        dict(collected_cents, months).
    """
    collected = db.session.scalar(select(func.coalesce(func.sum(Payment.amount_cents), 0))
                                  .where(Payment.account_id == account.id))
    return {"collected_cents": int(collected), "months": months_between(account.created_at, day_of(as_of))}


def _account(actor, account_id):
    if record_id(account_id) is None:
        raise ValidationFailed({"account": "Find the account first: search by name, number, email or phone."})
    account = load_for_action(actor, "log_cancellation_request", account_id)
    if account.status == "cancelled":
        raise InvalidTransition(f"Account {account.number} is already cancelled; there is nothing to request.")
    return account


def log_request(actor, account_id, form, as_of=None):
    """Log a customer's request to cancel, with the contact, the figures and the reason; audited.

    Args:
        actor: the support person or super admin taking it (a User).
        account_id: the account (any value; a bad one is refused at the account field).
        form: mapping of text: channel, contact_name, phone, request_date, collected, months, reason_code,
            reason. Empty collected/months take the account's own figures (prefill).
        as_of: the day taken as today (default today): a request can't be dated after it.

    Returns:
        The new CancellationRequest.

    Raises:
        ValidationFailed: no account, or any field wrong (field_errors names each).
        AccountNotFound, PermissionDenied: unknown account; the actor may not log requests.
        InvalidTransition: the account is already cancelled.
    """
    account = _account(actor, account_id)
    filled = prefill(account, as_of)
    form = dict(form)
    if str(form.get("collected") or "").strip() == "":
        form["collected"] = filled["collected_cents"]
    if str(form.get("months") or "").strip() == "":
        form["months"] = filled["months"]
    values = fields.read_request(form, day_of(as_of))
    now = moment_of(as_of)
    request = CancellationRequest(
        account_id=account.id, contact_name=values["contact_name"], phone=values["phone"],
        channel=values["channel"], request_date=values["request_date"],
        amount_collected_cents=values["collected"], months_in_program=values["months"],
        reason_code=values["reason_code"], reason=values["reason"], created_by_id=getattr(actor, "id", None),
        created_at=now, outcome="open")
    db.session.add(request)
    db.session.flush()
    audit.record("cancellation_requested", account.id, actor, reason_note=values["reason"] or None,
                 data={"request_id": request.id, "channel": values["channel"],
                       "reason_code": values["reason_code"]}, now=now)
    db.session.commit()
    return request


def get_request(request_id):
    """Return the request with this id (any value; bad ones are not found).

    Raises:
        RequestNotFound.
    """
    found = db.session.get(CancellationRequest, record_id(request_id)) if record_id(request_id) else None
    if found is None:
        raise RequestNotFound()
    return found


def attempts_of(request_id):
    """Return the retention attempts on a request, oldest first."""
    return list(db.session.scalars(select(RetentionAttempt).where(RetentionAttempt.request_id == request_id)
                                   .order_by(RetentionAttempt.attempted_at, RetentionAttempt.id)))


def requests_of(account_id):
    """Return an account's requests, newest first."""
    return list(db.session.scalars(select(CancellationRequest).where(CancellationRequest.account_id == account_id)
                                   .order_by(CancellationRequest.request_date.desc(),
                                             CancellationRequest.id.desc())))


def with_open_request(account_ids):
    """Return the ids among account_ids that have an open request (one query, for a page of the list)."""
    ids = [i for i in account_ids if i is not None]
    if not ids:
        return set()
    return set(db.session.scalars(select(CancellationRequest.account_id).distinct()
                                  .where(CancellationRequest.account_id.in_(ids),
                                         CancellationRequest.outcome == "open")))


def find_accounts(q, limit=10):
    """Return up to limit accounts matching q: a prefix of the name, number or email (as on the list), or a phone.

    A phone is matched on the account's contact phone and on phones already logged in its requests,
    both compared in E.164.
    """
    from portal.domain.account_search import list_page, parse_filters

    text = (q or "").strip()
    if not text:
        return []
    found = []
    try:
        phone = fields.normal_phone(text)
    except InvalidValue:
        phone = None
    if phone:
        by_phone = select(Account).where(Account.contact_phone == phone).limit(limit)
        logged = select(CancellationRequest.account_id).where(CancellationRequest.phone == phone)
        found = list(db.session.scalars(by_phone)) + list(db.session.scalars(
            select(Account).where(Account.id.in_(logged)).limit(limit)))
    filters = parse_filters({"q": text, "per_page": "25"})
    if not filters.problems.get("q"):
        ids = [row.id for row in list_page(filters).rows]
        found += [db.session.get(Account, i) for i in ids]
    unique = {}
    for account in found:
        unique.setdefault(account.id, account)
    return list(unique.values())[:limit]
