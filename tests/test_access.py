"""The route walk: every route, every role (and anonymous), checked on the server.

Routes come from `app.url_map`, so a route added later is walked too. Every view must declare
`allowed_roles` (with @roles_required or @public). For each route and role:
- GET: a role not allowed gets 403 (anonymous: redirect to sign-in); an allowed role never 403 and never 5xx.
- POST/PUT/PATCH/DELETE: a role not allowed gets 403 (anonymous: redirect to sign-in, or 401) and the
  database and queues are exactly as before; an allowed role never 403 and never 5xx.
- Every response carries the security headers (tests/test_headers.py: CSP, nosniff, no-store, ...).
"""
from types import SimpleNamespace

import pytest
from flask_login import current_user
from redis import Redis

from portal import create_app
from portal.domain.accounts import get_account
from portal.extensions import db
from portal.models import ROLES
from portal.web.access import CUSTOMERS, STAFF, roles_required
from tests.conftest import SNAPSHOTS, session_client, without_csrf
from tests.test_headers import check_security_headers

ANONYMOUS = "anonymous"
# The world's person for each role; customers belong to world.account.
PERSON = {"super_admin": "admin", "support": "support", "account_manager": "manager", "tier_manager": "tier",
          "user": "member"}
WRITE_METHODS = ("POST", "PUT", "PATCH", "DELETE")

# The routes of the foundation and who may use them: (rule, method) -> roles, or "public".
EXPECTED = {
    ("/login", "GET"): "public",
    ("/login", "POST"): "public",
    ("/logout", "POST"): ROLES,
    ("/", "GET"): "public",
    ("/healthz", "GET"): "public",
    ("/my-account", "GET"): ("account_manager",),
    ("/accounts", "GET"): STAFF,
    ("/accounts/<int:account_id>", "GET"): STAFF,
    ("/reservations", "GET"): CUSTOMERS,
    ("/reservations", "POST"): CUSTOMERS,
}


def _collect_routes():
    """Return (rule, method, endpoint) for every route of the portal except static files."""
    app = create_app({"ENV_NAME": "testing", "SECRET_KEY": "collect", "SQLALCHEMY_DATABASE_URI": "sqlite://",
                      "REDIS_URL": "redis://127.0.0.1:1/0"})
    routes = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            routes.append(SimpleNamespace(rule=rule.rule, method=method, endpoint=rule.endpoint))
    return routes


ROUTES = _collect_routes()


@pytest.fixture
def app_config():
    # The walk signs in directly through the session, but keep the limiter out of the way of many requests.
    return {"LOGIN_RATE_LIMIT": "10000 per minute"}


@pytest.fixture
def walk_world(app, world, make):
    """The world, plus one object of each kind in each account, so id parameters point at real rows."""
    return SNAPSHOTS.get("walk_world", app, lambda: _walk_world(world, make))


def _walk_world(world, make):
    w = world
    w.invoice = make.invoice(w.account, seq=1)
    w.other_invoice = make.invoice(w.other_account, seq=1)
    from datetime import datetime

    w.reservation = make.reservation(w.account, datetime(2026, 1, 5), user_id=w.member.id)
    w.other_reservation = make.reservation(w.other_account, datetime(2026, 1, 5), user_id=w.other_member.id)
    w.customer_class = make.customer_class()
    w.features = make.features(w.account)
    w.other_features = make.features(w.other_account)
    return w


def _ids(world, role, other=False):
    """Values for id parameters, as the given role would use them (their own account's, or another's)."""
    customer = role in CUSTOMERS
    theirs = other and customer
    features = world.other_features if theirs else world.features
    return {
        "number": features.number,
        "campaign_id": features.campaign,
        "survey_id": features.survey,
        "request_id": features.request,
        "listing_id": features.listing,
        "connection_id": features.connection,
        "social_profile_id": features.social_profile,
        "post_id": features.post,
        "key_id": features.key,
        "account_id": world.other_account if theirs else world.account,
        "invoice_id": world.other_invoice if theirs else world.invoice,
        "reservation_id": world.other_reservation if theirs else world.reservation,
        "user_id": world.other_member.id if theirs else world.member.id,
        "customer_class_id": world.customer_class,
        "class_id": world.customer_class,
    }


def _url(app, route, values):
    rule = next(r for r in app.url_map.iter_rules(route.endpoint) if r.rule == route.rule)
    filled = {}
    for name, converter in rule._converters.items():
        if name in values:
            filled[name] = values[name]
        elif type(converter).__name__ in ("IntegerConverter", "FloatConverter"):
            filled[name] = 1
        else:
            filled[name] = "1"
    adapter = app.url_map.bind("localhost")
    return adapter.build(route.endpoint, filled, method=route.method)


