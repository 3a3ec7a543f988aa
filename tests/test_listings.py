"""Listings and their directory connections: edited by account and tier managers, published by account managers;
while the account is suspended nothing is edited or published and the connections are kept byte for byte."""
from datetime import datetime

import pytest
from sqlalchemy import func, select

from portal.domain import suspension
from portal.domain.errors import PermissionDenied, ValidationFailed
from portal.domain.features import listings
from portal.domain.gate import MANAGER_READ_ONLY, NOT_ALLOWED_MESSAGE
from portal.extensions import db
from portal.models import Account, AuditEvent, Listing, ListingConnection, User

NOW = datetime(2026, 11, 2, 9, 30)
READ_ONLY = MANAGER_READ_ONLY.format(billing_contact="billing@portal.test")
GOOD = {"name": "Harbor terrace", "address": "2 Quay Rd", "phone": "(201) 555-0123", "description": "Sea view."}


@pytest.fixture
def app_config():
    return {"LOGIN_RATE_LIMIT": "1000 per minute"}


@pytest.fixture
def features(world, make):
    """One listing with one connection in each world account."""
    return make.features(world.account), make.features(world.other_account)


def rows(app):
    """Every listing, connection and audit row, exactly as stored."""
    with app.app_context():
        found = {table.name: db.session.execute(select(table).order_by(*table.primary_key.columns)).all()
                 for table in (Listing.__table__, ListingConnection.__table__, AuditEvent.__table__)}
        db.session.remove()
        return found


def set_status(app, world, action):
    with app.app_context():
        change = suspension.suspend if action == "suspend" else suspension.reactivate
        change(db.session.get(User, world.admin.id), world.account,
               "non_payment" if action == "suspend" else "paid", "Overdue." if action == "suspend" else "Paid.")
        db.session.remove()


def person(world, who):
    return db.session.get(User, getattr(world, who).id)


def events(action):
    return list(db.session.scalars(select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)))


# ---------------------------------------------------------------- the domain

def test_the_list_has_each_listing_with_its_connections_and_only_the_accounts_own(ctx, world, features):
    own, other = features
    found = listings.listings_of(world.account)
    assert [(listing.id, [c.id for c in conns]) for listing, conns in found] == [(own.listing, [own.connection])]
    assert found[0][1][0].directory == "Maps directory" and found[0][1][0].status == "connected"
    with pytest.raises(listings.ListingNotFound):
        listings.get_listing(person(world, "manager"), other.listing)
    with pytest.raises(listings.ListingNotFound):
        listings.get_listing(person(world, "admin"), own.listing)  # staff have no listings of their own


@pytest.mark.parametrize("who", ["manager", "tier"])
def test_account_and_tier_managers_edit_a_listing_audited_and_the_connections_stay(ctx, world, features, who):
    own, _ = features
    connection_before = db.session.execute(select(ListingConnection.__table__)).all()
    changed = listings.update_listing(person(world, who), own.listing, GOOD, now=NOW)
    assert changed == ["name", "address", "phone", "description"]
    listing = db.session.get(Listing, own.listing)
    assert (listing.name, listing.phone, listing.updated_at, listing.published) == (
        "Harbor terrace", "+12015550123", NOW, True)
    assert db.session.execute(select(ListingConnection.__table__)).all() == connection_before
    [event] = events("listing_updated")
    assert (event.account_id, event.actor_user_id, event.data["listing_id"]) == (world.account, getattr(world, who).id,
                                                                                 own.listing)
    assert listings.update_listing(person(world, who), own.listing, GOOD, now=NOW) == []  # the same again: no event
    assert len(events("listing_updated")) == 1


def test_an_account_manager_adds_publishes_connects_and_disconnects(ctx, world, features):
    manager = person(world, "manager")
    listing = listings.create_listing(manager, GOOD, now=NOW)
    assert (listing.account_id, listing.published) == (world.account, False)
    assert listings.set_published(manager, listing.id, True, now=NOW) is True
    assert listings.set_published(manager, listing.id, True, now=NOW) is False  # already published: nothing written
    assert db.session.get(Listing, listing.id).published_at == NOW
    pending = listings.connect_directory(manager, listing.id, {"directory": "City guide"}, now=NOW)
    linked = listings.connect_directory(manager, listing.id, {"directory": "Maps", "external_ref": "m:9"}, now=NOW)
    assert (pending.status, pending.connected_at, linked.status, linked.connected_at) == ("pending", None,
                                                                                          "connected", NOW)
    assert listings.disconnect_directory(manager, listing.id, pending.id, now=NOW) == "City guide"
    assert [c.id for c in listings.get_listing(manager, listing.id)[1]] == [linked.id]
    listings.set_published(manager, listing.id, False, now=NOW)
    assert db.session.get(Listing, listing.id).published_at is None
    assert [e.action for e in db.session.scalars(select(AuditEvent).order_by(AuditEvent.id))] == [
        "listing_created", "listing_published", "listing_connected", "listing_connected", "listing_disconnected",
        "listing_unpublished"]


