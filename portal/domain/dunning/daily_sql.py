"""The daily run's set-based path: the class schedule evaluated in SQL for the accounts that need nothing more.

Most accounts a day's run looks at have no manual dates, no pinned episode start and a class without
warnings: for them calendar.evaluate reduces to "the episode began at the oldest overdue invoice's due
date; limited from start + N days, suspended from start + M days". That is computed here in SQL, in a
few statements per chunk whatever its size: one pass notes each account's state, target, next look and
overdue invoices in a temporary table; one UPDATE applies the changes (compare-and-set on the state
read) and plans every next look; one INSERT writes the audit rows and one the emails. The others (few)
go through calendar.evaluate in Python (daily.process_chunk). tests/test_dunning_sql.py checks that both
paths agree on random accounts.
"""
from sqlalchemy import (Column, Date, Integer, MetaData, String, Table, and_, case, cast, exists, func, insert, literal,
                        null, select, text, update)
from sqlalchemy.schema import CreateTable

from portal.domain.account_search import keyset  # noqa: F401  (renders SQLite's INDEXED BY hints)
from portal.domain.runs.chunk import _sqlite_bulk_settings
from portal.domain.runs.emails import _concat
from portal.extensions import db
from portal.models import Account, AuditEvent, CustomerClass, Invoice, OutboxEmail, ScheduleOverride, User

FAR = "9999-12-31"
NEXT_LOOK_INDEX = "ix_accounts_dunning_next_on"  # partial: the accounts with a next look planned

_rows = Table("dunning_chunk_rows", MetaData(), Column("id", Integer, primary_key=True),
              Column("state_before", String), Column("target", String), Column("change", Integer),
              Column("next_on", Date), Column("seqs", String), Column("suspend_on", String),
              prefixes=["TEMPORARY"])
_CREATE = CreateTable(_rows, if_not_exists=True)


def _postgres():
    return db.engine.dialect.name == "postgresql"


def _add_days(day, days):
    """day + days (a date column and an integer column), as a date on both databases."""
    if _postgres():
        return day + days
    return func.date(day, literal("+") + cast(days, String) + literal(" days"))


def _least(*dates):
    """The earliest of dates, ignoring NULLs (NULL when all are)."""
    if _postgres():
        return func.least(*dates)
    far = literal(FAR)
    return func.nullif(func.min(*(func.coalesce(d, far) for d in dates)), far)


def _seq_list(account_id, day):
    """The overdue invoices' sequence numbers as text: "#1, #3"."""
    piece = literal("#") + cast(Invoice.seq, String)
    where = and_(Invoice.account_id == account_id, Invoice.paid_at.is_(None), Invoice.written_off_at.is_(None),
                 Invoice.due_date < day)
    if _postgres():
        from sqlalchemy.dialects.postgresql import aggregate_order_by

        return select(func.string_agg(piece, aggregate_order_by(literal(", "), Invoice.seq))).where(where) \
            .scalar_subquery()
    # correlated to the outer account (SQLAlchemy does not correlate a derived table by itself)
    ordered = select(piece.label("s")).where(where).order_by(Invoice.seq).correlate(Account).subquery()
    return select(func.group_concat(ordered.c.s, literal(", "))).scalar_subquery()


def _is_open():
    return and_(Invoice.paid_at.is_(None), Invoice.written_off_at.is_(None))


def candidates(lo, hi, selected):
    """SELECT the chunk's accounts due a look (selected: the run's condition on dunning_next_on).

    On SQLite they are read through the partial index on dunning_next_on: without statistics SQLite
    prefers the id range, i.e. reads every account between lo and hi (all million for the single chunk
    of a day with few accounts due).
    """
    return _by_next_look(select(Account.id).where(Account.id >= lo, Account.id < hi, selected))


def _by_next_look(query):
    return query.with_hint(Account, f"INDEXED BY {NEXT_LOOK_INDEX}", "sqlite")


