"""Base pages: layout and navigation per role, flashes, full page or fragment, expired sessions, error pages."""
import json
import re

import pytest
from sqlalchemy import func, select, update

from portal.domain.auth import end_all_sessions
from portal.domain.errors import ValidationFailed
from portal.extensions import db
from portal.models import Account, CustomerClass, User
from portal.web.access import public, roles_required
from portal.web.helpers import CUSTOMER_NAV, STAFF_NAV, redirect_after_post, render
from tests.conftest import CSRF_RE, PASSWORD

PERSON = {"super_admin": "admin", "support": "support", "account_manager": "manager", "tier_manager": "tier",
          "user": "member"}


def _nav_links(html):
    match = re.search(r'<nav aria-label="Main">(.*?)</nav>', html, re.S)
    return re.findall(r'href="([^"]+)"', match.group(1)) if match else []


def _add_probe_routes(app):
    """Routes that exercise the page helpers directly (added before the app serves its first request)."""

    @app.route("/_probe/login-form")
    @public
    def probe_login_form():
        return render("auth/login.html", block="login_form", email="", errors={})

    @app.route("/_probe/done", methods=["POST"])
    @public
    def probe_done():
        return redirect_after_post("home.healthz")

    @app.route("/_probe/done-trigger", methods=["POST"])
    @public
    def probe_done_trigger():
        return redirect_after_post("home.healthz", trigger="thing-done")

    @app.route("/_probe/invalid")
    @public
    def probe_invalid():
        raise ValidationFailed({"name": "Enter a name."})

    @app.route("/_probe/boom")
    @roles_required("super_admin")
    def probe_boom():
        db.session.add(CustomerClass(name="written before the crash"))
        db.session.flush()
        raise RuntimeError("secret internals")

    return app


@pytest.fixture
def probe(app):
    return _add_probe_routes(app)


# ---------------------------------------------------------------- layout and navigation

@pytest.mark.parametrize("role", sorted(PERSON))
def test_navigation_shows_the_pages_of_the_role(app, client, auth, world, role):
    person = getattr(world, PERSON[role])
    auth.login(person.email)
    html = client.get("/", follow_redirects=True).get_data(as_text=True)
    links = _nav_links(html)
    if role in ("super_admin", "support"):
        shown = [item for item in STAFF_NAV if item["endpoint"] in app.view_functions and role in item["roles"]]
        urls = {id(item): app.url_map.bind("localhost").build(item["endpoint"]) for item in shown}
        expected = ([urls[id(i)] for i in shown if i.get("first")] + ["/accounts"]
                    + [urls[id(i)] for i in shown if not i.get("first")])
        assert expected[:2] == ["/overview", "/accounts"]
    else:
        expected = [app.url_map.bind("localhost").build(item["endpoint"]) for item in CUSTOMER_NAV
                    if item["endpoint"] in app.view_functions and role in item["roles"]]
    assert links == expected
    if role == "account_manager":  # every feature's page, in the order people work through them
        assert links == ["/my-account", "/reservations", "/campaigns", "/surveys", "/data", "/listings", "/profile",
                         "/social"]
    elif role == "tier_manager":
        assert links == ["/reservations", "/surveys", "/listings", "/social"]
    elif role == "user":
        assert links == ["/reservations"]
    with app.app_context():
        name, label = db.session.get(User, person.id).name, db.session.get(User, person.id).role_label
    assert f"{name} · {label}" in html
    assert re.search(r'<form method="post" action="/logout"[^>]*>\s*<input type="hidden" name="csrf_token"', html)


def test_the_current_page_is_marked_in_the_navigation(client, auth, world):
    auth.login(world.manager.email)
    html = client.get("/reservations").get_data(as_text=True)
    assert re.search(r'href="/reservations"\s+aria-current="page"', html)
    assert not re.search(r'href="/my-account"\s+aria-current="page"', html)


def test_signed_out_pages_have_no_navigation_or_sign_out(client):
    html = client.get("/login").get_data(as_text=True)
    assert _nav_links(html) == []
    assert "Sign out" not in html


def test_layout_has_landmarks_and_a_skip_link(client):
    html = client.get("/login").get_data(as_text=True)
    assert '<html lang="en">' in html
    assert '<a class="skip-link" href="#main">' in html
    assert '<main id="main"' in html
    assert 'id="flashes"' in html and 'aria-live="polite"' in html


