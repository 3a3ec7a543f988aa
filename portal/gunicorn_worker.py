"""The portal's gunicorn worker: gthread, with each request read by the main loop before a thread takes it,
and a bound on the requests one process holds (portal/gunicorn_conf.py names it as worker_class).

gunicorn's gthread worker gives a connection a thread as soon as its first byte arrives, and the thread
then blocks until the rest of the request comes: a client that sends half a request and stops holds a
thread for good, and as many such clients as a process has threads stop it answering anyone. Here the
main loop reads each request's head (request line and headers) and, when it is at most PREREAD_BODY
bytes, its body, without blocking, and gives up on a request not whole within REQUEST_SECONDS (408).
Only a request that has arrived whole gets a thread. A larger body (an upload) is read by the thread,
which gives up (408) on a client sending slower than MIN_BODY_RATE, and answers 400 when the client goes
away before the end of it: a request never reaches the portal half-sent. A thread waits at most
SOCKET_TIMEOUT seconds for a client to take each part of a response.

One process holds at most PORTAL_MAX_INFLIGHT requests (being answered by its threads or waiting for
one). A request that arrives whole beyond that is answered at once by the main loop: 503 with
Retry-After, connection closed, nothing run; the client can try again (another process, or later)
instead of waiting behind the others until it gives up.

TLS and HTTP/2 cleartext, which read the connection's first bytes themselves, keep gthread's own
reading (the portal runs behind a load balancer that terminates TLS).
"""
import errno
import os
import selectors
import socket
import time
from collections import deque
from contextlib import suppress
from functools import partial

from gunicorn.http.unreader import SocketUnreader
from gunicorn.workers.gthread import TConn, ThreadWorker
from werkzeug.exceptions import ClientDisconnected, RequestTimeout

from portal.gunicorn_conf import max_inflight

REQUEST_SECONDS = 10.0  # the whole request (head, and a body of at most PREREAD_BODY) must arrive within this
PREREAD_BODY = 64 * 1024  # bodies up to this size are read by the main loop; larger ones by the thread
MAX_HEAD = 64 * 1024  # a request line and headers over this are refused (431)
MIN_BODY_RATE = 64 * 1024  # bytes a second a larger body must arrive at, after REQUEST_SECONDS to start
SOCKET_TIMEOUT = 30.0  # a thread waits at most this long for each read from, or write to, a client
LINGER_SECONDS = 2.0  # after an answer from the main loop, what the client still sends is read this long
RETRY_AFTER = 5  # seconds, in the 503 of a busy process
READ_SIZE = 65536
HEAD_END = b"\r\n\r\n"
TOO_LARGE = object()