def _client_as(app, world, role):
    """A test client signed in as role (directly through the session), and a CSRF token of that session."""
    return session_client(app, None if role == ANONYMOUS else getattr(world, PERSON[role]).id)


def _snapshot(watch, redis_url):
    """Every row of every table (tests.conftest.RowsWatch), and every Redis key except the rate limiter's counters."""
    keys = sorted(k for k in Redis.from_url(redis_url).keys() if not k.startswith(b"LIMITS"))
    return watch.rows(), keys


def _allowed_roles(app, endpoint):
    allowed = getattr(app.view_functions[endpoint], "allowed_roles", None)
    assert allowed is not None, (f"view {endpoint} declares no roles: decorate it with @roles_required(...) "
                                 f"or @public (portal/web/access.py)")
    return allowed


def _is_login_redirect(response):
    return response.status_code in (302, 303) and response.headers["Location"].startswith("/login")


# ---------------------------------------------------------------- the declared table

def test_every_view_declares_its_roles(app):
    missing = [rule.endpoint for rule in app.url_map.iter_rules()
               if rule.endpoint != "static" and getattr(app.view_functions[rule.endpoint], "allowed_roles", None)
               is None]
    assert missing == [], f"views without @roles_required/@public: {missing}"


def test_the_foundation_routes_allow_exactly_the_expected_roles(app):
    declared = {(r.rule, r.method): _allowed_roles(app, r.endpoint) for r in ROUTES}
    for key, expected in EXPECTED.items():
        assert key in declared, f"route {key} is missing"
        got = declared[key]
        if expected == "public":
            assert got == "public", key
        else:
            assert set(got) == set(expected), key


def test_the_walk_covers_every_route():
    assert {(r.rule, r.method) for r in ROUTES} >= set(EXPECTED)


# ---------------------------------------------------------------- the walk

@pytest.mark.parametrize("route", ROUTES, ids=[f"{r.method} {r.rule}" for r in ROUTES])
def test_route_walk(app, walk_world, redis_server, rows_watch, route):
    allowed = _allowed_roles(app, route.endpoint)
    if allowed == "bearer":  # an API endpoint: a session, of any role, is never enough
        before = _snapshot(rows_watch, redis_server.url)
        for role in [ANONYMOUS, *ROLES]:
            client, token = _client_as(app, walk_world, role)
            url = _url(app, route, _ids(walk_world, role))
            response = client.open(url, method=route.method, data={"csrf_token": token})
            assert response.status_code == 401, f"{route.method} {url} as {role}: {response.status_code}"
            assert _snapshot(rows_watch, redis_server.url) == before  # so also the state before the next role's request
        return
    public = allowed == "public"
    # Roles that are refused go first, so a change made by an allowed role cannot hide one made by them.
    roles = sorted([ANONYMOUS, *ROLES], key=lambda r: public or r in allowed)
    checked = None  # the state after the previous role, when its request was checked to have changed nothing
    for role in roles:
        client, token = _client_as(app, walk_world, role)
        url = _url(app, route, _ids(walk_world, role))
        may = public or (role != ANONYMOUS and role in allowed)
        before = checked if checked is not None else _snapshot(rows_watch, redis_server.url)
        if route.method == "GET":
            response = client.get(url)
        else:
            response = client.open(url, method=route.method, data={"csrf_token": token})
        where = f"{route.method} {url} as {role}: {response.status_code}"
        check_security_headers(response, where)
        if may:
            assert response.status_code != 403, where
            assert response.status_code < 500, where
        elif role == ANONYMOUS:
            assert _is_login_redirect(response) or response.status_code == 401, where
        else:
            assert response.status_code == 403, where
        checked = None
        if route.method == "GET" or not may:  # no state change on GET, nor by anyone refused
            checked = _snapshot(rows_watch, redis_server.url)
            assert checked == before, f"{where} changed something"


def _bearer_endpoints():
    app = create_app({"ENV_NAME": "testing", "SECRET_KEY": "collect", "SQLALCHEMY_DATABASE_URI": "sqlite://",
                      "REDIS_URL": "redis://127.0.0.1:1/0"})
    return {name for name, view in app.view_functions.items() if getattr(view, "allowed_roles", None) == "bearer"}


BEARER_ENDPOINTS = _bearer_endpoints()
# Bearer-token API endpoints take no session and so need no CSRF token (the walk checks they refuse a session).
WRITE_ROUTES = [r for r in ROUTES if r.method in WRITE_METHODS and r.endpoint not in BEARER_ENDPOINTS]


