"""The public profile: visible to anyone at /p/<number>, also while the account is suspended; account managers
edit it, and while the account is suspended only super admins can (from the staff side), each edit audited."""
import re
from datetime import datetime

import pytest
from sqlalchemy import select

from portal.domain import suspension
from portal.domain.errors import AccountNotFound, PermissionDenied, ValidationFailed
from portal.domain.features import profiles
from portal.domain.gate import MANAGER_READ_ONLY
from portal.extensions import db
from portal.models import Account, AuditEvent, Profile, User
from tests.conftest import without_csrf

NOW = datetime(2026, 11, 2, 9, 30)
READ_ONLY = MANAGER_READ_ONLY.format(billing_contact="billing@portal.test")
GOOD = {"headline": "Seafood by the harbour", "body": "Open daily.\n\nBook a table.", "website": "https://bistro.example",
        "phone": "(201) 555-0123", "public": "1"}


@pytest.fixture
def app_config():
    return {"LOGIN_RATE_LIMIT": "1000 per minute"}


@pytest.fixture
def features(world, make):
    """A published profile in each world account ("Fresh food daily")."""
    return make.features(world.account), make.features(world.other_account)


def rows(app):
    """Every profile and audit row, exactly as stored."""
    with app.app_context():
        found = {table.name: db.session.execute(select(table).order_by(*table.primary_key.columns)).all()
                 for table in (Profile.__table__, AuditEvent.__table__)}
        db.session.remove()
        return found


def set_status(app, world, action, account=None):
    with app.app_context():
        change = {"suspend": suspension.suspend, "reactivate": suspension.reactivate}[action]
        change(db.session.get(User, world.admin.id), account or world.account,
               "non_payment" if action == "suspend" else "paid", "Overdue." if action == "suspend" else "Paid.")
        db.session.remove()


def person(world, who):
    return db.session.get(User, getattr(world, who).id)


def profile_events():
    return list(db.session.scalars(select(AuditEvent).where(AuditEvent.action == "profile_updated")
                                   .order_by(AuditEvent.id)))


# ---------------------------------------------------------------- the domain

def test_a_manager_saves_the_profile_audited_and_the_same_again_writes_nothing(ctx, world, features):
    changed = profiles.update_profile(person(world, "manager"), world.account, GOOD, now=NOW)
    assert changed == ["headline", "body", "website", "phone"]
    profile = profiles.profile_of(world.account)
    assert (profile.headline, profile.phone, profile.public, profile.updated_by_id, profile.updated_at) == (
        "Seafood by the harbour", "+12015550123", True, world.manager.id, NOW)
    [event] = profile_events()
    assert (event.account_id, event.actor_user_id, event.data["fields"]) == (world.account, world.manager.id, changed)
    assert "Mia Manager" in event.actor_label
    assert profiles.update_profile(person(world, "manager"), world.account, GOOD, now=NOW) == []
    assert len(profile_events()) == 1


def test_the_first_save_creates_the_profile(ctx, world):
    assert profiles.profile_of(world.account) is None
    profiles.update_profile(person(world, "manager"), world.account, dict(GOOD, public=""), now=NOW)
    profile = profiles.profile_of(world.account)
    assert profile.public is False and profile_events()[0].data["created"] is True


def test_a_suspended_accounts_manager_is_refused_and_a_super_admin_edits_it(app, world, features):
    set_status(app, world, "suspend")
    before = rows(app)
    with app.app_context():
        with pytest.raises(PermissionDenied) as refused:
            profiles.update_profile(person(world, "manager"), world.account, GOOD, now=NOW)
        assert refused.value.message == READ_ONLY
        db.session.remove()
    assert rows(app) == before
    with app.app_context():
        profiles.update_profile(person(world, "admin"), world.account, GOOD, now=NOW)
        [event] = profile_events()
        assert (event.actor_user_id, event.data["by_role"]) == (world.admin.id, "super_admin")
        assert "Ada Admin" in event.actor_label
        assert profiles.profile_of(world.account).updated_by_id == world.admin.id


