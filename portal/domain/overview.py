"""The staff overview's figures, one function per panel, each aggregated in SQL with time as a parameter.

    account_statuses   accounts per stored status, exact (portal.domain.status_counts: cached until a
                       status changes)
    activity           suspensions and reactivations per day over a date range, by source (from audit_events)
    last_runs          the newest runs with their outcome (the sweep history's own reading)
    emails             emails waiting, retrying, being sent, held and failed (outbox_emails by status)
    upcoming_steps     the dunning steps due in the next days (as /dunning/upcoming finds them, within a budget)
    save_rates         the cancellation save rate over the last 30 and 90 days (as the retention overview counts it)

Where an activity event comes from (its source), read from the event and the run that wrote it:
- a run of kind cleanup or recurring is a sweep; bulk is bulk; dunning is dunning; an undo counts as the
  source of the run it undoes;
- an event without a run is an admin's, except the dunning schedule acting outside its daily run: a payment
  that clears a restriction (service_restored), a lift, or a step applied when an admin cancels manual dates
  (its data says dunning). A bulk change small enough to be done at once is recorded as a bulk run too
  (runs.inline writes the run on each of its events), so it counts as bulk.
A suspension is an event into `suspended` from another state; a reactivation one into `active` from
`suspended` or `limited` (limitations themselves are not counted).
"""
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from flask import current_app
from sqlalchemy import and_, case, func, literal, or_, select
from sqlalchemy.orm import aliased

from portal.domain import shared_figures, status_counts, sweeps
from portal.domain.cancellations.choices import OUTCOMES, SAVED
from portal.domain.dunning.account_state import day_of
from portal.domain.dunning.calendar import evaluate
from portal.domain.dunning.facts import load_facts
from portal.domain.errors import ValidationFailed
from portal.domain.parsing import InvalidValue, iso_date, whole_number
from portal.extensions import db
from portal.models import Account, AuditEvent, CancellationRequest, OutboxEmail, SweepRun
from portal.timeutil import utcnow

DEFAULT_DAYS = 90
MAX_DAYS = 366
SOURCES = {"admin": "an admin", "sweep": "a sweep", "dunning": "dunning", "bulk": "a bulk action"}
MEASURES = {"suspended": "Suspended", "reactivated": "Reactivated"}
RUNS_SHOWN = 5
RANGES_KEPT = 4  # activity ranges whose counts a process keeps (the default range, and a few chosen)
UPCOMING_DAYS = 7
UPCOMING_SHOWN = 8
UPCOMING_BUDGET = 1000  # accounts asked about their next dunning step, at most, per request (~0.1 s)
UPCOMING_BATCH = 500
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


def _count_events(start, end, after_id, upto_id):
    """{(day as text, measure, source): count} of the events after_id < id <= upto_id dated start..end."""
    run, undone = aliased(SweepRun), aliased(SweepRun)
    day = func.date(AuditEvent.created_at)
    events = (select(day.label("day"), _measure_expression().label("measure"),
                     _source_expression(run, undone).label("source"))
              .select_from(AuditEvent)
              .outerjoin(run, run.id == AuditEvent.actor_run_id)
              .outerjoin(undone, undone.id == run.undo_of_run_id)
              .where(AuditEvent.id > after_id, AuditEvent.id <= upto_id,
                     AuditEvent.created_at >= datetime.combine(start, datetime.min.time()),
                     AuditEvent.created_at < datetime.combine(end + timedelta(days=1), datetime.min.time()),
                     AuditEvent.state_after.in_(("suspended", "active")))
              .subquery())
    query = (select(events.c.day, events.c.measure, events.c.source, func.count())
             .where(events.c.measure.is_not(None)).group_by(events.c.day, events.c.measure, events.c.source))
    return {(str(d)[:10], m, s): int(n) for d, m, s, n in db.session.execute(query)}


def _kept_ranges():
    return current_app.extensions.setdefault("portal.overview.activity", {})


def _range_name(start, end):
    return f"activity:{start.isoformat()}:{end.isoformat()}"


def _shared_range(start, end):
    """The scheduler's counts of this range (portal.domain.shared_figures), as a kept entry, or None."""
    payload = shared_figures.read(_range_name(start, end))
    if payload is None:
        return None
    try:
        mark = payload["mark"]
        return {"mark": status_counts.Mark(int(mark["event_id"]), int(mark["account_id"]), mark["snapshot"],
                                           mark["events_upto"]),
                "counts": {(str(day), str(m), str(s)): int(n) for day, m, s, n in payload["counts"]}}
    except (KeyError, TypeError, ValueError):
        return None  # written by another version: ignored


