"""One chunk of a run: one transaction over the accounts lo <= id < hi, set-based.

The transaction compare-and-sets the accounts' status (only those still in a state the run changes),
writes one audit event per changed account, queues its managers' emails, counts what the selection
matched but the run left alone (by reason), and marks the chunk done. If the worker dies midway the
database rolls it all back and the chunk is claimed again later, so nothing happens twice.

SQLite has no data-modifying CTEs and its RETURNING cannot see joined tables: there one pass notes
the chunk's selected accounts in a temporary table, and the audit rows, the update and the emails are
written from it (the write lock is held from the first statement, so nothing changes in between).
PostgreSQL does both in one statement: update the accounts and insert their audit rows from the
UPDATE's RETURNING.
"""
import re

from flask import current_app
from sqlalchemy import (ARRAY, Column, DateTime, Integer, MetaData, String, Table, and_, any_, bindparam, case, func,
                        insert, literal, null, or_, select, text, update)

from portal.domain.gate import REASONS, SUSPENSION_BANNERS
from portal.domain.rules import rule_clause
from portal.extensions import db
from portal.models import Account, AuditEvent, OutboxEmail, SweepRun, SweepRunChunk, User

ACTIONS = {
    # action: (states it applies to, state after, audit action, email kind)
    "suspend": (("active", "limited"), "suspended", "suspended", "account_suspended"),
    "reactivate": (("suspended", "limited"), "active", "reactivated", "account_reactivated"),
}
RUN_NAMES = {"cleanup": "Clean-up run", "recurring": "Scheduled sweep", "bulk": "Bulk action", "undo": "Undo run"}
REACTIVATED_DURING_RUN = "reactivated or changed during the run"
BY_RULE = "by_rule"  # a rules run's reason: non-payment where a money rule matched, else inactivity
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


def changed_since(moment):
    """The account's status changed after `moment` (the run's start), e.g. an admin reactivated it.

    Every status change stamps status_changed_at (suspension.py, and the runs themselves), so this is
    one column of the row: no look-up in the audit trail per account.
    """
    return Account.status_changed_at >= moment


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


def skip_reason_clause(run):
    """Why a selected account is left alone, as a SQL CASE (NULL: it would be changed)."""
    whens = [(~Account.status.in_(states_changed_by(run)), literal("already ") + Account.status)]
    if run.action == "suspend":
        whens += [(Account.exempt.is_(True), literal("exempt")),
                  (changed_since(run.created_at), literal(REACTIVATED_DURING_RUN))]
    return case(*whens, else_=null()), or_(*(cond for cond, _ in whens))


def process_chunk(run, chunk_id, lo, hi, selected, now):
    """Apply the run to accounts lo <= id < hi in one transaction and mark the chunk done.

    Args:
        run: the SweepRun.
        chunk_id, lo, hi: the claimed chunk and its id range.
        selected: the SQL condition of the run's selection.
        now: the time written on the changes.

    Returns:
        The number of accounts changed (0 if another worker already did this chunk).
    """
    after, action, email_kind = ACTIONS[run.action][1:]
    # Take the write lock first (SQLite), and make sure the chunk is still ours to do.
    claimed = db.session.execute(update(SweepRunChunk).where(SweepRunChunk.id == chunk_id,
                                                             SweepRunChunk.done_at.is_(None))
                                 .values(claimed_at=now)).rowcount
    if claimed != 1:
        db.session.rollback()
        return 0
    in_chunk = and_(Account.id >= lo, Account.id < hi, selected)
    values = _account_values(run, after, now)
    change = _change_postgresql if db.engine.dialect.name == "postgresql" else _change_sqlite
    changed, changed_accounts, skip_reasons = change(run, lo, hi, in_chunk, values, after, action, now)
    if changed:
        _queue_emails(run, changed_accounts, lo, hi, email_kind, now)
        if run.action == "reactivate":
            released = select(Account.id).where(Account.id >= lo, Account.id < hi, changed_accounts)
            db.session.execute(update(OutboxEmail).where(OutboxEmail.status == "held",
                                                         OutboxEmail.account_id.in_(released))
                               .values(status="pending"))
    skipped = sum(skip_reasons.values())
    db.session.execute(update(SweepRunChunk).where(SweepRunChunk.id == chunk_id)
                       .values(done_at=now, matched=changed + skipped, changed=changed, skipped=skipped,
                               skip_reasons=skip_reasons))
    db.session.execute(update(SweepRun).where(SweepRun.id == run.id).values(heartbeat_at=now, cursor_id=hi - 1))
    db.session.commit()
    return changed


def _account_values(run, after, now):
    """The columns a change writes on each account (a suspension's reason is set per dialect)."""
    if after == "suspended":
        return dict(status=after, status_note=run.reason_note,
                    status_source="bulk" if run.kind == "bulk" else "sweep", status_changed_at=now,
                    suspended_by_run_id=run.id, version=Account.version + 1)
    return dict(status=after, status_reason=None, status_note=None, status_source=None, status_changed_at=now,
                suspended_by_run_id=None, version=Account.version + 1)


