"""The set-based run engine: suspend or reactivate every account a selection picks, in chunks.

A run covers the account id range that existed when it started, cut into chunks. Workers claim
chunks; each chunk is one transaction that compare-and-sets the accounts' status, writes one audit
event per changed account, queues the managers' emails, and marks the chunk done. A killed worker's
chunk rolls back and is claimed again later, so every account changes once, with one event and one
email. Any number of workers can work on one run at the same time.

A selection is a JSON-able dict stored with the run; `SELECTIONS[type](selection, as_of)` turns it
into a SQL condition over accounts (rules, an account-list filter, explicit ids, the accounts an
earlier run suspended).
"""
import logging
import os
import socket
import time
from datetime import timedelta

from flask import current_app, render_template
from sqlalchemy import (DateTime, and_, case, exists, func, insert, literal, null, or_, select, update)
from sqlalchemy.exc import OperationalError

from portal.domain import audit, rules as rules_domain
from portal.domain.errors import DomainError, InvalidTransition, PermissionDenied, ValidationFailed  # noqa: F401
from portal.domain.gate import REASONS, may
from portal.domain.suspension import validate_reason
from portal.extensions import QUEUE_SWEEPS, db, get_queue
from portal.models import Account, AuditEvent, OutboxEmail, SweepRun, SweepRunChunk, User
from portal.timeutil import utcnow

log = logging.getLogger(__name__)

ACTIONS = {
    # action: (states it applies to, state after, audit action, email kind)
    "suspend": (("active", "limited"), "suspended", "suspended", "account_suspended"),
    "reactivate": (("suspended", "limited"), "active", "reactivated", "account_reactivated"),
}
KINDS = ("cleanup", "recurring", "bulk", "undo")
ACTIVE_STATUSES = ("queued", "running")
SELECTIONS = {}


class RunNotFound(DomainError):
    """No such run."""

    status_code = 404

    def __init__(self):
        super().__init__("Run not found.")


def register_selection(kind, build):
    """Register build(selection, as_of) -> SQL condition over accounts, for selections of this type."""
    SELECTIONS[kind] = build


def _rules_selection(selection, as_of):
    return rules_domain.match_clause(selection["rules"], as_of)


def _ids_selection(selection, as_of):  # noqa: ARG001
    return Account.id.in_([int(i) for i in selection["ids"]])


def _undo_selection(selection, as_of):  # noqa: ARG001
    return Account.suspended_by_run_id == int(selection["run_id"])


register_selection("rules", _rules_selection)
register_selection("ids", _ids_selection)
register_selection("undo", _undo_selection)


def selection_clause(selection, as_of):
    """Return the SQL condition of a stored selection."""
    try:
        build = SELECTIONS[selection["type"]]
    except (KeyError, TypeError):
        raise ValidationFailed({"selection": "Unknown selection."}) from None
    return build(selection, as_of)


# ---------------------------------------------------------------- starting and reading runs

def start_run(actor, kind, action, selection, reason_category, reason_note, as_of=None, trigger="user",
              schedule_id=None, period_key=None, undo_of_run_id=None, chunk_size=None, enqueue=True, now=None):
    """Create a run with its chunks and queue its processing on the sweeps queue.

    Args:
        actor: the super admin starting it, or None for the schedule.
        kind: cleanup | recurring | bulk | undo.
        action: suspend | reactivate.
        selection: which accounts (see SELECTIONS), stored with the run.
        reason_category, reason_note: why (as for a single suspension).
        as_of: the time rules are evaluated at (default now).
        trigger: user | schedule | cli.
        schedule_id, period_key: for recurring runs (period_key is unique: a period never runs twice).
        undo_of_run_id: the run an undo reverses.
        chunk_size: accounts per chunk (default SWEEP_CHUNK_SIZE).
        enqueue: False to leave processing to the caller (tests, benchmarks).

    Returns:
        The queued SweepRun.

    Raises:
        PermissionDenied, ValidationFailed, IntegrityError (period already run).
    """
    if actor is not None:
        decision = may(actor, "run_sweep", None)
        if not decision:
            raise PermissionDenied(decision.message)
    if kind not in KINDS or action not in ACTIONS:
        raise ValidationFailed({"kind": "Unknown kind of run."})
    category, note = validate_reason(reason_category, reason_note)
    now = now or utcnow()
    as_of = as_of or now
    selection_clause(selection, as_of)  # refuse a bad selection before anything is stored
    run = SweepRun(kind=kind, action=action, status="queued", as_of=as_of, trigger=trigger,
                   triggered_by_id=getattr(actor, "id", None), schedule_id=schedule_id, period_key=period_key,
                   undo_of_run_id=undo_of_run_id, reason_category=category, reason_note=note,
                   rules_snapshot=selection.get("rules"), params={"selection": selection},
                   chunk_size=chunk_size or current_app.config["SWEEP_CHUNK_SIZE"], created_at=now)
    db.session.add(run)
    db.session.flush()
    lo, hi = db.session.execute(select(func.min(Account.id), func.max(Account.id))).one()
    run.min_id, run.max_id = lo, hi
    if lo is not None:
        db.session.execute(insert(SweepRunChunk), [
            dict(run_id=run.id, lo=start, hi=min(start + run.chunk_size, hi + 1), matched=0, changed=0, skipped=0)
            for start in range(lo, hi + 1, run.chunk_size)])
    audit.record(f"run_{kind}_started", None, actor or "Schedule", run_id=run.id, reason_category=category,
                 reason_note=note, data={"action": action, "selection": selection, "as_of": as_of.isoformat()},
                 now=now)
    db.session.commit()
    if enqueue:
        enqueue_run(run.id)
    return run


