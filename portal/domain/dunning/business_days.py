"""Business days for the "Change status" (lift) choices, on the holiday calendar set in configuration.

PORTAL_HOLIDAY_COUNTRY (default "US") names the country whose public holidays, with Saturdays and
Sundays, are not business days (the `holidays` library's calendars). "2 business days" from a day is
the second business day after it; "1 week" is seven calendar days.
"""
from datetime import timedelta
from functools import lru_cache

import holidays
from flask import current_app, has_app_context

from portal.domain.dunning.account_state import day_of
from portal.domain.errors import ValidationFailed
from portal.domain.parsing import InvalidValue, date_message, iso_date

DEFAULT_COUNTRY = "US"
CHOICES = (("2bd", "2 business days"), ("1w", "1 week"), ("date", "Until a date"))


def holiday_country():
    """The configured holiday calendar's country code (HOLIDAY_COUNTRY, default US)."""
    if has_app_context():
        return str(current_app.config.get("HOLIDAY_COUNTRY") or DEFAULT_COUNTRY).strip().upper()
    return DEFAULT_COUNTRY


@lru_cache(maxsize=8)
def _calendar(country):
    return holidays.country_holidays(country)


def business_days_after(day, count, country=None):
    """The count-th business day after day (weekends and the country's public holidays skipped)."""
    calendar = _calendar(country or holiday_country())
    current, found = day, 0
    while found < count:
        current += timedelta(days=1)
        if current.weekday() < 5 and current not in calendar:
            found += 1
    return current


def lift_choices(as_of=None):
    """The lift form's ready-made dates from a day: [(key, label, date)] for "2 business days" and "1 week"."""
    day = day_of(as_of)
    return [("2bd", "2 business days", business_days_after(day, 2)), ("1w", "1 week", day + timedelta(days=7))]


def until_date(choice, typed, as_of=None):
    """The date a lift form asks for: a ready-made choice, or the typed date for "date".

    Raises:
        ValidationFailed: field_errors["until"]: no choice, an unknown one, or a typed date that is not a date.
    """
    choice = str(choice or "").strip()
    ready = {key: when for key, _label, when in lift_choices(as_of)}
    if choice in ready:
        return ready[choice]
    if choice != "date":
        raise ValidationFailed({"until": "Choose how long service stays full: 2 business days, 1 week or a date."})
    try:
        return iso_date(typed, date_message("the date"))
    except InvalidValue as exc:
        raise ValidationFailed({"until": exc.message}) from None
