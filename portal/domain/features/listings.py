"""Listings and their connections to outside directories; every change asks the gate.

A suspension never rewrites a listing or its connections: the gate refuses editing (edit_listing) and
publishing (publish_listing) while the account is suspended, and reactivation gives everything back as it was.
Adding a listing and connecting or disconnecting a directory are manage_listings (account managers only).
"""
from sqlalchemy import func, select

from portal.domain import audit
from portal.domain.cancellations.fields import display_phone
from portal.domain.errors import DomainError, ValidationFailed
from portal.domain.features import contact_fields as fields
from portal.domain.features.guard import account_for, confirm_allowed
from portal.domain.parsing import record_id
from portal.extensions import db
from portal.models import Listing, ListingConnection
from portal.timeutil import utcnow

NAME_MAX = 200
ADDRESS_MAX = 300
DESCRIPTION_MAX = 5000
DIRECTORY_MAX = 100
REFERENCE_MAX = 200
CONNECTION_STATUSES = {"connected": "Connected", "pending": "Pending", "error": "Error"}

LISTING_FIELDS = {
    "name": fields.text("The listing's name", NAME_MAX, required=True),
    "address": fields.text("The address", ADDRESS_MAX),
    "phone": fields.phone,
    "description": fields.text("The description", DESCRIPTION_MAX),
}
CONNECTION_FIELDS = {
    "directory": fields.text("The directory's name", DIRECTORY_MAX, required=True),
    "external_ref": fields.text("The directory's reference", REFERENCE_MAX),
}


class ListingNotFound(DomainError):
    """No such listing in the actor's account (another account's listing looks exactly the same)."""

    status_code = 404

    def __init__(self, message="We couldn't find that listing."):
        super().__init__(message)


def listings_of(account_id):
    """Return [(listing, [its connections])] of the account, by name, in two queries."""
    listings = list(db.session.scalars(select(Listing).where(Listing.account_id == account_id)
                                       .order_by(func.lower(Listing.name), Listing.id)))
    connections = _connections_of([listing.id for listing in listings])
    return [(listing, connections.get(listing.id, [])) for listing in listings]


def _connections_of(listing_ids):
    found = {}
    if listing_ids:
        stmt = (select(ListingConnection).where(ListingConnection.listing_id.in_(listing_ids))
                .order_by(ListingConnection.listing_id, func.lower(ListingConnection.directory), ListingConnection.id))
        for connection in db.session.scalars(stmt):
            found.setdefault(connection.listing_id, []).append(connection)
    return found


def get_listing(actor, listing_id):
    """Return (listing, connections) if the listing belongs to the actor's account.

    Raises:
        ListingNotFound: no such listing, or another account's (the same answer).
    """
    listing_id = record_id(listing_id)
    account_id = getattr(actor, "account_id", None)
    listing = None
    if listing_id is not None and account_id is not None:
        listing = db.session.scalar(select(Listing).where(Listing.id == listing_id, Listing.account_id == account_id))
    if listing is None:
        raise ListingNotFound()
    return listing, _connections_of([listing.id]).get(listing.id, [])


def form_values(listing):
    """Return the edit form's initial values for listing (the phone as people write it)."""
    return {"name": listing.name, "address": listing.address or "", "phone": display_phone(listing.phone),
            "description": listing.description or ""}


def _own_listing(actor, action, listing_id):
    """The actor's account (read fresh, gate asked for action) and the listing in it."""
    listing, _connections = get_listing(actor, listing_id)
    account = account_for(actor, action, listing.account_id)
    return account, listing


def create_listing(actor, form, now=None):
    """Add a listing (not yet published) to the actor's account.

    Args:
        actor: a customer User (the views let account managers do it).
        form: a mapping with name (required), address, phone, description.
        now: the time of the change (default now).

    Returns:
        The new Listing.

    Raises:
        PermissionDenied: the gate refuses manage_listings (e.g. the account is suspended); nothing is stored.
        ValidationFailed: bad fields; nothing is stored.
    """
    now = now or utcnow()
    account = account_for(actor, "manage_listings", getattr(actor, "account_id", None))
    values = fields.read(form, LISTING_FIELDS)
    listing = Listing(account_id=account.id, published=False, updated_at=now, **values)
    db.session.add(listing)
    confirm_allowed(actor, "manage_listings", account)
    audit.record("listing_created", account.id, actor, data={"listing_id": listing.id, "name": listing.name},
                 now=now)
    db.session.commit()
    return listing


