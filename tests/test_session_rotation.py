"""A session does not survive a suspension: cookies copied before it are refused after the reactivation.

The Flask-Login id carries a key derived from the session token and the account's last status change
(User.session_key), so every suspension or reactivation, of one account or by a sweep, bulk change or
undo run, ends the sessions and remember-me cookies from before it, with no per-account work in runs.
"""
import html

import pytest

from portal.domain import runs, suspension, sweeps
from portal.extensions import db
from portal.models import Account, SuspensionRule, User
from portal.web.session import STATUS_CHANGED
from tests.conftest import PASSWORD

HOMES = {"manager": "/my-account", "member": "/reservations"}
REFUSED = "Your account has been temporarily suspended. Please contact your account administrator for details."


@pytest.fixture
def app_config():
    return {"LOGIN_RATE_LIMIT": "1000 per minute"}


def _text(response):
    return html.unescape(response.get_data(as_text=True))


def _copied_cookies(app, auth, client, email):
    """Sign in with remember-me and return copies of the session and remember-me cookies."""
    assert auth.login(email, remember=True).status_code == 303
    return client.get_cookie("session").value, client.get_cookie("remember_token").value


def _browser_with(app, name, value):
    """A new browser holding only one copied cookie."""
    other = app.test_client()
    other.set_cookie(name, value)
    return other


def _admin(app, world):
    return db.session.get(User, world.admin.id)


def _suspend_and_reactivate_one(app, world):
    with app.app_context():
        suspension.suspend(_admin(app, world), world.account, "non_payment", "Unpaid.")
        suspension.reactivate(_admin(app, world), world.account, "other", "Paid.")
        db.session.remove()


def _suspend_and_reactivate_in_bulk(app, world):
    """A bulk suspension run over the account, then its undo run (both set-based chunks)."""
    with app.app_context():
        admin = _admin(app, world)
        run = runs.start_run(admin, "bulk", "suspend", {"type": "ids", "ids": [world.account]}, "non_payment",
                             "Unpaid.", enqueue=False)
        runs.process_run(run.id, worker_name="test", poll=0)
        assert db.session.get(Account, world.account).status == "suspended"
        undo = sweeps.start_undo(admin, run.id, "other", "Paid.")
        runs.process_run(undo.id, worker_name="test", poll=0)
        db.session.remove()


def _suspend_and_reactivate_by_sweep(app, world):
    """A clean-up by the inactivity rule suspends the account, its undo reactivates it."""
    from datetime import datetime

    with app.app_context():
        db.session.query(SuspensionRule).delete()
        db.session.add(SuspensionRule(enabled=True, **sweeps.DEFAULT_RULES[0]))
        db.session.query(Account).update({Account.exempt: True})  # only the one account is swept
        account = db.session.get(Account, world.account)
        account.exempt, account.created_at, account.last_activity_at = False, datetime(2020, 1, 1), None
        db.session.commit()
        admin = _admin(app, world)
        run = sweeps.start_cleanup(admin, sweeps.BY_RULE, "Dormant since 2020.")
        runs.process_run(run.id, worker_name="test", poll=0)
        assert db.session.get(Account, world.account).status == "suspended"
        undo = sweeps.start_undo(admin, run.id, "other", "Swept by mistake.")
        runs.process_run(undo.id, worker_name="test", poll=0)
        assert db.session.get(Account, world.account).status == "active"
        db.session.remove()


CHANGES = {"single": _suspend_and_reactivate_one, "bulk": _suspend_and_reactivate_in_bulk,
           "sweep": _suspend_and_reactivate_by_sweep}


@pytest.mark.parametrize("who", sorted(HOMES))
@pytest.mark.parametrize("change", sorted(CHANGES))
def test_cookies_copied_before_a_suspension_are_refused_after_the_reactivation(app, auth, client, world, who,
                                                                               change):
    person, home = getattr(world, who), HOMES[who]
    session_cookie, remember_cookie = _copied_cookies(app, auth, client, person.email)
    assert _browser_with(app, "session", session_cookie).get(home).status_code == 200  # the copies work now
    assert _browser_with(app, "remember_token", remember_cookie).get(home).status_code == 200
    CHANGES[change](app, world)
    for name, value in (("session", session_cookie), ("remember_token", remember_cookie)):
        replayed = _browser_with(app, name, value)
        response = replayed.get(home)
        assert response.status_code == 302 and response.headers["Location"].startswith("/login"), (name, change)
        htmx = replayed.get(home, headers={"HX-Request": "true"})
        assert htmx.status_code == 401 and htmx.headers["HX-Redirect"].startswith("/login")
    assert client.get(home).status_code == 302  # the browser that signed in is signed out too
    assert auth.login(person.email).status_code == 303 and client.get(home).status_code == 200  # signs in again


