"""Suspend and reactivate with a reason: the domain functions, and what each role then sees."""
import re
import threading
from datetime import datetime

import pytest
from sqlalchemy import event, func, select, update

from portal.domain import gate, suspension
from portal.domain.errors import (AccountNotFound, Conflict, InvalidTransition, PermissionDenied,
                                  ValidationFailed)
from portal.extensions import db
from portal.models import (Account, AuditEvent, Campaign, IngestionRecord, Invoice, Listing, OutboxEmail, Profile,
                           Reservation, SocialPost, Survey, User)
from tests.conftest import PASSWORD

NOTE = "Three invoices unpaid since March."
MEMBER_REFUSED = ("Your account has been temporarily suspended. "
                  "Please contact your account administrator for details.")


def user(person):
    return db.session.get(User, person.id)


def account_row(account_id):
    return db.session.get(Account, account_id, populate_existing=True)


def counts():
    return (db.session.scalar(select(func.count()).select_from(AuditEvent)),
            db.session.scalar(select(func.count()).select_from(OutboxEmail)))


def state(account_id):
    a = account_row(account_id)
    return a.status, a.version, a.status_reason, a.status_note, counts()


# ---------------------------------------------------------------- the domain functions

def test_suspend_records_the_reason_audits_and_emails_the_managers(ctx, world):
    at = datetime(2026, 3, 1, 9, 30)
    account = suspension.suspend(user(world.admin), world.account, "non_payment", f"  {NOTE} ", now=at)
    assert (account.status, account.status_reason, account.status_note) == ("suspended", "non_payment", NOTE)
    assert account.status_changed_at == at and account.version == 2
    event_ = db.session.scalars(select(AuditEvent).where(AuditEvent.account_id == world.account)).one()
    assert (event_.action, event_.actor_user_id, event_.reason_category, event_.reason_note) == (
        "suspended", world.admin.id, "non_payment", NOTE)
    assert (event_.state_before, event_.state_after, event_.created_at) == ("active", "suspended", at)
    emails = db.session.scalars(select(OutboxEmail)).all()
    assert [(e.to_addr, e.kind, e.status) for e in emails] == [(world.manager.email, "account_suspended", "pending")]
    assert "suspended for non-payment of dues" in emails[0].body and "billing@portal.test" in emails[0].body


def test_reactivate_clears_the_overlay_and_audits_both_events_newest_first(ctx, world):
    admin = user(world.admin)
    suspension.suspend(admin, world.account, "inactivity", "No bookings for a year.", now=datetime(2026, 3, 1))
    account = suspension.reactivate(admin, world.account, "customer_request", "Back in business.",
                                    now=datetime(2026, 3, 2))
    assert (account.status, account.status_reason, account.status_note, account.version) == ("active", None, None, 3)
    from portal.domain.audit import timeline

    events = timeline(world.account)
    assert [(e.action, e.state_before, e.state_after) for e in events] == [
        ("reactivated", "suspended", "active"), ("suspended", "active", "suspended")]
    kinds = db.session.scalars(select(OutboxEmail.kind).order_by(OutboxEmail.id)).all()
    assert kinds == ["account_suspended", "account_reactivated"]


def test_a_limited_account_can_be_suspended_and_reactivated(ctx, world, make):
    limited = make.account(status="limited")
    admin = user(world.admin)
    assert suspension.suspend(admin, limited, "non_payment", NOTE).status == "suspended"
    assert suspension.reactivate(admin, limited, "paid", "Paid in full.").status == "active"


@pytest.mark.parametrize("category, note, field", [
    ("", NOTE, "reason_category"),
    ("   ", NOTE, "reason_category"),
    ("bankruptcy", NOTE, "reason_category"),
    ("non_payment", "", "reason_note"),
    ("non_payment", "   ", "reason_note"),
    ("non_payment", "x" * 501, "reason_note"),
])
@pytest.mark.parametrize("action", ["suspend", "reactivate"])
def test_a_reason_is_required_both_ways_and_bad_input_changes_nothing(ctx, world, make, action, category, note, field):
    target = world.account if action == "suspend" else make.account(status="suspended", status_reason="other")
    before = state(target)
    with pytest.raises(ValidationFailed) as failed:
        getattr(suspension, action)(user(world.admin), target, category, note)
    assert field in failed.value.field_errors and failed.value.field_errors[field]
    assert state(target) == before


def test_a_note_of_exactly_500_characters_is_accepted(ctx, world):
    account = suspension.suspend(user(world.admin), world.account, "other", "n" * 500)
    assert len(account.status_note) == 500


