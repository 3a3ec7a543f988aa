"""A local feed server for the social monitor's tests: JSON Feed, plain JSON lists, RSS, and bad feeds.

It listens on 127.0.0.1 only, in a daemon thread; each path answers what the test set for it, and the
server counts the requests per path (and keeps their Host headers).
"""
import json
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


def json_feed(*items):
    """A JSON Feed 1.1 body with the given items (dicts)."""
    return json.dumps({"version": "https://jsonfeed.org/version/1.1", "title": "Reviews", "items": list(items)})


def rss(*items):
    """An RSS 2.0 body; items are (guid, text, link, pubDate) tuples."""
    entries = "".join(f"<item><guid>{guid}</guid><description>{text}</description><link>{link}</link>"
                      f"<pubDate>{date}</pubDate></item>" for guid, text, link, date in items)
    return (f'<?xml version="1.0"?><rss version="2.0"><channel><title>Reviews</title><link>http://x.test/</link>'
            f"<description>d</description>{entries}</channel></rss>")


class FeedServer:
    """Paths -> what they answer (status, content type, body, delay, drip, sized, extra headers)."""

    def __init__(self):
        self.routes = {}
        self.hits = Counter()
        self.hosts = []
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):  # noqa: N802 - the http.server API
                with server.lock:
                    server.hits[self.path] += 1
                    server.hosts.append(self.headers.get("Host"))
                    route = server.routes.get(self.path)
                if route is None:
                    route = (404, "text/plain", "not here", 0, 0, True, {})
                status, content_type, body, delay, drip, sized, headers = route
                time.sleep(delay)
                data = body.encode() if isinstance(body, str) else body
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", content_type)
                    for name, value in headers.items():
                        self.send_header(name, value)
                    if sized and not drip:
                        self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    if drip:
                        for i in range(len(data)):
                            self.wfile.write(data[i:i + 1])
                            self.wfile.flush()
                            time.sleep(drip)
                    else:
                        self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path):
        return f"http://127.0.0.1:{self.port}{path}"

    def set(self, path, body, status=200, content_type="application/json", delay=0, drip=0, sized=True,
            headers=None):
        """Answer path with body after delay seconds; drip sends it a byte at a time, sized=False without a
        Content-Length; headers are added to the answer."""
        with self.lock:
            self.routes[path] = (status, content_type, body, delay, drip, sized, dict(headers or {}))
        return self.url(path)

    def redirect(self, path, location):
        """Answer path with a 302 to location."""
        return self.set(path, "", status=302, content_type="text/plain", headers={"Location": location})

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


@pytest.fixture
def feeds():
    server = FeedServer()
    yield server
    server.stop()
