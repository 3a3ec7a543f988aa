"""Security headers: the CSP with no inline script or style, no framing, nosniff, the referrer policy,
no caching of pages and exports, HSTS in production only, and no Server version from the dev server.

The route walk in tests/test_access.py checks these headers (check_security_headers) on every
response of every route for every role.
"""
import os
import re
import subprocess
import sys
import time
import urllib.request

from portal import create_app
from portal.web.headers import CSP
from tests.conftest import ROOT, SECRET, _config
from tests.services import free_port

TEMPLATES = os.path.join(ROOT, "templates")
# What the CSP forbids in a page, and htmx attributes it evaluates as script.
FORBIDDEN = {
    # a data block (type="application/json") is never run, so the policy has nothing to refuse in it
    "an inline <script>": re.compile(r"<script(?![^>]*\b(?:src=|type=\"application/json\"))[^>]*>", re.I),
    "an inline <style>": re.compile(r"<style\b", re.I),
    "a style attribute": re.compile(r"\sstyle=", re.I),
    "an on… handler": re.compile(r"\son[a-z]+\s*=", re.I),
    "hx-on": re.compile(r"\shx-on[:-]", re.I),
    "a javascript: URL": re.compile(r"javascript:", re.I),
    "an hx-trigger filter": re.compile(r"hx-trigger=\"[^\"]*\[[^\"]*\]"),
    "js: in hx-vals": re.compile(r"hx-(vals|headers)='?\"?\s*js:", re.I),
}


def check_security_headers(response, where=""):
    """Assert the headers every response of the portal carries (static files may be cached)."""
    headers = response.headers
    assert headers.get("Content-Security-Policy") == CSP, where
    assert headers.get("X-Content-Type-Options") == "nosniff", where
    assert headers.get("X-Frame-Options") == "DENY", where
    assert headers.get("Referrer-Policy") == "same-origin", where
    assert headers.get("Cache-Control") == "no-store", where
    assert "Strict-Transport-Security" not in headers, where  # testing, not production
    assert "Server" not in headers, where


def test_the_policy_allows_no_inline_script_no_eval_and_no_framing():
    directives = dict(d.split(" ", 1) for d in CSP.split("; "))
    assert directives["script-src"] == "'self'" and directives["style-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'" and directives["object-src"] == "'none'"
    assert "unsafe" not in CSP


def test_the_templates_hold_nothing_the_policy_forbids():
    found = []
    for folder, _dirs, files in os.walk(TEMPLATES):
        for name in files:
            if not name.endswith(".html") or os.path.basename(folder) == "email":
                continue
            path = os.path.join(folder, name)
            text = re.sub(r"\{#.*?#\}", lambda m: "\n" * m.group(0).count("\n"), open(path, encoding="utf-8").read(),
                          flags=re.S)  # Jinja comments never reach the page
            for what, pattern in FORBIDDEN.items():
                for match in pattern.finditer(text):
                    line = text.count("\n", 0, match.start()) + 1
                    found.append(f"{os.path.relpath(path, ROOT)}:{line}: {what}")
    assert found == [], "move these to static/ (see portal/web/headers.py):\n" + "\n".join(found)


def test_the_htmx_config_turns_off_its_inline_indicator_style(client):
    html = client.get("/login").get_data(as_text=True)
    assert '"includeIndicatorStyles":false' in html


def test_the_sign_in_page_and_health_check_carry_the_headers(client):
    for path in ("/login", "/healthz"):
        check_security_headers(client.get(path), path)


def test_static_files_carry_the_headers_but_may_be_cached(client):
    response = client.get("/static/css/portal.css")
    assert response.status_code == 200
    assert response.headers["Content-Security-Policy"] == CSP
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers.get("Cache-Control") != "no-store"
    response.close()


def test_the_csv_export_is_not_cached(client, auth, world):
    auth.login(world.support.email)
    response = client.get("/accounts/export.csv")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    check_security_headers(response, "export")
    response.close()


def test_hsts_only_in_production(database_url, redis_server):
    production = create_app(_config(database_url, redis_server.url, ENV_NAME="production"))
    response = production.test_client().get("/login")
    assert response.headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"
    development = create_app(_config(database_url, redis_server.url, ENV_NAME="development"))
    assert "Strict-Transport-Security" not in development.test_client().get("/login").headers


def test_the_development_server_sends_no_server_version(database_url, redis_server):
    """run.py's web server (python -m portal.devserver) answers without Werkzeug's Server header."""
    port = free_port()
    env = dict(os.environ, PORTAL_ENV="testing", SECRET_KEY=SECRET, DATABASE_URL=database_url,
               REDIS_URL=redis_server.url)
    proc = subprocess.Popen([sys.executable, "-m", "portal.devserver", "--host", "127.0.0.1", "--port", str(port)],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/login", timeout=2) as response:
                    headers = response.headers
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read().decode()
                time.sleep(0.2)
        assert headers["Server"] is None and headers["Date"]
        assert headers["Content-Security-Policy"] == CSP
    finally:
        proc.terminate()
        proc.wait(10)
