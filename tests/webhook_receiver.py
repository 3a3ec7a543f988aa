"""A webhook receiver on 127.0.0.1 for the tests: it records each POST, answers the statuses it is told, and
can be taken down (connection refused) and brought back up on the same port."""
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from portal.domain.webhooks import SIGNATURE_HEADER, verify
from tests.services import free_port


class Received:
    """One request as it arrived: headers (case-insensitive names, lower-cased), the raw body."""

    def __init__(self, path, headers, body):
        self.path, self.headers, self.body = path, headers, body

    @property
    def json(self):
        return json.loads(self.body)

    def signed_by(self, secret, tolerance=None, now=None):
        """True if the Portal-Signature header signs this body with secret."""
        return verify(self.headers.get(SIGNATURE_HEADER.lower()), secret, self.body, tolerance=tolerance, now=now)


class Receiver:
    """receiver.url(path); receiver.answers = [500, 200] (then 200); receiver.down(); receiver.up()."""

    def __init__(self):
        self.received = []
        self.answers = []
        self.lock = threading.Lock()
        self.port = free_port()  # below the ephemeral range: nothing else takes it while the receiver is down
        self.server = None
        self.up()

    def url(self, path="/hook"):
        return f"http://127.0.0.1:{self.port}{path}"

    def _handler(self):
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver.lock:
                    receiver.received.append(Received(self.path, {k.lower(): v for k, v in self.headers.items()},
                                                      body))
                    status = receiver.answers.pop(0) if receiver.answers else 200
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        return Handler

    def up(self):
        ThreadingHTTPServer.allow_reuse_address = True
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler())
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def down(self):
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def of_type(self, kind):
        return [r for r in self.received if r.json["type"] == kind]