def publish_activity(today=None):
    """Bring this process's counts of the chart's default range up to date and share them with the processes
    that have none yet (the scheduler's tick calls this). Returns the Activity.

    What is shared is what this process keeps: never what a transaction that has written itself counted (its
    events may still roll back; see activity), but the counts kept before it, if any.
    """
    start, end = activity_range(today=today)
    result = activity(start, end)
    entry = _kept_ranges().get((start, end))
    if entry is not None:
        mark = entry["mark"]
        shared_figures.publish(_range_name(start, end), {
            "mark": {"event_id": mark.event_id, "account_id": mark.account_id, "snapshot": mark.snapshot,
                     "events_upto": mark.events_upto},
            "counts": [[day, m, s, n] for (day, m, s), n in entry["counts"].items()]})
    return result


def activity(start, end):
    """Count suspensions and reactivations per day of start..end (inclusive), by source, in SQL.

    The audit trail is append-only, so the counts of a range are kept (per process, a few ranges) with the
    newest event id they include, and only events with a higher id are counted the next time. A process with
    nothing kept for the range starts from the scheduler's shared counts of it, if any (publish_activity). PostgreSQL
    can commit a lower id after a higher one: the kept counts are dropped when that happened below their id
    (status_counts.still_holds, as for the status counts). Counts read inside a transaction that has written
    something itself (uncommitted, so it may roll back) are returned but not kept: the counts kept before stay.

    Args:
        start, end: dates (from activity_range).

    Returns:
        Activity, with a zero for every day and series that had none.
    """
    mark = status_counts.watermark()
    kept = _kept_ranges()
    before = kept.pop((start, end), None)
    entry = before or _shared_range(start, end)
    held = status_counts.still_holds(entry["mark"]) if entry and entry["mark"].event_id == mark.event_id else None
    if held:  # nothing new
        counts, mark = entry["counts"], held
    else:
        mark = status_counts.with_baseline(mark)  # before the counting it guards (see status_counts)
        older = entry and entry["mark"].event_id < mark.event_id and status_counts.still_holds(entry["mark"])
        counts = dict(entry["counts"]) if older else {}
        for key, n in _count_events(start, end, entry["mark"].event_id if older else 0, mark.event_id).items():
            counts[key] = counts.get(key, 0) + n
    if held or not status_counts.own_writes():  # held: the counts kept, nothing of this transaction's added
        kept[(start, end)] = {"mark": mark, "counts": counts}  # the newest range last
    elif before is not None:
        kept[(start, end)] = before  # its own events may roll back (their ids reused on SQLite): not kept
    while len(kept) > RANGES_KEPT:
        kept.pop(next(iter(kept)), None)
    days = [start + timedelta(days=i) for i in range((end - start).days + 1)]
    series = {(m, s): [counts.get((d.isoformat(), m, s), 0) for d in days] for m in MEASURES for s in SOURCES}
    return Activity(start, end, days, series, {key: sum(values) for key, values in series.items()})


def forget_activity():
    """Drop the kept activity counts (the next read counts every event again)."""
    _kept_ranges().clear()


# ---------------------------------------------------------------- runs, emails, dunning, retention

def last_runs(limit=RUNS_SHOWN):
    """Return the newest runs as the sweep history reads them, each with `undone_by` (a run id or None) and,
    until it finishes (queued, running or paused), its live `progress` (runs.progress)."""
    from portal.domain import runs

    rows = sweeps.list_runs(limit=limit)
    ids = [row["run"].id for row in rows]
    undos = dict(db.session.execute(select(SweepRun.undo_of_run_id, SweepRun.id)
                                    .where(SweepRun.undo_of_run_id.in_(ids), SweepRun.status != "failed"))
                 .all()) if ids else {}
    for row in rows:
        row["undone_by"] = undos.get(row["run"].id)
        row["progress"] = runs.progress(row["run"].id) if row["run"].status in runs.IN_PROGRESS else None
    return rows


@dataclass
class EmailCounts:
    """Emails in the outbox that are not sent yet: waiting (of which retrying after an error), being sent,
    held while their account is suspended, and failed (given up), with the oldest waiting one's time."""

    waiting: int
    retrying: int
    sending: int
    held: int
    failed: int
    oldest_waiting_at: datetime | None