def enqueue_run(run_id, jobs=None):
    """Queue `jobs` workers' worth of processing for a run (they share its chunks); return True if queued."""
    from rq import Retry

    jobs = jobs or int(current_app.config.get("SWEEP_PARALLEL_JOBS", 2))
    try:
        queue = get_queue(QUEUE_SWEEPS)
        stamp = int(time.time())
        for i in range(jobs):
            queue.enqueue("portal.jobs.process_run", run_id, job_id=f"run-{run_id}-{stamp}-{i}",
                          job_timeout=6 * 3600, retry=Retry(max=3, interval=[5, 30, 120]),
                          description=f"process run #{run_id}")
    except Exception as exc:  # noqa: BLE001 - the run stays queued and can be resumed
        log.warning("could not queue run %s: %s", run_id, exc)
        return False
    return True


def get_run(run_id):
    """Return the run or raise RunNotFound."""
    run = db.session.get(SweepRun, int(run_id)) if str(run_id).isdigit() else None
    if run is None:
        raise RunNotFound()
    return run


def progress(run_id):
    """Return a run's live progress: status, counts so far, skip reasons, fraction done.

    Raises:
        RunNotFound.
    """
    run = get_run(run_id)
    db.session.refresh(run)
    row = db.session.execute(
        select(func.count(), func.count(SweepRunChunk.done_at), func.coalesce(func.sum(SweepRunChunk.matched), 0),
               func.coalesce(func.sum(SweepRunChunk.changed), 0), func.coalesce(func.sum(SweepRunChunk.skipped), 0))
        .where(SweepRunChunk.run_id == run.id)).one()
    total, done, matched, changed, skipped = row
    reasons = {}
    for (chunk_reasons,) in db.session.execute(select(SweepRunChunk.skip_reasons).where(
            SweepRunChunk.run_id == run.id, SweepRunChunk.done_at.is_not(None))):
        for reason, count in (chunk_reasons or {}).items():
            reasons[reason] = reasons.get(reason, 0) + count
    duration = None
    if run.started_at:
        duration = ((run.finished_at or utcnow()) - run.started_at).total_seconds()
    return {"id": run.id, "status": run.status, "kind": run.kind, "action": run.action, "matched": int(matched),
            "changed": int(changed), "skipped": int(skipped), "skip_reasons": reasons,
            "chunks": int(total), "chunks_done": int(done),
            "done_fraction": (done / total) if total else 1.0,
            "finished": run.status in ("done", "failed"), "error": run.error, "duration_s": duration}


def resume_run(actor, run_id):
    """Queue a failed or stalled run again; chunks already done are not redone.

    Raises:
        PermissionDenied, RunNotFound, InvalidTransition.
    """
    if actor is not None and not may(actor, "run_sweep", None):
        raise PermissionDenied(may(actor, "run_sweep", None).message)
    run = get_run(run_id)
    if run.status == "done":
        raise InvalidTransition(f"Run #{run.id} has already finished.")
    run.status, run.error = "queued", None
    audit.record("run_resumed", None, actor or "System", run_id=run.id)
    db.session.commit()
    enqueue_run(run.id)
    return run


# ---------------------------------------------------------------- processing (the RQ job calls this)

