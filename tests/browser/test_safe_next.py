"""In a real browser: signing in with a crafted `next` never leaves the portal, with or without JavaScript.

The "other site" is a small server of this test on another origin (localhost on another port), so a
redirect that got through would really load it: the test sees both the address and the request.
"""
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlencode, urlsplit

import pytest

from tests.conftest import PASSWORD

# where the browser lands does not depend on the database (tests/test_safe_next.py runs on both)
pytestmark = [pytest.mark.browser, pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)]

# The known bypasses ({host} is the other site); the full list is checked over HTTP in tests/test_safe_next.py.
BYPASSES = [
    "//{host}/", "///{host}/", "/\\{host}/", "\\/{host}/", "\\\\{host}/", "/\\/{host}/", "/\t/{host}/",
    "/\n/{host}/", "https:{host}/", "http://{host}/", "/%09/{host}/", "/%5C{host}/", "/%2F{host}/",
    "/%252F{host}/", "/\uff0f{host}/", "javascript:alert(document.domain)",
]


@pytest.fixture
def app_config():
    return {"LOGIN_RATE_LIMIT": "1000 per minute"}


@pytest.fixture
def other_site():
    """Serve "another site" on localhost (a different origin from the portal's 127.0.0.1); record its visits."""
    visits = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - the http.server API
            visits.append(self.path)
            body = b"<!doctype html><title>Another site</title><h1>Another site</h1>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):  # quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    server.host = f"localhost:{server.server_port}"
    server.visits = visits
    yield server
    server.shutdown()
    thread.join(5)


def _sign_in_with_next(page, email, target):
    """Open sign-in with `next`, sign in, and return the address the browser settles on."""
    page.context.clear_cookies()
    page.goto("/login?" + urlencode({"next": target}))
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    signing_in = page.url
    with page.expect_response(lambda r: r.request.method == "POST" and urlsplit(r.url).path == "/login"):
        page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(lambda url: url != signing_in)  # a 303, or htmx following HX-Redirect
    page.wait_for_load_state("networkidle")  # the page's own requests are done before the next sign-in
    return page.url


@pytest.mark.parametrize("javascript", [True, False], ids=["htmx", "no-js"])
def test_signing_in_with_each_known_bypass_stays_on_the_portal(browser, live_server, other_site, world, javascript):
    context = browser.new_context(base_url=live_server.url, java_script_enabled=javascript)
    context.set_default_timeout(10_000)
    page = context.new_page()
    portal = urlsplit(live_server.url).netloc
    try:
        for pattern in BYPASSES:
            target = pattern.format(host=other_site.host)
            landed = urlsplit(_sign_in_with_next(page, world.admin.email, target))
            assert landed.netloc == portal, f"next={target!r} led the browser to {landed.geturl()}"
            assert landed.path == "/overview", f"next={target!r} led to {landed.geturl()}, not the home page"
        assert other_site.visits == []
        # a local next still works
        assert urlsplit(_sign_in_with_next(page, world.admin.email, f"/accounts/{world.account}")).path == \
            f"/accounts/{world.account}"
    finally:
        context.close()


def test_the_status_dialog_cancel_link_stays_on_the_portal(browser, live_server, other_site, world):
    context = browser.new_context(base_url=live_server.url)
    context.set_default_timeout(10_000)
    page = context.new_page()
    try:
        _sign_in_with_next(page, world.admin.email, "/accounts")
        page.goto(f"/accounts/{world.account}/status-dialog?" + urlencode({"next": f"/\\{other_site.host}/"}))
        with page.expect_navigation():
            page.get_by_role("link", name="Cancel", exact=True).click()
        assert urlsplit(page.url).netloc == urlsplit(live_server.url).netloc
        assert urlsplit(page.url).path == f"/accounts/{world.account}"
        assert other_site.visits == []
    finally:
        context.close()
