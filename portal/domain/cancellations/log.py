"""The log of requests, newest first as the spreadsheet kept it: filters, search, keyset pages and the CSV."""
from dataclasses import dataclass, field
from datetime import date

from sqlalchemy import and_, func, or_, select, tuple_

from portal.domain.cancellations.choices import ANSWERS, CHANNELS, OFFERS, OUTCOMES, REASON_CODES, label
from portal.domain.cancellations.fields import display_phone
from portal.domain.money import dollars
from portal.domain.parsing import InvalidValue, clean_text, iso_date, record_id
from portal.extensions import db
from portal.models import Account, CancellationRequest, RetentionAttempt, User
from portal.timeutil import iso_utc

PAGE_SIZE = 50
Q_MAX = 100
CSV_HEADER = ("Name", "Phone", "Date of cancellation", "Total amount collected", "Months in program", "Reason",
              "Account number", "Channel", "Outcome", "Retention notes", "Logged by", "Logged at",
              "Decided by", "Decided at")


@dataclass
class LogFilters:
    """What staff asked the log for, validated; `problems` names a filter that was ignored and why."""

    outcome: str = ""
    channel: str = ""
    reason_code: str = ""
    date_from: date | None = None
    date_to: date | None = None
    logged_by: int | None = None
    q: str = ""
    after: tuple | None = None  # (request_date, id) of the last row of the previous page
    problems: dict = field(default_factory=dict)

    def args(self, after=None):
        """The query arguments of this view (valid values only), with a cursor if given."""
        out = {k: getattr(self, k) for k in ("outcome", "channel", "reason_code", "q") if getattr(self, k)}
        for name in ("date_from", "date_to"):
            if getattr(self, name):
                out[name] = getattr(self, name).isoformat()
        if self.logged_by:
            out["logged_by"] = str(self.logged_by)
        if after:
            out["after"] = f"{after[0].isoformat()}_{after[1]}"
        return out


def _choice(f, args, name, choices):
    value = (args.get(name) or "").strip()
    if value and value not in choices:
        f.problems[name] = "Choose one of the listed values."
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


def _cursor(f, value):
    text = (value or "").strip()
    if not text:
        return None
    day, _, ident = text.partition("_")
    try:
        return iso_date(day), record_id(ident) or int("x")
    except (InvalidValue, ValueError):
        f.problems["after"] = "That page link is not valid; showing the first page."
        return None


def parse_log_filters(args):
    """Return LogFilters read from query arguments; a bad value is ignored and named in `problems`."""
    f = LogFilters()
    f.outcome = _choice(f, args, "outcome", OUTCOMES)
    f.channel = _choice(f, args, "channel", CHANNELS)
    f.reason_code = _choice(f, args, "reason_code", REASON_CODES)
    f.date_from, f.date_to = _day(f, args, "date_from"), _day(f, args, "date_to")
    if (args.get("logged_by") or "").strip():
        f.logged_by = record_id(args.get("logged_by"))
        if f.logged_by is None:
            f.problems["logged_by"] = "Choose one of the listed people."
    try:
        q = clean_text(args.get("q"), "The search")
        if len(q) > Q_MAX:
            f.problems["q"] = f"Keep the search to {Q_MAX} characters."
        else:
            f.q = q
    except InvalidValue as exc:
        f.problems["q"] = exc.message
    f.after = _cursor(f, args.get("after"))
    return f


