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
