"""Shift and lift: a super admin's manual dates for the current episode of an account's overdue invoices.

A shift moves a step that has not happened yet to a later date; the later date wins, so a date on or
before the class's date is refused (it would change nothing). A lift holds an applied non-payment
restriction off until a date: service is full until then, and on that date the schedule applies again
by itself if the invoices are still overdue. Both can be changed or cancelled while in force, and
both end with their episode.
"""
from datetime import timedelta

from flask import current_app, has_app_context

from portal.domain import audit, notify
from portal.domain.dunning.account_state import (apply_schedule, day_of, end_override, invoice_list, live_override,
                                                 lock_account, moment_of, plan_next_look, view_of)
from portal.domain.dunning.calendar import RANK
from portal.domain.errors import AccountNotFound, InvalidTransition, ValidationFailed
from portal.domain.gate import require
from portal.domain.parsing import InvalidValue, whole_number
from portal.domain.suspension import validate_reason
from portal.extensions import db
from portal.models import Account, ScheduleOverride

LIFT_MAX_DAYS_DEFAULT = 30


def lift_max_days():
    """How far ahead a lift may go (PORTAL_LIFT_MAX_DAYS, default 30)."""
    if has_app_context():
        return int(current_app.config.get("LIFT_MAX_DAYS") or LIFT_MAX_DAYS_DEFAULT)
    return LIFT_MAX_DAYS_DEFAULT


def _load(actor, action, account_id, expected_version):
    account = db.session.get(Account, account_id) if isinstance(account_id, int) else None
    if account is None:
        raise AccountNotFound()
    require(actor, action, account)
    return lock_account(account.id, _version(expected_version))


def _version(value):
    if value in (None, ""):
        return None
    try:
        return whole_number(value, 0)
    except InvalidValue:
        return -1  # matches no version: the form is refused as out of date


def _override_row(account, start, actor, now):
    """The live row of this episode (a stale one from an earlier episode is ended first)."""
    row = live_override(account.id)
    if row is not None and row.episode_start != start:
        end_override(account.id, "ended", now)
        db.session.flush()
        row = None
    if row is None:
        row = ScheduleOverride(account_id=account.id, episode_start=start, created_by_id=getattr(actor, "id", None),
                               created_at=now, updated_at=now)
        db.session.add(row)
    return row


def _check_shift_date(errors, field, value, day, class_date, done, step):
    if value is None:
        return
    if class_date is None:
        errors[field] = f"This account's class never applies a {step}, so there is nothing to shift."
    elif done:
        errors[field] = f"The {step} has already happened; lift it instead of shifting it."
    elif value <= day:
        errors[field] = f"Choose a date after today ({day.isoformat()})."
    elif value <= class_date:
        errors[field] = (f"The class already sets the {step} on {class_date.isoformat()}; a date on or before it "
                         f"would change nothing (the later date wins). Choose a date after {class_date.isoformat()}.")


def shift(actor, account_id, limitation_date=None, suspension_date=None, reason_category="promise_to_pay",
          reason_note="", as_of=None, expected_version=None):
    """Move the account's approaching limitation and/or suspension to later dates.

    Args:
        actor: the super admin.
        account_id: the account.
        limitation_date, suspension_date: the new dates (dates; at least one).
        reason_category, reason_note: why (a key of suspension.DUNNING_OVERRIDE_REASONS, and a note).
        as_of: the day the shift is made (default today).
        expected_version: the account version the form showed (None: no check).

    Returns:
        The account's View afterwards.

    Raises:
        AccountNotFound, PermissionDenied, Conflict, InvalidTransition (nothing overdue, cancelled),
        ValidationFailed (dates, reason).
    """
    category, note = validate_reason(reason_category, reason_note, "shift")
    if limitation_date is None and suspension_date is None:
        raise ValidationFailed({"limitation_date": "Give a new limitation date, a new suspension date, or both."})
    now, day = moment_of(as_of), day_of(as_of)
    account = _load(actor, "shift", account_id, expected_version)
    view = view_of(account, day)
    _require_episode(account, view)
    if view.lifted_until is not None:
        db.session.rollback()
        raise InvalidTransition(f"The restriction on account {account.number} is lifted until "
                                f"{view.lifted_until.isoformat()}; change the lift's date instead. Nothing was changed.")
    rank = max(RANK.get(account.status, 0), RANK[view.target])
    errors = {}
    _check_shift_date(errors, "limitation_date", limitation_date, day, view.class_limitation_on, rank >= 1,
                      "limitation")
    _check_shift_date(errors, "suspension_date", suspension_date, day, view.class_suspension_on, rank >= 2,
                      "suspension")
    if errors:
        db.session.rollback()
        raise ValidationFailed(errors)
    row = _override_row(account, view.episode_start, actor, now)
    if limitation_date is not None:
        row.limitation_date = limitation_date
    if suspension_date is not None:
        row.suspension_date = suspension_date
    row.reason_category, row.reason_note, row.updated_at = category, note, now
    row.version = (row.version or 0) + 1
    db.session.flush()
    audit.record("dunning_shifted", account.id, actor, reason_category=category, reason_note=note,
                 state_before=view.status, data={"limitation_date": _iso(limitation_date),
                                                 "suspension_date": _iso(suspension_date),
                                                 "episode_start": view.episode_start.isoformat()}, now=now)
    after = plan_next_look(account, day)
    db.session.commit()
    return after


