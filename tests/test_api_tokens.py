"""API tokens: created by super admins with scopes and an expiry, shown once and kept as a digest, revoked,
every use and refusal of a known token logged; the API reads only the bearer header, never the session."""
from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select

from portal.domain import api_tokens
from portal.domain.errors import InvalidTransition, PermissionDenied, ValidationFailed
from portal.extensions import db
from portal.models import ApiToken, ApiTokenEvent, AuditEvent, User
from portal.timeutil import utcnow
from tests.api_support import Api, make_token, number_of, problem
from tests.conftest import CSRF_RE


def _user(user_id):
    return db.session.get(User, user_id)


# ---------------------------------------------------------------- the domain

def test_a_token_is_shown_once_and_stored_only_as_its_digest(ctx, world):
    token, text = api_tokens.create_token(_user(world.admin.id), "billing-sync", "billing:write, accounts:read")
    assert text.startswith("ak_") and len(text) == 46
    stored = db.session.get(ApiToken, token.id)
    assert stored.prefix == text[:11] and stored.digest == api_tokens.digest_of(text)
    assert text not in {stored.name, stored.prefix, stored.digest, stored.scopes}
    assert stored.scope_list == ["accounts:read", "billing:write"]  # in the order of SCOPES
    assert stored.expires_at.date() == utcnow().date() + timedelta(days=api_tokens.DEFAULT_DAYS)
    event = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "api_token_created")).one()
    assert event.data["prefix"] == stored.prefix and text not in str(event.data)


@pytest.mark.parametrize("name, scopes, expires, field", [
    ("", "accounts:read", None, "name"),
    ("x" * 101, "accounts:read", None, "name"),
    ("ok", "", None, "scopes"),
    ("ok", "accounts:read,accounts:delete", None, "scopes"),
    ("ok", "accounts:read", "2020-01-01", "expires"),
    ("ok", "accounts:read", "tomorrow", "expires"),
    ("ok", "accounts:read", (utcnow() + timedelta(days=400)).date().isoformat(), "expires"),
])
def test_a_bad_name_scope_or_expiry_is_refused_at_its_field(ctx, world, name, scopes, expires, field):
    with pytest.raises(ValidationFailed) as refused:
        api_tokens.create_token(_user(world.admin.id), name, scopes, expires)
    assert field in refused.value.field_errors
    assert db.session.scalar(select(func.count()).select_from(ApiToken)) == 0


def test_only_a_super_admin_creates_or_revokes_tokens(ctx, world):
    with pytest.raises(PermissionDenied):
        api_tokens.create_token(_user(world.support.id), "nope", "accounts:read")
    token, _text = api_tokens.create_token(_user(world.admin.id), "ok", "accounts:read")
    with pytest.raises(PermissionDenied):
        api_tokens.revoke_token(_user(world.support.id), token.id)
    assert db.session.get(ApiToken, token.id).revoked_at is None


def test_revoking_twice_is_refused_and_changes_nothing(ctx, world):
    token, _text = api_tokens.create_token(_user(world.admin.id), "ok", "accounts:read")
    api_tokens.revoke_token(_user(world.admin.id), token.id)
    first = db.session.get(ApiToken, token.id).revoked_at
    with pytest.raises(InvalidTransition):
        api_tokens.revoke_token(_user(world.admin2.id), token.id)
    assert db.session.get(ApiToken, token.id).revoked_at == first
    assert db.session.scalar(select(func.count()).where(AuditEvent.action == "api_token_revoked")) == 1


def test_authentication_says_why_a_token_is_refused(ctx, world, make):
    _token, text = api_tokens.create_token(_user(world.admin.id), "ok", "accounts:read")
    _t, actor, outcome = api_tokens.authenticate(text)
    assert outcome == "ok" and actor.role == "super_admin" and actor.id == world.admin.id
    assert actor.has_scope("accounts:read") and not actor.has_scope("billing:write")
    assert api_tokens.authenticate(text + "x")[2] == "unauthorized"
    assert api_tokens.authenticate(text, now=utcnow() + timedelta(days=91))[2] == "expired"
    _user(world.admin.id).disabled = True
    db.session.commit()
    assert api_tokens.authenticate(text)[2] == "owner_disabled"