def test_a_tier_manager_may_edit_but_not_publish(ctx, world, features):
    own, _ = features
    with pytest.raises(PermissionDenied) as refused:
        listings.set_published(person(world, "tier"), own.listing, False, now=NOW)
    assert refused.value.message == NOT_ALLOWED_MESSAGE
    assert db.session.get(Listing, own.listing).published is True


def _refused_changes(world, own):
    manager = person(world, "manager")
    return {
        "edit": lambda: listings.update_listing(manager, own.listing, GOOD, now=NOW),
        "add": lambda: listings.create_listing(manager, GOOD, now=NOW),
        "unpublish": lambda: listings.set_published(manager, own.listing, False, now=NOW),
        "connect": lambda: listings.connect_directory(manager, own.listing, {"directory": "Guide"}, now=NOW),
        "disconnect": lambda: listings.disconnect_directory(manager, own.listing, own.connection, now=NOW),
    }


@pytest.mark.parametrize("change", ["edit", "add", "unpublish", "connect", "disconnect"])
def test_while_suspended_every_change_is_refused_with_the_gates_message_and_nothing_moves(
        app, world, features, change):
    own, _ = features
    set_status(app, world, "suspend")
    before = rows(app)
    with app.app_context():
        with pytest.raises(PermissionDenied) as refused:
            _refused_changes(world, own)[change]()
        assert refused.value.message == READ_ONLY
        db.session.remove()
    assert rows(app) == before


def test_a_suspension_and_reactivation_leave_listings_and_connections_byte_for_byte(app, world, features):
    def listing_rows():
        found = rows(app)
        return found["listings"], found["listing_connections"]

    before = listing_rows()
    set_status(app, world, "suspend")
    assert listing_rows() == before
    set_status(app, world, "reactivate")
    assert listing_rows() == before
    with app.app_context():  # and editing works again
        assert listings.update_listing(person(world, "manager"), features[0].listing, GOOD, now=NOW)


def test_a_suspension_landing_between_the_gate_and_the_write_is_seen_and_nothing_is_written(
        app, world, features, monkeypatch):
    """The account is re-read under a row lock after the write and the gate asked again (guard.confirm_allowed)."""
    own, _ = features
    read = listings.fields.read

    def read_then_suspend(form, readers):
        with db.engine.begin() as other:  # another connection: an admin's suspension commits right now
            other.execute(Account.__table__.update().where(Account.id == world.account)
                          .values(status="suspended", version=Account.version + 1))
        return read(form, readers)

    monkeypatch.setattr(listings.fields, "read", read_then_suspend)
    before = rows(app)["listings"]
    with app.app_context():
        with pytest.raises(PermissionDenied) as refused:
            listings.update_listing(person(world, "manager"), own.listing, GOOD, now=NOW)
        assert refused.value.message == READ_ONLY
        db.session.remove()
    assert rows(app)["listings"] == before


@pytest.mark.parametrize("form, field", [
    (dict(GOOD, name=""), "name"), (dict(GOOD, name="   "), "name"), (dict(GOOD, name="n" * 201), "name"),
    (dict(GOOD, address="a" * 301), "address"), (dict(GOOD, phone="call me"), "phone"),
    (dict(GOOD, phone="555"), "phone"), (dict(GOOD, description="d" * 5001), "description"),
    (dict(GOOD, name="Bad \ufffe name"), "name"),
])
def test_bad_fields_are_named_and_nothing_is_stored(app, world, features, form, field):
    own, _ = features
    before = rows(app)
    with app.app_context():
        for attempt in (lambda: listings.update_listing(person(world, "manager"), own.listing, form),
                        lambda: listings.create_listing(person(world, "manager"), form)):
            with pytest.raises(ValidationFailed) as failed:
                attempt()
            assert list(failed.value.field_errors) == [field]
        db.session.remove()
    assert rows(app) == before


@pytest.mark.parametrize("form, message", [
    ({"directory": ""}, "Enter the directory's name."),
    ({"directory": "maps DIRECTORY"}, "already connected"),
    ({"directory": "Guide", "external_ref": "r" * 201}, "200 characters"),
])
def test_a_bad_connection_is_refused_at_its_field(app, world, features, form, message):
    own, _ = features
    before = rows(app)
    with app.app_context():
        with pytest.raises(ValidationFailed) as failed:
            listings.connect_directory(person(world, "manager"), own.listing, form)
        assert message in " ".join(failed.value.field_errors.values())
        db.session.remove()
    assert rows(app) == before


# ---------------------------------------------------------------- the pages

def test_the_list_and_a_listing_show_connections_with_their_status(client, auth, world, features):
    auth.login(world.manager.email)
    page = client.get("/listings").get_data(as_text=True)
    assert "Main street" in page and "Maps directory" in page and "maps:123" in page and "Connected" in page
    assert "Copper" not in page and 'action="/listings"' in page  # the add form, for the account manager
    detail = client.get(f"/listings/{features[0].listing}").get_data(as_text=True)
    assert "Save listing" in detail and "Unpublish listing" in detail and "Disconnect" in detail