@pytest.mark.parametrize("route", WRITE_ROUTES, ids=[f"{r.method} {r.rule}" for r in WRITE_ROUTES])
def test_every_state_change_needs_the_csrf_token(app, walk_world, redis_server, rows_watch, route):
    allowed = _allowed_roles(app, route.endpoint)
    role = "super_admin" if allowed == "public" or "super_admin" in allowed else allowed[0]
    client, token = _client_as(app, walk_world, role)
    url = _url(app, route, _ids(walk_world, role))
    before = _snapshot(rows_watch, redis_server.url)
    for headers in ({}, {"HX-Request": "true"}, {"HX-Request": "true", "X-CSRFToken": "forged"}):
        response = client.open(url, method=route.method, data={}, headers=headers)
        assert response.status_code == 400, f"{route.method} {url} as {role} with {headers}: {response.status_code}"
    assert _snapshot(rows_watch, redis_server.url) == before
    # The same request with the session's token in the header htmx sends is accepted past the CSRF check.
    accepted = client.open(url, method=route.method, data={}, headers={"HX-Request": "true", "X-CSRFToken": token})
    assert accepted.status_code != 400 or "form expired" not in accepted.get_data(as_text=True)


def test_anonymous_htmx_request_is_sent_to_sign_in_with_hx_redirect(client):
    response = client.get("/accounts", headers={"HX-Request": "true"})
    assert response.status_code == 401
    assert response.headers["HX-Redirect"].startswith("/login")


# ---------------------------------------------------------------- customers see only their own account

# URL parameters naming something that belongs to one account.
ACCOUNT_OWNED = {"account_id", "invoice_id", "reservation_id", "user_id", "campaign_id", "survey_id", "request_id",
                 "listing_id", "connection_id", "social_profile_id", "post_id", "key_id"}


def _customer_id_routes():
    """Return (route, role) for every customer GET page whose URL names something account-owned."""
    app = create_app({"ENV_NAME": "testing", "SECRET_KEY": "collect", "SQLALCHEMY_DATABASE_URI": "sqlite://",
                      "REDIS_URL": "redis://127.0.0.1:1/0"})
    found = []
    for route in ROUTES:
        allowed = getattr(app.view_functions[route.endpoint], "allowed_roles", None)
        if route.method != "GET" or allowed in (None, "public"):
            continue
        rule = next(r for r in app.url_map.iter_rules(route.endpoint) if r.rule == route.rule)
        if rule.arguments & ACCOUNT_OWNED:
            found.extend((route, role) for role in CUSTOMERS if role in allowed)
    return found


@pytest.mark.parametrize("route, role", _customer_id_routes() or [pytest.param(None, None, marks=pytest.mark.skip(
    reason="no customer page takes an account-owned id yet"))])
def test_customers_get_404_for_another_accounts_ids(app, walk_world, route, role):
    client, _ = _client_as(app, walk_world, role)
    own = client.get(_url(app, route, _ids(walk_world, role)))
    assert own.status_code != 404, f"{route.rule} as {role} with own ids"
    other = client.get(_url(app, route, _ids(walk_world, role, other=True)))
    assert other.status_code == 404, f"{route.rule} as {role} with another account's ids: {other.status_code}"


def _app_with_customer_account_page(database_url, redis_url):
    """The portal plus one customer page that takes an account id and reads it through the domain."""
    from tests.conftest import _config

    app = create_app(_config(database_url, redis_url))

    @app.route("/_probe/accounts/<int:account_id>")
    @roles_required(CUSTOMERS)
    def probe_account(account_id):
        account = get_account(current_user, account_id)
        return {"id": account.id}

    return app


@pytest.mark.parametrize("who", ["manager", "tier", "member"])
def test_reading_another_account_as_a_customer_answers_404(database_url, redis_server, walk_world, who):
    app = _app_with_customer_account_page(database_url, redis_server.url)
    client, _ = _client_as(app, walk_world, getattr(walk_world, who).role)
    assert client.get(f"/_probe/accounts/{walk_world.account}").status_code == 200
    other = client.get(f"/_probe/accounts/{walk_world.other_account}")
    missing = client.get("/_probe/accounts/999999")
    assert other.status_code == missing.status_code == 404
    # another account looks exactly like no account
    assert without_csrf(other.get_data(as_text=True)) == without_csrf(missing.get_data(as_text=True))
    with app.app_context():
        db.engine.dispose()


def test_staff_reading_an_account_that_does_not_exist_get_404(client, walk_world, app):
    client, _ = _client_as(app, walk_world, "support")
    assert client.get("/accounts/999999").status_code == 404
    assert client.get(f"/accounts/{walk_world.other_account}").status_code == 200
