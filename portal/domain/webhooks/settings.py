"""The webhooks' settings: the app's config, else the PORTAL_<name> variable, else the default."""
import os

from flask import current_app


def _flag(value):
    return value if isinstance(value, bool) else str(value).strip().lower() in {"1", "true", "yes", "on"}


DEFAULTS = {
    "WEBHOOK_ALLOW_PRIVATE": (False, _flag),  # private, loopback and link-local receivers (tests, an intranet)
    "WEBHOOK_TIMEOUT_SECONDS": (10.0, float),  # one delivery: connect, send, wait for the answer
    "WEBHOOK_MAX_ATTEMPTS": (10, int),  # then the delivery is failed (kept; "send again" restarts it)
    "WEBHOOK_BACKOFF_SECONDS": (60, int),  # the wait after the first failure, doubled after each one...
    "WEBHOOK_BACKOFF_MAX_SECONDS": (6 * 3600, int),  # ...up to this (10 attempts span about 8.5 hours)
    "WEBHOOK_RELAY_BATCH": (1000, int),  # audit events read per relay transaction
    "WEBHOOK_GAP_SECONDS": (600, int),  # how long an id passed before it was visible is looked for again
    "WEBHOOK_SEND_BATCH": (100, int),  # due deliveries read at a time
    "WEBHOOK_BUDGET_SECONDS": (240, int),  # one job starts no new delivery after this long
}


def setting(name):
    """Return a webhook setting (see DEFAULTS)."""
    default, cast = DEFAULTS[name]
    value = current_app.config.get(name)
    if value is None:
        value = os.environ.get(f"PORTAL_{name}")
    return default if value is None else cast(value)