def update_listing(actor, listing_id, form, now=None):
    """Change a listing's name, address, phone and description (its connections are not touched).

    Args:
        actor: an account or tier manager of the listing's account.
        listing_id: the listing (another account's is not found).
        form: a mapping with name (required), address, phone, description.
        now: the time of the change (default now).

    Returns:
        The names of the fields that changed (empty: nothing to save, nothing written).

    Raises:
        ListingNotFound: no such listing in the actor's account.
        PermissionDenied: the gate refuses edit_listing; nothing is stored.
        ValidationFailed: bad fields; nothing is stored.
    """
    now = now or utcnow()
    account, listing = _own_listing(actor, "edit_listing", listing_id)
    values = fields.read(form, LISTING_FIELDS)
    changed = [name for name, value in values.items() if getattr(listing, name) != value]
    if not changed:
        return []
    for name in changed:
        setattr(listing, name, values[name])
    listing.updated_at = now
    confirm_allowed(actor, "edit_listing", account)
    audit.record("listing_updated", account.id, actor, data={"listing_id": listing.id, "fields": changed}, now=now)
    db.session.commit()
    return changed


def set_published(actor, listing_id, published, now=None):
    """Publish or unpublish a listing.

    Args:
        actor: an account manager of the listing's account.
        listing_id: the listing (another account's is not found).
        published: True to publish, False to unpublish.
        now: the time of the change (default now).

    Returns:
        True if the listing changed, False if it already was so (nothing written).

    Raises:
        ListingNotFound: no such listing in the actor's account.
        PermissionDenied: the gate refuses publish_listing (suspended, or a role that may not); nothing changes.
    """
    now = now or utcnow()
    account, listing = _own_listing(actor, "publish_listing", listing_id)
    if listing.published == published:
        return False
    listing.published = published
    listing.published_at = now if published else None
    listing.updated_at = now
    confirm_allowed(actor, "publish_listing", account)
    audit.record("listing_published" if published else "listing_unpublished", account.id, actor,
                 data={"listing_id": listing.id, "name": listing.name}, now=now)
    db.session.commit()
    return True


def connect_directory(actor, listing_id, form, now=None):
    """Connect a listing to an outside directory: connected with the directory's reference, else pending.

    Args:
        actor: an account manager of the listing's account.
        listing_id: the listing (another account's is not found).
        form: a mapping with directory (required, once per listing) and external_ref.
        now: the time of the change (default now).

    Returns:
        The new ListingConnection.

    Raises:
        ListingNotFound: no such listing in the actor's account.
        PermissionDenied: the gate refuses manage_listings; nothing is stored.
        ValidationFailed: bad fields, or the listing is already connected to that directory.
    """
    now = now or utcnow()
    account, listing = _own_listing(actor, "manage_listings", listing_id)
    values = fields.read(form, CONNECTION_FIELDS)
    taken = db.session.scalar(select(func.count()).select_from(ListingConnection).where(
        ListingConnection.listing_id == listing.id,
        func.lower(ListingConnection.directory) == values["directory"].lower()))
    if taken:
        raise ValidationFailed({"directory": f"This listing is already connected to {values['directory']}."})
    reference = values["external_ref"]
    connection = ListingConnection(listing_id=listing.id, directory=values["directory"], external_ref=reference,
                                   status="connected" if reference else "pending",
                                   connected_at=now if reference else None)
    db.session.add(connection)
    confirm_allowed(actor, "manage_listings", account)
    audit.record("listing_connected", account.id, actor,
                 data={"listing_id": listing.id, "connection_id": connection.id, "directory": connection.directory},
                 now=now)
    db.session.commit()
    return connection


def disconnect_directory(actor, listing_id, connection_id, now=None):
    """Remove a listing's connection to a directory.

    Args:
        actor: an account manager of the listing's account.
        listing_id: the listing (another account's is not found).
        connection_id: one of that listing's connections.
        now: the time of the change (default now).

    Returns:
        The directory's name.

    Raises:
        ListingNotFound: no such listing in the actor's account, or no such connection on it.
        PermissionDenied: the gate refuses manage_listings; the connection is kept.
    """
    now = now or utcnow()
    account, listing = _own_listing(actor, "manage_listings", listing_id)
    connection_id = record_id(connection_id)
    connection = db.session.scalar(select(ListingConnection).where(
        ListingConnection.id == connection_id, ListingConnection.listing_id == listing.id)) if connection_id else None
    if connection is None:
        raise ListingNotFound("We couldn't find that connection.")
    directory = connection.directory
    db.session.delete(connection)
    confirm_allowed(actor, "manage_listings", account)
    audit.record("listing_disconnected", account.id, actor,
                 data={"listing_id": listing.id, "connection_id": connection_id, "directory": directory}, now=now)
    db.session.commit()
    return directory
