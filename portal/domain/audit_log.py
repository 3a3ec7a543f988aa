"""The audit log: every event across accounts, newest first, with filters, keyset pages on id and the CSV.

Filters: who acted (a person by email or name, a run "#N", "schedule" for the scheduler's runs, or an API
token by name or prefix), the action, the reason, the account (by number) and a date range (UTC days).
A value that names nothing (an unknown person or run, an end before the start) is a problem at its field;
the page then lists nothing rather than events the filter did not ask for.

Pages are keyset pages on the event id (`id < after`): events written meanwhile have larger ids, so the
next page neither repeats nor skips a row. Every filter is served by an index of audit_events (see the
model): account_id, actor_user_id, actor_run_id, action, reason_category, created_at.
"""
import re
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from sqlalchemy import and_, select, text

from portal.domain.audit_actors import resolve_actor
from portal.domain.suspension import REASON_LABELS
from portal.domain.parsing import InvalidValue, clean_text, iso_date, record_id
from portal.extensions import db
from portal.models import Account, AuditEvent, SweepRun
from portal.timeutil import iso_utc  # CSV times: ISO 8601 with the zone

PAGE_SIZE = 50
TEXT_MAX = 200
CSV_HEADER = ("id", "at", "account_number", "account_name", "action", "actor", "actor_user_id", "run_id",
              "reason", "note", "state_before", "state_after")
_ACTIONS_SQL = text(
    "WITH RECURSIVE a(action, n) AS ("
    " SELECT min(action), 1 FROM audit_events"
    " UNION ALL SELECT (SELECT min(action) FROM audit_events WHERE action > a.action), n + 1"
    " FROM a WHERE a.action IS NOT NULL AND n < 1000)"
    " SELECT action FROM a WHERE action IS NOT NULL")
_ACTION = re.compile(r"[a-z][a-z0-9_]{0,39}(?:_\*)?", re.ASCII)  # an action, or a family ("rule_*")
_ACCOUNT_NUMBER = re.compile(r"[A-Za-z]?[0-9]{1,12}", re.ASCII)


@dataclass
class AuditFilters:
    """What staff asked the log for, validated; `problems` maps a field to the message to show there."""

    actor: str = ""
    action: str = ""
    reason: str = ""
    account: str = ""
    date_from: date | None = None
    date_to: date | None = None
    after: int | None = None  # the id of the last event of the previous page
    problems: dict = field(default_factory=dict)
    actor_clause: object = None  # the SQL condition the actor resolved to
    actor_description: str = ""  # what the actor turned out to be ("Run #12", "Ada Admin <ada@…>")
    account_id: int | None = None
    account_row: object = None

    def args(self, after=None):
        """The query arguments of this view (the values typed, dates as ISO), with a cursor if given."""
        out = {k: getattr(self, k) for k in ("actor", "action", "reason", "account") if getattr(self, k)}
        for name in ("date_from", "date_to"):
            if getattr(self, name):
                out[name] = getattr(self, name).isoformat()
        if after:
            out["after"] = str(after)
        return out

    @property
    def narrowed(self):
        return bool(self.args())


def action_choices():
    """Return the actions that occur in the audit trail, sorted (one index seek per action, not a scan)."""
    return [row[0] for row in db.session.execute(_ACTIONS_SQL)]


def action_groups(actions):
    """Return {"rule_*": "Any rule event", ...}: one choice for each family of two or more actions."""
    families = {}
    for action in actions:
        families.setdefault(action.split("_")[0], []).append(action)
    return {f"{head}_*": f"Any {head} event" for head, members in sorted(families.items()) if len(members) > 1}


def action_label(action):
    """Name an action for people: "run_cleanup_started" -> "Run cleanup started", "rule_*" -> "Any rule event"."""
    if action and action.endswith("_*"):
        return f"Any {action[:-2].replace('_', ' ')} event"
    return (action or "").replace("_", " ").capitalize()


def _text_arg(f, args, name, what):
    try:
        value = clean_text(args.get(name), what)
    except InvalidValue as exc:
        f.problems[name] = exc.message
        return ""
    if len(value) > TEXT_MAX:
        f.problems[name] = f"Keep it to {TEXT_MAX} characters."
        return ""
    return value


def _day(f, args, name):
    value = (args.get(name) or "").strip()
    if not value:
        return None
    try:
        return iso_date(value)
    except InvalidValue as exc:
        f.problems[name] = exc.message
        return None


def _parse_account(f):
    if not f.account:
        return
    number = f.account.strip().upper()
    found = None
    if _ACCOUNT_NUMBER.fullmatch(number):
        found = db.session.scalar(select(Account).where(Account.number == number))
    if found is None:
        f.problems["account"] = f"No account has the number “{f.account}”. Type its number, like A0000042."
        return
    f.account, f.account_id, f.account_row = found.number, found.id, found