def test_the_audit_trail_names_the_token_and_its_maker(app, client, world):
    api = Api(client, make_token(app, world.admin.id, name="billing-sync"))
    number = number_of(app, world.account)
    assert api.post(f"/api/v1/accounts/{number}/suspend",
                    {"reason_category": "other", "reason_note": "From the CRM"}).status_code == 200
    with app.app_context():
        event = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "suspended")).one()
        prefix = db.session.scalars(select(ApiToken.prefix)).one()
        assert event.actor_label == f"API token ‘billing-sync’ ({prefix}) of Ada Admin <{world.admin.email}>"
        assert event.actor_user_id == world.admin.id


# ---------------------------------------------------------------- the API's door

def _events(app):
    with app.app_context():
        rows = db.session.scalars(select(ApiTokenEvent).order_by(ApiTokenEvent.id)).all()
        found = [(e.method, e.path, e.status, e.outcome) for e in rows]
        db.session.remove()
    return found


def test_every_use_and_refusal_of_a_known_token_is_logged_and_sets_last_used(app, client, world):
    text = make_token(app, world.admin.id, scopes=["accounts:read"])
    api = Api(client, text)
    number = number_of(app, world.account)
    assert api.get(f"/api/v1/accounts/{number}").status_code == 200
    assert api.get("/api/v1/accounts/NOPE").status_code == 404
    problem(api.post(f"/api/v1/accounts/{number}/suspend", {"reason_category": "other", "reason_note": "x"}),
            403, "forbidden")
    assert _events(app) == [("GET", f"/api/v1/accounts/{number}", 200, "ok"),
                            ("GET", "/api/v1/accounts/NOPE", 404, "refused"),
                            ("POST", f"/api/v1/accounts/{number}/suspend", 403, "forbidden")]
    with app.app_context():
        assert db.session.scalars(select(ApiToken)).one().last_used_at is not None


def test_a_revoked_or_expired_token_gets_401_logged_as_such(app, client, world):
    text = make_token(app, world.admin.id)
    with app.app_context():
        token = db.session.scalars(select(ApiToken)).one()
        token.expires_at = datetime(2020, 1, 1)
        db.session.commit()
    body = problem(Api(client, text).get("/api/v1/accounts"), 401, "unauthorized")
    assert "expired" in body["detail"]
    with app.app_context():
        token = db.session.scalars(select(ApiToken)).one()
        token.expires_at, token.revoked_at = datetime(2100, 1, 1), utcnow()
        db.session.commit()
    assert "revoked" in problem(Api(client, text).get("/api/v1/accounts"), 401, "unauthorized")["detail"]
    assert [e[3] for e in _events(app)] == ["expired", "revoked"]


def test_no_token_or_an_unknown_one_gets_401_and_writes_nothing(app, client, world):
    response = client.get("/api/v1/accounts")
    problem(response, 401, "unauthorized")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    problem(Api(client, "ak_" + "x" * 43).get("/api/v1/accounts"), 401, "unauthorized")
    problem(client.get("/api/v1/accounts", headers={"Authorization": "Basic YTpi"}), 401, "unauthorized")
    assert _events(app) == []


def test_a_signed_in_session_is_never_enough(app, client, world):
    from tests.conftest import AuthActions

    AuthActions(client).login(world.admin.email)
    assert client.get("/accounts").status_code == 200  # the session works on the pages
    number = number_of(app, world.account)
    problem(client.get(f"/api/v1/accounts/{number}"), 401, "unauthorized")
    token = CSRF_RE.search(client.get("/accounts").get_data(as_text=True)).group(1)
    response = client.post(f"/api/v1/accounts/{number}/suspend", json={"reason_category": "other",
                                                                       "reason_note": "x"},
                           headers={"X-CSRFToken": token})
    problem(response, 401, "unauthorized")
    with app.app_context():
        assert db.session.scalar(select(func.count()).where(AuditEvent.action == "suspended")) == 0


def test_a_token_whose_maker_was_disabled_stops_working(app, client, world):
    text = make_token(app, world.admin.id)
    with app.app_context():
        _user(world.admin.id).disabled = True
        db.session.commit()
    problem(Api(client, text).get("/api/v1/accounts"), 401, "unauthorized")


