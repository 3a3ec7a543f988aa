"""Shared by the benchmarks that go through real HTTP: the production server as run.py starts it, and sign-in.

    with ProductionServer(database_url, redis_url, workers=2, log_path=...) as server:
        session = sign_in(server.url, "admin@example.com", "portal-demo-2026")

The server is gunicorn with portal/gunicorn_conf.py (run.web_command, the very command `python3 run.py`
runs), on a free 127.0.0.1 port, PORTAL_ENV=development as run.py sets it (plain-HTTP cookies); workers
and threads from PORTAL_WEB_WORKERS / PORTAL_WEB_THREADS like any deployment. Its access log goes to a file.
"""
import logging
import math
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

import httpx

logging.getLogger("httpx").setLevel(logging.WARNING)  # the portal's basicConfig(INFO) would log every request
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import run  # noqa: E402  (run.py: the web server's command)
from tests.services import free_port  # noqa: E402

CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')
CSRF_HEADER = re.compile(r'"X-CSRFToken": "([^"]+)"')
SERVER_TIMING = re.compile(r"app;dur=([0-9.]+)")
SECRET = "bench-secret-key"


class ProductionServer:
    """gunicorn serving the portal on a free loopback port, started and stopped by this process."""

    def __init__(self, database_url, redis_url, workers=None, threads=None, log_path=None, extra_env=None,
                 secret=SECRET):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.instance = tempfile.mkdtemp(prefix="portal-bench-instance-")
        env = dict(os.environ, FLASK_APP="portal", PYTHONUNBUFFERED="1", PORTAL_ENV="development",
                   SECRET_KEY=secret, DATABASE_URL=database_url, REDIS_URL=redis_url,
                   PORTAL_INSTANCE_PATH=self.instance,
                   PORTAL_SMTP_PORT=str(free_port()))  # nothing listens there; no worker sends anyway
        for name in ("PORTAL_WEB_WORKERS", "PORTAL_WEB_THREADS", "PORTAL_MAX_INFLIGHT"):
            env.pop(name, None)  # gunicorn_conf's defaults unless asked
        if workers:
            env["PORTAL_WEB_WORKERS"] = str(workers)
        if threads:
            env["PORTAL_WEB_THREADS"] = str(threads)
        env.update(extra_env or {})
        self.env = env
        self.workers = self.settings()[0]
        self.log_path = log_path or os.path.join(self.instance, "gunicorn.log")
        self.proc = None

    def settings(self):
        """(workers, threads, in-flight limit per process) as portal/gunicorn_conf.py reads them from env."""
        from portal import gunicorn_conf

        threads = gunicorn_conf.web_threads(self.env)
        return gunicorn_conf.web_workers(self.env), threads, gunicorn_conf.max_inflight(self.env, threads)

    def __enter__(self):
        self.log = open(self.log_path, "ab")
        self.log_start = self.log.tell()  # the log may hold earlier servers' lines
        self.proc = subprocess.Popen(run.web_command(self.port), cwd=ROOT, env=self.env, stdout=self.log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        self._wait_ready()
        return self

    def _wait_ready(self, timeout=90):
        """Wait until every worker has booted (gunicorn logs 'Booting worker' per process) and /healthz answers."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {self.proc.returncode}; see {self.log_path}")
            with open(self.log_path, "rb") as log:
                log.seek(self.log_start)
                booted = log.read().count(b"Booting worker")
            if booted >= self.workers:
                try:
                    if httpx.get(self.url + "/healthz", timeout=5).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
            time.sleep(0.2)
        raise RuntimeError(f"gunicorn did not answer /healthz within {timeout} s; see {self.log_path}")

    def worker_pids(self):
        """The pids of gunicorn's worker processes (the master's children)."""
        try:
            with open(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children") as f:
                return [int(p) for p in f.read().split()]
        except OSError:
            return []

    def __exit__(self, *exc):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # the master stops its workers gracefully
            try:
                self.proc.wait(40)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()
        return False


@dataclass
class Session:
    """A signed-in browser: its cookies and the CSRF token its pages carry for htmx."""

    cookies: httpx.Cookies
    csrf_token: str

    def client(self, base_url, timeout=30.0):
        """A new kept-alive HTTP/1.1 client with this session's cookies."""
        return httpx.Client(base_url=base_url, cookies=self.cookies, timeout=timeout, follow_redirects=False)


def sign_in(base_url, email, password):
    """Sign in as a browser does (GET the form, POST it with its CSRF token); return the Session."""
    with httpx.Client(base_url=base_url, timeout=30.0) as client:
        form = client.get("/login")
        token = CSRF_FIELD.search(form.text).group(1)
        answer = client.post("/login", data={"email": email, "password": password, "csrf_token": token})
        if answer.status_code != 303:
            raise RuntimeError(f"signing in as {email} answered {answer.status_code}: {answer.text[:300]}")
        page = client.get("/accounts")
        if page.status_code != 200:
            raise RuntimeError(f"/accounts after sign-in answered {page.status_code}")
        return Session(httpx.Cookies(client.cookies), CSRF_HEADER.search(page.text).group(1))


def server_ms(response):
    """The portal's own time for the request (its Server-Timing header), in ms; None without one."""
    match = SERVER_TIMING.search(response.headers.get("Server-Timing", ""))
    return float(match.group(1)) if match else None


def percentile(sorted_values, fraction):
    """The nearest-rank percentile of an already sorted list (p95: fraction 0.95)."""
    if not sorted_values:
        return float("nan")
    rank = max(1, math.ceil(round(len(sorted_values) * fraction, 6)))
    return sorted_values[min(len(sorted_values), rank) - 1]


def load_average():
    """The 1, 5 and 15 minute load averages, as text."""
    return " / ".join(f"{v:.2f}" for v in os.getloadavg())
