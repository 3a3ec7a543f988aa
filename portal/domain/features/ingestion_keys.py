"""Ingestion keys: per-account secrets for POST /api/v1/ingest, shown once and stored only as a SHA-256 digest.

A key reads `ik_` and 43 URL-safe characters (256 random bits). The portal keeps its digest, to find the key
by, and its first characters (the prefix), so people can tell keys apart on the page and in the audit trail.
Creating one asks the gate for `create_key` (refused while the account is suspended); revoking asks for
`revoke_key`, which stays allowed while suspended: taking a leaked key away must always be possible.
"""
import hashlib
import secrets

from sqlalchemy import func, select, update

from portal.domain import audit
from portal.domain.accounts import load_for_action
from portal.domain.errors import Conflict, DomainError, ValidationFailed
from portal.domain.gate import require
from portal.domain.parsing import InvalidValue, clean_text, record_id
from portal.extensions import db
from portal.models import Account, IngestionKey
from portal.timeutil import utcnow

KEY_START = "ik_"
PREFIX_LENGTH = 11  # "ik_" and 8 characters: enough to tell keys apart, far too few to guess the rest
NAME_MAX = 100
ACTIVE_KEYS_MAX = 20
HEADER_MAX = 300  # an Authorization header longer than this holds no key of ours
INVALID_KEY_MESSAGE = ("The ingestion key is missing, wrong or revoked. Send it as 'Authorization: Bearer KEY'; "
                       "an account manager can create a new one on the Data page.")


class InvalidKey(DomainError):
    """No key, an unknown key or a revoked one: one answer for all, so nobody learns which keys exist."""

    status_code = 401

    def __init__(self):
        super().__init__(INVALID_KEY_MESSAGE)


class KeyNotFound(DomainError):
    """The key does not exist, or belongs to another account (the same answer)."""

    status_code = 404

    def __init__(self):
        super().__init__("No such ingestion key.")


def digest_of(text):
    """Return the SHA-256 hex digest a key is stored and found by."""
    return hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()


def list_keys(account_id, limit=100):
    """Return the account's keys, active and revoked, newest first."""
    stmt = (select(IngestionKey).where(IngestionKey.account_id == account_id)
            .order_by(IngestionKey.created_at.desc(), IngestionKey.id.desc()).limit(limit))
    return list(db.session.scalars(stmt))


def _clean_name(name):
    try:
        text = clean_text(name, "The name")
    except InvalidValue as exc:
        raise ValidationFailed({"name": exc.message}) from None
    if not text:
        raise ValidationFailed({"name": "Name the key after what will use it, like 'Till in the shop'."})
    if len(text) > NAME_MAX:
        raise ValidationFailed({"name": f"Keep the name to {NAME_MAX} characters (it has {len(text)})."})
    return text


def create_key(actor, account_id, name, now=None):
    """Create an ingestion key for the account; the only time its text exists outside the caller.

    Args:
        actor: the User creating it (the account's manager; the gate decides).
        account_id: the account the key brings data into.
        name: what the key is for, 1..100 characters.
        now: the time of creation (default now).

    Returns:
        (IngestionKey, text): the stored key and the key itself, to show once.

    Raises:
        AccountNotFound: no such account.
        PermissionDenied: the gate refuses create_key (for example, the account is suspended).
        ValidationFailed(name): no name, too long, or the account already has ACTIVE_KEYS_MAX active keys.
    """
    now = now or utcnow()
    account = load_for_action(actor, "create_key", account_id)
    name = _clean_name(name)
    active = db.session.scalar(select(func.count()).select_from(IngestionKey).where(
        IngestionKey.account_id == account.id, IngestionKey.revoked_at.is_(None)))
    if active >= ACTIVE_KEYS_MAX:
        raise ValidationFailed({"name": f"The account already has {ACTIVE_KEYS_MAX} active keys; revoke one that "
                                        "is no longer used first."})
    text = KEY_START + secrets.token_urlsafe(32)
    key = IngestionKey(account_id=account.id, name=name, prefix=text[:PREFIX_LENGTH], digest=digest_of(text),
                       created_by_id=getattr(actor, "id", None), created_at=now)
    db.session.add(key)
    db.session.flush()
    audit.record("ingestion_key_created", account.id, actor, data={"key_id": key.id, "name": name,
                                                                   "prefix": key.prefix}, now=now)
    db.session.commit()
    return key, text


def revoke_key(actor, key_id, now=None):
    """Revoke a key at once: the endpoint answers 401 to it from the next request on.

    Args:
        actor: the User revoking it (the account's manager; the gate decides).
        key_id: the key's id (bad values are simply not found).
        now: the time of revocation (default now).

    Returns:
        The revoked IngestionKey.

    Raises:
        KeyNotFound: no such key, or it belongs to another account than the actor's.
        PermissionDenied: the gate refuses revoke_key (for example, the account is cancelled).
        Conflict: the key was already revoked (nothing changes).
    """
    now = now or utcnow()
    key_id = record_id(key_id)
    key = db.session.get(IngestionKey, key_id) if key_id is not None else None
    if key is None or (not getattr(actor, "is_staff", False) and actor.account_id != key.account_id):
        raise KeyNotFound()
    account = db.session.get(Account, key.account_id, populate_existing=True)
    require(actor, "revoke_key", account)
    done = db.session.execute(update(IngestionKey).where(IngestionKey.id == key.id, IngestionKey.revoked_at.is_(None))
                              .values(revoked_at=now, revoked_by_id=getattr(actor, "id", None))
                              .execution_options(synchronize_session=False))
    if done.rowcount != 1:
        db.session.rollback()
        raise Conflict(f"The key {key.prefix}… was already revoked; nothing changed.")
    audit.record("ingestion_key_revoked", account.id, actor, data={"key_id": key.id, "name": key.name,
                                                                   "prefix": key.prefix}, now=now)
    db.session.commit()
    db.session.refresh(key)
    return key


def authenticate(authorization):
    """Return the active key an Authorization header carries ("Bearer KEY"); nothing is written.

    Args:
        authorization: the header's value (None when absent).

    Raises:
        InvalidKey: no header, another scheme, an unknown key or a revoked one (the same answer for all).
    """
    scheme, _, text = (authorization or "").strip().partition(" ")
    text = text.strip()
    if scheme.lower() != "bearer" or not text.startswith(KEY_START) or len(text) > HEADER_MAX:
        raise InvalidKey()
    key = db.session.scalar(select(IngestionKey).where(IngestionKey.digest == digest_of(text),
                                                       IngestionKey.revoked_at.is_(None)))
    if key is None:
        raise InvalidKey()
    return key
