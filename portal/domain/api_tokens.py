"""API tokens: named bearer tokens with scopes for the JSON API, shown once and stored only as a SHA-256 digest.

A token reads `ak_` and 43 URL-safe characters (256 random bits). The portal keeps its digest, to find it by,
and its first characters (the prefix), so people can tell tokens apart on the page and in the audit trail.
A token acts for the super admin who made it: the gate sees that person's role (a token never does more
than its maker may), narrowed by the token's scopes; the audit trail names the token. Every request the
API answers for a token is logged (api_token_events); requests with no token we know are only counted
by the rate limiter and written to the application log, so nobody can fill the table from outside.
"""
import hashlib
import secrets
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import delete, select, update

from portal.domain import audit
from portal.domain.errors import DomainError, InvalidTransition, PermissionDenied, ValidationFailed
from portal.domain.gate import STAFF_ONLY_MESSAGE, require
from portal.domain.parsing import InvalidValue, clean_text, date_message, iso_date, record_id
from portal.extensions import db
from portal.models import ApiToken, ApiTokenEvent, User
from portal.timeutil import utcnow

TOKEN_START = "ak_"
PREFIX_LENGTH = 11  # "ak_" and 8 characters: enough to tell tokens apart, far too few to guess the rest
NAME_MAX = 100
HEADER_MAX = 300  # an Authorization header longer than this holds no token of ours
DEFAULT_DAYS = 90
MAX_DAYS = 366
EVENTS_KEPT_DAYS = 90
LAST_USED_EVERY = timedelta(minutes=1)  # last_used_at is written at most once a minute (shown to the minute)
SCOPES = {
    "accounts:read": "Read accounts, their dunning state and timeline, and the cancellation log",
    "accounts:write": "Suspend, reactivate, shift, lift, exempt and cancel accounts",
    "billing:write": "Push invoices and payments, write off invoices",
    "cancellations:write": "Log cancellation requests and record retention attempts",
    "runs:read": "Preview the sweep rules, read runs' progress and reports",
    "runs:write": "Start a clean-up and undo a run",
}


class TokenNotFound(DomainError):
    """No API token with that id."""

    status_code = 404

    def __init__(self):
        super().__init__("No such API token.")


@dataclass(frozen=True)
class TokenActor:
    """Who acts when a token calls the API: its maker's role and id, the token's name in the audit trail.

    Domain functions read `role`, `id`, `is_staff`, `account_id` and `disabled` (the gate), and audit.actor_label
    writes "name <email>": "API token ‘billing-sync’ (ak_1a2b3c4d) of Ada <ada@example.com>".
    """

    token_id: int
    token_name: str
    prefix: str
    scopes: tuple
    id: int
    role: str
    owner_name: str
    email: str
    disabled: bool = False
    account_id: None = None

    @property
    def is_staff(self):
        return self.role in ("super_admin", "support")

    @property
    def name(self):
        return f"API token ‘{self.token_name}’ ({self.prefix}) of {self.owner_name}"

    def has_scope(self, scope):
        return scope in self.scopes


def digest_of(text):
    """Return the SHA-256 hex digest a token is stored and found by."""
    return hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()


def _require_super_admin(actor):
    # Tokens belong to no account: the gate answers manage_api_tokens for the actor's role outside any account.
    if isinstance(actor, str) or actor is None:
        raise PermissionDenied(STAFF_ONLY_MESSAGE)
    require(actor, "manage_api_tokens", None)


def parse_scopes(value):
    """Return the scopes named in value (a list, or text separated by commas or spaces), in SCOPES order.

    Raises:
        ValidationFailed(scopes): none given, or one that does not exist.
    """
    items = value if isinstance(value, (list, tuple, set)) else str(value or "").replace(",", " ").split()
    names = {str(item).strip() for item in items if str(item).strip()}
    unknown = sorted(names - set(SCOPES))
    if unknown:
        raise ValidationFailed({"scopes": f"Unknown scope {unknown[0][:40]!r}; choose from {', '.join(SCOPES)}."})
    if not names:
        raise ValidationFailed({"scopes": "Choose at least one scope."})
    return [scope for scope in SCOPES if scope in names]


