"""Staff sessions end when idle too long (STAFF_IDLE_MINUTES) or open too long (STAFF_SESSION_HOURS).

A staff member's session holds when it began and when it was last used, in seconds; each request
checks both and notes the use when the last note is a minute old (or a tenth of the idle limit, if
shorter), so the session cookie is not rewritten by every request. Staff are not remembered
across browser restarts: a remember-me cookie would outlive both limits, so a staff sign-in sets
none, and a staff session without a start (restored from such a cookie) counts as ended.
"""
import math
from datetime import datetime

from flask import current_app, session

from portal.config import ConfigError
from portal.timeutil import utcnow

STARTED, SEEN = "staff_started_at", "staff_seen_at"
_EPOCH = datetime(1970, 1, 1)


def _seconds_now():
    return (utcnow() - _EPOCH).total_seconds()


def _count(value, unit):
    return f"{value:g} {unit}{'' if value == 1 else 's'}"


def start(store):
    """Note in a session (any mapping) that a staff session begins now, and drop any remember-me request."""
    store[STARTED] = store[SEEN] = _seconds_now()
    store.pop("_remember", None)  # Flask-Login sets the cookie after the request only if this is "set"
    store.pop("_remember_seconds", None)


def forget():
    """Remove the staff session's times from the session."""
    session.pop(STARTED, None)
    session.pop(SEEN, None)


def expiry_message():
    """Return why this staff session has ended (too long open or idle), or None and note the use now."""
    now = _seconds_now()
    started, seen = session.get(STARTED), session.get(SEEN)
    hours, minutes = current_app.config["STAFF_SESSION_HOURS"], current_app.config["STAFF_IDLE_MINUTES"]
    if not isinstance(started, (int, float)) or now - started >= hours * 3600:
        return (f"Your session has ended: staff sessions last at most {_count(hours, 'hour')}. "
                "Please sign in again.")
    if not isinstance(seen, (int, float)) or now - seen >= minutes * 60:
        return (f"You were signed out after {_count(minutes, 'minute')} without activity. "
                "Please sign in again.")
    if now - seen >= min(60.0, minutes * 6):  # a tenth of the idle limit, in seconds
        session[SEEN] = now
    return None


def _positive(app, key, variable):
    """Store the setting `key` as a positive number of minutes or hours, or refuse to start."""
    raw = str(app.config[key]).strip()
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise ConfigError(f"{variable} must be a positive number; got {raw!r}.")
    app.config[key] = value


def init_app(app):
    """Check the two limits, and start the clock when a staff member signs in."""
    from flask_login import user_logged_in

    _positive(app, "STAFF_IDLE_MINUTES", "PORTAL_STAFF_IDLE_MINUTES")
    _positive(app, "STAFF_SESSION_HOURS", "PORTAL_STAFF_SESSION_HOURS")

    def started(sender, user, **extra):  # noqa: ARG001 - the signal's arguments
        if user.is_staff:
            start(session)

    user_logged_in.connect(started, app, weak=False)