@pytest.mark.parametrize("who", ["tier", "member", "support", "other_manager"])
def test_only_the_accounts_managers_and_super_admins_may_edit(app, world, features, who):
    before = rows(app)
    with app.app_context():
        with pytest.raises(PermissionDenied):
            profiles.update_profile(person(world, who), world.account, GOOD, now=NOW)
        with pytest.raises(AccountNotFound):
            profiles.update_profile(person(world, "admin"), 999999, GOOD, now=NOW)
        db.session.remove()
    assert rows(app) == before


@pytest.mark.parametrize("form, field", [
    (dict(GOOD, headline=""), "headline"), (dict(GOOD, headline="h" * 201), "headline"),
    (dict(GOOD, body="b" * 5001), "body"),
    (dict(GOOD, website="javascript:alert(1)"), "website"), (dict(GOOD, website="ftp://files.example"), "website"),
    (dict(GOOD, website="bistro.example"), "website"), (dict(GOOD, website="https://"), "website"),
    (dict(GOOD, website="https://a b.example"), "website"), (dict(GOOD, website="https://user:pw@x.example"), "website"),
    (dict(GOOD, website="https://x.example:port"), "website"),
    (dict(GOOD, website="https://x.example/" + "p" * 300), "website"),
    (dict(GOOD, phone="not a phone"), "phone"), (dict(GOOD, phone="+1 555"), "phone"),
])
def test_bad_fields_are_named_and_nothing_is_stored(app, world, features, form, field):
    before = rows(app)
    with app.app_context():
        with pytest.raises(ValidationFailed) as failed:
            profiles.update_profile(person(world, "manager"), world.account, form, now=NOW)
        assert list(failed.value.field_errors) == [field]
        db.session.remove()
    assert rows(app) == before


def test_the_public_lookup(ctx, world, features):
    own, _ = features
    account, profile = profiles.public_profile(own.number)
    assert (account.id, profile.headline) == (world.account, "Fresh food daily")
    for number in ("", "T9999999", "x" * 500, "bad\ufffe"):
        with pytest.raises(profiles.ProfileNotFound):
            profiles.public_profile(number)


# ---------------------------------------------------------------- the public page

def test_the_public_page_needs_no_sign_in_and_shows_no_navigation(client, world, features):
    own, _ = features
    response = client.get(f"/p/{own.number}")
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "<title>Blue Harbor Bistro · Fresh food daily</title>" in page
    assert "Since 1999" in page and "<nav" not in page and "Sign out" not in page
    assert "Website" not in page  # no website set: no link


def test_the_public_page_escapes_and_links_only_http_websites(app, client, world, features):
    own, _ = features
    with app.app_context():
        profile = profiles.profile_of(world.account)
        profile.headline = '<script>alert("x")</script>'
        profile.body = "First <b>para</b>.\n\nSecond."
        profile.website = "https://bistro.example/?a=1&b=2"
        db.session.commit()
    page = client.get(f"/p/{own.number}").get_data(as_text=True)
    assert "<script>alert" not in page and "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in page
    assert "<p>First &lt;b&gt;para&lt;/b&gt;.</p><p>Second.</p>" in page
    assert 'href="https://bistro.example/?a=1&amp;b=2" rel="nofollow noopener noreferrer"' in page
    with app.app_context():  # a stored address that is not http(s) (never accepted on save) is not linked
        profiles.profile_of(world.account).website = "javascript:alert(1)"
        db.session.commit()
    assert "javascript:" not in client.get(f"/p/{own.number}").get_data(as_text=True)


def test_the_public_page_stays_while_suspended_and_after_reactivation(app, client, world, features):
    own, _ = features
    before = without_csrf(client.get(f"/p/{own.number}").get_data(as_text=True))
    set_status(app, world, "suspend")
    during = client.get(f"/p/{own.number}")
    assert during.status_code == 200 and without_csrf(during.get_data(as_text=True)) == before
    set_status(app, world, "reactivate")
    assert without_csrf(client.get(f"/p/{own.number}").get_data(as_text=True)) == before


def test_an_unpublished_or_unknown_profile_is_404_and_a_cancelled_accounts_is_410(app, client, world, features):
    own, other = features
    assert client.get("/p/T9999999").status_code == 404
    with app.app_context():
        profiles.profile_of(world.account).public = False
        db.session.get(Account, world.other_account).status = "cancelled"
        db.session.commit()
    assert client.get(f"/p/{own.number}").status_code == 404
    gone = client.get(f"/p/{other.number}")
    assert gone.status_code == 410 and "This profile is no longer available." in gone.get_data(as_text=True)