def lift(actor, account_id, until, reason_category="promise_to_pay", reason_note="", as_of=None,
         expected_version=None):
    """Lift an applied non-payment limitation or suspension until a date: full service until then.

    Raises:
        AccountNotFound, PermissionDenied, Conflict, InvalidTransition (not restricted for non-payment),
        ValidationFailed (date, reason).
    """
    category, note = validate_reason(reason_category, reason_note, "lift")
    now, day = moment_of(as_of), day_of(as_of)
    account = _load(actor, "lift", account_id, expected_version)
    view = view_of(account, day)
    row = live_override(account.id)
    lifted_now = row is not None and row.lift_until is not None and day < row.lift_until
    by_schedule = account.status == "limited" or (account.status == "suspended"
                                                  and account.status_source == "dunning")
    if view.episode_start is None or not (by_schedule or lifted_now):
        db.session.rollback()
        if account.status == "suspended":
            raise InvalidTransition(f"Account {account.number} was suspended by hand or by a sweep, not by the dunning "
                                    "schedule, so there is nothing for the schedule to re-apply: reactivate it "
                                    "instead. Nothing was changed.")
        raise InvalidTransition(f"Account {account.number} is not limited or suspended for non-payment of overdue "
                                "invoices, so there is nothing to lift. Nothing was changed.")
    _check_lift_date(until, day)
    before = account.status
    row = _override_row(account, view.episode_start, actor, now)
    row.lift_until, row.reason_category, row.reason_note, row.updated_at = until, category, note, now
    row.version = (row.version or 0) + 1
    if before != "active":
        account.status, account.status_reason, account.status_note = "active", None, None
        account.status_source, account.status_changed_at, account.suspended_by_run_id = None, now, None
        notify.release_held(account.id)
    audit.record("lifted", account.id, actor, reason_category=category, reason_note=note, state_before=before,
                 state_after="active", data={"until": until.isoformat(), "invoices": view.overdue_seqs}, now=now)
    for manager in notify.account_managers(account.id):
        notify.queue_email(manager, "dunning_lifted", f"Full service on account {account.number} until {until}",
                           "dunning_lifted.txt", account=account, until=until.isoformat(), note=note,
                           invoices=invoice_list(view), now=now)
    after = plan_next_look(account, day)
    db.session.commit()
    notify.kick_delivery()
    return after


def _check_lift_date(until, day):
    limit = lift_max_days()
    if until is None:
        raise ValidationFailed({"until": "Choose the date until which service is full."})
    if until <= day:
        raise ValidationFailed({"until": f"Choose a date after today ({day.isoformat()})."})
    if until > day + timedelta(days=limit):
        raise ValidationFailed({"until": f"A lift lasts at most {limit} days: choose a date up to "
                                         f"{(day + timedelta(days=limit)).isoformat()}."})


def cancel(actor, account_id, reason_category="promise_not_kept", reason_note="", as_of=None, expected_version=None):
    """Cancel the account's manual dates: the class schedule applies again at once (a due step is applied).

    Raises:
        AccountNotFound, PermissionDenied, Conflict, InvalidTransition (no manual dates), ValidationFailed.
    """
    category, note = validate_reason(reason_category, reason_note, "cancel_dates")
    now, day = moment_of(as_of), day_of(as_of)
    account = _load(actor, "shift", account_id, expected_version)
    if live_override(account.id) is None:
        db.session.rollback()
        raise InvalidTransition(f"Account {account.number} has no shifted or lifted date to cancel.")
    before = view_of(account, day).status
    end_override(account.id, "cancelled", now)
    db.session.flush()
    audit.record("dunning_dates_cancelled", account.id, actor, reason_category=category, reason_note=note,
                 state_before=before, now=now)
    apply_schedule(account, day, actor, now)
    after = plan_next_look(account, day)
    db.session.commit()
    notify.kick_delivery()
    return after


def _require_episode(account, view):
    if account.status == "cancelled":
        db.session.rollback()
        raise InvalidTransition(f"Account {account.number} is cancelled.")
    if view.episode_start is None:
        db.session.rollback()
        raise InvalidTransition(f"Account {account.number} has no overdue invoices, so no step is approaching. "
                                "Nothing was changed.")


def _iso(value):
    return value.isoformat() if value else None