def _audit_values(run, action, now, reason):
    return [literal(now, DateTime()), literal(run.triggered_by_id) if run.triggered_by_id else null(),
            literal(run.id), literal(run_label(run)), literal(action), reason, literal(run.reason_note)]


def _audit_reason(run):
    """The reason an audit event (and a suspended account) records: per account for a rules run."""
    return reason_expression(run) if run.action == "suspend" else literal(run.reason_category)


# ---------------------------------------------------------------- SQLite

_chunk_rows = Table("run_chunk_rows", MetaData(), Column("id", Integer, primary_key=True),
                    Column("state_before", String), Column("reason", String), Column("skip", String))


def _change_sqlite(run, lo, hi, in_chunk, values, after, action, now):  # noqa: ARG001
    """SQLite: sort the chunk's selected accounts once, into a temporary table, then write from it.

    One pass over the chunk evaluates the selection and notes for each selected account its state,
    its reason, and why the run leaves it alone (NULL: it changes). The audit rows, the update, the
    skip counts and the emails all read that small table; the write lock, held since the claim, keeps
    the accounts as they were read.
    """
    connection = db.session.connection()
    _sqlite_bulk_settings(connection)
    connection.exec_driver_sql("CREATE TEMP TABLE IF NOT EXISTS run_chunk_rows "
                               "(id INTEGER PRIMARY KEY, state_before TEXT, reason TEXT, skip TEXT)")
    connection.exec_driver_sql("DELETE FROM temp.run_chunk_rows")
    t = _chunk_rows
    skip, _left_alone = skip_reason_clause(run)
    db.session.execute(insert(t).from_select(
        ["id", "state_before", "reason", "skip"],
        select(Account.id, Account.status, _audit_reason(run), skip).where(in_chunk)))
    t_now, *rest = _audit_values(run, action, now, t.c.reason)
    rows = select(t_now, t.c.id, *rest, t.c.state_before, literal(after)).where(t.c.skip.is_(None))
    changed = db.session.execute(insert(AuditEvent.__table__).from_select(AUDIT_COLUMNS, rows)).rowcount
    to_change = select(t.c.id).where(t.c.skip.is_(None))
    if changed:
        if after == "suspended":
            values = dict(values, status_reason=select(t.c.reason).where(t.c.id == Account.id).scalar_subquery())
        db.session.execute(update(Account).where(Account.id.in_(to_change),
                                                 Account.status.in_(states_changed_by(run)))
                           .values(**values).execution_options(synchronize_session=False))
    skip_reasons = db.session.execute(select(t.c.skip, func.count()).where(t.c.skip.is_not(None))
                                      .group_by(t.c.skip)).all()
    changed_accounts = (Account.suspended_by_run_id == run.id) if after == "suspended" else Account.id.in_(to_change)
    return changed, changed_accounts, {str(r): int(c) for r, c in skip_reasons}


def _sqlite_bulk_settings(connection):
    """Set the chunk's connection up for writing a lot (it keeps them; a sweep worker's job only runs chunks).

    A page cache of SWEEP_SQLITE_CACHE_KIB keeps a chunk's pages in memory until its commit instead of
    spilling them to the log mid-statement (the update ~35 % faster at 1M accounts); the connection
    checkpoints only every SWEEP_SQLITE_WAL_AUTOCHECKPOINT pages, since run_processing's checkpointer
    copies the log into the database alongside, without stopping the writing.
    """
    config = current_app.config
    connection.exec_driver_sql(f"PRAGMA cache_size = -{int(config.get('SWEEP_SQLITE_CACHE_KIB') or 2000)}")
    connection.exec_driver_sql(f"PRAGMA wal_autocheckpoint = {int(config.get('SWEEP_SQLITE_WAL_AUTOCHECKPOINT') or 1000)}")


# ---------------------------------------------------------------- PostgreSQL

