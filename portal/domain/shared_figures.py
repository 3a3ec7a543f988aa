"""Figures a background process counted, shared through Redis with the processes that have none yet.

The overview's status counts and its chart's default range are kept per process and brought up to date
from the audit trail (portal.domain.status_counts, portal.domain.overview.activity); what costs is a process's
first count: a scan of every account, or of every event of the chart's range (0.2-1.9 s at a million accounts).
The scheduler's tick keeps its own counts up to date and publishes them here, once a tick; a web process that has
nothing kept takes the published copy and brings it up to date from there, exactly as it would its own (the
copy carries the same marks: newest ids, PostgreSQL's snapshot and gaps). A page only reads: nothing here is
written by a request.

Redis down, the copy missing, unreadable, or counted on another database (a Redis shared by two installs):
the process counts for itself as before, and asks Redis again only after RETRY_SECONDS.
"""
import hashlib
import json
import logging
import time

from flask import current_app
from redis import Redis
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from redis.retry import Retry

log = logging.getLogger(__name__)

KEY_PREFIX = "portal:shared-figures:v1:"  # the format's version: another version's copies are not read
TTL_SECONDS = 2 * 3600  # a copy nobody refreshed for this long is gone (the scheduler is down)
RETRY_SECONDS = 60  # after Redis failed to answer, count locally for this long before asking again
TIMEOUT_SECONDS = 0.25  # a page waits at most this long for Redis (connect, then answer), then counts itself


def _redis():
    """This app's Redis client for the shared figures: short timeouts and no retries, as a page waits on it."""
    client = current_app.extensions.get("portal.shared_figures.redis")
    if client is None:
        client = Redis.from_url(current_app.config["REDIS_URL"], socket_connect_timeout=TIMEOUT_SECONDS,
                                socket_timeout=TIMEOUT_SECONDS, retry=Retry(NoBackoff(), 0))
        current_app.extensions["portal.shared_figures.redis"] = client
    return client


def _database():
    """Which database the figures were counted on (a digest of its address without the password)."""
    url = db_url = current_app.config.get("SQLALCHEMY_DATABASE_URI", "")
    if "@" in db_url and "://" in db_url:
        scheme, rest = db_url.split("://", 1)
        url = f"{scheme}://{rest.rsplit('@', 1)[-1]}"
    return hashlib.sha256(url.encode()).hexdigest()[:16]


def publish(name, payload):
    """Share payload (JSON-able) under name; return whether Redis took it (a failure is logged, not raised)."""
    try:
        _redis().set(KEY_PREFIX + name, json.dumps({"db": _database(), "payload": payload}), ex=TTL_SECONDS)
        return True
    except RedisError as exc:
        log.warning("shared figures %s not published: Redis %s", name, exc)
        return False


def read(name):
    """Return the payload shared under name for this database, or None (none, unreadable, or Redis down)."""
    state = current_app.extensions.setdefault("portal.shared_figures", {})
    if state.get("retry_at", 0.0) > time.monotonic():
        return None
    try:
        raw = _redis().get(KEY_PREFIX + name)
    except RedisError as exc:
        state["retry_at"] = time.monotonic() + RETRY_SECONDS
        log.info("shared figures unavailable (Redis %s): counting here for %d s", exc, RETRY_SECONDS)
        return None
    if raw is None:
        return None
    try:
        shared = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(shared, dict) or shared.get("db") != _database():
        return None
    return shared.get("payload")