def emails():
    """Count the outbox's unsent emails by status (the status index: sent emails are never read)."""
    by_status = dict(db.session.execute(select(OutboxEmail.status, func.count())
                                        .where(OutboxEmail.status.in_(("pending", "sending", "held", "failed")))
                                        .group_by(OutboxEmail.status)).all())
    retrying = db.session.scalar(select(func.count()).select_from(OutboxEmail)
                                 .where(OutboxEmail.status == "pending", OutboxEmail.attempts > 0))
    oldest = db.session.scalar(select(OutboxEmail.created_at).where(OutboxEmail.status == "pending")
                               .order_by(OutboxEmail.id).limit(1))
    return EmailCounts(int(by_status.get("pending", 0)), int(retrying or 0), int(by_status.get("sending", 0)),
                       int(by_status.get("held", 0)), int(by_status.get("failed", 0)), oldest)


def _looks_due(until, after=None):
    """The accounts the schedule looks at by `until`, after `after` (next look, id) in that order (SQL condition)."""
    due = and_(Account.dunning_next_on.is_not(None), Account.dunning_next_on <= until)
    if after is not None:  # keyset on the partial index (dunning_next_on, id), written as the index walks it
        due = and_(due, Account.dunning_next_on >= after[0],
                   or_(Account.dunning_next_on > after[0], Account.id > after[1]))
    return due


def upcoming_steps(as_of=None, days=UPCOMING_DAYS, shown=UPCOMING_SHOWN, budget=None):
    """The dunning steps due in the next `days` days, found as /dunning/upcoming finds them, within a budget.

    dunning.daily.upcoming asks calendar.evaluate about every account the schedule looks at by then (tens
    of thousands at a million accounts: seconds of Python). Here the same accounts are taken in the order of
    their next look (accounts.dunning_next_on, through its partial index) and at most `budget` are asked,
    with the same questions. No step comes before its account's next look (the daily run relies on it), so
    when the budget runs out on day D, every step before D has been found; the rest is a lower bound.

    Args:
        as_of: the day (default today).
        days: how far ahead.
        shown: how many steps to list (the first by date).
        budget: accounts asked at most (default UPCOMING_BUDGET).

    Returns:
        dict(rows=[the first `shown` steps, as daily.upcoming's rows], by_action={limitation, suspension,
        reapply}, total, day, until, complete (every account was asked), exact_before (None, or the day before which
        the counts are complete), left (accounts not asked)).
    """
    day = day_of(as_of)
    until = day + timedelta(days=days)
    budget = budget or UPCOMING_BUDGET
    found, asked, last = [], 0, None
    while asked < budget:
        batch = db.session.execute(select(Account.dunning_next_on, Account.id).where(_looks_due(until, last))
                                   .order_by(Account.dunning_next_on, Account.id)
                                   .limit(min(UPCOMING_BATCH, budget - asked))).all()
        if not batch:
            break
        facts = load_facts([aid for _on, aid in batch])
        for _on, aid in batch:
            row, account_facts = facts[aid]
            if row.status == "cancelled" or row.exempt:
                continue
            view = evaluate(account_facts, day)
            if view.pending_action and view.pending_date and day <= view.pending_date <= until:
                found.append({"date": view.pending_date, "action": view.pending_action, "id": aid,
                              "class_id": row.customer_class_id, "owed_cents": view.overdue_cents,
                              "invoices": view.overdue_seqs, "label": view.status})
        asked += len(batch)
        last = tuple(batch[-1])
    left = (db.session.scalar(select(func.count()).select_from(Account).where(_looks_due(until, last)))
            if last is not None and asked >= budget else 0)
    found.sort(key=lambda f: (f["date"], f["id"]))
    by_action = {"limitation": 0, "suspension": 0, "reapply": 0}
    for step in found:
        by_action[step["action"]] = by_action.get(step["action"], 0) + 1
    rows = found[:shown]
    names = dict((r.id, r) for r in db.session.execute(select(Account.id, Account.number, Account.name)
                                                        .where(Account.id.in_([r["id"] for r in rows])))) if rows else {}
    for item in rows:
        item["number"], item["name"] = names[item["id"]].number, names[item["id"]].name
    return {"rows": rows, "by_action": by_action, "total": len(found), "day": day, "until": until, "complete": not left,
            "exact_before": last[0] if left else None, "left": left}


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