@pytest.mark.parametrize("htmx", [False, True])
def test_editing_a_listing_with_and_without_htmx(app, client, auth, world, features, htmx):
    own, _ = features
    auth.login(world.tier.email)
    bad = auth.post(f"/listings/{own.listing}", dict(GOOD, name=""), htmx=htmx)
    body = bad.get_data(as_text=True)
    assert bad.status_code == 422 and "Enter the listing&#39;s name." in body and 'aria-invalid="true"' in body
    assert ("<html" in body) is not htmx  # a fragment for htmx, the whole page otherwise
    assert "HX-Request" in bad.headers["Vary"]
    done = auth.post(f"/listings/{own.listing}", GOOD, htmx=htmx)
    if htmx:
        assert done.status_code == 204 and done.headers["HX-Redirect"] == f"/listings/{own.listing}"
    else:
        assert done.status_code == 303 and done.headers["Location"] == f"/listings/{own.listing}"
    assert "Listing saved." in client.get(f"/listings/{own.listing}").get_data(as_text=True)
    with app.app_context():
        assert db.session.get(Listing, own.listing).name == "Harbor terrace"


def test_a_tier_manager_edits_but_sees_no_publication_and_may_not_publish(app, client, auth, world, features):
    own, _ = features
    auth.login(world.tier.email)
    page = client.get(f"/listings/{own.listing}").get_data(as_text=True)
    assert "Save listing" in page and "Publication" not in page and "Connect to a directory" not in page
    before = rows(app)
    assert auth.post(f"/listings/{own.listing}/unpublish").status_code == 403
    assert auth.post("/listings", GOOD).status_code == 403
    assert auth.post(f"/listings/{own.listing}/connections", {"directory": "Guide"}).status_code == 403
    assert rows(app) == before


@pytest.mark.parametrize("htmx", [False, True])
def test_a_suspended_manager_sees_the_message_and_a_read_only_listing_and_is_refused(
        app, client, auth, world, features, htmx):
    own, _ = features
    set_status(app, world, "suspend")
    auth.login(world.manager.email)
    page = client.get(f"/listings/{own.listing}").get_data(as_text=True)
    assert READ_ONLY.replace("'", "&#39;") in page and "readonly" in page
    assert "Save listing" not in page and "Unpublish listing" not in page and "Disconnect" not in page
    assert "Main street" in client.get("/listings").get_data(as_text=True)
    before = rows(app)
    for path, data in [(f"/listings/{own.listing}", GOOD), (f"/listings/{own.listing}/unpublish", {}),
                       (f"/listings/{own.listing}/publish", {}), ("/listings", GOOD),
                       (f"/listings/{own.listing}/connections", {"directory": "Guide"}),
                       (f"/listings/{own.listing}/connections/{own.connection}/delete", {})]:
        response = auth.post(path, data, htmx=htmx)
        assert response.status_code == 422, path
        assert READ_ONLY.replace("'", "&#39;") in response.get_data(as_text=True), path
    assert rows(app) == before


def test_another_accounts_listing_and_connection_ids_are_not_found(app, client, auth, world, features):
    own, other = features
    auth.login(world.manager.email)
    before = rows(app)
    assert client.get(f"/listings/{other.listing}").status_code == 404
    assert client.get("/listings/999999").status_code == 404
    assert client.get("/listings/99999999999").status_code == 404  # beyond the id range: not found either
    for path, data in [(f"/listings/{other.listing}", GOOD), (f"/listings/{other.listing}/publish", {}),
                       (f"/listings/{other.listing}/unpublish", {}),
                       (f"/listings/{other.listing}/connections", {"directory": "Guide"}),
                       (f"/listings/{other.listing}/connections/{other.connection}/delete", {}),
                       (f"/listings/{own.listing}/connections/{other.connection}/delete", {})]:
        assert auth.post(path, data).status_code == 404, path
    assert rows(app) == before


@pytest.mark.parametrize("who", ["member", "support"])
def test_members_and_staff_have_no_listings_page(client, auth, world, features, who):
    auth.login(getattr(world, who).email)
    assert client.get("/listings").status_code == 403


def test_publishing_from_the_page_and_the_navigation_entry(app, client, auth, world, features):
    own, _ = features
    auth.login(world.manager.email)
    assert 'href="/listings"' in client.get("/listings").get_data(as_text=True)
    assert auth.post(f"/listings/{own.listing}/unpublish").status_code == 303
    assert "Listing unpublished." in client.get(f"/listings/{own.listing}").get_data(as_text=True)
    response = auth.post(f"/listings/{own.listing}/publish", htmx=True)
    assert response.status_code == 204 and response.headers["HX-Redirect"] == f"/listings/{own.listing}"
    with app.app_context():
        assert db.session.get(Listing, own.listing).published is True
        assert [e.action for e in events("listing_unpublished") + events("listing_published")] == [
            "listing_unpublished", "listing_published"]
    created = auth.post("/listings", GOOD)
    assert created.status_code == 303
    with app.app_context():
        new_id = db.session.scalar(select(func.max(Listing.id)))
    assert created.headers["Location"] == f"/listings/{new_id}"