def process_run(run_id, worker_name=None, stale_after=None, poll=0.5):
    """Work on a run until none of its chunks is left to claim; finish it if all are done.

    Chunks claimed by another live worker are left to it; a chunk whose claim is older than
    `stale_after` seconds (a killed worker) is claimed again. Returns progress(run_id).
    """
    worker_name = worker_name or f"{socket.gethostname()}:{os.getpid()}"
    stale_after = stale_after if stale_after is not None else current_app.config.get("SWEEP_CHUNK_STALE_SECONDS", 300)
    run = get_run(run_id)
    if run.status == "done":
        return progress(run_id)
    _mark_running(run)
    try:
        while True:
            chunk = _claim_chunk(run.id, worker_name, stale_after)
            if chunk is None:
                if _all_done(run.id):
                    break
                time.sleep(poll)  # others are on the remaining chunks; take over any that go stale
                continue
            _process_chunk_with_retry(run, chunk)
    except Exception as exc:
        db.session.rollback()
        _mark_failed(run.id, exc)
        raise
    _finish(run.id)
    return progress(run_id)


def _mark_running(run):
    now = utcnow()
    db.session.execute(update(SweepRun).where(SweepRun.id == run.id, SweepRun.status.in_(("queued", "failed")))
                       .values(status="running", started_at=func.coalesce(SweepRun.started_at, now),
                               heartbeat_at=now, error=None).execution_options(synchronize_session=False))
    db.session.commit()
    db.session.refresh(run)


def _mark_failed(run_id, exc):
    db.session.execute(update(SweepRun).where(SweepRun.id == run_id, SweepRun.status != "done")
                       .values(status="failed", error=f"{type(exc).__name__}: {exc}"[:2000])
                       .execution_options(synchronize_session=False))
    db.session.commit()


def _claim_chunk(run_id, worker_name, stale_after):
    """Atomically claim the next chunk nobody is working on; return (id, lo, hi) or None."""
    now = utcnow()
    stale_at = now - timedelta(seconds=stale_after)
    candidate = (select(SweepRunChunk.id)
                 .where(SweepRunChunk.run_id == run_id, SweepRunChunk.done_at.is_(None),
                        or_(SweepRunChunk.claimed_at.is_(None), SweepRunChunk.claimed_at < stale_at))
                 .order_by(SweepRunChunk.id).limit(1))
    if db.engine.dialect.name == "postgresql":
        candidate = candidate.with_for_update(skip_locked=True)
    stmt = (update(SweepRunChunk).where(SweepRunChunk.id == candidate.scalar_subquery())
            .values(claimed_at=now, claimed_by=worker_name)
            .returning(SweepRunChunk.id, SweepRunChunk.lo, SweepRunChunk.hi))
    row = db.session.execute(stmt).first()
    db.session.execute(update(SweepRun).where(SweepRun.id == run_id).values(heartbeat_at=now))
    db.session.commit()
    return tuple(row) if row else None


def _all_done(run_id):
    left = db.session.scalar(select(func.count()).select_from(SweepRunChunk)
                             .where(SweepRunChunk.run_id == run_id, SweepRunChunk.done_at.is_(None)))
    return left == 0


def _finish(run_id):
    totals = progress(run_id)
    db.session.execute(update(SweepRun).where(SweepRun.id == run_id, SweepRun.status == "running")
                       .values(status="done", finished_at=utcnow(), matched=totals["matched"],
                               changed=totals["changed"], skipped=totals["skipped"],
                               skip_reasons=totals["skip_reasons"])
                       .execution_options(synchronize_session=False))
    run = db.session.get(SweepRun, run_id)
    audit.record(f"run_{run.kind}_finished", None, "System", run_id=run_id,
                 data={k: totals[k] for k in ("matched", "changed", "skipped", "skip_reasons")})
    db.session.commit()
    from portal.domain import notify

    notify.kick_delivery()


def _process_chunk_with_retry(run, chunk, attempts=5):
    for attempt in range(attempts):
        try:
            return process_chunk(run, *chunk)
        except OperationalError as exc:  # SQLite busy snapshot / PostgreSQL serialization: the chunk rolled back
            db.session.rollback()
            if attempt == attempts - 1:
                raise
            log.info("chunk %s of run %s retried after %s", chunk[0], run.id, exc.orig)
            time.sleep(0.2 * (attempt + 1))


# ---------------------------------------------------------------- one chunk, one transaction

