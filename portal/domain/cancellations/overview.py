"""The retention overview over a period: requests per week, save rate, reasons, and monthly revenue kept.

A request counts in the week (Monday first) of its date. Saved means retained or paused; the save rate
is saved / (saved + cancelled), requests still open or withdrawn left out. The monthly revenue of a
request is its total collected divided by its months in the program (none when the months are 0).
"""
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import select

from portal.domain.cancellations.choices import REASON_CODES, SAVED
from portal.domain.errors import ValidationFailed
from portal.domain.parsing import InvalidValue, iso_date
from portal.extensions import db
from portal.models import CancellationRequest

DEFAULT_WEEKS = 12
MAX_DAYS = 3 * 366
CSV_HEADER = ("Week of", "Requests", "Retained", "Paused", "Cancelled", "Withdrawn", "Open", "Save rate",
              "Monthly revenue kept")


@dataclass
class Week:
    """One week's figures."""

    start: object
    counts: dict = field(default_factory=lambda: dict.fromkeys(
        ("retained", "paused", "cancelled", "withdrawn", "open"), 0))
    revenue_kept_cents: int = 0

    @property
    def requests(self):
        return sum(self.counts.values())

    @property
    def save_rate(self):
        saved = sum(self.counts[o] for o in SAVED)
        decided = saved + self.counts["cancelled"]
        return saved / decided if decided else None


@dataclass
class Overview:
    """The period's weeks, its totals and its reasons (code -> count)."""

    start: object
    end: object
    weeks: list
    total: Week
    reasons: dict


def period(date_from, date_to, today):
    """Return (start, end) read from text (defaults: the last DEFAULT_WEEKS weeks to today).

    Raises:
        ValidationFailed: a date not YYYY-MM-DD, the end before the start, or a period over three years.
    """
    errors, values = {}, {}
    for name, value in (("date_from", date_from), ("date_to", date_to)):
        if value not in (None, ""):
            try:
                values[name] = iso_date(value)
            except InvalidValue as exc:
                errors[name] = exc.message
    if errors:
        raise ValidationFailed(errors)
    end = values.get("date_to", today)
    start = values.get("date_from", end - timedelta(weeks=DEFAULT_WEEKS) + timedelta(days=1))
    if end < start:
        raise ValidationFailed({"date_to": "The end of the period must be on or after its start."})
    if (end - start).days > MAX_DAYS:
        raise ValidationFailed({"date_from": "Choose a period of at most three years."})
    return start, end


def _monthly(request):
    return request.amount_collected_cents // request.months_in_program if request.months_in_program else 0


def overview(start, end):
    """Return the Overview of requests dated start..end (inclusive)."""
    first = start - timedelta(days=start.weekday())
    weeks = {first + timedelta(weeks=i): Week(first + timedelta(weeks=i))
             for i in range((end - first).days // 7 + 1)}
    total, reasons = Week(start), dict.fromkeys(REASON_CODES, 0)
    rows = db.session.scalars(select(CancellationRequest).where(CancellationRequest.request_date >= start,
                                                                CancellationRequest.request_date <= end))
    for request in rows:
        week = weeks[request.request_date - timedelta(days=request.request_date.weekday())]
        outcome = request.outcome if request.outcome in total.counts else "open"
        for bucket in (week, total):
            bucket.counts[outcome] += 1
            if outcome in SAVED:
                bucket.revenue_kept_cents += _monthly(request)
        reasons[request.reason_code] = reasons.get(request.reason_code, 0) + 1
    return Overview(start, end, list(weeks.values()), total, reasons)


def csv_rows(view):
    """Yield the overview as CSV rows: the header, one row per week, then the totals."""
    from portal.domain.money import dollars

    yield CSV_HEADER
    for week, name in [(w, w.start.isoformat()) for w in view.weeks] + [(view.total, "Total")]:
        rate = f"{week.save_rate * 100:.1f}%" if week.save_rate is not None else ""
        yield (name, week.requests, week.counts["retained"], week.counts["paused"], week.counts["cancelled"],
               week.counts["withdrawn"], week.counts["open"], rate, dollars(week.revenue_kept_cents))
