"""One chunk of a run: one transaction over the accounts lo <= id < hi, set-based.

The transaction compare-and-sets the accounts' status (only those still in a state the run changes),
writes one audit event per changed account, queues its managers' emails, counts what the selection
matched but the run left alone (by reason), and marks the chunk done. If the worker dies midway the
database rolls it all back and the chunk is claimed again later, so nothing happens twice.

SQLite has no data-modifying CTEs and its RETURNING cannot see joined tables: there the audit rows
are inserted from the selection first, then the accounts they name are updated (the write lock is
held from the first statement, so nothing changes in between). PostgreSQL does both in one
statement: lock and update the accounts, insert their audit rows from the UPDATE's RETURNING.
"""
import re

from flask import current_app
from sqlalchemy import DateTime, and_, case, exists, func, insert, literal, null, or_, select, update

from portal.domain.gate import REASONS, SUSPENSION_BANNERS
from portal.extensions import db
from portal.models import Account, AuditEvent, OutboxEmail, SweepRun, SweepRunChunk, User

ACTIONS = {
    # action: (states it applies to, state after, audit action, email kind)
    "suspend": (("active", "limited"), "suspended", "suspended", "account_suspended"),
    "reactivate": (("suspended", "limited"), "active", "reactivated", "account_reactivated"),
}
RUN_NAMES = {"cleanup": "Clean-up run", "recurring": "Scheduled sweep", "bulk": "Bulk action", "undo": "Undo run"}
REACTIVATED_DURING_RUN = "reactivated by an admin during the run"
AUDIT_COLUMNS = ["created_at", "account_id", "actor_user_id", "actor_run_id", "actor_label", "action",
                 "reason_category", "reason_note", "state_before", "state_after"]


def run_label(run):
    """Name a run as the actor of its audit events."""
    return f"{RUN_NAMES.get(run.kind, 'Run')} #{run.id}"


def states_changed_by(run):
    """The states a run changes: an undo only touches accounts still suspended (by it)."""
    return ("suspended",) if run.kind == "undo" else ACTIONS[run.action][0]


def reactivated_since(moment):
    """An admin reactivated the account after `moment` (the run's start): the run leaves it alone."""
    return exists().where(AuditEvent.account_id == Account.id, AuditEvent.action == "reactivated",
                          AuditEvent.created_at >= moment)


def target_clause(run, selected):
    """The selected accounts this run changes now: compare-and-set on their current state."""
    conditions = [selected, Account.status.in_(states_changed_by(run))]
    if run.action == "suspend":
        conditions += [Account.exempt.is_(False), ~reactivated_since(run.created_at)]
    return and_(*conditions)


def skip_reason_clause(run):
    """Why a selected account is left alone, as a SQL CASE (NULL: it would be changed)."""
    whens = [(~Account.status.in_(states_changed_by(run)), literal("already ") + Account.status)]
    if run.action == "suspend":
        whens += [(Account.exempt.is_(True), literal("exempt")),
                  (reactivated_since(run.created_at), literal(REACTIVATED_DURING_RUN))]
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
    if db.engine.dialect.name == "postgresql":
        changed = _change_postgresql(run, target_clause(run, in_chunk), values, after, action, now)
    else:
        changed = _change_sqlite(run, target_clause(run, in_chunk), values, after, action, lo, hi, now)
    skip_reasons = _skip_reasons(run, in_chunk, after)
    if changed:
        _queue_emails(run, lo, hi, action, email_kind, now)
        if run.action == "reactivate":
            db.session.execute(update(OutboxEmail).where(OutboxEmail.status == "held", OutboxEmail.account_id.in_(
                _changed_ids(run, lo, hi, action))).values(status="pending"))
    skipped = sum(skip_reasons.values())
    db.session.execute(update(SweepRunChunk).where(SweepRunChunk.id == chunk_id)
                       .values(done_at=now, matched=changed + skipped, changed=changed, skipped=skipped,
                               skip_reasons=skip_reasons))
    db.session.execute(update(SweepRun).where(SweepRun.id == run.id).values(heartbeat_at=now, cursor_id=hi - 1))
    db.session.commit()
    return changed