def test_htmx_is_served_locally_and_pinned_to_2x(client):
    html = client.get("/login").get_data(as_text=True)
    scripts = re.findall(r'<script[^>]+src="([^"]+)"', html)
    styles = re.findall(r'<link[^>]+href="([^"]+)"', html)
    assert "/static/vendor/htmx-2.0.11.min.js" in scripts
    assert not [u for u in scripts + styles if u.startswith(("http:", "https:", "//"))]  # works without internet
    response = client.get("/static/vendor/htmx-2.0.11.min.js")
    assert response.status_code == 200
    assert b'version:"2.0.11"' in response.data.replace(b" ", b"")
    response.close()


def test_htmx_is_configured_to_swap_422_and_send_the_csrf_header(client):
    html = client.get("/login").get_data(as_text=True)
    config = json.loads(re.search(r"<meta name=\"htmx-config\" content='([^']+)'>", html).group(1))
    codes = {rule["code"]: rule for rule in config["responseHandling"]}
    assert codes["422"]["swap"] is True
    headers = json.loads(re.search(r"<body hx-headers='([^']+)'", html).group(1))
    assert headers["X-CSRFToken"] == CSRF_RE.search(html).group(1)


def test_health_check_answers_ok_with_the_database_and_redis_up(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok", "database": "up", "redis": "up"}
    assert response.headers["Cache-Control"] == "no-store"


def test_suspended_account_manager_sees_the_banner_on_every_page(app, client, auth, world):
    with app.app_context():
        db.session.execute(update(Account).where(Account.id == world.account)
                           .values(status="suspended", status_reason="non_payment"))
        db.session.commit()
    auth.login(world.manager.email)
    for path in ("/my-account", "/reservations"):
        html = client.get(path).get_data(as_text=True)
        assert ("Your account has been suspended for non-payment of dues. To reactivate your account, "
                "please contact billing@portal.test.") in html


def test_active_account_shows_no_banner(client, auth, world):
    auth.login(world.manager.email)
    assert 'data-testid="suspension-banner"' not in client.get("/my-account").get_data(as_text=True)


# ---------------------------------------------------------------- flash messages

def test_flash_messages_show_once_in_the_flash_region(client, auth, world):
    auth.login(world.member.email)
    auth.logout()
    html = client.get("/login").get_data(as_text=True)
    assert re.search(r'<div class="flash flash-info" role="status">You have signed out.</div>', html)
    assert "You have signed out." not in client.get("/login").get_data(as_text=True)


def test_error_flashes_are_alerts(app, client, auth, world):
    auth.login(world.member.email)
    with app.app_context():
        db.session.execute(update(Account).where(Account.id == world.account)
                           .values(status="suspended", status_reason="non_payment"))
        db.session.commit()
    html = client.get("/reservations", follow_redirects=True).get_data(as_text=True)
    assert re.search(r'<div class="flash flash-error" role="alert">Your account has been temporarily suspended', html)


# ---------------------------------------------------------------- one helper: full page or fragment

@pytest.mark.parametrize("headers, fragment", [
    ({}, False),
    ({"HX-Request": "true"}, True),
    ({"HX-Request": "true", "HX-Boosted": "true"}, False),
    ({"HX-Request": "true", "HX-History-Restore-Request": "true"}, False),
])
def test_render_returns_a_fragment_only_for_plain_htmx_requests(probe, client, headers, fragment):
    response = client.get("/_probe/login-form", headers=headers)
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert ("<html" not in html) is fragment
    assert '<form id="login-form"' in html
    assert "HX-Request" in response.headers["Vary"]


@pytest.mark.parametrize("path", ["/login", "/my-account"])
def test_full_pages_vary_on_hx_request(client, auth, world, path):
    auth.login(world.manager.email)
    response = client.get(path, follow_redirects=True)
    assert "HX-Request" in response.headers["Vary"]


def test_redirect_after_post_is_303_without_htmx_and_hx_redirect_with_it(probe, auth):
    plain = auth.post("/_probe/done", page="/login")
    assert plain.status_code == 303 and plain.headers["Location"] == "/healthz"
    htmx = auth.post("/_probe/done", htmx=True, page="/login")
    assert htmx.status_code == 204 and htmx.headers["HX-Redirect"] == "/healthz"
    trigger = auth.post("/_probe/done-trigger", htmx=True, page="/login")
    assert trigger.status_code == 204 and trigger.headers["HX-Trigger"] == "thing-done"
    assert "HX-Redirect" not in trigger.headers


# ---------------------------------------------------------------- expired sessions

def _sign_out_elsewhere(app, user_id):
    with app.app_context():
        end_all_sessions(db.session.get(User, user_id))


def test_expired_session_on_an_htmx_request_gets_hx_redirect_to_sign_in(app, client, auth, world):
    auth.login(world.admin.email)
    _sign_out_elsewhere(app, world.admin.id)
    response = client.get(f"/accounts/{world.account}", headers={
        "HX-Request": "true", "HX-Current-URL": "http://localhost/accounts?page=2"})
    assert response.status_code == 401
    assert response.headers["HX-Redirect"] == "/login?next=/accounts?page%3D2"
    assert response.get_data() == b""  # never a sign-in page swapped into a fragment


def test_expired_session_on_a_plain_request_redirects_to_sign_in_and_back(app, client, auth, world):
    auth.login(world.admin.email)
    _sign_out_elsewhere(app, world.admin.id)
    response = client.get("/accounts")
    assert response.status_code == 302
    assert response.headers["Location"] == "/login?next=/accounts"
    token = CSRF_RE.search(client.get(response.headers["Location"]).get_data(as_text=True)).group(1)
    again = client.post(response.headers["Location"], data={"email": world.admin.email, "password": PASSWORD,
                                                           "csrf_token": token})
    assert again.headers["Location"] == "/accounts"


def test_htmx_post_after_the_session_cookie_is_gone_gets_hx_redirect(app, client, auth, world):
    auth.login(world.admin.email)
    token = CSRF_RE.search(client.get("/accounts").get_data(as_text=True)).group(1)
    client.delete_cookie("session")  # the browser dropped the session cookie
    response = client.post("/logout", headers={"HX-Request": "true", "X-CSRFToken": token,
                                               "HX-Current-URL": "http://localhost/accounts"})
    assert response.status_code == 401
    assert response.headers["HX-Redirect"] == "/login?next=/accounts"


def test_plain_post_after_the_session_cookie_is_gone_asks_to_sign_in_again(client, auth, world):
    auth.login(world.admin.email)
    token = CSRF_RE.search(client.get("/accounts").get_data(as_text=True)).group(1)
    client.delete_cookie("session")
    response = client.post("/logout", data={"csrf_token": token})
    assert response.status_code == 303 and response.headers["Location"] == "/login"
    assert "Your session has expired. Please sign in again." in client.get("/login").get_data(as_text=True)


# ---------------------------------------------------------------- error pages

def _assert_friendly_page(response, status, title):
    html = response.get_data(as_text=True)
    assert response.status_code == status
    assert "<html" in html and f"<h1>{title}</h1>" in html
    assert 'href="/"' in html  # a way back home
    assert "Traceback" not in html
    assert "HX-Request" in response.headers["Vary"]
    return html


def test_403_is_a_friendly_page_with_the_users_navigation(client, auth, world):
    auth.login(world.member.email)
    html = _assert_friendly_page(client.get("/accounts"), 403, "Not allowed")
    assert "You don&#39;t have permission to see this page." in html
    assert _nav_links(html) == ["/reservations"]


def test_403_for_htmx_is_a_short_fragment(client, auth, world):
    auth.login(world.member.email)
    response = client.get("/accounts", headers={"HX-Request": "true"})
    html = response.get_data(as_text=True)
    assert response.status_code == 403
    assert "<html" not in html and 'role="alert"' in html


def test_404_is_a_friendly_page(client):
    html = _assert_friendly_page(client.get("/no-such-page"), 404, "Not found")
    assert "We couldn&#39;t find that page or record." in html


def test_404_for_a_missing_record(client, auth, world):
    auth.login(world.support.email)
    _assert_friendly_page(client.get("/accounts/987654"), 404, "Not found")


def test_405_is_a_friendly_page(client):
    _assert_friendly_page(client.get("/logout"), 405, "Not allowed")


def test_422_is_a_friendly_page(probe, client):
    html = _assert_friendly_page(client.get("/_probe/invalid"), 422, "Please check your input")
    assert "Please correct the highlighted fields." in html


def test_500_is_a_friendly_page_and_nothing_was_changed(probe, app, client, auth, world):
    auth.login(world.admin.email)
    html = _assert_friendly_page(client.get("/_probe/boom"), 500, "Something went wrong")
    assert "nothing was changed" in html
    assert "secret internals" not in html
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(CustomerClass)
                                 .where(CustomerClass.name == "written before the crash")) == 0


def test_500_for_htmx_is_a_short_fragment(probe, client, auth, world):
    auth.login(world.admin.email)
    response = client.get("/_probe/boom", headers={"HX-Request": "true"})
    assert response.status_code == 500
    assert "<html" not in response.get_data(as_text=True)