def note_rows(lo, hi, selected, day):
    """Fill the temporary table with the chunk's simple candidates: state, target, change, next look."""
    connection = db.session.connection()
    connection.execute(_CREATE)
    connection.execute(_rows.delete())
    # only the candidates' invoices (a day with few accounts due reads few)
    in_range = and_(Invoice.account_id >= lo, Invoice.account_id < hi,
                    Invoice.account_id.in_(candidates(lo, hi, selected)))
    overdue = (select(Invoice.account_id.label("aid"), func.min(Invoice.due_date).label("start"),
                      func.sum(Invoice.amount_cents - Invoice.paid_cents).label("owed"))
               .where(in_range, _is_open(), Invoice.due_date < day).group_by(Invoice.account_id).subquery("od"))
    coming = (select(Invoice.account_id.label("aid"), func.min(Invoice.due_date).label("next_due"))
              .where(in_range, _is_open(), Invoice.due_date >= day).group_by(Invoice.account_id).subquery("up"))
    cls = CustomerClass.__table__
    counts = and_(overdue.c.owed.is_not(None), overdue.c.owed >= func.coalesce(cls.c.least_amount_cents, 1))
    limit_on = _add_days(overdue.c.start, cls.c.limit_after_days)
    suspend_on = _add_days(overdue.c.start, cls.c.suspend_after_days)
    day_value = literal(day, Date())
    target = case((and_(counts, cls.c.suspend_after_days.is_not(None), suspend_on <= day_value), "suspended"),
                  (and_(counts, cls.c.limit_after_days.is_not(None), limit_on <= day_value), "limited"),
                  else_="active")
    rank_before = case((Account.status == "suspended", 2), (Account.status == "limited", 1), else_=0)
    rank_after = case((target == "suspended", 2), (target == "limited", 1), else_=0)
    next_on = _least(_add_days(coming.c.next_due, literal(1)),
                     case((and_(counts, cls.c.limit_after_days.is_not(None), limit_on > day_value), limit_on)),
                     case((and_(counts, cls.c.suspend_after_days.is_not(None), suspend_on > day_value), suspend_on)))
    simple = and_(Account.id >= lo, Account.id < hi, selected, Account.dunning_since.is_(None),
                  Account.exempt.is_(False), Account.status != "cancelled", cls.c.warning_days.is_(None),
                  ~exists().where(ScheduleOverride.account_id == Account.id, ScheduleOverride.ended_at.is_(None)))
    change = case((rank_after > rank_before, 1), else_=0)
    rows = (select(Account.id, Account.status, target, change, next_on,
                   case((rank_after > rank_before, _seq_list(Account.id, day_value)), else_=null()),
                   cast(suspend_on, String))
            .select_from(Account).outerjoin(cls, cls.c.id == Account.customer_class_id)
            .outerjoin(overdue, overdue.c.aid == Account.id).outerjoin(coming, coming.c.aid == Account.id)
            .where(simple))
    rows = _by_next_look(rows)
    db.session.execute(insert(_rows).from_select(
        ["id", "state_before", "target", "change", "next_on", "seqs", "suspend_on"], rows))
    return list(db.session.scalars(select(_rows.c.id)))


