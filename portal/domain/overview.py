"""The staff overview's figures, one function per panel, each aggregated in SQL with time as a parameter.

    account_statuses   accounts per stored status, exact (portal.domain.status_counts: cached until a
                       status changes)
    activity           suspensions and reactivations per day over a date range, by source (from audit_events)
    last_runs          the newest runs with their outcome (the sweep history's own reading)
    emails             emails waiting, retrying, held and failed (outbox_emails by status)
    upcoming_steps     the dunning steps due in the next days (dunning.daily.upcoming, as /dunning/upcoming)
    save_rates         the cancellation save rate over the last 30 and 90 days (as the retention overview counts it)

Where an activity event comes from (its source), read from the event and the run that wrote it:
- a run of kind cleanup or recurring is a sweep; bulk is bulk; dunning is dunning; an undo counts as the
  source of the run it undoes;
- an event without a run is an admin's, except the dunning schedule acting outside its daily run: a payment
  that clears a restriction (service_restored), a lift, or a step applied when an admin cancels manual dates
  (its data says dunning). A bulk change small enough to be done at once is a series of single suspensions
  by the admin (no run), so it counts as admin.
A suspension is an event into `suspended` from another state; a reactivation one into `active` from
`suspended` or `limited` (limitations themselves are not counted).
"""
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from sqlalchemy import and_, case, func, literal, or_, select
from sqlalchemy.orm import aliased

from portal.domain import status_counts, sweeps
from portal.domain.cancellations.choices import OUTCOMES, SAVED
from portal.domain.dunning import daily
from portal.domain.errors import ValidationFailed
from portal.domain.parsing import InvalidValue, iso_date, whole_number
from portal.extensions import db
from portal.models import AuditEvent, CancellationRequest, OutboxEmail, SweepRun
from portal.timeutil import utcnow

DEFAULT_DAYS = 90
MAX_DAYS = 366
SOURCES = {"admin": "an admin", "sweep": "a sweep", "dunning": "dunning", "bulk": "a bulk action"}
MEASURES = {"suspended": "Suspended", "reactivated": "Reactivated"}
RUNS_SHOWN = 5
UPCOMING_DAYS = 7
UPCOMING_SHOWN = 8
SAVE_RATE_PERIODS = (30, 90)


def account_statuses(now=None):
    """Return the exact accounts per stored status (status_counts.StatusTotals)."""
    return status_counts.current(now)


# ---------------------------------------------------------------- activity by day and source

@dataclass
class Activity:
    """Per day of start..end (inclusive): counts[(measure, source)] is a list with one number per day."""

    start: date
    end: date
    days: list
    counts: dict
    totals: dict = field(default_factory=dict)

    def series(self):
        """The chart's data: the days and one series per (measure, source), as JSON-able values."""
        return {"labels": [d.isoformat() for d in self.days],
                "series": [{"measure": m, "source": s, "label": f"{MEASURES[m]} by {SOURCES[s]}",
                            "data": self.counts[(m, s)]} for m in MEASURES for s in SOURCES]}

    def measure_total(self, measure):
        """All the range's events of one measure (suspended or reactivated), every source."""
        return sum(n for (m, _s), n in self.totals.items() if m == measure)

    def rows(self):
        """The table's rows: (day, [one number per (measure, source)], day total), oldest first."""
        keys = [(m, s) for m in MEASURES for s in SOURCES]
        for i, day in enumerate(self.days):
            values = [self.counts[key][i] for key in keys]
            yield day, values, sum(values)


