"""One chunk of a run: one transaction over the accounts lo <= id < hi, set-based.

The transaction compare-and-sets the accounts' status (only those still in a state the run changes),
writes one audit event per changed account, queues its managers' emails, counts what the selection
matched but the run left alone (by reason), and marks the chunk done. If the worker dies midway the
database rolls it all back and the chunk is claimed again later, so nothing happens twice.

SQLite has no data-modifying CTEs and its RETURNING cannot see joined tables: there one pass notes
the chunk's selected accounts in a temporary table, and the audit rows, the update and the emails are
written from it (the write lock is held from the first statement, so nothing changes in between).
PostgreSQL does it in one statement (after the claim): update the accounts, from the UPDATE's
RETURNING insert their audit rows and their emails, and count the accounts left alone. Either way the
emails start from the accounts just changed, not from the managers of the chunk's range.

A worker builds a run's statements once (_statements: the rules, the reasons, the skip cases, the email
text rendered from its template) and every chunk executes them with its range and time bound.
"""
import json
import threading
from collections import OrderedDict

from flask import current_app
from sqlalchemy import (Column, DateTime, Integer, MetaData, String, Table, and_, bindparam, case, func, insert,
                        literal, null, or_, select, text, update)
from sqlalchemy.schema import CreateTable

from portal.domain.rules import rule_clause
from portal.domain.runs.emails import BY_RULE, OUTBOX_COLUMNS, email_rows
from portal.extensions import db
from portal.models import Account, AuditEvent, OutboxEmail, SweepRun, SweepRunChunk

ACTIONS = {
    # action: (states it applies to, state after, audit action, email kind)
    "suspend": (("active", "limited"), "suspended", "suspended", "account_suspended"),
    "reactivate": (("suspended", "limited"), "active", "reactivated", "account_reactivated"),
}
RUN_NAMES = {"cleanup": "Clean-up run", "recurring": "Scheduled sweep", "bulk": "Bulk action", "undo": "Undo run",
             "dunning": "Daily dunning run"}
REACTIVATED_DURING_RUN = "reactivated or changed during the run"
AUDIT_COLUMNS = ["created_at", "account_id", "actor_user_id", "actor_run_id", "actor_label", "action",
                 "reason_category", "reason_note", "state_before", "state_after"]


def run_label(run):
    """Name a run as the actor of its audit events."""
    return f"{RUN_NAMES.get(run.kind, 'Run')} #{run.id}"


def rule_reason(rule):
    """The reason a rule suspends for: non-payment if it looks at money, else inactivity."""
    money = rule.get("min_balance_cents") is not None or rule.get("overdue_days") is not None
    return "non_payment" if money else "inactivity"


def reason_expression(run):
    """The reason written on each account: the run's, or per account by the rules it matched."""
    if run.reason_category != BY_RULE:
        return literal(run.reason_category)
    money_rules = [r for r in (run.params["selection"].get("rules") or [])
                   if r.get("enabled", True) and rule_reason(r) == "non_payment"]
    if not money_rules:
        return literal("inactivity")
    return case((or_(*(rule_clause(r, run.as_of) for r in money_rules)), literal("non_payment")),
                else_=literal("inactivity"))


def states_changed_by(run):
    """The states a run changes: an undo only touches accounts still suspended (by it)."""
    return ("suspended",) if run.kind == "undo" else ACTIONS[run.action][0]


def changed_since(moment, columns=None):
    """The account's status changed after `moment` (the run's start), e.g. an admin reactivated it.

    Every status change stamps status_changed_at (suspension.py, and the runs themselves), so this is
    one column of the row: no look-up in the audit trail per account. `columns`: another relation's
    copies of the accounts' columns (default the accounts table's).
    """
    return (columns if columns is not None else Account).status_changed_at >= moment


def target_clause(run, selected):
    """The selected accounts this run changes now: compare-and-set on their current state.

    A suspending run leaves alone exempt accounts and accounts whose status changed since it started
    (reactivated by an admin meanwhile: the run must not suspend them again).
    """
    conditions = [selected, Account.status.in_(states_changed_by(run))]
    if run.action == "suspend":
        conditions += [Account.exempt.is_(False),
                       or_(Account.status_changed_at.is_(None), ~changed_since(run.created_at))]
    return and_(*conditions)


