"""The daily dunning evaluation on the run engine: limit, suspend and re-apply what is due as of a day.

A run looks only at the accounts whose next look (accounts.dunning_next_on) is due on its day, read
through a partial index, so its cost follows the accounts due a look, not the number of accounts; a
day on which nothing is due has no chunk at all. Each chunk is one transaction: it locks its
candidates, reads their facts in four queries, asks calendar.evaluate (the same function every page
asks) what each needs, then writes set-based: one compare-and-set UPDATE per kind of change, the
audit rows and the emails in one INSERT each, and each account's next look. A killed worker's chunk
rolls back and is done again; the day's run is unique (period key "dunning:YYYY-MM-DD").
"""
from collections import defaultdict
from datetime import date, datetime, timedelta

from sqlalchemy import func, insert, select, update

from portal.domain import notify, runs
from portal.domain.dunning import daily_sql
from portal.domain.dunning.account_state import day_of, moment_of
from portal.domain.dunning.calendar import RANK, evaluate, next_look, warning_due
from portal.domain.dunning.emails import queue_step_emails
from portal.domain.dunning.facts import load_facts
from portal.domain.money import dollars
from portal.extensions import db
from portal.models import Account, AuditEvent, OutboxEmail, SweepRun, SweepRunChunk, User
from portal.timeutil import utcnow

NOTE = "Daily dunning evaluation"
SAMPLE = 20


def period_key(day):
    """The unique key of a day's run."""
    return f"dunning:{day.isoformat()}"


def start_daily_run(actor=None, as_of=None, trigger="cli", enqueue=True):
    """Start the dunning evaluation of a day (default today) on the sweeps queue.

    Raises:
        PeriodAlreadyRun: that day has already run (one run per as-of day, enforced by the database).
        RunInProgress: another dunning run is queued or running.
    """
    day = day_of(as_of)
    moment = datetime.combine(day, datetime.min.time())
    return runs.start_run(actor, "dunning", "evaluate", {"type": "dunning", "day": day.isoformat()}, "non_payment",
                          NOTE, as_of=moment, trigger=trigger, period_key=period_key(day), enqueue=enqueue)


def _decide(row, facts, day):
    """What the run does to one candidate: (change to or None, warning or None, next look, view)."""
    view = evaluate(facts, day)
    change = None
    if (row.status not in ("cancelled",) and not row.exempt
            and RANK.get(row.status, 0) < RANK[view.target]):
        change = view.target
    warning = None
    if change is None:
        due = warning_due(facts, view)
        if due and due[0] != row.dunning_warned:
            warning = due
    return change, warning, next_look(facts, day), view


def process_chunk(run, chunk_id, lo, hi, selected, now):
    """Evaluate the chunk's due accounts as of the run's day and apply what is due, in one transaction."""
    claimed = db.session.execute(update(SweepRunChunk).where(SweepRunChunk.id == chunk_id,
                                                             SweepRunChunk.done_at.is_(None))
                                 .values(claimed_at=now)).rowcount
    if claimed != 1:
        db.session.rollback()
        return 0
    day = date.fromisoformat(run.params["selection"]["day"])
    daily_sql.settings_for_chunk()
    query = daily_sql.candidates(lo, hi, selected)
    if db.engine.dialect.name == "postgresql":
        query = query.with_for_update()  # a payment for one of them waits for this chunk, then sees its result
    ids = list(db.session.scalars(query))
    stamp = moment_of(day)  # the changes are dated on the run's day (a replayed calendar reads true)
    # the class schedule alone, in SQL, for most; calendar.evaluate for those with manual dates and the like
    simple = set(daily_sql.note_rows(lo, hi, selected, day))
    counts = defaultdict(int, daily_sql.apply_rows(run, runs.run_label(run), NOTE, stamp))
    changed_count = sum(counts.values())
    facts = load_facts([aid for aid in ids if aid not in simple])
    plan = {aid: (row,) + _decide(row, f, day) for aid, (row, f) in facts.items()}
    lifted = {aid for aid, (_row, f) in facts.items() if _lift_ended(f, day)}
    changed, python_counts = _write_changes(run, plan, stamp, lifted)
    for key, value in python_counts.items():
        counts[key] += value
    changed_count += len(changed)
    _write_warnings(plan, stamp, counts)
    _write_next_looks(plan, changed)
    looked = len(simple) + len(plan)
    counts["nothing due"] = looked - sum(counts.values())
    counts = {k: v for k, v in counts.items() if v}
    db.session.execute(update(SweepRunChunk).where(SweepRunChunk.id == chunk_id)
                       .values(done_at=now, matched=looked, changed=changed_count,
                               skipped=looked - changed_count, skip_reasons=counts))
    db.session.execute(update(SweepRun).where(SweepRun.id == run.id).values(heartbeat_at=now, cursor_id=hi - 1))
    db.session.commit()
    return changed_count


