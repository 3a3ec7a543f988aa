"""The emails a run chunk queues, written by SQL: one per account manager of every account it changed.

The email is rendered once per run with placeholders where the person's and the account's values go;
SQL fills them in for each row, so queueing 30,000 emails is one INSERT ... SELECT.
"""
import re

from flask import current_app
from sqlalchemy import DateTime, case, literal, select, true
from sqlalchemy.sql.elements import ClauseElement

from portal.domain.gate import REASONS, SUSPENSION_BANNERS
from portal.models import User

BY_RULE = "by_rule"  # a rules run's reason: non-payment where a money rule matched, else inactivity
OUTBOX_COLUMNS = ["created_at", "account_id", "user_id", "kind", "to_addr", "subject", "body", "status", "attempts"]


def email_rows(run, email_kind, now, account, lo=None, hi=None, lateral=False):
    """SELECT the outbox rows for the managers of the accounts in `account` (with lo <= id < hi if given).

    Args:
        run: the SweepRun (its reason and note are in the text).
        email_kind: account_suspended | account_reactivated.
        now: the time the emails are queued (a datetime, or a bound parameter of the statement).
        account: a table, subquery or CTE with the changed accounts' id, number, name and status_reason
            columns (the accounts changed, e.g. an UPDATE's RETURNING: their managers are found by the
            users' account index).
        lo, hi: an id range to hold the managers to (a caller starting from the accounts table itself).
        lateral: PostgreSQL: look each account's managers up by the users' account index (LATERAL), whatever
            the planner guesses of how many accounts there are (it guesses an UPDATE's RETURNING high, and
            then reads every user of the database into a hash for a few hundred changed accounts).
    """
    managers = User.__table__
    if lateral:
        managers = (select(User.id, User.name, User.email).where(
            User.account_id == account.c.id, User.role == "account_manager", User.disabled.is_(False),
            User.email_notifications.is_(True)).offset(0).lateral("managers"))  # OFFSET: not pulled up into a join
    user = managers.c
    fields = {"\x01USER\x01": user.name, "\x01NUMBER\x01": account.c.number, "\x01NAME\x01": account.c.name}
    subject = _concat(_subject(email_kind), fields)
    if run.reason_category == BY_RULE and email_kind == "account_suspended":
        # The wording follows each account's reason (written on it by the same chunk).
        body = case((account.c.status_reason == "non_payment", _concat(_body(run, email_kind, "non_payment"), fields)),
                    else_=_concat(_body(run, email_kind, "inactivity"), fields))
    else:
        body = _concat(_body(run, email_kind, run.reason_category), fields)
    queued_at = now if isinstance(now, ClauseElement) else literal(now, DateTime())
    query = select(queued_at, account.c.id, user.id, literal(email_kind), user.email, subject, body,
                   literal("pending"), literal(0))
    if lateral:
        query = query.select_from(account).join(managers, true())
    else:
        query = (query.select_from(account).join(User, User.account_id == account.c.id)
                 .where(User.role == "account_manager", User.disabled.is_(False), User.email_notifications.is_(True)))
    if lo is not None:
        query = query.where(User.account_id >= lo, User.account_id < hi)
    return query


class _UserPlaceholder:
    name = "\x01USER\x01"


class _AccountPlaceholder:
    number = "\x01NUMBER\x01"
    name = "\x01NAME\x01"


_PLACEHOLDER = re.compile(r"(\x01[A-Z]+\x01)")


def _concat(text, fields):
    """Turn text with placeholders into a SQL string expression filling in each row's values."""
    expr = None
    for part in (p for p in _PLACEHOLDER.split(text) if p):
        piece = fields.get(part, literal(part))
        expr = piece if expr is None else expr + piece
    return expr if expr is not None else literal("")


def _subject(email_kind):
    """The subject line, with the account number's placeholder."""
    return ("Your account \x01NUMBER\x01 has been suspended" if email_kind == "account_suspended"
            else "Your account \x01NUMBER\x01 is active again")


def _body(run, email_kind, reason):
    """Render the email once with placeholders, so SQL can fill in each account's values."""
    template = "account_suspended.txt" if email_kind == "account_suspended" else "account_reactivated.txt"
    return current_app.jinja_env.get_template(f"email/{template}").render(
        user=_UserPlaceholder(), account=_AccountPlaceholder(), billing_contact=current_app.config["BILLING_CONTACT"],
        reason=reason, note=run.reason_note, reasons=REASONS, banners=SUSPENSION_BANNERS)
