"""What the `flask` commands share: reading --as-of values, finding accounts and people, domain errors as exit 1."""
import click
from sqlalchemy import func, select

from portal.domain.errors import ValidationFailed
from portal.domain.parsing import InvalidValue, clean_text, iso_datetime, record_id
from portal.extensions import db
from portal.models import Account, User


def parse_as_of(value):
    """Parse an --as-of value (ISO date or date-time, UTC)."""
    if value is None:
        return None
    try:
        return iso_datetime(value)
    except InvalidValue:
        raise click.BadParameter("use an ISO date such as 2026-11-22 or 2026-11-22T08:00 (YYYY-MM-DD, optionally "
                                 "THH:MM, UTC; years 1900 to 2200)") from None


def parse_day(value, name="--as-of"):
    """A date typed as YYYY-MM-DD (a date-time is cut to its day); None stays None."""
    if value is None:
        return None
    try:
        return iso_datetime(value).date()
    except InvalidValue:
        raise click.BadParameter(f"use a date such as 2026-09-15 (got {value!r})", param_hint=name) from None


def fail(exc):
    """Turn a domain error into a one-line command error (exit 1)."""
    if isinstance(exc, ValidationFailed):
        raise click.ClickException(" ".join(exc.field_errors.values()) or exc.message)
    raise click.ClickException(exc.message)


def find_account(number_or_id):
    """Return the account whose number (as typed or upper-case) or id is given, or raise a click error."""
    text = _clean(number_or_id, "The account number or id")
    found = db.session.scalar(select(Account).where(Account.number.in_({text, text.upper()})))  # unique index
    if found is None and record_id(text) is not None:
        found = db.session.get(Account, record_id(text))
    if found is None:
        raise click.ClickException(f"No account with number or id {text!r}.")
    return found


def _clean(text, what):
    """The argument as text the database can take, or a click error naming the character it cannot."""
    try:
        return clean_text(text, what)
    except InvalidValue as exc:
        raise click.ClickException(exc.message) from None


def find_actor(email):
    """Return the user signing the action, or raise a click error."""
    actor = db.session.scalar(select(User).where(func.lower(User.email) == _clean(email, "The email").lower()))
    if actor is None:
        raise click.ClickException(f"No user with email {email!r}.")
    return actor