def parse_filters(args):
    """Return AuditFilters read from query arguments, each value checked against the database.

    Args:
        args: a mapping of query arguments: actor, action, reason, account, date_from, date_to, after.

    Returns:
        AuditFilters; `problems` names each field whose value names nothing or cannot be read.
    """
    f = AuditFilters()
    f.actor = _text_arg(f, args, "actor", "The actor")
    f.account = _text_arg(f, args, "account", "The account")
    f.action = (args.get("action") or "").strip()
    if f.action and not _ACTION.fullmatch(f.action):
        f.problems["action"] = "That is not an action; choose one of the listed actions."
        f.action = ""
    f.reason = (args.get("reason") or "").strip()
    if f.reason and f.reason not in REASON_LABELS:
        f.problems["reason"] = "Choose one of the listed reasons."
        f.reason = ""
    f.date_from, f.date_to = _day(f, args, "date_from"), _day(f, args, "date_to")
    if f.date_from and f.date_to and f.date_to < f.date_from:
        f.problems["date_to"] = (f"The range ends ({f.date_to.isoformat()}) before it starts "
                                 f"({f.date_from.isoformat()}); choose an end on or after the start.")
    if (args.get("after") or "").strip():
        f.after = record_id(args.get("after"))
        if f.after is None:
            f.problems["after"] = "That page link is not valid; open the first page again."
    if f.actor and "actor" not in f.problems:
        resolved = resolve_actor(f.actor)
        if resolved.problem:
            f.problems["actor"] = resolved.problem
        else:
            f.actor_clause, f.actor_description = resolved.clause, resolved.description
    _parse_account(f)
    return f


def _midnight(day):
    return datetime.combine(day, time.min)


def where_clause(f):
    """The SQL condition of the filters (None when nothing narrows the log)."""
    E = AuditEvent
    parts = []
    if f.actor_clause is not None:
        parts.append(f.actor_clause)
    if f.account_id is not None:
        parts.append(E.account_id == f.account_id)
    if f.action.endswith("_*"):  # a family: one range of the action index ("_" is followed by "`" in ASCII)
        head = f.action[:-1]
        parts.append(and_(E.action >= head, E.action < head[:-1] + "`"))
    elif f.action:
        parts.append(E.action == f.action)
    if f.reason:
        parts.append(E.reason_category == f.reason)
    if f.date_from:
        parts.append(E.created_at >= _midnight(f.date_from))
    if f.date_to:
        parts.append(E.created_at < _midnight(f.date_to + timedelta(days=1)))
    return and_(*parts) if parts else None


def events_page(f, size=PAGE_SIZE):
    """Return (rows, next_after): up to size (event, account number, account name) rows below f.after.

    Raises:
        ValueError: f has problems (the caller shows them instead of listing).
    """
    if f.problems:
        raise ValueError("filters with problems list nothing")
    E = AuditEvent
    stmt = (select(E, Account.number, Account.name).outerjoin(Account, Account.id == E.account_id)
            .order_by(E.id.desc()).limit(size + 1))
    where = where_clause(f)
    if where is not None:
        stmt = stmt.where(where)
    if f.after:
        stmt = stmt.where(E.id < f.after)
    rows = db.session.execute(stmt).all()
    more = len(rows) > size
    rows = rows[:size]
    return rows, (rows[-1][0].id if more and rows else None)


def run_kinds(run_ids):
    """Return {run id: kind} for the runs named on a page (one query), for their links."""
    ids = {i for i in run_ids if i}
    if not ids:
        return {}
    return dict(db.session.execute(select(SweepRun.id, SweepRun.kind).where(SweepRun.id.in_(ids))).all())


def cell(value):
    """Free text for a spreadsheet cell: text starting like a formula (=, +, -, @) is kept as text."""
    value = value or ""
    return "'" + value if value and value[0] in "=+-@\t\r" else value


def csv_rows(f, chunk=500):
    """Yield the CSV header, then one row per event matching f, newest first, chunk events per query.

    Raises:
        ValueError: f has problems.
    """
    yield CSV_HEADER
    after = f.after
    while True:
        page_filters = AuditFilters(**{**f.__dict__, "after": after, "problems": {}})
        rows, after = events_page(page_filters, chunk)
        for event, number, name in rows:
            yield (event.id, iso_utc(event.created_at), number or "", cell(name), event.action,
                   cell(event.actor_label), event.actor_user_id or "", event.actor_run_id or "",
                   event.reason_category or "", cell(event.reason_note), event.state_before or "",
                   event.state_after or "")
        if after is None:
            return

