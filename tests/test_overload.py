"""Overload and slow clients against the production web server (gunicorn with portal/gunicorn_conf.py, as
`python3 run.py` starts it, on a free loopback port): load over what a process can answer gets 503 with
Retry-After at once instead of waiting until the client gives up; clients that send half a request hold
no thread, and others are served at once; a request cut short never runs; a body over the limit is 413."""
import http.client
import re
import socket
import threading
import time
from contextlib import contextmanager
from urllib.parse import urlencode

import httpx
import pytest
from sqlalchemy import create_engine, func, select, text

from portal.extensions import db
from portal.gunicorn_worker import REQUEST_SECONDS, RETRY_AFTER
from portal.models import Account, AuditEvent
from tests.conftest import ALONE, CSRF_RE, PASSWORD
from tests.fault_processes import portal_env, run_script

pytestmark = [pytest.mark.slow, ALONE]  # timing-sensitive: never alongside another such test
THREADS, MAX_INFLIGHT, CLIENTS = 2, 4, 20
CLIENT_TIMEOUT = 8  # what a client waits for an answer before it gives up


@contextmanager
def web_server(database_url, redis_url, **settings):
    """The portal's production web server on a free loopback port, one worker of THREADS threads."""
    run = run_script()
    port = run.free_port()
    env = portal_env(database_url, redis_url, PORTAL_WEB_WORKERS=1, PORTAL_WEB_THREADS=THREADS, **settings)
    services = run.Services()
    try:
        master = services.start("web", run.web_command(port), env)
        assert run.wait_for_port(port, master), "the web server did not start"
        yield port
    finally:
        services.stop()


def _get(port, path, timeout=CLIENT_TIMEOUT):
    """GET path on a new connection: (status or the error, Retry-After, seconds it took)."""
    started = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()
        return response.status, response.headers.get("Retry-After"), time.monotonic() - started
    except OSError as exc:
        return repr(exc), None, time.monotonic() - started
    finally:
        conn.close()


def _wait_until(predicate, timeout):
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.05)
    return predicate()


def test_load_over_what_a_process_holds_gets_quick_503s_with_retry_after(app, make, database_url, redis_server):
    if not database_url.startswith("postgresql"):
        pytest.skip("the slow database is a PostgreSQL table lock")
    with app.app_context():
        number = db.session.get(Account, make.account(name="Public Profile")).number
    engine = create_engine(database_url)
    results = []
    with web_server(database_url, redis_server.url, PORTAL_MAX_INFLIGHT=MAX_INFLIGHT) as port:
        served, _, _ = _get(port, f"/p/{number}")  # read from the accounts table (a 404 without a profile row)
        assert served in (200, 404)
        with engine.connect() as holder:
            # Every profile request waits here: the portal answers slower than requests come.
            holder.execute(text("LOCK TABLE accounts IN ACCESS EXCLUSIVE MODE"))
            clients = [threading.Thread(target=lambda: results.append(_get(port, f"/p/{number}")))
                       for _ in range(CLIENTS)]
            for client in clients:
                client.start()
            answered_while_slow = _wait_until(lambda: len(results) >= CLIENTS - MAX_INFLIGHT, CLIENT_TIMEOUT + 2)
            refused = list(results)
            holder.rollback()  # the database is quick again: the requests in hand are answered
        for client in clients:
            client.join(CLIENT_TIMEOUT + 5)
    engine.dispose()
    assert answered_while_slow, f"only {len(refused)} answered while the process was full: {refused}"
    assert [(status, retry) for status, retry, _ in refused] == [(503, str(RETRY_AFTER))] * (CLIENTS - MAX_INFLIGHT)
    assert max(took for _, _, took in refused) < 1.0  # at once, not after waiting for a thread
    assert [status for status, _, _ in results[len(refused):]] == [served] * MAX_INFLIGHT  # answered once it could


def _half_request(port, line=b"GET /login HTTP/1.1\r\nHost: 127.0.0.1\r\n"):
    sock = socket.create_connection(("127.0.0.1", port), timeout=REQUEST_SECONDS + 5)
    sock.sendall(line)
    return sock


def _status_line(sock):
    data = b""
    try:
        while b"\r\n" not in data and (chunk := sock.recv(4096)):
            data += chunk
    finally:
        sock.close()
    return data.split(b"\r\n", 1)[0].decode()