@pytest.mark.parametrize("status, action", [
    ("suspended", "suspend"), ("active", "reactivate"), ("cancelled", "suspend"), ("cancelled", "reactivate"),
])
def test_an_impossible_transition_says_why_and_changes_nothing(ctx, world, make, status, action):
    target = make.account(status=status)
    before = state(target)
    with pytest.raises(InvalidTransition) as refused:
        getattr(suspension, action)(user(world.admin), target, "other", NOTE)
    assert status in refused.value.message.lower() and "Nothing was changed" in refused.value.message
    assert state(target) == before


@pytest.mark.parametrize("who", ["support", "manager", "tier", "member"])
def test_only_a_super_admin_may_suspend_or_reactivate(ctx, world, who):
    before = state(world.account)
    with pytest.raises(PermissionDenied):
        suspension.suspend(user(getattr(world, who)), world.account, "other", NOTE)
    assert state(world.account) == before


def test_an_unknown_account_is_not_found(ctx, world):
    with pytest.raises(AccountNotFound):
        suspension.suspend(user(world.admin), 999999, "other", NOTE)


@pytest.mark.parametrize("version", [1, "1"])
def test_the_version_the_admin_saw_is_accepted(ctx, world, version):
    assert suspension.suspend(user(world.admin), world.account, "other", NOTE, expected_version=version).version == 2


@pytest.mark.parametrize("version", [0, 2, "", "abc"])
def test_a_stale_or_garbled_form_version_is_a_conflict_that_changes_nothing(ctx, world, version):
    before = state(world.account)
    with pytest.raises(Conflict) as conflict:
        suspension.suspend(user(world.admin), world.account, "other", NOTE, expected_version=version)
    assert "Nothing was changed" in conflict.value.message
    assert state(world.account) == before


