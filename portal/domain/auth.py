"""Sign-in: password check, the gate's login rule, session tokens."""
import secrets

from sqlalchemy import func, select
from sqlalchemy.orm import joinedload
from werkzeug.security import check_password_hash, generate_password_hash

from portal.domain.errors import InvalidCredentials, LoginRefused
from portal.domain.gate import may
from portal.extensions import db
from portal.models import User
from portal.timeutil import utcnow

# Checked when the email is unknown, so both failures cost the same time.
_DUMMY_HASH = generate_password_hash("not-a-real-password")


def hash_password(password):
    """Return a salted scrypt hash of password."""
    return generate_password_hash(password)


def new_session_token():
    """Return a fresh random session token."""
    return secrets.token_hex(16)


def authenticate(email, password, now=None):
    """Return the user for these credentials if the gate lets them sign in.

    The password is checked before the gate, so only someone who knows it learns that the account
    is suspended; a wrong password gets the one generic message whatever the account's state.

    Args:
        email: as typed (case and surrounding spaces ignored).
        password: as typed.
        now: the time of sign-in (default now).

    Raises:
        InvalidCredentials: unknown email or wrong password (one message for both).
        LoginRefused: right password, but the account's state refuses sign-in; the message says why.
    """
    email = (email or "").strip().lower()
    user = db.session.scalar(select(User).where(func.lower(User.email) == email)) if email else None
    if user is None:
        check_password_hash(_DUMMY_HASH, password or "")
        raise InvalidCredentials()
    if not check_password_hash(user.password_hash, password or ""):
        raise InvalidCredentials()
    decision = may(user, "login", user.account)
    if not decision:
        db.session.rollback()
        raise LoginRefused(decision.message)
    user.last_login_at = now or utcnow()
    db.session.commit()
    return user


def end_all_sessions(user):
    """Rotate the user's session token so every existing session and remember-me cookie ends."""
    user.session_token = new_session_token()
    db.session.commit()


def _session_user(session_id):
    """Return (user, key) for a Flask-Login id ("<user id>:<session key>"); user None if there is none."""
    try:
        user_id, key = session_id.split(":", 1)
        return db.session.get(User, int(user_id), options=[joinedload(User.account)]), key
    except (ValueError, AttributeError):
        return None, None


def load_session_user(session_id):
    """Return the user for a Flask-Login id ("<user id>:<session key>"), or None if it no longer holds.

    The key (User.session_key) changes when the session token rotates and whenever the account's
    status changes, so a session or remember-me cookie from before a suspension is refused even
    once the account is active again.
    """
    user, key = _session_user(session_id)
    if user is None or not secrets.compare_digest(user.session_key().encode(), key.encode()):
        return None
    return user


def ended_by_status_change(session_id):
    """Return the user of a session that ended only because the account's status changed since, else None.

    None too for a session ended by sign-out everywhere (a new token), or one that still holds.
    """
    user, key = _session_user(session_id)
    if user is None:
        return None
    current = user.session_key().encode()
    key = key.encode()
    same_token = secrets.compare_digest(current[:16], key[:16])
    return user if same_token and not secrets.compare_digest(current, key) else None