def skip_reason_clause(run, columns=None):
    """Why a selected account is left alone, as a SQL CASE (NULL: it would be changed).

    columns: a relation with the accounts' status, exempt and status_changed_at (default the accounts table).
    """
    c = columns if columns is not None else Account
    whens = [(~c.status.in_(states_changed_by(run)), literal("already ") + c.status)]
    if run.action == "suspend":
        whens += [(c.exempt.is_(True), literal("exempt")),
                  (changed_since(run.created_at, c), literal(REACTIVATED_DURING_RUN))]
    return case(*whens, else_=null()), or_(*(cond for cond, _ in whens))


def process_chunk(run, chunk_id, lo, hi, selected, now):  # noqa: ARG001 - selected: see below
    """Apply the run to accounts lo <= id < hi in one transaction and mark the chunk done.

    Args:
        run: the SweepRun.
        chunk_id, lo, hi: the claimed chunk and its id range.
        selected: the SQL condition of the run's selection (what every caller passes: selection_clause of
            the run's stored selection at its as_of); the statements are built from the run itself, once
            per worker process (_statements), and only the chunk's range and time change between chunks.
        now: the time written on the changes.

    Returns:
        The number of accounts changed (0 if another worker already did this chunk).
    """
    # Take the write lock first (SQLite), and make sure the chunk is still ours to do.
    claimed = db.session.execute(update(SweepRunChunk).where(SweepRunChunk.id == chunk_id,
                                                             SweepRunChunk.done_at.is_(None))
                                 .values(claimed_at=now)).rowcount
    if claimed != 1:
        db.session.rollback()
        return 0
    statements = _statements(run)
    changed, skip_reasons = statements.change(lo, hi, now)
    skipped = sum(skip_reasons.values())
    db.session.execute(update(SweepRunChunk).where(SweepRunChunk.id == chunk_id)
                       .values(done_at=now, matched=changed + skipped, changed=changed, skipped=skipped,
                               skip_reasons=skip_reasons))
    db.session.execute(update(SweepRun).where(SweepRun.id == run.id).values(heartbeat_at=now, cursor_id=hi - 1))
    db.session.commit()
    return changed


# ---------------------------------------------------------------- a run's statements, built once per process

LO, HI = bindparam("lo", type_=Integer()), bindparam("hi", type_=Integer())
NOW = bindparam("now", type_=DateTime())
_KEPT_RUNS = 8  # statements of this many runs are kept per process (a worker rarely has more than one)
_built = OrderedDict()
_built_lock = threading.Lock()


def _statements(run):
    """The run's chunk statements, built (rules, reasons, skip cases, the emails rendered) once per process.

    They hold the chunk's range and time as bound parameters (:lo, :hi, :now), so each chunk only executes
    them (SQLAlchemy's compiled cache has their SQL from the first chunk on). Keyed by everything the
    statements are made of: the run's id, kind, action, reason, note, actor, start and as_of, its
    selection, the database's dialect and the billing contact the emails name.
    """
    key = _statements_key(run)
    with _built_lock:  # a worker's connections (threads) share one build
        found = _built.get(key)
        if found is None:
            found = _built[key] = (_PostgresqlStatements if db.engine.dialect.name == "postgresql"
                                   else _SqliteStatements)(run)
            while len(_built) > _KEPT_RUNS:
                _built.popitem(last=False)
        _built.move_to_end(key)
        return found


def _statements_key(run):
    return (db.engine.dialect.name, run.id, run.kind, run.action, run.reason_category, run.reason_note,
            run.triggered_by_id, run.created_at, run.as_of,
            json.dumps((run.params or {}).get("selection"), sort_keys=True, default=str),
            current_app.config.get("BILLING_CONTACT"))


def _account_values(run, after, now):
    """The columns a change writes on each account (a suspension's reason is set per dialect)."""
    if after == "suspended":
        return dict(status=after, status_note=run.reason_note,
                    status_source="bulk" if run.kind == "bulk" else "sweep", status_changed_at=now,
                    suspended_by_run_id=run.id, version=Account.version + 1)
    return dict(status=after, status_reason=None, status_note=None, status_source=None, status_changed_at=now,
                suspended_by_run_id=None, version=Account.version + 1)


def _audit_values(run, action, now, reason):
    """The audit row's values after the account id: when, who (the run), what, why."""
    return [now, literal(run.triggered_by_id) if run.triggered_by_id else null(),
            literal(run.id), literal(run_label(run)), literal(action), reason, literal(run.reason_note)]


def _audit_reason(run):
    """The reason an audit event (and a suspended account) records: per account for a rules run."""
    return reason_expression(run) if run.action == "suspend" else literal(run.reason_category)


