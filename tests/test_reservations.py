"""Customers' reservations: list and book; a suspended or limited account is refused kindly, nothing stored."""
import html
from datetime import datetime

import pytest
from sqlalchemy import func, select

from portal.domain import reservations, suspension
from portal.domain.errors import PermissionDenied, ValidationFailed
from portal.extensions import db
from portal.models import Account, Reservation, User

FUTURE = "2030-05-01T19:30"
NOW = datetime(2026, 11, 1, 12, 0)


@pytest.fixture
def app_config():
    return {"LOGIN_RATE_LIMIT": "1000 per minute"}


def reservation_count(app):
    with app.app_context():
        count = db.session.scalar(select(func.count()).select_from(Reservation))
        db.session.remove()
        return count


def suspend(app, world):
    with app.app_context():
        suspension.suspend(db.session.get(User, world.admin.id), world.account, "non_payment", "Overdue.")
        db.session.remove()


# ---------------------------------------------------------------- the domain

def test_booking_stores_the_reservation_and_marks_activity(ctx, world):
    member = db.session.get(User, world.member.id)
    booked = reservations.book(member, FUTURE, "4", "Window seat", now=NOW)
    assert (booked.party_size, booked.note, booked.starts_at) == (4, "Window seat", datetime(2030, 5, 1, 19, 30))
    assert db.session.get(Account, world.account).last_activity_at == NOW
    assert [r.id for r in reservations.list_reservations(world.account)] == [booked.id]


@pytest.mark.parametrize("status, words", [("suspended", "account is suspended"), ("limited", "limited")])
def test_a_restricted_account_is_refused_before_any_field_is_checked(ctx, world, make, status, words):
    manager = db.session.get(User, world.manager.id)
    db.session.get(Account, world.account).status = status
    db.session.commit()
    with pytest.raises(PermissionDenied) as refused:
        reservations.book(manager, "not a date", "0", now=NOW)
    assert words in refused.value.message and "billing@portal.test" in refused.value.message
    assert db.session.scalar(select(func.count()).select_from(Reservation)) == 0
    assert db.session.get(Account, world.account).last_activity_at is None


@pytest.mark.parametrize("starts_at, party, note, field", [
    ("", "2", "", "starts_at"), ("tomorrow", "2", "", "starts_at"), ("2020-01-01T10:00", "2", "", "starts_at"),
    (FUTURE, "0", "", "party_size"), (FUTURE, "51", "", "party_size"), (FUTURE, "two", "", "party_size"),
    (FUTURE, "2", "n" * 501, "note"),
])
def test_bad_fields_are_named_and_nothing_is_stored(ctx, world, starts_at, party, note, field):
    with pytest.raises(ValidationFailed) as failed:
        reservations.book(db.session.get(User, world.member.id), starts_at, party, note, now=NOW)
    assert field in failed.value.field_errors
    assert db.session.scalar(select(func.count()).select_from(Reservation)) == 0


# ---------------------------------------------------------------- the pages

def test_a_customer_lists_and_books_without_javascript(app, world, make, auth, client):
    make.reservation(world.other_account, datetime(2026, 1, 1), user_id=world.other_member.id)
    auth.login(world.member.email)
    assert "No reservations yet." in client.get("/reservations").get_data(as_text=True)
    response = auth.post("/reservations", {"starts_at": FUTURE, "party_size": "3", "note": "Birthday"})
    assert response.status_code == 303 and response.headers["Location"] == "/reservations"
    page = client.get("/reservations").get_data(as_text=True)
    assert "Your reservation is booked." in page and "Birthday" in page
    assert reservation_count(app) == 2  # theirs, and the other account's (never shown here)


def test_booking_with_htmx_redirects_through_hx_redirect(app, world, auth):
    auth.login(world.member.email)
    response = auth.post("/reservations", {"starts_at": FUTURE, "party_size": "2"}, htmx=True)
    assert response.status_code == 204 and response.headers["HX-Redirect"] == "/reservations"
    assert reservation_count(app) == 1


@pytest.mark.parametrize("htmx", [True, False])
def test_validation_errors_re_render_the_booking_form(app, world, auth, htmx):
    auth.login(world.member.email)
    response = auth.post("/reservations", {"starts_at": FUTURE, "party_size": "99"}, htmx=htmx)
    body = response.get_data(as_text=True)
    assert response.status_code == 422 and ("<html" in body) is not htmx
    assert 'id="party_size-error"' in body and 'aria-invalid="true"' in body
    assert reservation_count(app) == 0


def test_the_suspended_account_manager_sees_why_booking_is_not_possible(app, world, auth, client):
    suspend(app, world)
    auth.login(world.manager.email)
    page = html.unescape(client.get("/reservations").get_data(as_text=True))
    assert "Your account is suspended, so new reservations can't be made right now." in page
    assert "please contact billing@portal.test" in page
    assert 'name="party_size"' not in page  # no form to fill in vain


@pytest.mark.parametrize("htmx", [True, False])
def test_a_suspended_customer_who_tries_to_book_is_told_kindly_and_nothing_is_stored(app, world, auth, htmx):
    auth.login(world.manager.email)
    suspend(app, world)
    auth.login(world.manager.email)  # the suspension ended the session from before it; managers sign in again
    response = auth.post("/reservations", {"starts_at": FUTURE, "party_size": "2"}, htmx=htmx)
    body = response.get_data(as_text=True)
    assert response.status_code == 422
    assert 'data-testid="booking-refused"' in body
    assert "account is suspended" in body and "To reactivate your account and book again" in body
    assert reservation_count(app) == 0


def test_a_suspended_member_cannot_reach_reservations_at_all(app, world, auth, client):
    auth.login(world.member.email)
    token = auth.csrf_token("/reservations")  # the booking form was open before the suspension
    suspend(app, world)
    response = client.post("/reservations", data={"starts_at": FUTURE, "party_size": "2", "csrf_token": token})
    assert response.status_code in (302, 303) and response.headers["Location"].startswith("/login")
    assert reservation_count(app) == 0


def test_staff_have_no_reservations_page(world, auth, client):
    auth.login(world.admin.email)
    assert client.get("/reservations").status_code == 403