def _answer(status, body, *headers):
    lines = [f"HTTP/1.1 {status}", "Content-Type: text/plain; charset=utf-8", f"Content-Length: {len(body)}",
             "Cache-Control: no-store", "X-Content-Type-Options: nosniff", "Connection: close", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


BUSY = _answer("503 Service Unavailable", b"The portal is busy. Please try again in a few seconds.\n",
               f"Retry-After: {RETRY_AFTER}")
TOO_SLOW = _answer("408 Request Timeout", b"The request did not arrive in time.\n")
HEAD_TOO_LARGE = _answer("431 Request Header Fields Too Large", b"The request's headers are too large.\n")


class ClientTooSlow(RequestTimeout):
    """The rest of a request's body did not arrive in time (408, also when the portal is reading a form)."""


class ClientGone(ClientDisconnected):
    """The client closed its connection before the end of its request's body (400; the request is not run)."""


def _body_left(head):
    """The body bytes a request head announces, or None when the main loop does not read it (chunked,
    Expect: 100-continue, a malformed length: the thread does, and gunicorn's parser judges)."""
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        name, value = name.strip().lower(), value.strip().lower()
        if name == b"transfer-encoding" or (name == b"expect" and value == b"100-continue"):
            return None
        if name == b"content-length":
            if not value.isdigit():
                return None
            length = int(value)
    return length


def arrival(data):
    """How much of a request `data` holds: None (wait for more), TOO_LARGE, or the body bytes left for the thread."""
    end = data.find(HEAD_END)
    if end < 0 or end > MAX_HEAD:
        return TOO_LARGE if len(data) > MAX_HEAD else None
    length = _body_left(data[:end])
    if length is None:
        return 8 * 1024 * 1024  # unknown: give the thread the time of a large upload
    if length > PREREAD_BODY:
        return length
    return 0 if len(data) - end - len(HEAD_END) >= length else None


class _BodyReader(SocketUnreader):
    """The connection's reads in a thread, after what the main loop read: within a deadline, and never taking
    the end of the connection for the end of a body."""

    def __init__(self, conn):
        super().__init__(conn.sock)
        self.conn, self.deadline = conn, 0.0

    def start(self, arrived, body_left):
        """A request's thread begins: put back what the main loop read; the rest must come at MIN_BODY_RATE."""
        self.unread(arrived)
        self.deadline = time.monotonic() + REQUEST_SECONDS + body_left / MIN_BODY_RATE

    def chunk(self, size_hint=None):
        remaining = self.deadline - time.monotonic()
        before = self.sock.gettimeout()  # SOCKET_TIMEOUT, or less while gunicorn drains a body the app left
        try:
            if remaining <= 0:
                raise TimeoutError
            self.sock.settimeout(min(remaining, before or SOCKET_TIMEOUT))
            data = super().chunk(size_hint)
        except TimeoutError:
            self.conn.broken = True
            raise ClientTooSlow() from None
        finally:
            with suppress(OSError):
                self.sock.settimeout(before)
        if not data:  # the request in hand has arrived whole up to its body: an end here is the client leaving
            self.conn.broken = True
            raise ClientGone()
        return data


class _Conn(TConn):
    """A connection whose request the main loop reads before a thread takes it."""

    def __init__(self, cfg, sock, client, server):
        super().__init__(cfg, sock, client, server)
        self.arrived, self.deadline, self.body_left, self.broken = b"", 0.0, 0, False

    def init(self):
        super().init()  # in the thread: the parser, created on the connection's first request
        if type(self.parser.unreader) is SocketUnreader:
            self.parser.unreader = _BodyReader(self)  # before any request reads from it
        self.parser.unreader.start(self.arrived, self.body_left)
        self.arrived, self.body_left = b"", 0  # a request pipelined behind this one starts afresh
        self.sock.settimeout(SOCKET_TIMEOUT)


class PortalThreadWorker(ThreadWorker):
    """gthread, reading each request in the main loop and answering 503 beyond PORTAL_MAX_INFLIGHT."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.reads_requests = not (self.cfg.is_ssl or self.cfg.http2_cleartext != "off")
        self.limit = max_inflight(os.environ, self.cfg.threads)
        self.in_hand = 0  # requests given to the thread pool, not yet finished
        self.arriving = deque()  # connections whose request the main loop is reading, by deadline
        self.lingering = deque()  # connections answered by the main loop, closing, by deadline
        self.refused, self.refusals_logged_at = 0, 0.0

    # ------------------------------------------------------------ connections the main loop reads

    def accept(self, listener):
        if not self.reads_requests:
            return super().accept(listener)
        try:
            client_sock, client_addr = listener.accept()
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise
            return
        self.nr_conns += 1
        self._await_request(_Conn(self.cfg, client_sock, client_addr, listener.getsockname()))

    def on_client_socket_readable(self, conn, client):
        if not isinstance(conn, _Conn):
            return super().on_client_socket_readable(conn, client)
        self.poller.unregister(client)  # a kept-alive connection's next request begins
        self.keepalived_conns.remove(conn)
        self._await_request(conn)

    def _await_request(self, conn):
        conn.sock.setblocking(False)
        conn.arrived, conn.deadline = b"", time.monotonic() + REQUEST_SECONDS
        self.arriving.append(conn)
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self._on_request_data, conn))

    def _on_request_data(self, conn, client):
        data = self._recv(conn)
        if data is None:
            return
        if not data:  # gone before its request was whole: nothing to answer
            self._stop_awaiting(conn)
            self._close(conn)
            return
        conn.arrived += data
        left = arrival(conn.arrived)
        if left is None:
            return
        self._stop_awaiting(conn)
        if left is TOO_LARGE:
            self._answer_and_close(conn, HEAD_TOO_LARGE)
        elif self.in_hand >= self.limit:
            self._refuse(conn)
        else:
            conn.body_left, conn.data_ready = left, True
            self.enqueue_req(conn)

    def _stop_awaiting(self, conn):
        self.poller.unregister(conn.sock)
        self.arriving.remove(conn)

    @staticmethod
    def _recv(conn):
        """What the socket has (b"" at its end), or None when nothing after all."""
        try:
            return conn.sock.recv(READ_SIZE)
        except (BlockingIOError, InterruptedError):
            return None
        except OSError:
            return b""

    # ------------------------------------------------------------ answers from the main loop

    def _refuse(self, conn):
        self.refused += 1
        now = time.monotonic()
        if now - self.refusals_logged_at >= 10:
            self.log.warning("busy: %d request(s) in hand (PORTAL_MAX_INFLIGHT=%d); %d answered 503 since the "
                             "last such line", self.in_hand, self.limit, self.refused)
            self.refused, self.refusals_logged_at = 0, now
        self._answer_and_close(conn, BUSY)

    def _answer_and_close(self, conn, response):
        """Send a short answer, then read what the client still sends until it closes (or LINGER_SECONDS), so
        that closing with its data unread does not reset the connection before it has read the answer."""
        try:
            conn.sock.send(response)  # a few hundred bytes: the connection's empty send buffer takes them at once
            conn.sock.shutdown(socket.SHUT_WR)
        except OSError:
            self._close(conn)
            return
        conn.deadline = time.monotonic() + LINGER_SECONDS
        self.lingering.append(conn)
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self._on_lingering_data, conn))

    def _on_lingering_data(self, conn, client):
        if self._recv(conn) == b"":
            self.poller.unregister(conn.sock)
            self.lingering.remove(conn)
            self._close(conn)

    def _close(self, conn):
        self.nr_conns -= 1
        conn.close()

    def murder_pending(self):
        """Also end requests not whole in time (408 if they had begun) and answered connections still open."""
        super().murder_pending()
        now = time.monotonic()
        while self.arriving and self.arriving[0].deadline <= now:
            conn = self.arriving[0]
            self._stop_awaiting(conn)
            if conn.arrived:
                self._answer_and_close(conn, TOO_SLOW)
            else:
                self._close(conn)
        while self.lingering and self.lingering[0].deadline <= now:
            conn = self.lingering.popleft()
            self.poller.unregister(conn.sock)
            self._close(conn)

    # ------------------------------------------------------------ the thread pool

    def enqueue_req(self, conn):
        self.in_hand += 1
        super().enqueue_req(conn)

    def finish_request(self, conn, fs):
        self.in_hand -= 1
        super().finish_request(conn, fs)

    def _keepalive_after(self, conn, keepalive):
        if getattr(conn, "broken", False):  # too slow, or gone, in the middle of a body: the connection ends
            return False
        return super()._keepalive_after(conn, keepalive)

    def handle_error(self, req, client, addr, exc):
        if isinstance(exc, (ClientTooSlow, ClientGone)):  # raised outside the app (draining a body it left)
            return
        super().handle_error(req, client, addr, exc)