def test_slow_clients_hold_no_thread_and_are_ended_if_they_never_finish(app, database_url, redis_server):
    if not database_url.startswith("sqlite"):
        pytest.skip("reading requests does not depend on the database")
    with web_server(database_url, redis_server.url) as port:
        assert _get(port, "/login")[0] == 200  # the first request of a process loads what the pages need
        slow = [_half_request(port) for _ in range(THREADS * 3)]  # three times the threads, each half sent
        stop = threading.Event()

        def trickle():  # each sends another header now and then, never the blank line that ends its request
            while not stop.wait(0.5):
                for sock in slow[1:]:
                    try:
                        sock.sendall(b"X-Still-Typing: 1\r\n")
                    except OSError:
                        pass

        trickler = threading.Thread(target=trickle, daemon=True)
        trickler.start()
        try:
            served = [_get(port, "/login", timeout=5) for _ in range(10)]
            assert [status for status, _, _ in served] == [200] * 10
            assert max(took for _, _, took in served) < 1.0  # the slow clients hold no thread
            slow[0].sendall(b"Connection: close\r\n\r\n")
            assert _status_line(slow[0]) == "HTTP/1.1 200 OK"  # a slow client that finishes in time is answered
            started = time.monotonic()
            assert _status_line(slow[1]) == "HTTP/1.1 408 Request Timeout"  # one that never finishes is ended
            assert time.monotonic() - started < REQUEST_SECONDS + 2
        finally:
            stop.set()
            trickler.join(5)
            for sock in slow:
                sock.close()


def _signed_in(port, email):
    """An httpx client signed in through the real form; returns (client, CSRF token of its session)."""
    browser = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10)
    token = CSRF_RE.search(browser.get("/login").text).group(1)
    assert browser.post("/login", data={"email": email, "password": PASSWORD, "csrf_token": token}).status_code == 303
    return browser


def test_a_request_cut_short_changes_nothing_and_a_body_over_the_limit_is_413(app, make, database_url,
                                                                             redis_server):
    if not database_url.startswith("sqlite"):
        pytest.skip("reading requests does not depend on the database")
    admin = make.user("super_admin")
    account_id = make.account(name="Kept Active")
    with web_server(database_url, redis_server.url) as port:
        browser = _signed_in(port, admin.email)
        dialog = browser.get(f"/accounts/{account_id}/status-dialog")
        fields = {"csrf_token": CSRF_RE.search(dialog.text).group(1), "reason_category": "other",
                  "reason_note": "Sent half", "confirm": "1",
                  "version": re.search(r'name="version" value="(\d+)"', dialog.text).group(1)}
        cookie = "; ".join(f"{name}={value}" for name, value in browser.cookies.items())
        for padding in (0, 100_000):  # read by the main loop, and a body large enough for the thread to read
            body = urlencode(dict(fields, padding="x" * padding)).encode()
            head = (f"POST /accounts/{account_id}/suspend HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nCookie: {cookie}\r\n"
                    "Content-Type: application/x-www-form-urlencoded\r\n"
                    f"Content-Length: {len(body)}\r\n\r\n").encode()
            sock = socket.create_connection(("127.0.0.1", port), timeout=10)
            sock.sendall(head + body[:-5])  # every field the suspension needs, not the end of the padding
            time.sleep(0.5)
            sock.close()  # the client goes away before the end of its request
        time.sleep(1)
        with app.app_context():
            assert db.session.get(Account, account_id).status == "active"
            assert db.session.scalar(select(func.count()).select_from(AuditEvent)
                                     .where(AuditEvent.action == "suspended")) == 0
            db.session.remove()
        assert browser.post(f"/accounts/{account_id}/suspend", data=fields).status_code == 303  # sent whole: done
        with app.app_context():
            assert db.session.get(Account, account_id).status == "suspended"
            db.session.remove()

        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.putrequest("POST", "/login")
        conn.putheader("Content-Type", "application/x-www-form-urlencoded")
        conn.putheader("Content-Length", str(7 * 1024 * 1024))  # over PORTAL_MAX_REQUEST_BYTES (6 MiB)
        conn.endheaders()
        response = conn.getresponse()
        assert response.status == 413 and re.search(r"Request too large", response.read().decode())
        conn.close()
        browser.close()


@pytest.mark.parametrize("data, left", [
    (b"GET / HTTP/1.1\r\nHost: x\r\n", None),  # the head is not whole yet
    (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", 0),
    (b"POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\n12345", None),  # nor the small body
    (b"POST / HTTP/1.1\r\ncontent-length: 10\r\n\r\n1234567890", 0),
    (b"POST / HTTP/1.1\r\nContent-Length: 100000\r\n\r\n12345", 100_000),  # a large body: the thread reads it
    (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 8 * 1024 * 1024),
    (b"POST / HTTP/1.1\r\nContent-Length: 10\r\nExpect: 100-continue\r\n\r\n", 8 * 1024 * 1024),
    (b"POST / HTTP/1.1\r\nContent-Length: ten\r\n\r\n", 8 * 1024 * 1024),  # gunicorn's parser refuses it
])
def test_the_main_loop_hands_a_request_over_once_it_is_whole(data, left):
    from portal.gunicorn_worker import arrival

    assert arrival(data) == left


def test_a_request_head_over_64_kib_is_refused_by_the_main_loop():
    from portal.gunicorn_worker import MAX_HEAD, TOO_LARGE, arrival

    assert arrival(b"GET / HTTP/1.1\r\nCookie: " + b"x" * MAX_HEAD) is TOO_LARGE
    assert arrival(b"GET / HTTP/1.1\r\nCookie: " + b"x" * (MAX_HEAD - 100)) is None