def test_a_cookie_with_no_status_change_since_keeps_working(app, auth, client, world):
    session_cookie, remember_cookie = _copied_cookies(app, auth, client, world.member.email)
    with app.app_context():  # another account's change does not touch this one's sessions
        suspension.suspend(_admin(app, world), world.other_account, "non_payment", "Unpaid.")
        db.session.remove()
    assert _browser_with(app, "session", session_cookie).get("/reservations").status_code == 200
    assert _browser_with(app, "remember_token", remember_cookie).get("/reservations").status_code == 200


def test_staff_sessions_are_untouched_by_account_changes(app, auth, client, world):
    auth.login(world.support.email)
    _suspend_and_reactivate_one(app, world)
    assert client.get("/accounts").status_code == 200


# ---------------------------------------------------------------- what the person is told

def test_a_manager_signed_out_by_a_suspension_is_told_why_and_signs_in_to_the_banner(app, auth, client, world):
    _copied_cookies(app, auth, client, world.manager.email)
    with app.app_context():
        suspension.suspend(_admin(app, world), world.account, "non_payment", "Unpaid.")
        db.session.remove()
    ended = client.get("/my-account")
    assert ended.status_code == 302 and ended.headers["Location"] == "/login?next=/my-account"
    assert STATUS_CHANGED in _text(client.get(ended.headers["Location"]))
    assert client.get_cookie("remember_token") is None  # cleared, so it cannot sign them back in
    auth.login(world.manager.email)
    assert 'data-testid="suspension-banner"' in client.get("/my-account").get_data(as_text=True)


def test_a_session_ended_on_the_sign_in_page_signs_in_to_the_home_page_not_back_to_sign_in(app, auth, client, world):
    """The sign-in page opened with a cookie from before a suspension: told why, and no `next` back to itself
    (which sent the browser from sign-in to sign-in to the home page)."""
    _copied_cookies(app, auth, client, world.manager.email)
    with app.app_context():
        suspension.suspend(_admin(app, world), world.account, "non_payment", "Unpaid.")
        db.session.remove()
    ended = client.get("/login")
    assert ended.status_code == 302 and ended.headers["Location"] == "/login"
    assert STATUS_CHANGED in _text(client.get(ended.headers["Location"]))
    token = auth.csrf_token("/login")
    signed_in = client.post("/login", headers={"HX-Request": "true", "X-CSRFToken": token},
                            data={"email": world.manager.email, "password": PASSWORD, "csrf_token": token})
    assert signed_in.status_code == 204 and signed_in.headers["HX-Redirect"] == "/my-account"


def test_a_member_with_a_cookie_from_before_a_suspension_is_told_the_account_is_suspended(app, auth, client, world):
    _session_cookie, remember_cookie = _copied_cookies(app, auth, client, world.member.email)
    with app.app_context():
        suspension.suspend(_admin(app, world), world.account, "non_payment", "Unpaid.")
        db.session.remove()
    replayed = _browser_with(app, "remember_token", remember_cookie)
    ended = replayed.get("/reservations")
    assert ended.status_code == 302
    assert REFUSED in _text(replayed.get(ended.headers["Location"]))


def test_a_cookie_replayed_after_the_reactivation_is_told_to_sign_in_again(app, auth, client, world):
    session_cookie, _remember_cookie = _copied_cookies(app, auth, client, world.member.email)
    _suspend_and_reactivate_one(app, world)
    replayed = _browser_with(app, "session", session_cookie)
    ended = replayed.get("/reservations")
    assert STATUS_CHANGED in _text(replayed.get(ended.headers["Location"]))


def test_sign_out_everywhere_still_ends_every_session_without_a_status_message(app, auth, client, world):
    from tests.conftest import AuthActions

    other = app.test_client()
    AuthActions(other).login(world.member.email)
    auth.login(world.member.email)
    auth.logout()
    ended = other.get("/reservations")
    assert ended.status_code == 302
    page = _text(other.get(ended.headers["Location"]))
    assert "Please sign in to continue." in page and STATUS_CHANGED not in page