def _skip_reasons(run, in_chunk, after):
    """Count the selected accounts of the chunk this run left alone, by reason (after the change)."""
    reason, left_alone = skip_reason_clause(run)
    conditions = [left_alone, in_chunk]
    if after == "suspended":  # the accounts just suspended by this run are not "already suspended"
        conditions.insert(0, func.coalesce(Account.suspended_by_run_id, 0) != run.id)
    rows = db.session.execute(select(reason, func.count()).where(*conditions).group_by(reason)).all()
    return {str(r): int(c) for r, c in rows}


def _account_values(run, after, now):
    if after == "suspended":
        return dict(status=after, status_reason=run.reason_category, status_note=run.reason_note,
                    status_source="bulk" if run.kind == "bulk" else "sweep", status_changed_at=now,
                    suspended_by_run_id=run.id, version=Account.version + 1)
    return dict(status=after, status_reason=None, status_note=None, status_source=None, status_changed_at=now,
                suspended_by_run_id=None, version=Account.version + 1)


def _audit_values(run, action, now):
    return [literal(now, DateTime()), literal(run.triggered_by_id) if run.triggered_by_id else null(),
            literal(run.id), literal(run_label(run)), literal(action), literal(run.reason_category),
            literal(run.reason_note)]


def _change_sqlite(run, target, values, after, action, lo, hi, now):
    """SQLite: insert the audit rows from the selection, then update the accounts they name."""
    t_now, *rest = _audit_values(run, action, now)
    rows = select(t_now, Account.id, *rest, Account.status, literal(after)).where(target)
    changed = db.session.execute(insert(AuditEvent.__table__).from_select(AUDIT_COLUMNS, rows)).rowcount
    if changed:
        db.session.execute(update(Account).where(Account.id.in_(_changed_ids(run, lo, hi, action)),
                                                 Account.status.in_(states_changed_by(run)))
                           .values(**values).execution_options(synchronize_session=False))
    return changed


def _change_postgresql(run, target, values, after, action, now):
    """PostgreSQL: one statement — lock and update the accounts, insert their audit rows, count them."""
    picked = select(Account.id, Account.status).where(target).with_for_update().cte("picked")
    acc = Account.__table__
    upd = (update(acc).where(acc.c.id == picked.c.id, acc.c.status.in_(states_changed_by(run))).values(**values)
           .returning(acc.c.id, picked.c.status.label("before")).cte("upd"))
    t_now, *rest = _audit_values(run, action, now)
    rows = select(t_now, upd.c.id, *rest, upd.c.before, literal(after))
    ins = insert(AuditEvent.__table__).from_select(AUDIT_COLUMNS, rows).returning(AuditEvent.id).cte("ins")
    return db.session.scalar(select(func.count()).select_from(ins))


def _changed_ids(run, lo, hi, action):
    return select(AuditEvent.account_id).where(AuditEvent.actor_run_id == run.id, AuditEvent.action == action,
                                               AuditEvent.account_id >= lo, AuditEvent.account_id < hi)


def _queue_emails(run, lo, hi, action, email_kind, now):
    """Queue one email per account manager of every account this chunk changed (set-based)."""
    subject_parts, body_parts = _email_template(run, email_kind)

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
            .where(User.account_id.in_(_changed_ids(run, lo, hi, action)), User.role == "account_manager",
                   User.disabled.is_(False), User.email_notifications.is_(True)))
    db.session.execute(insert(OutboxEmail.__table__).from_select(
        ["created_at", "account_id", "user_id", "kind", "to_addr", "subject", "body", "status", "attempts"], rows))


class _UserPlaceholder:
    name = "\x01USER\x01"


class _AccountPlaceholder:
    number = "\x01NUMBER\x01"
    name = "\x01NAME\x01"


_PLACEHOLDER = re.compile(r"(\x01[A-Z]+\x01)")


def _email_template(run, email_kind):
    """Render the email once with placeholders, split so SQL can fill in each account's values."""
    template = "account_suspended.txt" if email_kind == "account_suspended" else "account_reactivated.txt"
    body = current_app.jinja_env.get_template(f"email/{template}").render(
        user=_UserPlaceholder(), account=_AccountPlaceholder(), billing_contact=current_app.config["BILLING_CONTACT"],
        reason=run.reason_category, note=run.reason_note, reasons=REASONS, banners=SUSPENSION_BANNERS)
    subject = ("Your account \x01NUMBER\x01 has been suspended" if email_kind == "account_suspended"
               else "Your account \x01NUMBER\x01 is active again")
    return [p for p in _PLACEHOLDER.split(subject) if p], [p for p in _PLACEHOLDER.split(body) if p]