def activity_range(days=None, date_from=None, date_to=None, today=None):
    """Read the chart's range: the last `days` days to `date_to`, or `date_from`..`date_to`.

    Args:
        days: how many days, ending on date_to (default DEFAULT_DAYS); ignored when date_from is given.
        date_from, date_to: YYYY-MM-DD text, or empty (date_to defaults to today).
        today: the day the range ends on by default (default today, UTC).

    Returns:
        (start, end), both inclusive.

    Raises:
        ValidationFailed: field_errors names days, date_from or date_to: not a whole number of days from 1 to
            MAX_DAYS, not a date, an end before the start, or a range longer than MAX_DAYS days.
    """
    today = today or utcnow().date()
    errors, values = {}, {}
    for name, raw in (("date_from", date_from), ("date_to", date_to)):
        if raw not in (None, ""):
            try:
                values[name] = iso_date(raw)
            except InvalidValue as exc:
                errors[name] = exc.message
    count = DEFAULT_DAYS
    if days not in (None, "") and "date_from" not in values and date_from in (None, ""):
        try:
            count = whole_number(days, 1, MAX_DAYS, f"Enter a number of days from 1 to {MAX_DAYS} (a year).")
        except InvalidValue as exc:
            errors["days"] = exc.message
    if errors:
        raise ValidationFailed(errors)
    end = values.get("date_to", today)
    start = values.get("date_from", end - timedelta(days=count - 1))
    if end < start:
        raise ValidationFailed({"date_to": f"The end ({end.isoformat()}) is before the start ({start.isoformat()}): "
                                           "choose an end on or after the start."})
    if (end - start).days + 1 > MAX_DAYS:
        raise ValidationFailed({"date_from": f"That is {(end - start).days + 1} days: choose a range of at most "
                                             f"{MAX_DAYS} days (a year)."})
    return start, end


def _source_expression(run, undone):
    """The event's source as SQL (see the module's docstring)."""
    kind = func.coalesce(undone.kind, run.kind)
    by_schedule = or_(AuditEvent.action.in_(("service_restored", "lifted")),
                      and_(AuditEvent.reason_category == "non_payment", AuditEvent.state_after == "suspended",
                           AuditEvent.data["dunning"].as_boolean().is_(True)))
    return case((run.id.is_(None), case((by_schedule, literal("dunning")), else_=literal("admin"))),
                (kind == "bulk", literal("bulk")), (kind == "dunning", literal("dunning")), else_=literal("sweep"))


def _measure_expression():
    suspended = and_(AuditEvent.state_after == "suspended",
                     or_(AuditEvent.state_before.is_(None), AuditEvent.state_before != "suspended"))
    reactivated = and_(AuditEvent.state_after == "active", AuditEvent.state_before.in_(("suspended", "limited")))
    return case((suspended, literal("suspended")), (reactivated, literal("reactivated")), else_=None)


def activity(start, end):
    """Count suspensions and reactivations per day of start..end (inclusive), by source, in one query.

    Args:
        start, end: dates (from activity_range).

    Returns:
        Activity, with a zero for every day and series that had none.
    """
    run, undone = aliased(SweepRun), aliased(SweepRun)
    day = func.date(AuditEvent.created_at)
    measure, source = _measure_expression(), _source_expression(run, undone)
    events = (select(day.label("day"), measure.label("measure"), source.label("source"))
              .select_from(AuditEvent)
              .outerjoin(run, run.id == AuditEvent.actor_run_id)
              .outerjoin(undone, undone.id == run.undo_of_run_id)
              .where(AuditEvent.created_at >= datetime.combine(start, datetime.min.time()),
                     AuditEvent.created_at < datetime.combine(end + timedelta(days=1), datetime.min.time()),
                     AuditEvent.state_after.in_(("suspended", "active")))
              .subquery())
    query = (select(events.c.day, events.c.measure, events.c.source, func.count())
             .where(events.c.measure.is_not(None)).group_by(events.c.day, events.c.measure, events.c.source))
    days = [start + timedelta(days=i) for i in range((end - start).days + 1)]
    index = {d.isoformat(): i for i, d in enumerate(days)}
    counts = {(m, s): [0] * len(days) for m in MEASURES for s in SOURCES}
    for value, m, s, n in db.session.execute(query):
        counts[(m, s)][index[str(value)[:10]]] += int(n)
    totals = {key: sum(values) for key, values in counts.items()}
    return Activity(start, end, days, counts, totals)


# ---------------------------------------------------------------- runs, emails, dunning, retention