def _in_chunk(run):
    """The run's selection within the chunk's range (:lo <= id < :hi)."""
    from portal.domain.runs.starting import selection_clause  # starting imports this module

    return and_(Account.id >= LO, Account.id < HI, selection_clause(run.params["selection"], run.as_of))


def _params(lo, hi, now):
    return {"lo": lo, "hi": hi, "now": now}


# ---------------------------------------------------------------- SQLite

_chunk_rows = Table("run_chunk_rows", MetaData(), Column("id", Integer, primary_key=True),
                    Column("state_before", String), Column("reason", String), Column("skip", String),
                    prefixes=["TEMPORARY"])
_CREATE_CHUNK_ROWS = CreateTable(_chunk_rows, if_not_exists=True)


class _SqliteStatements:
    """SQLite: sort the chunk's selected accounts once, into a temporary table, then write from it.

    One pass over the chunk evaluates the selection and notes for each selected account its state,
    its reason, and why the run leaves it alone (NULL: it changes). The audit rows, the update, the
    skip counts and the emails all read that small table; the write lock, held since the claim, keeps
    the accounts as they were read. The emails start from the table's changed accounts (their managers
    by the users' account index), not from the managers of the chunk's range.
    """

    def __init__(self, run):
        after, action, email_kind = ACTIONS[run.action][1:]
        t = _chunk_rows
        skip, _left_alone = skip_reason_clause(run)
        self.fill = insert(t).from_select(["id", "state_before", "reason", "skip"], select(
            Account.id, Account.status, _audit_reason(run), skip).where(_in_chunk(run)))
        t_now, *rest = _audit_values(run, action, NOW, t.c.reason)
        self.audit = insert(AuditEvent.__table__).from_select(AUDIT_COLUMNS, select(
            t_now, t.c.id, *rest, t.c.state_before, literal(after)).where(t.c.skip.is_(None)))
        to_change = select(t.c.id).where(t.c.skip.is_(None))
        values = _account_values(run, after, NOW)
        if after == "suspended":
            values["status_reason"] = select(t.c.reason).where(t.c.id == Account.id).scalar_subquery()
        self.update = (update(Account).where(Account.id.in_(to_change), Account.status.in_(states_changed_by(run)))
                       .values(**values).execution_options(synchronize_session=False))
        changed = (select(t.c.id, Account.number, Account.name, t.c.reason.label("status_reason"))
                   .select_from(t).join(Account, Account.id == t.c.id).where(t.c.skip.is_(None))
                   .subquery("changed"))
        self.emails = insert(OutboxEmail.__table__).from_select(OUTBOX_COLUMNS,
                                                               email_rows(run, email_kind, NOW, changed))
        self.release = _release_held_emails(to_change) if run.action == "reactivate" else None
        self.skips = select(t.c.skip, func.count()).where(t.c.skip.is_not(None)).group_by(t.c.skip)

    def change(self, lo, hi, now):
        """Returns (changed, skip reasons)."""
        connection = db.session.connection()
        _sqlite_bulk_settings(connection)
        connection.execute(_CREATE_CHUNK_ROWS)  # once per connection; emptied for each chunk
        connection.execute(_chunk_rows.delete())
        params = _params(lo, hi, now)
        db.session.execute(self.fill, params)
        changed = db.session.execute(self.audit, params).rowcount
        if changed:
            db.session.execute(self.update, params)
            db.session.execute(self.emails, params)
            if self.release is not None:
                db.session.execute(self.release)
        skip_reasons = db.session.execute(self.skips).all()
        return changed, {str(r): int(c) for r, c in skip_reasons}


def _release_held_emails(account_ids):
    """Members' emails held while their account was suspended go out once it is active again."""
    return (update(OutboxEmail).where(OutboxEmail.status == "held", OutboxEmail.account_id.in_(account_ids))
            .values(status="pending"))


def _sqlite_bulk_settings(connection):
    """Set the chunk's connection up for writing a lot (it keeps them; a sweep worker's job only runs chunks).

    A page cache of SWEEP_SQLITE_CACHE_KIB keeps a chunk's pages in memory until its commit instead of
    spilling them to the log mid-statement (the update ~35 % faster at 1M accounts); the connection
    checkpoints only every SWEEP_SQLITE_WAL_AUTOCHECKPOINT pages, since run_processing's checkpointer
    copies the log into the database alongside, without stopping the writing.
    """
    cache_kib = int(current_app.config.get("SWEEP_SQLITE_CACHE_KIB") or 2000)
    checkpoint_pages = int(current_app.config.get("SWEEP_SQLITE_WAL_AUTOCHECKPOINT") or 1000)
    connection.exec_driver_sql(f"PRAGMA cache_size = -{cache_kib}")
    connection.exec_driver_sql(f"PRAGMA wal_autocheckpoint = {checkpoint_pages}")