@pytest.mark.parametrize("app_config", [{"API_RATE_LIMIT": "3 per minute"}])
def test_requests_are_rate_limited_per_token(app, client, world, app_config):
    first, second = Api(client, make_token(app, world.admin.id)), Api(client, make_token(app, world.admin.id))
    assert [first.get("/api/v1/accounts").status_code for _ in range(3)] == [200, 200, 200]
    refused = first.get("/api/v1/accounts")
    body = problem(refused, 429, "rate-limited")
    assert body["detail"] and int(refused.headers["Retry-After"]) > 0
    assert second.get("/api/v1/accounts").status_code == 200  # another token has its own budget
    assert _events(app)[3][3] == "rate_limited"


# ---------------------------------------------------------------- the pages

def test_the_pages_are_for_super_admins(app, client, world, auth):
    auth.login(world.support.email)
    assert client.get("/settings/api-tokens").status_code == 403
    auth.logout()
    auth.login(world.admin.email)
    page = client.get("/settings/api-tokens").get_data(as_text=True)
    assert "Create a token" in page and "accounts:write" in page and 'href="/settings/api-tokens"' in page


def test_creating_a_token_on_the_page_shows_it_once(app, client, world, auth):
    auth.login(world.admin.email)
    response = auth.post("/settings/api-tokens", {"name": "crm", "scopes": ["accounts:read", "runs:read"],
                                                  "expires": ""})
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    text = page.split('data-testid="new-token-text"')[0].rsplit('value="', 1)[1].split('"')[0]
    assert text.startswith("ak_")
    assert Api(client, text).get("/api/v1/accounts").status_code == 200
    assert text not in client.get("/settings/api-tokens").get_data(as_text=True)  # never again
    refused = auth.post("/settings/api-tokens", {"name": "", "expires": "2020-01-01"})
    assert refused.status_code == 422
    assert "Choose at least one scope." in refused.get_data(as_text=True)


def test_revoking_on_the_page_needs_the_box_ticked(app, client, world, auth):
    text = make_token(app, world.admin.id)
    with app.app_context():
        token_id = db.session.scalars(select(ApiToken.id)).one()
    auth.login(world.admin.email)
    assert auth.post(f"/settings/api-tokens/{token_id}/revoke", {}).status_code == 422
    assert Api(client, text).get("/api/v1/accounts").status_code == 200
    assert auth.post(f"/settings/api-tokens/{token_id}/revoke", {"confirm": "yes"}).status_code == 303
    problem(Api(client, text).get("/api/v1/accounts"), 401, "unauthorized")
    page = client.get(f"/settings/api-tokens/{token_id}").get_data(as_text=True)
    assert "Revoked" in page and "/api/v1/accounts" in page and "Revoke token" not in page
    assert auth.post(f"/settings/api-tokens/{token_id}/revoke", {"confirm": "yes"}).status_code == 409


def test_old_log_lines_are_pruned(ctx, world):
    token, _text = api_tokens.create_token(_user(world.admin.id), "ok", "accounts:read")
    api_tokens.record_use(token, "GET", "/api/v1/accounts", 200, "ok", "127.0.0.1", now=utcnow() - timedelta(days=91))
    api_tokens.record_use(token, "GET", "/api/v1/accounts", 200, "ok", "127.0.0.1")
    assert api_tokens.prune_events() == 1
    assert len(api_tokens.events_of(token.id)) == 1


def test_the_scheduler_tick_prunes_old_log_lines_and_spent_idempotency_keys(ctx, world):
    from portal.domain import schedule
    from portal.models import IdempotencyKey

    token, _text = api_tokens.create_token(_user(world.admin.id), "ok", "accounts:read")
    now = utcnow()
    api_tokens.record_use(token, "GET", "/api/v1/accounts", 200, "ok", "127.0.0.1", now=now - timedelta(days=91))
    api_tokens.record_use(token, "GET", "/api/v1/accounts", 200, "ok", "127.0.0.1", now=now)
    db.session.add_all([IdempotencyKey(token_id=token.id, key="old", fingerprint="0" * 64, created_at=now - timedelta(days=2)),
                        IdempotencyKey(token_id=token.id, key="new", fingerprint="0" * 64, created_at=now)])
    db.session.commit()
    result = schedule.tick(now)
    assert result["pruned"] == {"api_events": 1, "idempotency_keys": 1}
    assert len(api_tokens.events_of(token.id)) == 1
    assert db.session.scalars(select(IdempotencyKey.key)).all() == ["new"]
