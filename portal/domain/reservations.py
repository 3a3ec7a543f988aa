"""Reservations made by customers; booking asks the gate first."""
import re

from sqlalchemy import select, update

from portal.domain.errors import Conflict, ValidationFailed
from portal.domain.gate import require
from portal.domain.parsing import InvalidValue, iso_datetime, text_problem, whole_number
from portal.extensions import db
from portal.models import Account, Reservation
from portal.timeutil import utc_from_local, utcnow

PARTY_MAX = 50


def list_reservations(account_id, limit=50):
    """Return the account's reservations, newest first."""
    stmt = (select(Reservation).where(Reservation.account_id == account_id)
            .order_by(Reservation.created_at.desc(), Reservation.id.desc()).limit(limit))
    return list(db.session.scalars(stmt))


_OFFSET = re.compile(r"(Z|[+-]\d\d(:?\d\d)?)$", re.IGNORECASE)


def _parse(starts_at, party_size, note, now, zone=None):
    errors = {}
    when = None
    try:
        when = iso_datetime(starts_at, "Enter a date and time, e.g. 2026-12-24 19:30.")
        if zone is not None and not _OFFSET.search((starts_at or "").strip()):
            when = utc_from_local(when, zone)  # typed as the page shows times: in the display zone
        if when < now:
            errors["starts_at"] = "Choose a time in the future."
    except InvalidValue as exc:
        errors["starts_at"] = exc.message
    try:
        size = whole_number(party_size, 1, PARTY_MAX, f"Enter a number of guests from 1 to {PARTY_MAX}.")
    except InvalidValue as exc:
        errors["party_size"] = exc.message
        size = None
    note = (note or "").strip()
    if len(note) > 500:
        errors["note"] = "Keep the note to 500 characters."
    elif text_problem(note, "The note"):
        errors["note"] = text_problem(note, "The note")
    if errors:
        raise ValidationFailed(errors)
    return when, size, note or None


def book(actor, starts_at, party_size, note=None, now=None, zone=None):
    """Book a reservation on the actor's own account, if the gate allows it.

    The gate is asked first, so a refused customer sees why before any field errors. The insert is
    tied to the account state the gate read (compare-and-set), so a booking racing a suspension
    either lands before it or is refused; never after it.

    Args:
        actor: a customer User.
        starts_at: ISO date-time text of the reservation.
        party_size: number of guests (1..50).
        note: optional note, up to 500 characters.
        now: the time of booking (default now).
        zone: the ZoneInfo a starts_at without an offset is a wall-clock time in (the pages' display zone);
            None: UTC.

    Returns:
        The new Reservation.

    Raises:
        PermissionDenied: the gate refuses (suspended, limited or cancelled account); nothing is stored.
        ValidationFailed: bad fields; nothing is stored.
    """
    now = now or utcnow()
    account = db.session.get(Account, actor.account_id, populate_existing=True) if actor.account_id else None
    require(actor, "book_reservation", account)
    when, size, note = _parse(starts_at, party_size, note, now, zone)
    reservation = Reservation(account_id=account.id, user_id=actor.id, created_at=now, starts_at=when,
                              party_size=size, note=note)
    db.session.add(reservation)
    touched = db.session.execute(update(Account).where(Account.id == account.id, Account.status == account.status)
                                 .values(last_activity_at=now).execution_options(synchronize_session=False))
    if touched.rowcount != 1:  # the account changed state since the gate read it: ask again
        db.session.rollback()
        account = db.session.get(Account, actor.account_id, populate_existing=True)
        require(actor, "book_reservation", account)
        raise Conflict("Your account changed while you were booking. Nothing was booked; please try again.")
    db.session.commit()
    return reservation
