"""Reservations made by customers; booking asks the gate first."""
from datetime import datetime

from sqlalchemy import select, update

from portal.domain.errors import PermissionDenied, ValidationFailed
from portal.domain.gate import may
from portal.extensions import db
from portal.models import Account, Reservation
from portal.timeutil import utcnow

PARTY_MAX = 50


def list_reservations(account_id, limit=50):
    """Return the account's reservations, newest first."""
    stmt = (select(Reservation).where(Reservation.account_id == account_id)
            .order_by(Reservation.created_at.desc(), Reservation.id.desc()).limit(limit))
    return list(db.session.scalars(stmt))


def _parse(starts_at, party_size, note, now):
    errors = {}
    when = None
    try:
        when = datetime.fromisoformat((starts_at or "").strip())
        if when.tzinfo is not None:
            when = when.replace(tzinfo=None)
        if when < now:
            errors["starts_at"] = "Choose a time in the future."
    except ValueError:
        errors["starts_at"] = "Enter a date and time, e.g. 2026-12-24 19:30."
    try:
        size = int(party_size)
        if not 1 <= size <= PARTY_MAX:
            raise ValueError
    except (TypeError, ValueError):
        errors["party_size"] = f"Enter a number of guests from 1 to {PARTY_MAX}."
        size = None
    note = (note or "").strip()
    if len(note) > 500:
        errors["note"] = "Keep the note to 500 characters."
    if errors:
        raise ValidationFailed(errors)
    return when, size, note or None


def book(actor, starts_at, party_size, note=None, now=None):
    """Book a reservation on the actor's own account.

    Args:
        actor: a customer User.
        starts_at: ISO date-time text of the reservation.
        party_size: number of guests (1..50).
        note: optional note.
        now: the time of booking (default now).

    Raises:
        PermissionDenied: the gate refuses (suspended or limited account); nothing is stored.
        ValidationFailed: bad fields.
    """
    now = now or utcnow()
    account = db.session.get(Account, actor.account_id) if actor.account_id else None
    decision = may(actor, "book_reservation", account)
    if not decision:
        raise PermissionDenied(decision.message)
    when, size, note = _parse(starts_at, party_size, note, now)
    reservation = Reservation(account_id=account.id, user_id=actor.id, created_at=now, starts_at=when,
                              party_size=size, note=note)
    db.session.add(reservation)
    db.session.execute(update(Account).where(Account.id == account.id)
                       .values(last_activity_at=now).execution_options(synchronize_session=False))
    db.session.commit()
    return reservation
