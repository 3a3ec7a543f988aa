"""Sign-in and sign-out through HTTP: landing pages, one message for bad credentials, sessions, CSRF, rate limit."""
import itertools

import pytest
from redis import Redis
from sqlalchemy import select, update

from portal.domain.auth import hash_password
from portal.extensions import db, limiter
from portal.models import Account, User
from tests.conftest import CSRF_RE, PASSWORD

HOMES = {
    "admin": "/overview", "support": "/overview", "manager": "/my-account",
    "tier": "/reservations", "member": "/reservations",
}
BAD_CREDENTIALS = "Invalid email or password."


def _error_text(response):
    html = response.get_data(as_text=True)
    start = html.index('data-testid="login-error">') + len('data-testid="login-error">')
    return html[start:html.index("</div>", start)]


# ---------------------------------------------------------------- signing in

@pytest.mark.parametrize("who", sorted(HOMES))
def test_each_role_signs_in_and_lands_on_its_home_page(client, auth, world, who):
    response = auth.login(getattr(world, who).email)
    assert response.status_code == 303
    assert response.headers["Location"] == HOMES[who]
    page = client.get(HOMES[who])
    assert page.status_code == 200
    assert "Sign out" in page.get_data(as_text=True)


def test_email_is_matched_without_case_or_spaces(auth, world):
    response = auth.login(f"  {world.admin.email.upper()} ")
    assert response.status_code == 303


def test_unknown_email_and_wrong_password_give_the_same_message(auth, world):
    unknown = auth.login("nobody@example.test")
    wrong = auth.login(world.admin.email, password="not the password")
    assert unknown.status_code == wrong.status_code == 422
    assert _error_text(unknown) == _error_text(wrong) == BAD_CREDENTIALS
    for response in (unknown, wrong):
        assert 'aria-invalid="true"' not in response.get_data(as_text=True)  # no hint which field was wrong


def test_failed_sign_in_does_not_sign_in(client, auth, world):
    auth.login(world.admin.email, password="nope")
    response = client.get("/accounts")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login")


@pytest.mark.parametrize("data, field, message", [
    ({"email": "", "password": PASSWORD}, "email", "Enter your email address."),
    ({"email": "a@example.test", "password": ""}, "password", "Enter your password."),
    ({}, "email", "Enter your email address."),
])
def test_missing_fields_get_a_message_next_to_the_field(auth, world, data, field, message):
    response = auth.post("/login", data, page="/login")
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert f'<p id="{field}-error" class="field-error">{message}</p>' in html
    assert f'aria-describedby="{field}-error"' in html
    assert "<html" in html  # a plain post gets the whole page back


def test_htmx_validation_error_is_the_form_fragment_with_422(auth, world):
    response = auth.post("/login", {"email": "", "password": ""}, htmx=True, page="/login")
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "<html" not in html
    assert html.lstrip().startswith('<form id="login-form"')
    assert 'id="email-error"' in html and 'id="password-error"' in html
    assert "HX-Request" in response.headers.get("Vary", "")


def test_htmx_sign_in_answers_with_hx_redirect(auth, world):
    response = auth.post("/login", {"email": world.support.email, "password": PASSWORD}, htmx=True, page="/login")
    assert response.status_code == 204
    assert response.headers["HX-Redirect"] == "/overview"


def test_sign_in_follows_a_local_next_link(client, auth, world):
    token = auth.csrf_token("/login")
    response = client.post("/login?next=/accounts/1", data={"email": world.admin.email, "password": PASSWORD,
                                                            "csrf_token": token})
    assert response.headers["Location"] == "/accounts/1"


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/x", "javascript:alert(1)"])
def test_sign_in_ignores_a_next_link_to_another_site(client, auth, world, target):
    token = auth.csrf_token("/login")
    response = client.post("/login", query_string={"next": target},
                           data={"email": world.admin.email, "password": PASSWORD, "csrf_token": token})
    assert response.headers["Location"] == "/overview"


def test_signed_in_user_visiting_login_goes_home(client, auth, world):
    auth.login(world.manager.email)
    response = client.get("/login")
    assert response.status_code == 302
    assert response.headers["Location"] == "/my-account"


def test_passwords_are_stored_as_salted_scrypt_hashes(ctx, world):
    stored = db.session.scalar(select(User.password_hash).where(User.id == world.admin.id))
    assert stored.startswith("scrypt:") and PASSWORD not in stored
    first, second = hash_password("same password"), hash_password("same password")
    assert first.startswith("scrypt:") and first != second


