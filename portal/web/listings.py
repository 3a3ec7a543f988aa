"""Customers' listings and their directory connections: list, add, edit, publish, connect (the gate decides)."""
from flask import Blueprint, flash, request
from flask_login import current_user

from portal.domain.errors import Conflict, PermissionDenied, ValidationFailed
from portal.domain.features import listings as listings_domain
from portal.domain.gate import ROLE_ACTIONS, may
from portal.web.access import roles_required
from portal.web.helpers import redirect_after_post, render

bp = Blueprint("listings", __name__, url_prefix="/listings")

MANAGERS = ("account_manager", "tier_manager")
ACCOUNT_MANAGER = ("account_manager",)
REFUSALS = (PermissionDenied, Conflict)  # nothing was stored; the message says why


def _decisions():
    account = current_user.account
    return {"account": account, "editing": may(current_user, "edit_listing", account),
            "publishing": may(current_user, "publish_listing", account),
            # adds listings and connects directories: the role may (manages), and now (managing)
            "manages": "manage_listings" in ROLE_ACTIONS.get(current_user.role, ()),
            "managing": may(current_user, "manage_listings", account),
            "statuses": listings_domain.CONNECTION_STATUSES}


def _index(status=200, **extra):
    context = dict(_decisions(), listings=listings_domain.listings_of(current_user.account_id),
                   form={}, errors={}, refusal=None)
    context.update(extra)
    return render("listings/index.html", block="new_listing" if status != 200 else None, status=status, **context)


def _detail(listing_id, block=None, status=200, **extra):
    listing, connections = listings_domain.get_listing(current_user, listing_id)
    context = dict(_decisions(), listing=listing, connections=connections,
                   form=listings_domain.form_values(listing), errors={}, refusal=None,
                   connect_form={}, connect_errors={}, publish_refusal=None, connect_refusal=None)
    context.update(extra)
    return render("listings/detail.html", block=block if status != 200 else None, status=status, **context)


@bp.route("")
@roles_required(MANAGERS)
def index():
    """List the account's listings with their directory connections."""
    return _index()


@bp.route("", methods=["POST"])
@roles_required(ACCOUNT_MANAGER)
def create():
    """Add a listing, unless the gate refuses."""
    form = request.form.to_dict()
    try:
        listing = listings_domain.create_listing(current_user, form)
    except ValidationFailed as exc:
        return _index(422, form=form, errors=exc.field_errors)
    except REFUSALS as exc:
        return _index(422, form=form, refusal=exc.message)
    flash(f"Listing “{listing.name}” added (not published yet).", "success")
    return redirect_after_post("listings.detail", listing_id=listing.id)


@bp.route("/<int:listing_id>")
@roles_required(MANAGERS)
def detail(listing_id):
    """Show one listing: its details to edit, whether it is published, its connections."""
    return _detail(listing_id)


@bp.route("/<int:listing_id>", methods=["POST"])
@roles_required(MANAGERS)
def update(listing_id):
    """Save a listing's name, address, phone and description, unless the gate refuses."""
    form = request.form.to_dict()
    try:
        changed = listings_domain.update_listing(current_user, listing_id, form)
    except ValidationFailed as exc:
        return _detail(listing_id, "listing_form", 422, form=form, errors=exc.field_errors)
    except REFUSALS as exc:
        return _detail(listing_id, "listing_form", 422, form=form, refusal=exc.message)
    flash("Listing saved." if changed else "Nothing to save: the listing was already so.", "success")
    return redirect_after_post("listings.detail", listing_id=listing_id)


def _publication(listing_id, published):
    try:
        changed = listings_domain.set_published(current_user, listing_id, published)
    except REFUSALS as exc:
        return _detail(listing_id, "publication", 422, publish_refusal=exc.message)
    word = "published" if published else "unpublished"
    flash(f"Listing {word}." if changed else f"The listing was already {word}.", "success")
    return redirect_after_post("listings.detail", listing_id=listing_id)


@bp.route("/<int:listing_id>/publish", methods=["POST"])
@roles_required(ACCOUNT_MANAGER)
def publish(listing_id):
    """Publish a listing, unless the gate refuses."""
    return _publication(listing_id, True)


@bp.route("/<int:listing_id>/unpublish", methods=["POST"])
@roles_required(ACCOUNT_MANAGER)
def unpublish(listing_id):
    """Unpublish a listing, unless the gate refuses."""
    return _publication(listing_id, False)


@bp.route("/<int:listing_id>/connections", methods=["POST"])
@roles_required(ACCOUNT_MANAGER)
def connect(listing_id):
    """Connect the listing to an outside directory, unless the gate refuses."""
    form = request.form.to_dict()
    try:
        connection = listings_domain.connect_directory(current_user, listing_id, form)
    except ValidationFailed as exc:
        return _detail(listing_id, "connections", 422, connect_form=form, connect_errors=exc.field_errors)
    except REFUSALS as exc:
        return _detail(listing_id, "connections", 422, connect_form=form, connect_refusal=exc.message)
    flash(f"Connected to {connection.directory}.", "success")
    return redirect_after_post("listings.detail", listing_id=listing_id)


@bp.route("/<int:listing_id>/connections/<int:connection_id>/delete", methods=["POST"])
@roles_required(ACCOUNT_MANAGER)
def disconnect(listing_id, connection_id):
    """Remove one of the listing's directory connections, unless the gate refuses."""
    try:
        directory = listings_domain.disconnect_directory(current_user, listing_id, connection_id)
    except REFUSALS as exc:
        return _detail(listing_id, "connections", 422, connect_refusal=exc.message)
    flash(f"Disconnected from {directory}.", "success")
    return redirect_after_post("listings.detail", listing_id=listing_id)