# ---------------------------------------------------------------- PostgreSQL

# JIT-compiling each chunk's statements costs more than running them (~0.2 s a statement); and with little
# work_mem the planner probes the open-invoice index for the chunk's candidates instead of hashing every
# overdue invoice of the database again for each chunk. One round trip, for this transaction only.
_PG_CHUNK_SETTINGS = text("SELECT set_config('jit', 'off', true), set_config('work_mem', '1MB', true)")


class _PostgresqlStatements:
    """PostgreSQL: one statement updates the accounts and, from its RETURNING, writes the audit rows and emails.

    The whole compare-and-set condition is in the UPDATE's own WHERE, so an account changed by
    someone else meanwhile is re-checked on its new version (and left alone if it no longer
    qualifies, or if its status moved); the state before comes from the same snapshot. No separate
    FOR UPDATE pass: locking each row first cost as much WAL as a second update. The chunk's range is read
    once: a materialized CTE notes the selected accounts (id and the columns the run's checks read), the
    UPDATE joins them by id and the accounts left alone are counted from it (a second pass over the range
    for the skip counts, and a third for the states before, cost about a third of the chunk at 1 %).
    The emails start from the UPDATE's RETURNING (the changed accounts' managers by the users' account index).
    """

    def __init__(self, run):
        after, action, email_kind = ACTIONS[run.action][1:]
        in_chunk = _in_chunk(run)
        acc = Account.__table__
        values = _account_values(run, after, NOW)
        if after == "suspended":
            values["status_reason"] = reason_expression(run)
        sel = (select(acc.c.id, acc.c.status, acc.c.exempt, acc.c.status_changed_at).where(in_chunk)
               .cte("sel").prefix_with("MATERIALIZED"))
        upd = (update(acc).where(acc.c.id == sel.c.id, acc.c.status == sel.c.status, target_clause(run, in_chunk))
               .values(**values)
               .returning(acc.c.id, sel.c.status.label("before"), acc.c.status_reason, acc.c.number, acc.c.name)
               .cte("upd"))
        reason = upd.c.status_reason if after == "suspended" else literal(run.reason_category)
        t_now, *rest = _audit_values(run, action, NOW, reason)
        writes = [insert(AuditEvent.__table__).from_select(AUDIT_COLUMNS, select(t_now, upd.c.id, *rest, upd.c.before,
                                                                                 literal(after))),
                  insert(OutboxEmail.__table__).from_select(OUTBOX_COLUMNS, email_rows(run, email_kind, NOW, upd, lateral=True))]
        if run.action == "reactivate":
            writes.append(_release_held_emails(select(upd.c.id)))
        # Every data-modifying CTE runs once, to completion; the statement reads how many rows each wrote,
        # and counts what the selection matched but the run leaves alone in the same snapshot, i.e. as the
        # accounts were before this statement changed them.
        ctes = [write.returning(literal(1).label("one")).cte(f"w{i}") for i, write in enumerate(writes)]
        counts = [select(func.count()).select_from(c).scalar_subquery() for c in ctes]
        self.change_statement = select(counts[0], _skip_reasons(run, sel), *counts[1:])

    def change(self, lo, hi, now):
        """Returns (changed, skip reasons)."""
        db.session.execute(_PG_CHUNK_SETTINGS)
        changed, skip_reasons = db.session.execute(self.change_statement, _params(lo, hi, now)).one()[:2]
        return changed, {str(r): int(c) for r, c in (skip_reasons or {}).items()}


def _skip_reasons(run, selected):
    """PostgreSQL: the selected accounts of the chunk the run leaves alone, by reason, as one JSON object.

    selected: the chunk's selected accounts as the statement's snapshot has them (the `sel` CTE).
    """
    reason, left_alone = skip_reason_clause(run, selected.c)
    counts = (select(reason.label("reason"), func.count().label("n")).select_from(selected).where(left_alone)
              .group_by(reason).subquery("skips"))
    return select(func.json_object_agg(counts.c.reason, counts.c.n)).scalar_subquery()
