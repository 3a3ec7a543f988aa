"""Sign-in throttling: only failures count, per client address and per email, the form says how long to
wait, and the client address comes from X-Forwarded-For only behind configured trusted proxies."""
import re

import pytest

from portal import create_app
from portal.config import ConfigError
from tests.conftest import CSRF_RE, PASSWORD

BAD_CREDENTIALS = "Invalid email or password."
WAIT_RE = re.compile(r"Please wait (\d+) seconds? and try again")
UNTIL_RE = re.compile(r"\(from \d\d:\d\d:\d\d UTC\)")


@pytest.fixture
def app_config():
    return {"LOGIN_RATE_LIMIT": "10 per minute", "LOGIN_EMAIL_RATE_LIMIT": "5 per minute"}


def sign_in(client, email, password=PASSWORD, address="10.0.0.1", forwarded_for=None, htmx=False):
    """Post the sign-in form from a client address (and through a proxy that says it forwards another)."""
    environ = {"REMOTE_ADDR": address}
    page = client.get("/login", follow_redirects=True, environ_base=environ)
    token = CSRF_RE.search(page.get_data(as_text=True)).group(1)
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}
    if htmx:
        headers.update({"HX-Request": "true"})
    return client.post("/login", data={"email": email, "password": password, "csrf_token": token},
                       headers=headers, environ_base=environ)


def fail(client, email, times, **where):
    for _ in range(times):
        response = sign_in(client, email, "wrong password", **where)
        assert response.status_code == 422, response.get_data(as_text=True)


def refusal(response):
    """The throttled form's message, with the number of seconds taken out."""
    assert response.status_code == 429
    html = response.get_data(as_text=True)
    assert 'id="login-form"' in html
    match = WAIT_RE.search(html)
    assert match, html
    assert 1 <= int(match.group(1)) <= 60
    assert re.search(r"and try again \(from \d\d:\d\d:\d\d UTC\)\. Only failed sign-ins count\.", html), html
    text = html[html.index('data-testid="login-error"'):html.index("</div>", match.end())]
    return UNTIL_RE.sub("(from T)", WAIT_RE.sub("Please wait N seconds and try again", text))


def test_successful_sign_ins_do_not_use_up_the_limit(client, world):
    for _ in range(12):  # more than the address's 10 a minute
        assert sign_in(client, world.admin.email).status_code == 303
    response = sign_in(client, world.admin.email, "wrong password")
    assert response.status_code == 422 and BAD_CREDENTIALS in response.get_data(as_text=True)
    assert sign_in(client, world.admin.email).status_code == 303


def test_failures_for_one_email_block_it_from_another_address_too(client, world):
    fail(client, world.admin.email, 5, address="10.0.0.1")
    blocked = sign_in(client, world.admin.email, address="10.0.0.2")  # the right password, elsewhere
    assert "too many failed sign-ins for this email" in refusal(blocked)
    assert int(blocked.headers["Retry-After"]) <= 60
    assert sign_in(client, world.support.email, address="10.0.0.2").status_code == 303  # others sign in
    assert sign_in(client, world.admin.email.upper() + " ", address="10.0.0.3").status_code == 429  # same email


def test_an_unknown_email_is_throttled_exactly_like_a_known_one(client, world):
    fail(client, world.admin.email, 5, address="10.0.0.1")
    fail(client, "nobody@example.test", 5, address="10.0.0.2")
    known = refusal(sign_in(client, world.admin.email, "wrong password", address="10.0.0.3"))
    unknown = refusal(sign_in(client, "nobody@example.test", "wrong password", address="10.0.0.4"))
    assert known.replace(world.admin.email, "EMAIL") == unknown.replace("nobody@example.test", "EMAIL")


def test_failures_from_one_address_block_that_address(client, world):
    for n in range(10):  # ten different emails: no email reaches its own limit
        fail(client, f"guess{n}@example.test", 1, address="10.0.0.7")
    assert "too many failed sign-ins from your network address" in \
        refusal(sign_in(client, world.admin.email, address="10.0.0.7"))
    assert sign_in(client, world.admin.email, address="10.0.0.8").status_code == 303


def test_the_throttled_form_over_htmx_is_the_form_fragment(client, world):
    fail(client, world.admin.email, 5)
    response = sign_in(client, world.admin.email, htmx=True)
    refusal(response)
    assert "<html" not in response.get_data(as_text=True)


def test_forwarded_for_is_ignored_without_trusted_proxies(client, world):
    for n in range(10):  # each claims to come from somewhere else; the connection is the same
        fail(client, f"guess{n}@example.test", 1, address="10.0.0.9", forwarded_for=f"203.0.113.{n}")
    refusal(sign_in(client, world.admin.email, address="10.0.0.9", forwarded_for="203.0.113.99"))


@pytest.mark.parametrize("app_config", [{"LOGIN_RATE_LIMIT": "10 per minute", "LOGIN_EMAIL_RATE_LIMIT": "5 per minute",
                                         "TRUSTED_PROXIES": "1"}])
def test_forwarded_for_is_honoured_with_one_trusted_proxy(client, world):
    for n in range(10):  # one client behind the proxy fails ten times
        fail(client, f"guess{n}@example.test", 1, address="10.0.0.10", forwarded_for="203.0.113.5")
    refusal(sign_in(client, world.admin.email, address="10.0.0.10", forwarded_for="203.0.113.5"))
    # Another client behind the same proxy is not blocked; only the proxy's last hop is trusted.
    assert sign_in(client, world.admin.email, address="10.0.0.10", forwarded_for="203.0.113.6").status_code == 303
    refusal(sign_in(client, world.admin.email, address="10.0.0.10", forwarded_for="198.51.100.1, 203.0.113.5"))


@pytest.mark.parametrize("value", ["-1", "one", "²", "11"])
def test_a_bad_trusted_proxies_setting_stops_the_start_with_a_message(value):
    with pytest.raises(ConfigError, match="PORTAL_TRUSTED_PROXIES must be the number of reverse proxies"):
        create_app({"ENV_NAME": "testing", "SECRET_KEY": "x", "SQLALCHEMY_DATABASE_URI": "sqlite://",
                    "TRUSTED_PROXIES": value})