def _target_clause(run, lo, hi, as_of):
    """The accounts of [lo, hi) this run changes now (compare-and-set on the current state)."""
    states = _states(run)
    base = and_(Account.id >= lo, Account.id < hi, selection_clause(run.params["selection"], as_of))
    conditions = [base, Account.status.in_(states)]
    if run.action == "suspend":
        conditions.append(Account.exempt.is_(False))
        conditions.append(~_reactivated_since(run.created_at))
    return and_(*conditions), base


def _reactivated_since(moment):
    """An admin reactivated the account after the run started: the run must leave it alone."""
    return exists().where(AuditEvent.account_id == Account.id, AuditEvent.action == "reactivated",
                          AuditEvent.created_at >= moment)


def _skip_reasons(run, base, states):
    """Count the accounts the selection matched but this run leaves alone, by reason."""
    whens = [(~Account.status.in_(states), literal("already ") + Account.status)]
    if run.action == "suspend":
        whens.append((Account.exempt.is_(True), literal("exempt")))
        whens.append((_reactivated_since(run.created_at), literal("reactivated by an admin during the run")))
    reason = case(*whens, else_=literal("other")).label("reason")
    rows = db.session.execute(select(reason, func.count()).where(base, or_(*(cond for cond, _ in whens)))
                              .group_by(reason)).all()
    return {str(r): int(c) for r, c in rows}


def _states(run):
    """The states this run changes: an undo only touches accounts still suspended."""
    return ("suspended",) if run.kind == "undo" else ACTIONS[run.action][0]


def process_chunk(run, chunk_id, lo, hi, now=None):
    """Apply the run to accounts lo <= id < hi in one transaction and mark the chunk done.

    Returns the number of accounts changed (0 if another worker already did this chunk).
    """
    now = now or utcnow()
    after, action, email_kind = ACTIONS[run.action][1:]
    states = _states(run)
    # Take the write lock first (SQLite), and make sure the chunk is still ours to do.
    claimed = db.session.execute(update(SweepRunChunk).where(SweepRunChunk.id == chunk_id,
                                                             SweepRunChunk.done_at.is_(None))
                                 .values(claimed_at=now)).rowcount
    if claimed != 1:
        db.session.rollback()
        return 0
    target, base = _target_clause(run, lo, hi, run.as_of)
    matched = db.session.scalar(select(func.count()).select_from(Account).where(base))
    skip_reasons = _skip_reasons(run, base, states) if matched else {}
    values = _account_values(run, after, now)
    label = run_label(run)
    if db.engine.dialect.name == "postgresql":
        changed = _change_postgresql(run, target, values, after, action, label, lo, hi, now)
    else:
        changed = _change_sqlite(run, target, values, states, after, action, label, lo, hi, now)
    if changed:
        _queue_emails(run, lo, hi, action, email_kind, now)
        if run.action == "reactivate":
            db.session.execute(update(OutboxEmail).where(OutboxEmail.status == "held", OutboxEmail.account_id.in_(
                _changed_ids(run, lo, hi, action))).values(status="pending"))
    skipped = matched - changed
    accounted = sum(skip_reasons.values())
    if skipped > accounted:
        skip_reasons["changed by someone else at the same moment"] = skipped - accounted
    db.session.execute(update(SweepRunChunk).where(SweepRunChunk.id == chunk_id)
                       .values(done_at=now, matched=matched, changed=changed, skipped=skipped,
                               skip_reasons=skip_reasons))
    db.session.execute(update(SweepRun).where(SweepRun.id == run.id).values(heartbeat_at=now, cursor_id=hi - 1))
    db.session.commit()
    return changed


def run_label(run):
    """Name a run as the actor of its audit events."""
    names = {"cleanup": "Clean-up run", "recurring": "Scheduled sweep", "bulk": "Bulk action", "undo": "Undo run"}
    return f"{names.get(run.kind, 'Run')} #{run.id}"


def _account_values(run, after, now):
    if after == "suspended":
        return dict(status=after, status_reason=run.reason_category, status_note=run.reason_note,
                    status_source="bulk" if run.kind == "bulk" else "sweep", status_changed_at=now,
                    suspended_by_run_id=run.id, version=Account.version + 1)
    return dict(status=after, status_reason=None, status_note=None, status_source=None, status_changed_at=now,
                suspended_by_run_id=None, version=Account.version + 1)


def _audit_columns():
    return ["created_at", "account_id", "actor_user_id", "actor_run_id", "actor_label", "action",
            "reason_category", "reason_note", "state_before", "state_after"]