def apply_rows(run, label, note, now):
    """Write what the temporary table says: audit rows, the accounts (changes and next looks), the emails.

    Returns {step: count} of the changes made.
    """
    t = _rows
    changed = t.c.change == 1
    audit_rows = select(literal(now), t.c.id, literal(run.triggered_by_id) if run.triggered_by_id else null(),
                        literal(run.id), literal(label), t.c.target, literal("non_payment"),
                        literal("Overdue invoices: ") + t.c.seqs, t.c.state_before, t.c.target).where(changed)
    db.session.execute(insert(AuditEvent.__table__).from_select(
        ["created_at", "account_id", "actor_user_id", "actor_run_id", "actor_label", "action", "reason_category",
         "reason_note", "state_before", "state_after"], audit_rows))
    when_changed = lambda value, column: case((changed, value), else_=column)  # noqa: E731
    acc = Account.__table__
    # "id IN (the table's ids)" as well as the join: SQLite then walks the small table and finds each account
    # by its key; with the join alone it read every account of the database for each chunk
    db.session.execute(
        update(acc).where(acc.c.id == t.c.id, acc.c.id.in_(select(t.c.id)), acc.c.status == t.c.state_before)
        .values(dunning_next_on=t.c.next_on, status=when_changed(t.c.target, acc.c.status),
                status_reason=when_changed(literal("non_payment"), acc.c.status_reason),
                status_source=when_changed(literal("dunning"), acc.c.status_source),
                status_note=when_changed(literal(note), acc.c.status_note),
                status_changed_at=when_changed(literal(now), acc.c.status_changed_at),
                suspended_by_run_id=when_changed(literal(run.id), acc.c.suspended_by_run_id),
                dunning_warned=when_changed(null(), acc.c.dunning_warned),
                version=acc.c.version + 1)
        .execution_options(synchronize_session=False))
    _hold_members_mail()  # before the managers' emails: it need not look at them (they are never held)
    _emails(now)
    counts = db.session.execute(select(t.c.target, func.count()).where(changed).group_by(t.c.target)).all()
    return {target: int(n) for target, n in counts}


def _emails(now):
    """One email per account manager of each changed account, filled in by SQL from one rendering per kind."""
    from portal.domain.dunning.emails import KINDS, PLACEHOLDERS, _render

    t = _rows
    acc = Account.__table__
    fields = {PLACEHOLDERS["user"]: User.name, PLACEHOLDERS["number"]: acc.c.number,
              PLACEHOLDERS["name"]: acc.c.name, PLACEHOLDERS["invoices"]: func.coalesce(t.c.seqs, literal("")),
              PLACEHOLDERS["next_step"]: func.coalesce(t.c.suspend_on, literal("")), PLACEHOLDERS["step_date"]: literal("")}
    for what in ("limited", "suspended"):
        kind, subject, template = KINDS[what]
        subject_sql = _concat(subject.replace("{number}", PLACEHOLDERS["number"]), fields)
        body = _concat(_render(template, None, False), fields)
        if what == "limited":
            body = case((t.c.suspend_on.is_not(None), _concat(_render(template, None, True), fields)), else_=body)
        rows = (select(literal(now), acc.c.id, User.id, literal(kind), User.email, subject_sql, body,
                       literal("pending"), literal(0))
                .select_from(t).join(acc, acc.c.id == t.c.id).join(User, User.account_id == t.c.id)
                .where(t.c.change == 1, t.c.target == what, User.role == "account_manager", User.disabled.is_(False),
                       User.email_notifications.is_(True),
                       # the changed accounts' people by the users' account index, not every user of the database
                       User.account_id.in_(select(t.c.id).where(t.c.change == 1, t.c.target == what))))
        db.session.execute(insert(OutboxEmail.__table__).from_select(
            ["created_at", "account_id", "user_id", "kind", "to_addr", "subject", "body", "status", "attempts"], rows))


def _hold_members_mail():
    """Members' pending emails wait while their account is suspended."""
    t = _rows
    suspended = select(t.c.id).where(t.c.change == 1, t.c.target == "suspended")
    members = select(User.id).where(User.account_id.in_(suspended), User.role.in_(("tier_manager", "user")))
    db.session.execute(update(OutboxEmail).where(OutboxEmail.account_id.in_(suspended),
                                                 OutboxEmail.status == "pending", OutboxEmail.user_id.in_(members))
                       .values(status="held").execution_options(synchronize_session=False))


def settings_for_chunk():
    """Set the chunk's transaction up for writing many rows.

    PostgreSQL: no JIT for a chunk's short statements (compiling them costs more than running them).
    SQLite: the run engine's bulk settings (a page cache that holds a chunk's pages until its commit, and
    checkpoints left to the worker's checkpointing thread), as a sweep's chunk has them.
    """
    if _postgres():
        db.session.execute(text("SET LOCAL jit = off"))
    else:
        _sqlite_bulk_settings(db.session.connection())