def test_two_admins_at_once_exactly_one_wins_and_the_other_gets_a_conflict(app, world):
    """Both read version 1; both reach the compare-and-set together; the database lets one through."""
    from portal.extensions import db as database

    barrier = threading.Barrier(2, timeout=20)
    outcomes = {}

    def hold_at_update(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("UPDATE ACCOUNTS"):
            barrier.wait()

    def act(name, admin):
        with app.app_context():
            try:
                suspension.suspend(database.session.get(User, admin.id), world.account, "other",
                                   f"by {name}", expected_version=1)
                outcomes[name] = "won"
            except (Conflict, InvalidTransition) as exc:
                outcomes[name] = exc.message
            finally:
                database.session.remove()

    with app.app_context():
        engine = database.engine
    event.listen(engine, "before_cursor_execute", hold_at_update)
    try:
        threads = [threading.Thread(target=act, args=(n, a)) for n, a in (("ada", world.admin), ("alan", world.admin2))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    finally:
        event.remove(engine, "before_cursor_execute", hold_at_update)
    assert sorted(outcomes) == ["ada", "alan"]
    assert list(outcomes.values()).count("won") == 1
    loser = next(v for v in outcomes.values() if v != "won")
    assert "changed by someone else at the same moment" in loser and "Nothing was changed" in loser
    with app.app_context():
        account = database.session.get(Account, world.account)
        events = database.session.scalars(select(AuditEvent).where(AuditEvent.account_id == world.account)).all()
        assert (account.status, account.version, len(events)) == ("suspended", 2, 1)
        winner = next(n for n, v in outcomes.items() if v == "won")
        assert account.status_note == f"by {winner}" == events[0].reason_note
        assert database.session.scalar(select(func.count()).select_from(OutboxEmail)) == 1


def test_audit_events_cannot_be_edited_or_deleted(ctx, world):
    suspension.suspend(user(world.admin), world.account, "other", NOTE)
    event_ = db.session.scalars(select(AuditEvent)).one()
    event_.reason_note = "rewritten"
    with pytest.raises(RuntimeError, match="append-only"):
        db.session.commit()
    db.session.rollback()
    db.session.delete(db.session.scalars(select(AuditEvent)).one())
    with pytest.raises(RuntimeError, match="append-only"):
        db.session.commit()
    db.session.rollback()
    assert db.session.scalars(select(AuditEvent.reason_note)).one() == NOTE


# ---------------------------------------------------------------- exact restoration

def _add_features(account_id, member_id):
    at = datetime(2025, 6, 1)
    db.session.add_all([
        Campaign(account_id=account_id, name="Spring offers", automated=True, state="active", created_at=at),
        Campaign(account_id=account_id, name="Draft", automated=False, state="draft", created_at=at),
        Survey(account_id=account_id, kind="reminder", subject="See you soon", created_at=at),
        Listing(account_id=account_id, name="Main street", published=True, updated_at=at),
        Profile(account_id=account_id, public=True, headline="Fresh food daily", body="Since 1999", updated_at=at),
        SocialPost(account_id=account_id, network="social", content="Great dinner!", imported_at=at),
        IngestionRecord(account_id=account_id, source="api", external_id="pos-1", payload="{}", created_at=at),
        Reservation(account_id=account_id, user_id=member_id, created_at=at, starts_at=at, party_size=4),
    ])
    account = db.session.get(Account, account_id)
    account.settings = {"timezone": "Europe/Lisbon", "reminders": True, "seats": 40}
    db.session.commit()


OVERLAY_COLUMNS = {"status", "status_reason", "status_note", "status_source", "status_changed_at",
                   "suspended_by_run_id", "version"}


def snapshot(account_id):
    """Every row the account owns (users, settings, features), minus the suspension overlay columns."""
    def rows(model, where):
        cols = [c for c in model.__table__.columns if not (model is Account and c.name in OVERLAY_COLUMNS)]
        return [tuple(r) for r in db.session.execute(select(*cols).where(where).order_by(model.id))]

    models = [Campaign, Survey, Listing, Profile, SocialPost, IngestionRecord, Reservation, Invoice]
    snap = {m.__tablename__: rows(m, m.account_id == account_id) for m in models}
    snap["accounts"] = rows(Account, Account.id == account_id)
    snap["users"] = rows(User, User.account_id == account_id)
    return snap


def test_reactivation_restores_users_settings_and_features_exactly(app, world, make, auth, client):
    make.invoice(world.account, seq=1)
    with app.app_context():
        _add_features(world.account, world.member.id)
        before = snapshot(world.account)
        suspension.suspend(db.session.get(User, world.admin.id), world.account, "non_payment", NOTE)
        db.session.remove()
    # While suspended: members are refused, the manager is read-only; none of it may leave a trace.
    assert b"temporarily suspended" in auth.login(world.member.email).data
    assert b"temporarily suspended" in auth.login(world.tier.email).data
    auth.login(world.manager.email)
    assert auth.post("/reservations", {"starts_at": "2030-01-01T19:00", "party_size": "2"}).status_code == 422
    with app.app_context():
        assert snapshot(world.account)["reservations"] == before["reservations"]
        suspension.reactivate(db.session.get(User, world.admin.id), world.account, "paid", "Paid.")
        db.session.remove()
        after = snapshot(world.account)
    manager_row = [c.name for c in User.__table__.columns].index("last_login_at")
    # The manager's own sign-in while suspended is the one legitimate change.
    strip = lambda users: [u[:manager_row] + u[manager_row + 1:] for u in users]  # noqa: E731
    assert strip(after.pop("users")) == strip(before.pop("users"))
    assert after == before


# ---------------------------------------------------------------- what each role then sees

def _suspend(app, world, reason="non_payment"):
    with app.app_context():
        suspension.suspend(db.session.get(User, world.admin.id), world.account, reason, NOTE)
        db.session.remove()


def _reactivate(app, world):
    with app.app_context():
        suspension.reactivate(db.session.get(User, world.admin.id), world.account, "other", "Settled.")
        db.session.remove()


@pytest.mark.parametrize("path", ["/my-account", "/reservations"])
def test_the_suspended_account_manager_signs_in_and_sees_the_banner_on_every_page(app, world, auth, client, path):
    _suspend(app, world)
    assert auth.login(world.manager.email).status_code == 303
    page = client.get(path).get_data(as_text=True)
    assert ("Your account has been suspended for non-payment of dues. To reactivate your account, "
            "please contact billing@portal.test.") in page


@pytest.mark.parametrize("reason, words", [("inactivity", "because it has been inactive"),
                                           ("policy_violation", "violation of our terms")])
def test_the_banner_is_worded_for_the_reason(app, world, auth, client, reason, words):
    _suspend(app, world, reason)
    auth.login(world.manager.email)
    assert words in client.get("/my-account").get_data(as_text=True)


@pytest.fixture
def app_config():
    return {"LOGIN_RATE_LIMIT": "1000 per minute"}


@pytest.mark.parametrize("who", ["tier", "member"])
def test_members_are_refused_after_a_correct_password_and_a_wrong_one_stays_generic(app, world, auth, who):
    _suspend(app, world)
    email = getattr(world, who).email
    refused = auth.login(email)
    assert refused.status_code == 422 and MEMBER_REFUSED in refused.get_data(as_text=True)
    wrong = auth.login(email, password="not the password").get_data(as_text=True)
    assert "Invalid email or password." in wrong and "suspended" not in wrong
    assert auth.client.get("/reservations").status_code == 302  # not signed in


@pytest.mark.parametrize("remember", [False, True])
def test_a_members_open_session_ends_on_the_next_request(app, world, auth, client, remember):
    assert auth.login(world.member.email, remember=remember).status_code == 303
    assert client.get("/reservations").status_code == 200
    _suspend(app, world)
    ended = client.get("/reservations")
    assert ended.status_code == 302 and ended.headers["Location"].startswith("/login")
    assert MEMBER_REFUSED in client.get(ended.headers["Location"]).get_data(as_text=True)
    if remember:  # the remember-me cookie is cleared too, so it cannot sign them back in
        assert client.get_cookie("remember_token") is None
    assert client.get("/reservations").status_code == 302
    htmx = client.get("/reservations", headers={"HX-Request": "true"})
    assert htmx.status_code == 401 and htmx.headers["HX-Redirect"].startswith("/login")


def test_after_reactivation_everyone_signs_in_again_and_the_banner_is_gone(app, world, auth, client):
    _suspend(app, world)
    _reactivate(app, world)
    for who in ("tier", "member"):
        assert auth.login(getattr(world, who).email).status_code == 303
        assert client.get("/reservations").status_code == 200
        auth.logout()
    auth.login(world.manager.email)
    page = client.get("/my-account").get_data(as_text=True)
    assert "suspension-banner" not in page and "Active" in page


def test_a_limited_or_active_account_shows_no_banner(app, world, make, auth, client):
    auth.login(world.manager.email)
    assert "suspension-banner" not in client.get("/my-account").get_data(as_text=True)
    _set(app, Account, world.account, status="limited")
    auth.login(world.manager.email)  # a status change ends the sessions from before it
    assert "suspension-banner" not in client.get("/my-account").get_data(as_text=True)
    _set(app, Account, world.account, status="suspended", status_reason="non_payment")
    auth.login(world.manager.email)
    assert "suspension-banner" in client.get("/my-account").get_data(as_text=True)  # the check can fail


def _set(app, model, row_id, **values):
    with app.app_context():
        db.session.execute(update(model).where(model.id == row_id).values(**values))
        db.session.commit()
        db.session.remove()


def _who_cannot_sign_in(client):
    """Return the my-account page's sign-in note (None when absent) and the people it marks as refused."""
    html = client.get("/my-account").get_data(as_text=True)
    note = re.search(r'data-testid="sign-in-note">(.*?)</p>', html, re.S)
    people = re.findall(r'<li data-testid="person">(.*?)</li>', html, re.S)
    marked = [p.split(" · ")[0] for p in people if "can't sign in right now" in p]
    return (" ".join(note.group(1).split()) if note else None), marked


@pytest.mark.parametrize("status, refused", [("active", []), ("limited", []),
                                             ("suspended", ["Theo Tier", "Uma User"])])
def test_my_account_says_who_cannot_sign_in_as_the_gate_decides(app, world, auth, client, status, refused):
    _set(app, Account, world.account, status=status, status_reason="non_payment" if status != "active" else None)
    auth.login(world.manager.email)
    note, marked = _who_cannot_sign_in(client)
    assert marked == refused
    if refused:
        assert note.startswith("2 people who work in your account can't sign in right now")
    else:
        assert note is None


def test_my_account_names_a_disabled_person_on_an_active_account(app, world, auth, client):
    _set(app, User, world.member.id, disabled=True)
    auth.login(world.manager.email)
    note, marked = _who_cannot_sign_in(client)
    assert marked == ["Uma User"]
    assert note.startswith("One person who works in your account can't sign in right now")


@pytest.mark.parametrize("status, role, refusal, refused", [
    ("suspended", "user", None, ["Theo Tier"]),  # the gate lets users in: the page must not say otherwise
    ("limited", "user", "Refused.", ["Uma User"]),  # the gate refuses users: the page must say so
])
def test_my_account_follows_the_gate_not_the_status(app, world, auth, client, monkeypatch,
                                                     status, role, refusal, refused):
    monkeypatch.setitem(gate.TABLE, (status, role, "login"), refusal)
    _set(app, Account, world.account, status=status, status_reason="non_payment")
    auth.login(world.manager.email)
    note, marked = _who_cannot_sign_in(client)
    assert marked == refused
    assert note.startswith("One person who works in your account can't sign in right now")


def test_signing_in_with_a_correct_password_still_works_for_the_other_account(app, world, auth, client):
    _suspend(app, world)
    assert auth.login(world.other_member.email, PASSWORD).status_code == 303