def _like(text):
    escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _where(f):
    R = CancellationRequest
    parts = []
    for name, column in (("outcome", R.outcome), ("channel", R.channel), ("reason_code", R.reason_code)):
        if getattr(f, name):
            parts.append(column == getattr(f, name))
    if f.date_from:
        parts.append(R.request_date >= f.date_from)
    if f.date_to:
        parts.append(R.request_date <= f.date_to)
    if f.logged_by:
        parts.append(R.created_by_id == f.logged_by)
    if f.q:
        pattern = _like(f.q)
        digits = "".join(c for c in f.q if c.isascii() and c.isdigit())
        matches = [func.lower(R.contact_name).like(pattern, escape="\\"),
                   func.lower(Account.name).like(pattern, escape="\\"),
                   func.lower(Account.number).like(pattern, escape="\\")]
        if len(digits) >= 4:
            matches.append(R.phone.like(f"%{digits}%"))
        parts.append(or_(*matches))
    return and_(*parts) if parts else None


def _select(f):
    R = CancellationRequest
    stmt = select(R, Account).join(Account, Account.id == R.account_id)
    where = _where(f)
    if where is not None:
        stmt = stmt.where(where)
    return stmt.order_by(R.request_date.desc(), R.id.desc())


def log_page(f, size=PAGE_SIZE):
    """Return (rows, next_after): up to size (request, account) pairs after f.after, newest first."""
    R = CancellationRequest
    stmt = _select(f)
    if f.after:
        stmt = stmt.where(tuple_(R.request_date, R.id) < tuple_(f.after[0], f.after[1]))
    rows = db.session.execute(stmt.limit(size + 1)).all()
    more = len(rows) > size
    rows = rows[:size]
    next_after = (rows[-1][0].request_date, rows[-1][0].id) if more else None
    return rows, next_after


def loggers():
    """Return (id, name) of the people who logged requests, for the 'who logged it' filter."""
    ids = select(CancellationRequest.created_by_id).distinct()
    return db.session.execute(select(User.id, User.name).where(User.id.in_(ids)).order_by(User.name)).all()


def _note_line(a):
    return (f"{a.attempted_at:%Y-%m-%d} {label(OFFERS, a.offer)}, {label(ANSWERS, a.answer)}"
            + (f": {a.note}" if a.note else ""))


def retention_notes(request_ids):
    """Return {request id: its attempts as one line each ('2026-11-30 Discount, Declined: note')}, one query."""
    notes = {}
    if not request_ids:
        return notes
    attempts = db.session.scalars(select(RetentionAttempt).where(RetentionAttempt.request_id.in_(request_ids))
                                  .order_by(RetentionAttempt.attempted_at, RetentionAttempt.id))
    for a in attempts:
        notes[a.request_id] = (notes[a.request_id] + "\n" if a.request_id in notes else "") + _note_line(a)
    return notes


def _people(ids):
    ids = {i for i in ids if i}
    if not ids:
        return {}
    return dict(db.session.execute(select(User.id, User.email).where(User.id.in_(ids))).all())


def cell(text):
    """Free text for a spreadsheet cell: one starting like a formula (=, +, -, @) is kept as text with a quote."""
    return "'" + text if text and text[0] in "=+-@\t\r" else text


def csv_rows(f, chunk=500):
    """Yield the CSV header, then one row per request matching f, newest first (the spreadsheet's columns first)."""
    yield CSV_HEADER
    after = None
    while True:
        page_filters = LogFilters(**{**f.__dict__, "after": after, "problems": {}})
        rows, after = log_page(page_filters, chunk)
        people = _people([r.created_by_id for r, _a in rows] + [r.resolved_by_id for r, _a in rows])
        notes = retention_notes([r.id for r, _a in rows])
        for request, account in rows:
            reason = label(REASON_CODES, request.reason_code) + (f": {request.reason}" if request.reason else "")
            yield (cell(request.contact_name), display_phone(request.phone), request.request_date.isoformat(),
                   dollars(request.amount_collected_cents), request.months_in_program, cell(reason), account.number,
                   label(CHANNELS, request.channel), label(OUTCOMES, request.outcome),
                   cell(notes.get(request.id, "")), people.get(request.created_by_id, ""),
                   iso_utc(request.created_at), people.get(request.resolved_by_id, ""), iso_utc(request.resolved_at))
        if after is None:
            return