def _lift_ended(facts, day):
    """The account's episode had a lift that has ended by day: what the run applies is a re-application."""
    o = facts.override
    return bool(o and o.lift_until and o.lift_until <= day)


def _write_changes(run, plan, now, lifted):
    """One compare-and-set UPDATE per (state before, state after); audit rows and emails for what changed."""
    groups = defaultdict(list)
    for aid, (row, change, _warning, _next, _view) in plan.items():
        if change:
            groups[(row.status, change)].append((aid, row.version, aid in lifted))
    changed, counts = set(), defaultdict(int)
    label = runs.run_label(run)
    for (before, after), members in groups.items():
        ids = [aid for aid, _v, _r in members]
        done = set(db.session.scalars(
            update(Account).where(Account.id.in_(ids), Account.status == before)
            .values(status=after, status_reason="non_payment", status_source="dunning", status_note=NOTE,
                    status_changed_at=now, suspended_by_run_id=run.id, version=Account.version + 1,
                    dunning_warned=None)
            .returning(Account.id).execution_options(synchronize_session=False)))
        audit_rows = []
        for aid, version, reapplied in members:
            if aid not in done:
                continue
            view = plan[aid][4]
            audit_rows.append(dict(created_at=now, account_id=aid, actor_user_id=run.triggered_by_id, actor_run_id=run.id,
                                   actor_label=label, action=after, reason_category="non_payment",
                                   reason_note=_note(view), state_before=before, state_after=after,
                                   data={"dunning": True, "invoices": view.overdue_seqs, "reapplied": reapplied}))
            counts["re-applied after a lift" if reapplied else after] += 1
        if audit_rows:
            db.session.execute(insert(AuditEvent), audit_rows)
        changed |= done
        if after == "suspended":
            _hold_members_mail(done)
        queue_step_emails(after, sorted(done), now, {aid: plan[aid][4] for aid in done})
    return changed, counts


def _note(view):
    owed = dollars(view.overdue_cents)
    seqs = ", ".join(f"#{s}" for s in view.overdue_seqs)
    return f"{owed} overdue (invoices {seqs}) since {view.episode_start.isoformat()}"


def _hold_members_mail(account_ids):
    """Members' pending emails wait while their account is suspended (released on reactivation)."""
    if not account_ids:
        return
    members = select(User.id).where(User.account_id.in_(list(account_ids)), User.role.in_(notify.MEMBER_ROLES))
    db.session.execute(update(OutboxEmail).where(OutboxEmail.account_id.in_(list(account_ids)),
                                                 OutboxEmail.status == "pending", OutboxEmail.user_id.in_(members))
                       .values(status="held").execution_options(synchronize_session=False))


def _write_warnings(plan, now, counts):
    """Warn the managers of accounts whose next step is within the class's warning days (once per step date)."""
    by_step = defaultdict(list)
    for aid, (_row, change, warning, _next, _view) in plan.items():
        if warning and not change:
            by_step[warning[1]].append((aid, warning))
    for step, members in by_step.items():
        ids = [aid for aid, _w in members]
        queue_step_emails(f"warning_{step}", ids, now, {aid: plan[aid][4] for aid in ids},
                          step_dates={aid: w[2] for aid, w in members})
        by_key = defaultdict(list)
        for aid, w in members:
            by_key[w[0]].append(aid)
        for key, key_ids in by_key.items():
            db.session.execute(update(Account).where(Account.id.in_(key_ids)).values(dunning_warned=key)
                               .execution_options(synchronize_session=False))
        counts[f"warned of {step}"] += len(members)


def _write_next_looks(plan, changed):
    """Each candidate's next look: one UPDATE per distinct day (few), not one per account."""
    by_day = defaultdict(list)
    for aid, (_row, _change, _warning, next_day, _view) in plan.items():
        by_day[next_day].append(aid)
    for next_day, ids in by_day.items():
        for start in range(0, len(ids), 10000):
            db.session.execute(update(Account).where(Account.id.in_(ids[start:start + 10000]))
                               .values(dunning_next_on=next_day).execution_options(synchronize_session=False))


def due_a_look(selection, as_of):  # noqa: ARG001
    """The accounts a day's run looks at: those whose next look is due on its day (a partial index)."""
    due = Account.dunning_next_on <= date.fromisoformat(selection["day"])
    if db.engine.dialect.name == "sqlite":
        # SQLite's planner hint that few rows match: without statistics it listed a run's candidates in id
        # order by reading every account (0.3-0.5 s at 1M accounts, most of a day with nothing due)
        return func.unlikely(due)
    return due


