"""gunicorn's settings for the portal's web side, read from the environment.

    gunicorn -c python:portal.gunicorn_conf 'portal:create_app()'

PORTAL_WEB_BIND (default 127.0.0.1:8000; a web host behind a load balancer binds 0.0.0.0:8000),
PORTAL_WEB_WORKERS (processes; default the cores this process may run on, at least 2) and
PORTAL_WEB_THREADS (threads per process; default 4) and PORTAL_MAX_INFLIGHT (requests one process holds,
answered by its threads or waiting for one; default 16 per thread). gunicorn's own flags on the command
line win.

The worker is portal.gunicorn_worker's: gthread, except that a request gets a thread only once it has
arrived whole (a slow client holds a socket, not a thread, and only for REQUEST_SECONDS), and that a
process holding PORTAL_MAX_INFLIGHT requests answers the next ones 503 with Retry-After at once. The
request line and headers are bounded, and the body by Flask's MAX_CONTENT_LENGTH (413). SIGHUP starts
new workers and retires the old ones after their requests; SIGTERM stops accepting and finishes the
requests in hand within `graceful_timeout`.
"""
import os


class WebSettingError(ValueError):
    """A PORTAL_WEB_* variable holds something gunicorn cannot use."""


def _whole_number(environ, name, default, highest):
    """Read a whole number from 1 to highest from environ[name], or default when unset or empty."""
    raw = (environ.get(name) or "").strip()
    if not raw:
        return default
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= highest:
        raise WebSettingError(f"{name} must be a whole number from 1 to {highest}; got {raw!r}.")
    return int(raw)


def cores():
    """The CPU cores this process may run on (its affinity, which containers and taskset narrow)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def web_workers(environ):
    """Worker processes: PORTAL_WEB_WORKERS, else one per core and at least 2 (a restart never empties the pool)."""
    return _whole_number(environ, "PORTAL_WEB_WORKERS", max(2, cores()), 64)


def web_threads(environ):
    """Threads per worker: PORTAL_WEB_THREADS, else 4 (requests mostly wait on the database)."""
    return _whole_number(environ, "PORTAL_WEB_THREADS", 4, 64)


def max_inflight(environ, threads):
    """Requests one worker holds at once (in its threads or waiting for one): PORTAL_MAX_INFLIGHT, else 16 per
    thread (at four threads of ~20 ms requests, the last waits about 80 ms; more are answered 503 at once)."""
    return _whole_number(environ, "PORTAL_MAX_INFLIGHT", 16 * threads, 100_000)


bind = [os.environ.get("PORTAL_WEB_BIND") or "127.0.0.1:8000"]  # never gunicorn's 0.0.0.0:$PORT by surprise
worker_class = "portal.gunicorn_worker.PortalThreadWorker"  # gthread, reading requests before a thread takes them
workers = web_workers(os.environ)
threads = web_threads(os.environ)
max_inflight(os.environ, threads)  # a bad PORTAL_MAX_INFLIGHT stops the start here, with its message
timeout = 30  # a worker whose main loop is silent this long is killed and replaced (requests run in threads)
graceful_timeout = 30  # on SIGTERM or SIGHUP, a worker's requests in hand get this long to finish
keepalive = 5  # an idle kept-alive connection is closed after this many seconds
limit_request_line = 8190
limit_request_fields = 100
limit_request_field_size = 8190
forwarded_allow_ips = ""  # X-Forwarded-* are read by the portal alone (PORTAL_TRUSTED_PROXIES, ProxyFix)
control_socket_disable = True  # no shared $HOME/.gunicorn/gunicorn.ctl: signals drive restarts
accesslog = "-"