def last_runs(limit=RUNS_SHOWN):
    """Return the newest runs as the sweep history reads them, each with `undone_by` (a run id or None) and,
    while it works, its live `progress` (runs.progress)."""
    from portal.domain import runs

    rows = sweeps.list_runs(limit=limit)
    ids = [row["run"].id for row in rows]
    undos = dict(db.session.execute(select(SweepRun.undo_of_run_id, SweepRun.id)
                                    .where(SweepRun.undo_of_run_id.in_(ids), SweepRun.status != "failed"))
                 .all()) if ids else {}
    for row in rows:
        row["undone_by"] = undos.get(row["run"].id)
        row["progress"] = runs.progress(row["run"].id) if row["run"].status in runs.ACTIVE_STATUSES else None
    return rows


@dataclass
class EmailCounts:
    """Emails in the outbox that are not sent yet: waiting (of which retrying after an error), held while
    their account is suspended, and failed (given up), with the oldest waiting one's time."""

    waiting: int
    retrying: int
    held: int
    failed: int
    oldest_waiting_at: datetime | None


def emails():
    """Count the outbox's unsent emails by status (the status index: sent emails are never read)."""
    by_status = dict(db.session.execute(select(OutboxEmail.status, func.count())
                                        .where(OutboxEmail.status.in_(("pending", "held", "failed")))
                                        .group_by(OutboxEmail.status)).all())
    retrying = db.session.scalar(select(func.count()).select_from(OutboxEmail)
                                 .where(OutboxEmail.status == "pending", OutboxEmail.attempts > 0))
    oldest = db.session.scalar(select(OutboxEmail.created_at).where(OutboxEmail.status == "pending")
                               .order_by(OutboxEmail.id).limit(1))
    return EmailCounts(int(by_status.get("pending", 0)), int(retrying or 0), int(by_status.get("held", 0)),
                       int(by_status.get("failed", 0)), oldest)


def upcoming_steps(as_of=None, days=UPCOMING_DAYS, shown=UPCOMING_SHOWN):
    """The dunning steps due within `days` days, as /dunning/upcoming lists them: counts and the first few.

    Returns:
        dict(total, by_action={limitation, suspension, reapply}, rows=[the first `shown`, by date], until).
    """
    from portal.domain.dunning.account_state import day_of

    day = day_of(as_of)
    found = daily.upcoming(as_of=day, days=days)
    by_action = {"limitation": 0, "suspension": 0, "reapply": 0}
    for row in found:
        by_action[row["action"]] = by_action.get(row["action"], 0) + 1
    return {"total": len(found), "by_action": by_action, "rows": found[:shown], "until": day + timedelta(days=days)}


@dataclass
class SaveRate:
    """Cancellation requests dated start..end by outcome, and the save rate as the retention overview defines
    it (portal.domain.cancellations.overview): saved (retained or paused) / (saved + cancelled)."""

    days: int
    start: date
    end: date
    counts: dict

    @property
    def saved(self):
        return sum(self.counts[o] for o in SAVED)

    @property
    def decided(self):
        return self.saved + self.counts["cancelled"]

    @property
    def save_rate(self):
        return self.saved / self.decided if self.decided else None


def save_rates(today=None, periods=SAVE_RATE_PERIODS):
    """The cancellation save rate over the last N days (today included) for each N of periods, in one query.

    Returns:
        list of SaveRate, in the order of periods.
    """
    today = today or utcnow().date()
    starts = {days: today - timedelta(days=days - 1) for days in periods}
    known = tuple(OUTCOMES)
    outcome = case((CancellationRequest.outcome.in_(known), CancellationRequest.outcome), else_=literal("open"))
    columns = [func.count(case((and_(CancellationRequest.request_date >= starts[days], outcome == o), 1)))
               for days in periods for o in known]
    row = db.session.execute(select(*columns).where(CancellationRequest.request_date >= min(starts.values()),
                                                    CancellationRequest.request_date <= today)).one()
    figures = iter(row)
    return [SaveRate(days, starts[days], today, {o: int(next(figures)) for o in known}) for days in periods]
