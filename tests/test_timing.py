"""The Server-Timing header: the portal's own time for a request, spanning every other hook."""
import re
import time

from portal.web import timing

DURATION = re.compile(r"^app;dur=(\d+\.\d)$")


def _duration(response):
    match = DURATION.match(response.headers.get("Server-Timing", ""))
    assert match, response.headers.get("Server-Timing")
    return float(match.group(1))


def test_every_answer_says_how_long_the_portal_took(client, auth, make):
    assert _duration(client.get("/healthz")) >= 0
    assert _duration(client.get("/no-such-page")) >= 0  # errors too
    assert _duration(client.get("/accounts")) >= 0  # the redirect to sign in
    admin = make.user("super_admin")
    auth.login(admin.email)
    response = client.get("/accounts", headers={"HX-Request": "true"})
    assert response.status_code == 200 and _duration(response) > 0


def test_the_time_spans_the_hooks_before_and_after_the_view(app, client):
    app.before_request(lambda: time.sleep(0.03))
    app.after_request(lambda response: time.sleep(0.03) or response)
    assert _duration(client.get("/healthz")) >= 60


def test_the_timer_is_the_first_hook_in_and_the_last_out(app):
    assert app.before_request_funcs[None][0] is timing.start_timer
    assert app.after_request_funcs[None][0] is timing.add_server_timing  # Flask runs them last-registered first
