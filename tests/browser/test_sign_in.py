"""In a real browser: each role signs in, lands on its home page, and signs out."""
import re

import pytest

from tests.conftest import PASSWORD, browser_login

# what the browser does with sign-in's answers does not depend on the database (tests/test_auth.py runs on both)
pytestmark = [pytest.mark.browser, pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)]

HOMES = {
    "admin": ("/overview", "Overview"),
    "support": ("/overview", "Overview"),
    "manager": ("/my-account", "Blue Harbor Bistro"),
    "tier": ("/reservations", "Reservations"),
    "member": ("/reservations", "Reservations"),
}


def _path(page):
    return re.sub(r"^https?://[^/]+", "", page.url)


@pytest.mark.parametrize("who", sorted(HOMES))
def test_each_role_signs_in_lands_home_and_signs_out(page, world, who):
    person = getattr(world, who)
    home, heading = HOMES[who]
    browser_login(page, person.email)
    assert _path(page) == home
    assert page.get_by_role("heading", level=1).first.inner_text().startswith(heading)
    assert page.get_by_test_id("whoami").is_visible()
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url("**/login")
    assert page.get_by_role("status").filter(has_text="You have signed out.").is_visible()
    page.goto(home)
    assert _path(page).startswith("/login?next=")


def test_wrong_password_shows_the_message_in_place(page, world):
    page.goto("/login")
    page.get_by_label("Email").fill(world.admin.email)
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Sign in").click()
    error = page.get_by_test_id("login-error")
    error.wait_for()
    assert error.inner_text() == "Invalid email or password."
    assert _path(page) == "/login"
    assert page.get_by_label("Email").input_value() == world.admin.email


def test_empty_form_marks_the_fields(page, world):
    page.goto("/login")
    page.get_by_role("button", name="Sign in").click()
    page.locator("#email-error").wait_for()
    assert page.get_by_label("Email").get_attribute("aria-invalid") == "true"
    assert page.locator("#email-error").inner_text() == "Enter your email address."


def test_sign_in_and_out_work_without_javascript(browser, live_server, world):
    context = browser.new_context(base_url=live_server.url, java_script_enabled=False)
    context.set_default_timeout(10_000)
    page = context.new_page()
    try:
        page.goto("/login")
        page.get_by_label("Email").fill(world.manager.email)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url("**/my-account")
        page.get_by_role("button", name="Sign out").click()
        page.wait_for_url("**/login")
    finally:
        context.close()


def test_expired_session_during_an_htmx_request_goes_to_sign_in_and_back(page, app, world):
    from portal.domain.auth import end_all_sessions
    from portal.extensions import db
    from portal.models import User

    browser_login(page, world.admin.email)
    assert _path(page) == "/overview"
    page.goto("/accounts")
    with app.app_context():  # signed out elsewhere: this browser's session no longer holds
        end_all_sessions(db.session.get(User, world.admin.id))
    # Not awaited: htmx.ajax's promise settles around the navigation to sign-in, which would end the evaluation.
    page.evaluate("() => { htmx.ajax('GET', '/accounts', {target: '#main', swap: 'innerHTML'}); }")
    page.wait_for_url(lambda url: "/login?" in url)
    assert _path(page) == "/login?next=/accounts"
    assert page.get_by_role("heading", name="Sign in").is_visible()  # the whole page, not a fragment
    page.get_by_label("Email").fill(world.admin.email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/accounts")