def _change_postgresql(run, lo, hi, in_chunk, values, after, action, now):
    """PostgreSQL: one statement updates the accounts and inserts their audit rows.

    The whole compare-and-set condition is in the UPDATE's own WHERE, so an account changed by
    someone else meanwhile is re-checked on its new version (and left alone if it no longer
    qualifies, or if its status moved); the state before comes from the same snapshot. No separate
    FOR UPDATE pass: locking each row first cost as much WAL as a second update.

    A suspension finds its accounts again by the run's id on the row (only this transaction writes it
    in the chunk's range, on both databases); a reactivation gets the changed ids back.
    """
    # JIT-compiling each chunk's statements costs more than running them (~0.2 s a statement); and
    # with little work_mem the planner probes the open-invoice index for the chunk's few candidates
    # instead of hashing every overdue invoice of the database again for each chunk.
    db.session.execute(text("SET LOCAL jit = off"))
    db.session.execute(text("SET LOCAL work_mem = '1MB'"))
    acc = Account.__table__
    if after == "suspended":
        values = dict(values, status_reason=reason_expression(run))
    old = select(acc.c.id, acc.c.status).where(acc.c.id >= lo, acc.c.id < hi).subquery("old")
    upd = (update(acc).where(acc.c.id == old.c.id, acc.c.status == old.c.status, target_clause(run, in_chunk))
           .values(**values).returning(acc.c.id, old.c.status.label("before"), acc.c.status_reason).cte("upd"))
    reason = upd.c.status_reason if after == "suspended" else literal(run.reason_category)
    t_now, *rest = _audit_values(run, action, now, reason)
    rows = select(t_now, upd.c.id, *rest, upd.c.before, literal(after))
    ins = (insert(AuditEvent.__table__).from_select(AUDIT_COLUMNS, rows).returning(AuditEvent.account_id)
           .cte("ins"))
    if after == "suspended":
        changed = db.session.scalar(select(func.count()).select_from(ins))
        changed_accounts = Account.suspended_by_run_id == run.id
    else:
        ids = list(db.session.scalars(select(ins.c.account_id)))
        changed, changed_accounts = len(ids), Account.id == any_(bindparam("changed_ids", ids, type_=ARRAY(Integer)))
    return changed, changed_accounts, _skip_reasons(run, in_chunk, after)


def _skip_reasons(run, in_chunk, after):
    """Count the selected accounts of the chunk this run left alone, by reason (after the change)."""
    reason, left_alone = skip_reason_clause(run)
    conditions = [left_alone, in_chunk]  # the cheap state checks first: the rules only for the few left alone
    if after == "suspended":  # the accounts just suspended by this run are not "already suspended"
        conditions.insert(0, func.coalesce(Account.suspended_by_run_id, 0) != run.id)
    rows = db.session.execute(select(reason, func.count()).where(*conditions).group_by(reason)).all()
    return {str(r): int(c) for r, c in rows}


def _queue_emails(run, changed_accounts, lo, hi, email_kind, now):
    """Queue one email per account manager of every account this chunk changed (set-based).

    `changed_accounts` is a condition on the joined account row that holds for exactly those accounts.
    """
    subject = _concat(_email_subject(email_kind))
    if run.reason_category == BY_RULE and email_kind == "account_suspended":
        # The wording follows each account's reason (written on it a moment ago by this chunk).
        body = case(*((Account.status_reason == reason, _concat(_email_body(run, email_kind, reason)))
                      for reason in ("non_payment",)),
                    else_=_concat(_email_body(run, email_kind, "inactivity")))
    else:
        body = _concat(_email_body(run, email_kind, run.reason_category))
    rows = (select(literal(now, DateTime()), Account.id, User.id, literal(email_kind), User.email,
                   subject, body, literal("pending"), literal(0))
            .select_from(User).join(Account, Account.id == User.account_id)
            .where(User.account_id >= lo, User.account_id < hi, changed_accounts,
                   Account.id >= lo, Account.id < hi, User.role == "account_manager",
                   User.disabled.is_(False), User.email_notifications.is_(True)))
    db.session.execute(insert(OutboxEmail.__table__).from_select(
        ["created_at", "account_id", "user_id", "kind", "to_addr", "subject", "body", "status", "attempts"], rows))


class _UserPlaceholder:
    name = "\x01USER\x01"


class _AccountPlaceholder:
    number = "\x01NUMBER\x01"
    name = "\x01NAME\x01"


_PLACEHOLDER = re.compile(r"(\x01[A-Z]+\x01)")
_FIELDS = {"\x01USER\x01": User.name, "\x01NUMBER\x01": Account.number, "\x01NAME\x01": Account.name}


def _concat(text):
    """Turn text with placeholders into a SQL string expression filling in each row's values."""
    expr = None
    for part in (p for p in _PLACEHOLDER.split(text) if p):
        piece = _FIELDS.get(part, literal(part))
        expr = piece if expr is None else expr + piece
    return expr if expr is not None else literal("")


def _email_subject(email_kind):
    return ("Your account \x01NUMBER\x01 has been suspended" if email_kind == "account_suspended"
            else "Your account \x01NUMBER\x01 is active again")


def _email_body(run, email_kind, reason):
    """Render the email once with placeholders, so SQL can fill in each account's values."""
    template = "account_suspended.txt" if email_kind == "account_suspended" else "account_reactivated.txt"
    return current_app.jinja_env.get_template(f"email/{template}").render(
        user=_UserPlaceholder(), account=_AccountPlaceholder(), billing_contact=current_app.config["BILLING_CONTACT"],
        reason=reason, note=run.reason_note, reasons=REASONS, banners=SUSPENSION_BANNERS)
