"""Staff sessions end when idle (PORTAL_STAFF_IDLE_MINUTES) or open too long (PORTAL_STAFF_SESSION_HOURS).

The test controls the clock the check reads (portal.web.staff_sessions.utcnow).
"""
import html
from datetime import datetime, timedelta

import pytest

from portal import create_app
from portal.config import ConfigError
from portal.web import staff_sessions

START = datetime(2026, 12, 1, 9, 0)
IDLE = "You were signed out after 30 minutes without activity. Please sign in again."
TOO_LONG = "Your session has ended: staff sessions last at most 12 hours. Please sign in again."


class Clock:
    def __init__(self, now):
        self.now = now

    def advance(self, **delta):
        self.now += timedelta(**delta)


@pytest.fixture
def clock(monkeypatch):
    clock = Clock(START)
    monkeypatch.setattr(staff_sessions, "utcnow", lambda: clock.now)
    return clock


@pytest.fixture
def app_config():
    return {"LOGIN_RATE_LIMIT": "1000 per minute"}


def _text(response):
    return html.unescape(response.get_data(as_text=True))


def _ended_with(client, response, message, next_path="/accounts"):
    assert response.status_code == 302, response.status_code
    assert response.headers["Location"] == f"/login?next={next_path}"
    assert message in _text(client.get(response.headers["Location"]))
    assert client.get(next_path).status_code == 302  # signed out, not only sent away


def test_a_staff_session_ends_after_30_idle_minutes(client, auth, world, clock):
    auth.login(world.admin.email)
    clock.advance(minutes=29)
    assert client.get("/accounts").status_code == 200
    clock.advance(minutes=29)  # 58 minutes since sign-in, 29 since the last request
    assert client.get("/accounts").status_code == 200
    clock.advance(minutes=30)
    _ended_with(client, client.get("/accounts"), IDLE)


def test_an_idle_htmx_request_gets_hx_redirect_to_sign_in(client, auth, world, clock):
    auth.login(world.support.email)
    clock.advance(minutes=31)
    response = client.get("/accounts?q=blue", headers={"HX-Request": "true",
                                                       "HX-Current-URL": "http://localhost/accounts?q=blue"})
    assert response.status_code == 401 and response.get_data() == b""
    assert response.headers["HX-Redirect"] == "/login?next=/accounts?q%3Dblue"
    assert IDLE in _text(client.get("/login"))


def test_a_staff_session_ends_12_hours_after_sign_in_however_busy(client, auth, world, clock):
    auth.login(world.admin.email)
    for _ in range(35):  # a request every 20 minutes: never idle, 11 h 40 min in all
        clock.advance(minutes=20)
        assert client.get("/accounts").status_code == 200
    clock.advance(minutes=20)
    _ended_with(client, client.get("/accounts"), TOO_LONG)


def test_signing_in_again_starts_a_new_session(client, auth, world, clock):
    auth.login(world.admin.email)
    clock.advance(hours=13)
    assert client.get("/accounts").status_code == 302
    auth.login(world.admin.email)
    assert client.get("/accounts").status_code == 200


def test_a_post_after_the_time_out_changes_nothing_and_goes_to_sign_in(app, client, auth, world, clock):
    from portal.extensions import db
    from portal.models import Account

    auth.login(world.admin.email)
    token = auth.csrf_token("/accounts")
    clock.advance(minutes=45)
    response = client.post(f"/accounts/{world.account}/suspend",
                           data={"csrf_token": token, "reason_category": "non_payment", "reason_note": "x",
                                 "version": "1", "confirm": "1"})
    assert response.status_code == 303 and response.headers["Location"] == "/login"
    with app.app_context():
        assert db.session.get(Account, world.account).status == "active"


@pytest.mark.parametrize("app_config", [{"STAFF_IDLE_MINUTES": "5", "STAFF_SESSION_HOURS": "1"}])
def test_the_limits_are_configurable(client, auth, world, clock, app_config):
    auth.login(world.admin.email)
    clock.advance(minutes=4)
    assert client.get("/accounts").status_code == 200
    clock.advance(minutes=5)
    _ended_with(client, client.get("/accounts"), "You were signed out after 5 minutes without activity.")
    auth.login(world.admin.email)
    for _ in range(14):  # 56 minutes, never idle
        clock.advance(minutes=4)
        assert client.get("/accounts").status_code == 200
    clock.advance(minutes=4)
    _ended_with(client, client.get("/accounts"), "staff sessions last at most 1 hour.")


def test_staff_get_no_remember_me_cookie(client, auth, world, clock):
    auth.login(world.admin.email, remember=True)
    assert client.get_cookie("remember_token") is None
    assert client.get("/accounts").status_code == 200


def test_a_staff_session_without_a_start_counts_as_ended(app, client, world, clock):
    from portal.extensions import db
    from portal.models import User

    with app.app_context():
        session_id = db.session.get(User, world.admin.id).get_id()
    with client.session_transaction() as sess:  # as a remember-me cookie would restore it: no start noted
        sess["_user_id"], sess["_fresh"] = session_id, False
    _ended_with(client, client.get("/accounts"), TOO_LONG)


def test_customer_sessions_have_no_staff_time_out(client, auth, world, clock):
    auth.login(world.member.email)
    clock.advance(hours=13)
    assert client.get("/reservations").status_code == 200


@pytest.mark.parametrize("setting, value", [("STAFF_IDLE_MINUTES", "abc"), ("STAFF_IDLE_MINUTES", "0"),
                                            ("STAFF_SESSION_HOURS", "-1"), ("STAFF_SESSION_HOURS", "nan"),
                                            ("STAFF_SESSION_HOURS", "inf")])
def test_a_bad_limit_stops_the_portal_from_starting_with_a_clear_message(setting, value):
    with pytest.raises(ConfigError) as refused:
        create_app({"ENV_NAME": "testing", "SECRET_KEY": "x", "SQLALCHEMY_DATABASE_URI": "sqlite://",
                    setting: value})
    assert refused.value.message == f"PORTAL_{setting} must be a positive number; got {value!r}."
