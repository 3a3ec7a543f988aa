"""Time helpers: the portal stores naive UTC datetimes and takes "as of" as a parameter."""
from datetime import datetime, timezone


def utcnow():
    """Return the current time as a naive UTC datetime."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


def add_months(moment, months):
    """Return moment shifted by a whole number of months (day clamped to the month's end)."""
    import calendar

    month_index = moment.month - 1 + months
    year = moment.year + month_index // 12
    month = month_index % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


def iso_utc(moment):
    """Return a stored naive UTC time as ISO 8601 with its zone ("2026-12-01T14:05:00+00:00"), or "" for None.

    The same form as the JSON API's times, so a CSV and the API agree.
    """
    if moment is None:
        return ""
    if isinstance(moment, datetime):
        aware = moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)
        return aware.isoformat()
    return moment.isoformat()  # a date has no zone


def in_zone(moment, zone):
    """Return a stored naive UTC datetime as an aware datetime in zone (a ZoneInfo)."""
    aware = moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment
    return aware.astimezone(zone)


def utc_from_local(moment, zone):
    """Return a naive wall-clock time in zone (a ZoneInfo) as naive UTC, the form times are stored in.

    A wall time that happens twice (the hour clocks go back) is taken the first time; one that never happens
    (the hour clocks go forward) is moved on by the gap, as zoneinfo resolves it (fold=0).
    """
    return moment.replace(tzinfo=zone).astimezone(timezone.utc).replace(tzinfo=None)


def zone_named(name):
    """Return the ZoneInfo called name ("UTC", "Europe/Berlin").

    Raises:
        ValueError: no time zone has that name.
    """
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    text = str(name or "").strip()
    if not text or text.startswith(("/", ".")) or ".." in text:
        raise ValueError(f"not a time zone name: {name!r}")
    try:
        return ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
        raise ValueError(f"no time zone is called {text!r}") from exc
