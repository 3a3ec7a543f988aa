"""The outbox as staff read it: emails by status, kind, recipient, account or run; one email; a failed one sent again.

The email's life is portal.domain.notify's (pending -> sending -> sent, back to pending after a failure,
failed after too many refusals, held while the gate pauses its recipient's mail). Here a super admin
moves a failed email back to pending (compare-and-set on `failed`, audited) and delivery is kicked.

A run's emails: outbox_emails has no run column, but a run writes each account's audit event and
its emails in one transaction with one `now` (portal.domain.runs.chunk, the dunning run), so the
emails of a run are those whose (account_id, created_at) is that of one of the run's audit events.
"""
import re
from dataclasses import dataclass, field

from sqlalchemy import and_, func, select, text, update

from portal.domain import audit, notify
from portal.domain.errors import Conflict, DomainError, PermissionDenied
from portal.domain.gate import STAFF_ONLY_MESSAGE, require
from portal.domain.parsing import InvalidValue, clean_text, record_id
from portal.extensions import db
from portal.models import Account, AuditEvent, OutboxEmail, SweepRun
from portal.timeutil import utcnow

PAGE_SIZE = 50
COUNT_CAP = 10_000  # counts per status stop here ("10,000+"): the page never counts a million sent emails
STATUSES = {"pending": "Waiting", "sending": "Sending", "sent": "Sent", "failed": "Failed",
            "held": "Held while suspended"}
TEXT_MAX = 254
_KINDS_SQL = text(
    "WITH RECURSIVE k(kind, n) AS ("
    " SELECT min(kind), 1 FROM outbox_emails"
    " UNION ALL SELECT (SELECT min(kind) FROM outbox_emails WHERE kind > k.kind), n + 1"
    " FROM k WHERE k.kind IS NOT NULL AND n < 1000)"
    " SELECT kind FROM k WHERE kind IS NOT NULL")
_RUN = re.compile(r"#?\s*([0-9]{1,10})", re.ASCII)


class EmailNotFound(DomainError):
    """No email with that id in the outbox."""

    status_code = 404

    def __init__(self):
        super().__init__("No such email in the outbox.")


@dataclass
class OutboxFilters:
    """What staff asked the outbox for, validated; `problems` maps a field to the message to show there."""

    status: str = ""
    kind: str = ""
    recipient: str = ""
    account: str = ""
    run: str = ""
    after: int | None = None
    problems: dict = field(default_factory=dict)
    account_id: int | None = None
    run_id: int | None = None

    def args(self, after=None, **override):
        """The query arguments of this view, with a cursor if given (and any value overridden)."""
        out = {k: getattr(self, k) for k in ("status", "kind", "recipient", "account", "run") if getattr(self, k)}
        out.update({k: v for k, v in override.items()})
        out = {k: v for k, v in out.items() if v}
        if after:
            out["after"] = str(after)
        return out


def kind_choices():
    """Return the kinds of email in the outbox, sorted (one index seek per kind)."""
    return [row[0] for row in db.session.execute(_KINDS_SQL)]


def kind_label(kind):
    """Name a kind of email for people: "account_suspended" -> "Account suspended"."""
    return (kind or "").replace("_", " ").capitalize()


def _text(f, args, name, what):
    try:
        value = clean_text(args.get(name), what)
    except InvalidValue as exc:
        f.problems[name] = exc.message
        return ""
    if len(value) > TEXT_MAX:
        f.problems[name] = f"Keep it to {TEXT_MAX} characters."
        return ""
    return value


def _parse_run(f):
    match = _RUN.fullmatch(f.run)
    run_id = int(match.group(1)) if match and int(match.group(1)) <= 2**31 - 1 else None
    if run_id is None or db.session.get(SweepRun, run_id) is None:
        f.problems["run"] = f"There is no run “{f.run}”. Type a run's number, like 12."
        return
    f.run, f.run_id = str(run_id), run_id


def parse_filters(args):
    """Return OutboxFilters read from query arguments: status, kind, recipient, account, run, after.

    A value that names nothing (an unknown status, kind, account or run) is kept out and named in `problems`.
    """
    f = OutboxFilters()
    f.status = (args.get("status") or "").strip()
    if f.status and f.status not in STATUSES:
        f.problems["status"] = "Choose one of the listed statuses."
        f.status = ""
    f.kind = (args.get("kind") or "").strip()
    if f.kind and f.kind not in kind_choices():
        f.problems["kind"] = "No email is of that kind; choose one of the listed kinds."
        f.kind = ""
    f.recipient = _text(f, args, "recipient", "The recipient")
    f.account = _text(f, args, "account", "The account").upper()
    if f.account:
        found = db.session.scalar(select(Account.id).where(Account.number == f.account))
        if found is None:
            f.problems["account"] = f"No account has the number “{f.account}”. Type its number, like A0000042."
        f.account_id = found
    f.run = _text(f, args, "run", "The run")
    if f.run:
        _parse_run(f)
    if (args.get("after") or "").strip():
        f.after = record_id(args.get("after"))
        if f.after is None:
            f.problems["after"] = "That page link is not valid; open the first page again."
    return f