def _audit_values(run, action, label, now):
    return [literal(now, DateTime()), literal(run.triggered_by_id) if run.triggered_by_id else null(),
            literal(run.id), literal(label), literal(action), literal(run.reason_category), literal(run.reason_note)]


def _change_sqlite(run, target, values, states, after, action, label, lo, hi, now):
    """SQLite: insert the audit rows from the selection, then update the accounts they name."""
    t_now, t_user, t_run, t_label, t_action, t_cat, t_note = _audit_values(run, action, label, now)
    rows = select(t_now, Account.id, t_user, t_run, t_label, t_action, t_cat, t_note, Account.status,
                  literal(after)).where(target)
    changed = db.session.execute(insert(AuditEvent.__table__).from_select(_audit_columns(), rows)).rowcount
    if changed:
        db.session.execute(update(Account).where(Account.id.in_(_changed_ids(run, lo, hi, action)),
                                                 Account.status.in_(states))
                           .values(**values).execution_options(synchronize_session=False))
    return changed


def _change_postgresql(run, target, values, after, action, label, lo, hi, now):
    """PostgreSQL: one statement — lock and update the accounts, and insert their audit rows."""
    picked = select(Account.id, Account.status).where(target).with_for_update().cte("picked")
    acc = Account.__table__
    upd = (update(acc).where(acc.c.id == picked.c.id).values(**{k: v for k, v in values.items()})
           .returning(acc.c.id, picked.c.status.label("before")).cte("upd"))
    t_now, t_user, t_run, t_label, t_action, t_cat, t_note = _audit_values(run, action, label, now)
    rows = select(t_now, upd.c.id, t_user, t_run, t_label, t_action, t_cat, t_note, upd.c.before, literal(after))
    stmt = insert(AuditEvent.__table__).from_select(_audit_columns(), rows).add_cte(picked).add_cte(upd)
    db.session.execute(stmt)
    # SQLAlchemy reports no rowcount for an INSERT fed by a data-modifying CTE: count what was written.
    return db.session.scalar(select(func.count()).select_from(_changed_ids(run, lo, hi, action).subquery()))


def _changed_ids(run, lo, hi, action):
    return select(AuditEvent.account_id).where(AuditEvent.actor_run_id == run.id, AuditEvent.action == action,
                                               AuditEvent.account_id >= lo, AuditEvent.account_id < hi)


def _queue_emails(run, lo, hi, action, email_kind, now):
    """Queue one email per account manager of every account this chunk changed (set-based)."""
    subject_parts, body_parts = _email_template(run, email_kind)
    changed = _changed_ids(run, lo, hi, action).subquery()

    def concat(parts):
        expr = None
        for part in parts:
            piece = {"\x01USER\x01": User.name, "\x01NUMBER\x01": Account.number,
                     "\x01NAME\x01": Account.name}.get(part, literal(part))
            expr = piece if expr is None else expr + piece
        return expr if expr is not None else literal("")

    rows = (select(literal(now, DateTime()), Account.id, User.id, literal(email_kind), User.email,
                   concat(subject_parts), concat(body_parts), literal("pending"), literal(0))
            .select_from(User).join(Account, Account.id == User.account_id)
            .where(User.account_id.in_(select(changed.c.account_id)), User.role == "account_manager",
                   User.disabled.is_(False), User.email_notifications.is_(True)))
    db.session.execute(insert(OutboxEmail.__table__).from_select(
        ["created_at", "account_id", "user_id", "kind", "to_addr", "subject", "body", "status", "attempts"], rows))


def _email_template(run, email_kind):
    """Render the email once with placeholders, split so SQL can fill in each account's values."""
    import re

    class Placeholder:
        name = "\x01USER\x01"
        number = "\x01NUMBER\x01"

    class AccountPlaceholder:
        number = "\x01NUMBER\x01"
        name = "\x01NAME\x01"

    template = "account_suspended.txt" if email_kind == "account_suspended" else "account_reactivated.txt"
    body = render_template(f"email/{template}", user=Placeholder(), account=AccountPlaceholder(),
                           billing_contact=current_app.config["BILLING_CONTACT"], reason=run.reason_category,
                           note=run.reason_note, reasons=REASONS)
    subject = ("Your account \x01NUMBER\x01 has been suspended" if email_kind == "account_suspended"
               else "Your account \x01NUMBER\x01 is active again")
    split = re.compile(r"(\x01[A-Z]+\x01)")
    return [p for p in split.split(subject) if p], [p for p in split.split(body) if p]