# ---------------------------------------------------------------- editing, customer side and staff side

@pytest.mark.parametrize("htmx", [False, True])
def test_a_manager_edits_the_profile_with_and_without_htmx(app, client, auth, world, features, htmx):
    auth.login(world.manager.email)
    page = client.get("/profile").get_data(as_text=True)
    assert "Save profile" in page and "Fresh food daily" in page and f'href="/p/{features[0].number}"' in page
    bad = auth.post("/profile", dict(GOOD, website="javascript:alert(1)"), htmx=htmx)
    body = bad.get_data(as_text=True)
    assert bad.status_code == 422 and "Enter a web address starting with http://" in body
    assert ("<html" in body) is not htmx and "HX-Request" in bad.headers["Vary"]
    done = auth.post("/profile", GOOD, htmx=htmx)
    if htmx:
        assert done.status_code == 204 and done.headers["HX-Redirect"] == "/profile"
    else:
        assert done.status_code == 303 and done.headers["Location"] == "/profile"
    assert "Public profile saved." in client.get("/profile").get_data(as_text=True)
    public = client.get(f"/p/{features[0].number}").get_data(as_text=True)
    assert "Seafood by the harbour" in public and 'href="https://bistro.example"' in public


def test_unticking_public_takes_the_page_down(client, auth, world, features):
    auth.login(world.manager.email)
    assert auth.post("/profile", {k: v for k, v in GOOD.items() if k != "public"}).status_code == 303
    assert client.get(f"/p/{features[0].number}").status_code == 404


@pytest.mark.parametrize("htmx", [False, True])
def test_a_suspended_accounts_manager_sees_a_read_only_form_and_is_refused(app, client, auth, world, features, htmx):
    set_status(app, world, "suspend")
    auth.login(world.manager.email)
    page = client.get("/profile").get_data(as_text=True)
    assert READ_ONLY.replace("'", "&#39;") in page and "Save profile" not in page
    assert re.search(r'id="headline"[^>]*readonly', page) and re.search(r'id="public"[^>]*disabled', page)
    before = rows(app)
    refused = auth.post("/profile", GOOD, htmx=htmx)
    assert refused.status_code == 422 and READ_ONLY.replace("'", "&#39;") in refused.get_data(as_text=True)
    assert rows(app) == before


def test_a_super_admin_edits_a_suspended_accounts_profile_from_the_staff_side(app, client, auth, world, features):
    set_status(app, world, "suspend")
    auth.login(world.admin.email)
    account_page = client.get(f"/accounts/{world.account}").get_data(as_text=True)
    assert f'href="/accounts/{world.account}/profile"' in account_page and f'href="/p/{features[0].number}"' in account_page
    page = client.get(f"/accounts/{world.account}/profile").get_data(as_text=True)
    assert "Save profile" in page and "Fresh food daily" in page
    done = auth.post(f"/accounts/{world.account}/profile", dict(GOOD, headline="Closed for renovation"))
    assert done.status_code == 303 and done.headers["Location"] == f"/accounts/{world.account}/profile"
    with app.app_context():
        [event] = profile_events()
        assert event.actor_user_id == world.admin.id and "Ada Admin" in event.actor_label
    assert "Closed for renovation" in client.get(f"/p/{features[0].number}").get_data(as_text=True)
    bad = auth.post(f"/accounts/{world.account}/profile", dict(GOOD, headline=""), htmx=True)
    assert bad.status_code == 422 and "Enter the headline." in bad.get_data(as_text=True)
    assert client.get("/accounts/999999/profile").status_code == 404


@pytest.mark.parametrize("who", ["support", "manager", "tier"])
def test_the_staff_side_is_for_super_admins_only(app, client, auth, world, features, who):
    auth.login(getattr(world, who).email)
    assert client.get(f"/accounts/{world.account}/profile").status_code == 403
    before = rows(app)
    assert auth.post(f"/accounts/{world.account}/profile", GOOD).status_code == 403
    assert rows(app) == before
    if who == "support":
        page = client.get(f"/accounts/{world.account}").get_data(as_text=True)
        assert f'href="/p/{features[0].number}"' in page and f"/accounts/{world.account}/profile" not in page
