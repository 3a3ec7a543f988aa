"""Customers' reservations: list and book (the gate decides whether booking is possible)."""
from flask import Blueprint, flash, request
from flask_login import current_user

from portal.domain import reservations as reservations_domain
from portal.domain.errors import Conflict, PermissionDenied, ValidationFailed
from portal.domain.gate import may
from portal.web.access import CUSTOMERS, roles_required
from portal.web.helpers import redirect_after_post, render
from portal.web.words import display_zone

bp = Blueprint("reservations", __name__, url_prefix="/reservations")


def _page(status=200, form=None, errors=None, refusal=None):
    account = current_user.account
    return render("reservations/index.html", block="booking_form" if status != 200 else None, status=status,
                  reservations=reservations_domain.list_reservations(account.id),
                  booking=may(current_user, "book_reservation", account),
                  form=form or {}, errors=errors or {}, refusal=refusal)


@bp.route("")
@roles_required(CUSTOMERS)
def index():
    """List the account's reservations and show the booking form."""
    return _page()


@bp.route("", methods=["POST"])
@roles_required(CUSTOMERS)
def book():
    """Book a reservation, unless the gate refuses."""
    form = request.form.to_dict()
    try:
        reservations_domain.book(current_user, form.get("starts_at"), form.get("party_size"), form.get("note"),
                                 zone=display_zone())
    except ValidationFailed as exc:
        return _page(422, form, exc.field_errors)
    except (PermissionDenied, Conflict) as exc:  # nothing was stored; say why in place of the form
        return _page(422, form, refusal=exc.message)
    flash("Your reservation is booked.", "success")
    return redirect_after_post("reservations.index")