def _run_pairs(run_id):
    """(account_id, created_at) of the run's audit events: the keys its emails share."""
    return (select(AuditEvent.account_id, AuditEvent.created_at)
            .where(AuditEvent.actor_run_id == run_id, AuditEvent.account_id.is_not(None)).distinct().subquery())


def _joined_run(stmt, run_id):
    pairs = _run_pairs(run_id)
    return stmt.join(pairs, and_(pairs.c.account_id == OutboxEmail.account_id,
                                 pairs.c.created_at == OutboxEmail.created_at))


def _where(f):
    E = OutboxEmail
    parts = []
    if f.status:
        parts.append(E.status == f.status)
    if f.kind:
        parts.append(E.kind == f.kind)
    if f.recipient:
        parts.append(E.to_addr.in_(sorted({f.recipient, f.recipient.lower()})))
    if f.account_id is not None:
        parts.append(E.account_id == f.account_id)
    if f.after:
        parts.append(E.id < f.after)
    return parts


def emails_page(f, size=PAGE_SIZE):
    """Return (rows, next_after): up to size (email, account number) rows below f.after, newest first.

    Raises:
        ValueError: f has problems (the caller shows them instead of listing).
    """
    if f.problems:
        raise ValueError("filters with problems list nothing")
    E = OutboxEmail
    stmt = select(E, Account.number).outerjoin(Account, Account.id == E.account_id)
    if f.run_id:
        stmt = _joined_run(stmt, f.run_id)
    stmt = stmt.where(*_where(f)).order_by(E.id.desc()).limit(size + 1)
    rows = db.session.execute(stmt).all()
    more = len(rows) > size
    rows = rows[:size]
    return rows, (rows[-1][0].id if more and rows else None)


def status_counts(cap=COUNT_CAP):
    """Return {status: number of emails} for every status, each counted up to cap + 1 (over cap: "cap+")."""
    counts = {}
    for status in STATUSES:
        capped = select(OutboxEmail.id).where(OutboxEmail.status == status).limit(cap + 1).subquery()
        counts[status] = db.session.scalar(select(func.count()).select_from(capped))
    return counts


def outbox_counts_for_run(run_id):
    """Return {status: count} of the emails a run queued (every status present, 0 when none).

    Args:
        run_id: the SweepRun's id (a clean-up, scheduled sweep, bulk action, undo or dunning run).

    A run's emails are told apart by the (account, time) of its audit events: each chunk writes an
    account's event and its managers' emails in one transaction, with one time.
    """
    stmt = _joined_run(select(OutboxEmail.status, func.count()), run_id).group_by(OutboxEmail.status)
    found = dict(db.session.execute(stmt).all())
    return {status: found.get(status, 0) for status in STATUSES}


def get_email(email_id):
    """Return (email, account or None).

    Raises:
        EmailNotFound: no email with that id.
    """
    email = db.session.get(OutboxEmail, email_id) if record_id(email_id) else None
    if email is None:
        raise EmailNotFound()
    account = db.session.get(Account, email.account_id) if email.account_id else None
    return email, account


def _refusal(email):
    if email.status == "sent":
        when = f" on {email.sent_at:%Y-%m-%d at %H:%M} UTC" if email.sent_at else ""
        return f"This email was already sent{when}, so it is not sent again. Nothing was changed."
    if email.status == "held":
        return ("This email is held while its recipient's account is suspended; it goes out by itself on "
                "reactivation. Nothing was changed.")
    return "This email is already waiting to be sent (or being sent now). Nothing was changed."


def resend(actor, email_id, now=None):
    """Send a failed email again: back to pending with its attempts reset, audited, and delivery kicked.

    Args:
        actor: the super admin (a User).
        email_id: the outbox email's id.
        now: the time of the action (default now).

    Returns:
        The OutboxEmail, now pending.

    Raises:
        PermissionDenied: the actor is not a super admin.
        EmailNotFound: no such email.
        Conflict: the email is not failed (already sent, waiting, being sent or held); nothing changed.
    """
    if isinstance(actor, str) or actor is None:
        raise PermissionDenied(STAFF_ONLY_MESSAGE)
    require(actor, "resend_email", None)  # staff work outside any account
    email, _account = get_email(email_id)
    before = {"attempts": email.attempts, "last_error": email.last_error}
    moved = db.session.execute(update(OutboxEmail).where(OutboxEmail.id == email.id, OutboxEmail.status == "failed")
                               .values(status="pending", attempts=0, sent_at=None)
                               .execution_options(synchronize_session=False)).rowcount
    if moved != 1:  # not failed, or another admin sent it again a moment ago
        db.session.rollback()
        raise Conflict(_refusal(db.session.get(OutboxEmail, email.id, populate_existing=True)))
    audit.record("email_resent", email.account_id, actor, now=now or utcnow(),
                 data={"email_id": email.id, "kind": email.kind, "to": email.to_addr, **before})
    db.session.commit()
    notify.kick_delivery()
    return db.session.get(OutboxEmail, email.id, populate_existing=True)