def parse_expiry(value, today):
    """Return the day a token stops working: as typed (YYYY-MM-DD, after today, within MAX_DAYS), or DEFAULT_DAYS.

    Raises:
        ValidationFailed(expires): not a date, not after today, or too far ahead.
    """
    if value in (None, ""):
        return today + timedelta(days=DEFAULT_DAYS)
    try:
        day = value if isinstance(value, date) else iso_date(value, date_message("the expiry date"))
    except InvalidValue as exc:
        raise ValidationFailed({"expires": exc.message}) from None
    if not today < day <= today + timedelta(days=MAX_DAYS):
        raise ValidationFailed({"expires": f"The token must expire after today and within {MAX_DAYS} days."})
    return day


def _clean_name(name):
    try:
        text = clean_text(name, "The name")
    except InvalidValue as exc:
        raise ValidationFailed({"name": exc.message}) from None
    if not text:
        raise ValidationFailed({"name": "Name the token after what will use it, like 'billing-sync'."})
    if len(text) > NAME_MAX:
        raise ValidationFailed({"name": f"Keep the name to {NAME_MAX} characters (it has {len(text)})."})
    return text


def create_token(actor, name, scopes, expires=None, now=None):
    """Create an API token; the only time its text exists outside the caller.

    Args:
        actor: the super admin creating it (a User); the token acts for them.
        name: what the token is for, 1..100 characters.
        scopes: the scopes it may use (see parse_scopes).
        expires: the day it stops working (YYYY-MM-DD or a date; default DEFAULT_DAYS from today).
        now: the time of creation (default now).

    Returns:
        (ApiToken, text): the stored token and the token itself, to show once.

    Raises:
        PermissionDenied: the actor is not a super admin.
        ValidationFailed: name, scopes or expires (field_errors names each).
    """
    _require_super_admin(actor)
    now = now or utcnow()
    errors, values = {}, {}
    for field, read in (("name", lambda: _clean_name(name)), ("scopes", lambda: parse_scopes(scopes)),
                        ("expires", lambda: parse_expiry(expires, now.date()))):
        try:
            values[field] = read()
        except ValidationFailed as exc:
            errors.update(exc.field_errors)
    if errors:
        raise ValidationFailed(errors)
    text = TOKEN_START + secrets.token_urlsafe(32)
    token = ApiToken(name=values["name"], prefix=text[:PREFIX_LENGTH], digest=digest_of(text),
                     scopes=" ".join(values["scopes"]), created_by_id=actor.id, created_at=now,
                     expires_at=datetime.combine(values["expires"], datetime.min.time()))
    db.session.add(token)
    db.session.flush()
    audit.record("api_token_created", None, actor, data={"token_id": token.id, "name": token.name,
                                                         "prefix": token.prefix, "scopes": values["scopes"],
                                                         "expires": values["expires"].isoformat()}, now=now)
    db.session.commit()
    return token, text


def get_token(token_id):
    """Return the token with this id (any value; bad ones are not found).

    Raises:
        TokenNotFound.
    """
    token_id = record_id(token_id)
    token = db.session.get(ApiToken, token_id) if token_id is not None else None
    if token is None:
        raise TokenNotFound()
    return token


def list_tokens(limit=200):
    """Return [(token, maker)] newest first, active and revoked."""
    stmt = (select(ApiToken, User).outerjoin(User, User.id == ApiToken.created_by_id)
            .order_by(ApiToken.id.desc()).limit(limit))
    return db.session.execute(stmt).all()


def find_by_prefix(prefix):
    """Return the tokens whose prefix is `prefix` (the command line names tokens by it)."""
    return list(db.session.scalars(select(ApiToken).where(ApiToken.prefix == prefix).order_by(ApiToken.id)))


def revoke_token(actor, token_id, now=None):
    """Revoke a token at once: the API answers 401 to it from the next request on.

    Raises:
        TokenNotFound, PermissionDenied (not a super admin), InvalidTransition (already revoked; nothing changes).
    """
    _require_super_admin(actor)
    now = now or utcnow()
    token = get_token(token_id)
    done = db.session.execute(update(ApiToken).where(ApiToken.id == token.id, ApiToken.revoked_at.is_(None))
                              .values(revoked_at=now, revoked_by_id=actor.id)
                              .execution_options(synchronize_session=False))
    if done.rowcount != 1:
        db.session.rollback()
        raise InvalidTransition(f"The token {token.prefix}… was already revoked; nothing changed.")
    audit.record("api_token_revoked", None, actor, data={"token_id": token.id, "name": token.name,
                                                         "prefix": token.prefix}, now=now)
    db.session.commit()
    db.session.refresh(token)
    return token