# ---------------------------------------------------------------- account state and sign-in

def _set_account(app, account_id, **values):
    with app.app_context():
        db.session.execute(update(Account).where(Account.id == account_id).values(**values))
        db.session.commit()


@pytest.mark.parametrize("who", ["tier", "member"])
def test_members_of_a_suspended_account_are_refused_with_a_clear_message(app, auth, world, who):
    _set_account(app, world.account, status="suspended", status_reason="non_payment")
    response = auth.login(getattr(world, who).email)
    assert response.status_code == 422
    assert _error_text(response) == ("Your account has been temporarily suspended. "
                                     "Please contact your account administrator for details.")


def test_manager_of_a_suspended_account_still_signs_in(app, auth, world):
    _set_account(app, world.account, status="suspended", status_reason="non_payment")
    response = auth.login(world.manager.email)
    assert response.status_code == 303


def test_a_members_session_ends_when_the_account_is_suspended(app, client, auth, world):
    auth.login(world.member.email)
    assert client.get("/reservations").status_code == 200
    _set_account(app, world.account, status="suspended", status_reason="non_payment")
    response = client.get("/reservations")
    assert response.status_code == 302 and response.headers["Location"].startswith("/login")
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "temporarily suspended" in page


def test_a_disabled_sign_in_is_refused(app, auth, world):
    with app.app_context():
        db.session.execute(update(User).where(User.id == world.support.id).values(disabled=True))
        db.session.commit()
    response = auth.login(world.support.email)
    assert response.status_code == 422
    assert _error_text(response) == "This sign-in has been disabled."


# ---------------------------------------------------------------- sessions

def test_sign_in_starts_a_new_session(client, auth, world):
    client.get("/login")
    with client.session_transaction() as sess:
        sess["planted"] = "before sign-in"
    before = client.get_cookie("session").value
    token_before = auth.csrf_token("/login")
    auth.login(world.admin.email)
    assert client.get_cookie("session").value != before
    with client.session_transaction() as sess:
        assert "planted" not in sess
        assert sess["_user_id"].startswith(f"{world.admin.id}:")
    # The CSRF token of the old session no longer works.
    stale = client.post("/logout", data={"csrf_token": token_before})
    assert stale.status_code == 400
    assert client.get("/accounts").status_code == 200


def test_sign_out_ends_the_session_and_a_replayed_cookie_no_longer_works(client, auth, world):
    auth.login(world.admin.email)
    old_cookie = client.get_cookie("session").value
    assert client.get("/accounts").status_code == 200
    response = auth.logout()
    assert response.status_code == 303 and response.headers["Location"] == "/login"
    assert client.get("/accounts").status_code == 302
    client.set_cookie("session", old_cookie)
    replay = client.get("/accounts")
    assert replay.status_code == 302 and replay.headers["Location"].startswith("/login")


def test_sign_out_ends_the_users_other_sessions(app, auth, world):
    other = app.test_client()
    from tests.conftest import AuthActions

    AuthActions(other).login(world.support.email)
    auth.login(world.support.email)
    assert other.get("/accounts").status_code == 200
    auth.logout()
    assert other.get("/accounts").status_code == 302


def test_sign_out_shows_a_message_on_the_sign_in_page(client, auth, world):
    auth.login(world.member.email)
    response = auth.logout()
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "You have signed out." in page


def test_sign_out_is_a_post_only(client, auth, world):
    auth.login(world.member.email)
    assert client.get("/logout").status_code == 405
    assert client.get("/reservations").status_code == 200


def test_remember_me_cookie_signs_in_a_new_browser_until_sign_out(app, client, auth, world):
    auth.login(world.manager.email, remember=True)
    remembered = client.get_cookie("remember_token").value
    fresh = app.test_client()
    fresh.set_cookie("remember_token", remembered)
    assert fresh.get("/my-account").status_code == 200
    auth.logout()
    later = app.test_client()
    later.set_cookie("remember_token", remembered)
    assert later.get("/my-account").status_code == 302


def test_without_remember_me_no_remember_cookie_is_set(client, auth, world):
    auth.login(world.manager.email)
    assert client.get_cookie("remember_token") is None


# ---------------------------------------------------------------- CSRF