runs.register_selection("dunning", due_a_look, by_candidates=True)
runs.register_chunk_processor("dunning", process_chunk)


# ---------------------------------------------------------------- reading: preview and upcoming

def _candidates(until_day, batch=5000):
    """Yield (row, facts) of the accounts whose next look is due by until_day, in id order, in batches."""
    last = 0
    while True:
        ids = list(db.session.scalars(select(Account.id).where(Account.dunning_next_on <= until_day, Account.id > last)
                                      .order_by(Account.id).limit(batch)))
        if not ids:
            return
        facts = load_facts(ids)
        for aid in ids:
            if aid in facts:
                yield facts[aid]
        last = ids[-1]


def preview(as_of=None, sample_size=SAMPLE):
    """What the day's run would change, per step, with a sample; nothing is written.

    Returns:
        dict(day, looked_at, steps={limited, suspended, warned}, sample=[{number, name, change, invoices, owed}]).
    """
    day = day_of(as_of)
    steps, sample, looked = defaultdict(int), [], 0
    numbers = {}
    for row, facts in _candidates(day):
        looked += 1
        change, warning, _next, view = _decide(row, facts, day)
        what = change or (f"warned of {warning[1]}" if warning else None)
        if what is None:
            continue
        steps[what] += 1
        if len(sample) < sample_size:
            sample.append({"id": row.id, "change": what, "invoices": view.overdue_seqs,
                           "owed_cents": view.overdue_cents, "since": view.episode_start})
            numbers[row.id] = None
    if sample:
        found = dict((r.id, r) for r in db.session.execute(select(Account.id, Account.number, Account.name)
                                                            .where(Account.id.in_(list(numbers)))))
        for item in sample:
            item["number"], item["name"] = found[item["id"]].number, found[item["id"]].name
    return {"day": day, "looked_at": looked, "steps": dict(steps), "sample": sample}


def upcoming(as_of=None, days=7, class_id=None, limit=None):
    """The accounts that will be limited or suspended within `days` days, by date (staff call them first).

    Returns:
        list of dicts: date, action (limitation | suspension | reapply), id, number, name, class, owed_cents,
        invoices; sorted by date then number.
    """
    day = day_of(as_of)
    until = day + timedelta(days=days)
    found = []
    for row, facts in _candidates(until):
        if class_id is not None and row.customer_class_id != class_id:
            continue
        if row.status == "cancelled" or row.exempt:
            continue
        view = evaluate(facts, day)
        if view.pending_action and view.pending_date and day <= view.pending_date <= until:
            found.append({"date": view.pending_date, "action": view.pending_action, "id": row.id,
                          "class_id": row.customer_class_id, "owed_cents": view.overdue_cents,
                          "invoices": view.overdue_seqs, "label": view.status})
    if found:
        info = {r.id: r for r in db.session.execute(select(Account.id, Account.number, Account.name)
                                                     .where(Account.id.in_([f["id"] for f in found])))}
        for item in found:
            item["number"], item["name"] = info[item["id"]].number, info[item["id"]].name
    found.sort(key=lambda f: (f["date"], f["number"]))
    return found[:limit] if limit else found


# ---------------------------------------------------------------- the daily schedule

DEFAULT_TIME = "02:00"


def daily_slot(now, time_of_day=DEFAULT_TIME):
    """The latest daily slot at or before now (a datetime)."""
    hours, minutes = (int(part) for part in (time_of_day or DEFAULT_TIME).split(":"))
    slot = now.replace(hour=hours, minute=minutes, second=0, microsecond=0)
    return slot if slot <= now else slot - timedelta(days=1)


def tick(now=None):
    """Start today's dunning run once the day's slot has come (or a missed slot's, as of now); return its id.

    One run per as-of day, enforced by the database (period key), so any number of schedulers can tick. A
    slot missed while no scheduler was up is caught up as of now: the run of today covers every day before
    it, because each step applies "on or after" its date.
    """
    from portal.domain.background import BackgroundUnavailable
    from portal.models import DunningSchedule

    now = now or utcnow()
    schedule = db.session.scalar(select(DunningSchedule).order_by(DunningSchedule.id).limit(1))
    if schedule is not None and not schedule.enabled:
        return None
    slot = daily_slot(now, schedule.time_of_day if schedule else DEFAULT_TIME)
    done = db.session.scalar(select(SweepRun.id).where(SweepRun.period_key.in_(
        (period_key(slot.date()), period_key(now.date())))).limit(1))
    if done is not None:
        return None
    try:
        return start_daily_run(None, now.date(), trigger="schedule").id
    except (runs.PeriodAlreadyRun, runs.RunInProgress, BackgroundUnavailable):
        db.session.rollback()  # another scheduler started it, or the queue is down: a later tick tries again
        return None