def state_of(token, now=None):
    """Return "active", "expired" or "revoked"."""
    if token.revoked_at is not None:
        return "revoked"
    if token.expires_at is not None and token.expires_at <= (now or utcnow()):
        return "expired"
    return "active"


def bearer_text(header):
    """Return the token text of an `Authorization: Bearer …` header, or None (no header, another scheme)."""
    if not header or len(header) > HEADER_MAX:
        return None
    scheme, _, text = header.strip().partition(" ")
    text = text.strip()
    return text if scheme.lower() == "bearer" and text else None


def authenticate(text, now=None):
    """Find the token for its text and say whether it may be used now.

    Returns:
        (ApiToken or None, TokenActor or None, outcome): outcome is "ok", "unauthorized" (no such token),
        "revoked", "expired" or "owner_disabled" (its maker may no longer use the portal).
    """
    found = None
    if text:  # the token and its maker in one statement
        found = db.session.execute(select(ApiToken, User).outerjoin(User, User.id == ApiToken.created_by_id)
                                   .where(ApiToken.digest == digest_of(text))).first()
    if found is None:
        return None, None, "unauthorized"
    token, owner = found
    state = state_of(token, now)
    if state != "active":
        return token, None, state
    if owner is None or owner.disabled or owner.role not in ("super_admin", "support"):
        return token, None, "owner_disabled"
    actor = TokenActor(token_id=token.id, token_name=token.name, prefix=token.prefix, scopes=tuple(token.scope_list),
                       id=owner.id, role=owner.role, owner_name=owner.name, email=owner.email)
    return token, actor, "ok"


def record_use(token, method, path, status, outcome, remote_addr, now=None):
    """Log one request a known token made (its own transaction) and keep its last-used time.

    The last-used time is written when it is a minute old or more (LAST_USED_EVERY), so a busy token does not
    rewrite its row on every request.

    Args:
        token: the ApiToken, or anything with its id, prefix and last_used_at as read when the request began
            (a request with no known token is not written here; see the module docstring).
        method, path, status: the request and the status answered.
        outcome: ok | refused (a domain error) | revoked | expired | owner_disabled | forbidden | rate_limited
            | error.
        remote_addr: the client's address.
    """
    now = now or utcnow()
    add_use(token, method, path, status, outcome, remote_addr, now)
    if outcome not in ("revoked", "expired", "owner_disabled") and last_used_due(token, now):
        db.session.execute(update(ApiToken).where(ApiToken.id == token.id).values(last_used_at=now)
                           .execution_options(synchronize_session=False))
    db.session.commit()


def last_used_due(token, now=None):
    """Whether the token's last-used time is old enough to be written again (see record_use)."""
    now = now or utcnow()
    last = token.last_used_at
    return last is None or now - last >= LAST_USED_EVERY or now < last


def add_use(token, method, path, status, outcome, remote_addr, now=None):
    """Add the log line of one request to the current transaction (the caller commits; see record_use).

    A push adds its line to its own transaction, so it is written with the payment and its answer.
    """
    db.session.add(ApiTokenEvent(token_id=token.id, prefix=token.prefix, method=method[:10], path=path[:300],
                                 status=status, outcome=outcome[:20], at=now or utcnow(),
                                 remote_addr=(remote_addr or "")[:45]))


def events_of(token_id, before_id=None, limit=50):
    """Return a token's logged requests, newest first (keyset pages: before_id)."""
    stmt = select(ApiTokenEvent).where(ApiTokenEvent.token_id == token_id)
    if before_id:
        stmt = stmt.where(ApiTokenEvent.id < before_id)
    return list(db.session.scalars(stmt.order_by(ApiTokenEvent.id.desc()).limit(limit)))


def prune_events(days=EVENTS_KEPT_DAYS, now=None):
    """Delete logged requests older than `days`; return how many went (the log's cost stays bounded)."""
    cutoff = (now or utcnow()) - timedelta(days=days)
    deleted = db.session.execute(delete(ApiTokenEvent).where(ApiTokenEvent.at < cutoff)).rowcount
    db.session.commit()
    return deleted