def test_sign_in_without_csrf_token_is_refused_with_a_friendly_page(client, world):
    response = client.post("/login", data={"email": world.admin.email, "password": PASSWORD})
    assert response.status_code == 400
    assert "Reload the page and try again" in response.get_data(as_text=True)
    assert client.get("/accounts").status_code == 302


def test_sign_out_without_csrf_token_keeps_the_session(client, auth, world):
    auth.login(world.admin.email)
    assert client.post("/logout").status_code == 400
    assert client.get("/accounts").status_code == 200


def test_htmx_sends_the_token_in_a_header(client, auth, world):
    auth.login(world.admin.email)
    page = client.get("/accounts").get_data(as_text=True)
    assert '"X-CSRFToken": "' in page  # base.html puts it in hx-headers on <body>
    token = CSRF_RE.search(page).group(1)
    response = client.post("/logout", headers={"HX-Request": "true", "X-CSRFToken": token})
    assert response.status_code in (204, 303)
    assert client.get("/accounts").status_code in (302, 401)


# ---------------------------------------------------------------- rate limit (real Redis)

_GUESSES = itertools.count()


def _bad_login(client, token):
    """A failed sign-in, each for another email: only the client address's limit adds them up."""
    email = f"nobody{next(_GUESSES)}@example.test"
    return client.post("/login", data={"email": email, "password": "x", "csrf_token": token})


def test_the_eleventh_failed_sign_in_in_a_minute_is_refused(client, auth, world):
    token = auth.csrf_token("/login")
    for _ in range(10):
        assert _bad_login(client, token).status_code == 422
    refused = _bad_login(client, token)
    assert refused.status_code == 429
    html = refused.get_data(as_text=True)
    assert "Too many attempts" in html and "<html" in html
    assert "Traceback" not in html
    # A correct password is refused too while the limit holds.
    assert auth.login(world.admin.email).status_code == 429
    # Viewing the sign-in page is not limited.
    assert client.get("/login").status_code == 200


def test_the_rate_limit_counts_in_redis(app, client, auth, redis_server):
    assert app.config["RATELIMIT_STORAGE_URI"] == redis_server.url
    assert type(limiter.storage).__name__ == "RedisStorage"
    token = auth.csrf_token("/login")
    redis = Redis.from_url(redis_server.url)
    assert not redis.keys("LIMITS:*")
    for _ in range(10):
        _bad_login(client, token)
    assert redis.keys("LIMITS:*")  # the counters live in Redis
    assert _bad_login(client, token).status_code == 429
    redis.flushdb()  # forget the counters, and the limit is gone: nothing was counted in memory
    assert _bad_login(client, token).status_code == 422


def test_rate_limited_htmx_request_gets_a_short_fragment(client, auth):
    token = auth.csrf_token("/login")
    for _ in range(10):
        _bad_login(client, token)
    response = client.post("/login", data={"email": "x@example.test", "password": "x"},
                           headers={"HX-Request": "true", "X-CSRFToken": token})
    assert response.status_code == 429
    html = response.get_data(as_text=True)
    assert "<html" not in html and "Too many attempts" in html


@pytest.mark.parametrize("email, password", [
    ("a" * 100_000 + "@example.test", "x"),
    ("ü@例え.jp", "🔑"),
    ("<script>alert(1)</script>", "x"),
    ("x@example.test", "p" * 200_000),
], ids=["huge-email", "unicode", "markup", "huge-password"])
def test_odd_sign_in_input_gets_the_generic_message_never_a_500(auth, world, email, password):
    response = auth.post("/login", {"email": email, "password": password}, page="/login")
    assert response.status_code == 422
    assert _error_text(response) == BAD_CREDENTIALS
    assert "<script>alert(1)</script>" not in response.get_data(as_text=True)


def test_nul_bytes_in_input_are_refused_with_a_message(client, auth, world):
    response = auth.post("/login", {"email": "nul\x00@example.test", "password": "pass\x00word"}, page="/login")
    assert response.status_code == 400
    assert "a NUL byte" in response.get_data(as_text=True)
    assert client.get("/healthz?q=a%00b").status_code == 400


def test_repeated_fields_use_the_first_value(client, auth, world):
    from werkzeug.datastructures import MultiDict

    token = auth.csrf_token("/login")
    response = client.post("/login", data=MultiDict([("email", world.admin.email), ("email", "x@example.test"),
                                                     ("password", PASSWORD), ("csrf_token", token)]))
    assert response.status_code == 303
