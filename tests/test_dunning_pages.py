"""The dunning pages through HTTP, with and without htmx: classes, the account's dunning card and its dialogs,
payments and invoices, Upcoming, and the dunning page (preview, Run now, the daily time).

Dates are relative to today (the pages act as of now). Each refusal is checked to change nothing.
"""
import csv
import io
import json
import re
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from portal.domain import runs
from portal.domain.billing import ledger
from portal.domain.dunning import overrides
from portal.domain.dunning.business_days import business_days_after
from portal.extensions import db
from portal.models import Account, AuditEvent, CustomerClass, DunningSchedule, Invoice, Payment, ScheduleOverride, User
from portal.timeutil import utcnow

NOTE = "Promised to pay on Friday."
HX = {"HX-Request": "true"}


@pytest.fixture
def app_config():
    return {"LOGIN_RATE_LIMIT": "1000 per minute"}


def today():
    return utcnow().date()


@pytest.fixture
def standard(make):
    return make.customer_class("Standard", limit_after_days=15, suspend_after_days=20)


def overdue(app, world, class_id, days_overdue, amount="49.00", account_id=None):
    """Put the world's account in the class with an invoice due days_overdue ago (the schedule applies at once)."""
    with app.app_context():
        admin = db.session.get(User, world.admin.id)
        account = db.session.get(Account, account_id or world.account)
        account.customer_class_id = class_id
        db.session.commit()
        ledger.add_invoice(admin, account.id, amount, today() - timedelta(days=days_overdue))
        db.session.remove()
    return account_id or world.account


def state(app, account_id):
    """What a refusal must leave as it was: the account row, its overrides, invoices, payments, audit events."""
    with app.app_context():
        account = db.session.get(Account, account_id)
        result = (account.status, account.version, account.balance_cents, account.customer_class_id,
                  db.session.scalar(select(func.count()).select_from(ScheduleOverride)),
                  db.session.scalar(select(func.count()).select_from(Invoice)),
                  db.session.scalar(select(func.count()).select_from(Payment)),
                  db.session.scalar(select(func.count()).select_from(AuditEvent)),
                  db.session.scalar(select(func.count()).select_from(CustomerClass)))
        db.session.remove()
        return result


def version(app, account_id):
    with app.app_context():
        value = db.session.get(Account, account_id).version
        db.session.remove()
        return value


def live_override(app, account_id):
    with app.app_context():
        row = db.session.scalar(select(ScheduleOverride).where(ScheduleOverride.account_id == account_id,
                                                               ScheduleOverride.ended_at.is_(None)))
        result = (row.limitation_date, row.suspension_date, row.lift_until) if row else None
        db.session.remove()
        return result


def reason(**fields):
    """A dunning override's reason (shift and lift; cancel-dates passes its own)."""
    data = {"reason_category": "promise_to_pay", "reason_note": NOTE}
    data.update(fields)
    return data


# ---------------------------------------------------------------- customer classes

def test_the_classes_page_lists_offsets_amounts_warnings_and_counts_for_super_admins_only(app, world, make, auth,
                                                                                       client, standard):
    make.account(customer_class_id=standard)
    make.account(customer_class_id=standard)
    auth.login(world.admin.email)
    page = client.get("/classes").get_data(as_text=True)
    row = page[page.index('data-testid="class-row"'):].split("</tr>")[0]
    assert "15 days" in row and "20 days" in row and "$0.01" in row and ">2<" in row
    auth.logout()
    auth.login(world.support.email)
    assert client.get("/classes").status_code == 403
    assert auth.post("/classes", {"name": "Sneaky"}).status_code == 403
    auth.logout()
    auth.login(world.manager.email)
    assert client.get("/classes").status_code == 403


@pytest.mark.parametrize("htmx", [False, True])
def test_a_class_is_added_and_bad_offsets_are_refused_at_the_field(app, world, auth, client, htmx):
    auth.login(world.admin.email)
    before = state(app, world.account)
    refused = auth.post("/classes", {"name": "Late", "limit_after_days": "20", "suspend_after_days": "10",
                                     "least_amount": "0"}, htmx=htmx)
    body = refused.get_data(as_text=True)
    assert refused.status_code == 422
    assert "cannot come before the limitation" in body and "above zero" in body
    assert ("<html" in body) is not htmx and 'id="class-form"' in body
    negative = auth.post("/classes", {"name": "Neg", "limit_after_days": "-1"}, htmx=htmx)
    assert negative.status_code == 422 and "whole number of days" in negative.get_data(as_text=True)
    assert state(app, world.account) == before
    added = auth.post("/classes", {"name": "Gold", "limit_after_days": "30", "suspend_after_days": "45",
                                   "least_amount": "10.00", "warning_days": "3"}, htmx=htmx)
    assert added.status_code == (204 if htmx else 303)
    with app.app_context():
        gold = db.session.scalar(select(CustomerClass).where(CustomerClass.name == "Gold"))
        assert (gold.limit_after_days, gold.suspend_after_days, gold.least_amount_cents, gold.warning_days) == \
            (30, 45, 1000, 3)
        assert db.session.scalar(select(AuditEvent.action).order_by(AuditEvent.id.desc()).limit(1)) == "class_created"


def test_a_class_is_edited_with_errors_at_the_field(app, world, auth, client, standard):
    auth.login(world.admin.email)
    form = client.get(f"/classes/{standard}/edit").get_data(as_text=True)
    assert 'value="15"' in form and 'value="0.01"' in form
    refused = auth.post(f"/classes/{standard}", {"name": "", "limit_after_days": "abc"}, htmx=True)
    assert refused.status_code == 422 and "Give the class a name" in refused.get_data(as_text=True)
    saved = auth.post(f"/classes/{standard}", {"name": "Standard", "limit_after_days": "10",
                                               "suspend_after_days": "20"})
    assert saved.status_code == 303
    with app.app_context():
        assert db.session.get(CustomerClass, standard).limit_after_days == 10
    assert client.get("/classes/999999/edit").status_code == 404


@pytest.mark.parametrize("htmx", [False, True])
def test_deleting_a_class_asks_first_and_is_refused_while_accounts_use_it(app, world, make, auth, client, standard,
                                                                          htmx):
    make.account(customer_class_id=standard)
    auth.login(world.admin.email)
    ask = client.get(f"/classes/{standard}/delete", headers=HX if htmx else {}).get_data(as_text=True)
    assert ("data-autoopen" in ask) is htmx and "1 account uses this class" in ask
    before = state(app, world.account)
    refused = auth.post(f"/classes/{standard}/delete", htmx=htmx)
    assert refused.status_code == 409 and "1 account uses the class" in refused.get_data(as_text=True)
    assert state(app, world.account) == before
    unused = make.customer_class("Spare")
    ask = client.get(f"/classes/{unused}/delete").get_data(as_text=True)
    assert "No account uses it" in ask and "Delete class" in ask
    done = auth.post(f"/classes/{unused}/delete", htmx=htmx)
    assert done.status_code == (204 if htmx else 303)
    with app.app_context():
        assert db.session.get(CustomerClass, unused) is None


# ---------------------------------------------------------------- the class on the account page and in bulk

def test_a_super_admin_sets_the_class_on_the_account_page_and_its_schedule_follows(app, world, make, auth, client,
                                                                                   standard):
    with app.app_context():
        ledger.add_invoice(db.session.get(User, world.admin.id), world.account, "49.00",
                           today() - timedelta(days=16))
    auth.login(world.admin.email)
    assert 'name="customer_class"' in client.get(f"/accounts/{world.account}").get_data(as_text=True)
    before = state(app, world.account)
    refused = auth.post(f"/accounts/{world.account}/class", {"customer_class": "999999"}, htmx=True)
    assert refused.status_code == 422 and "No customer class named" in refused.get_data(as_text=True)
    assert state(app, world.account) == before
    done = auth.post(f"/accounts/{world.account}/class", {"customer_class": str(standard)}, htmx=True)
    assert done.status_code == 200
    assert json.loads(done.headers["HX-Trigger"])["account-status-changed"] == {"id": world.account}
    with app.app_context():
        account = db.session.get(Account, world.account)
        assert account.customer_class_id == standard and account.status == "limited"  # 16 days overdue: due now
    auth.logout()
    auth.login(world.support.email)
    assert 'name="customer_class"' not in client.get(f"/accounts/{world.account}").get_data(as_text=True)
    assert auth.post(f"/accounts/{world.account}/class", {"customer_class": ""}).status_code == 403


@pytest.mark.parametrize("htmx", [False, True])
def test_bulk_set_class_confirms_then_moves_the_ticked_accounts_with_one_event_each(app, world, make, auth, client,
                                                                                    standard, htmx):
    ids = [make.account(name=f"Bulk {i}") for i in range(3)]
    make.invoice(ids[0], due_date=today() - timedelta(days=30))
    auth.login(world.admin.email)
    assert 'id="bulk-set-class"' in client.get("/accounts").get_data(as_text=True)
    ask = auth.post("/accounts/bulk/set-class/confirm", {"ids": [str(i) for i in ids]}, htmx=htmx)
    body = ask.get_data(as_text=True)
    assert ask.status_code == 200 and "Set the class of 3 accounts" in body and ("data-autoopen" in body) is htmx
    before = state(app, world.account)
    for bad in ({"ids": []}, {"ids": ["x"]}, {"ids": [str(ids[0])], "scope": "filter"}):
        refused = auth.post("/accounts/bulk/set-class", dict(bad, customer_class=str(standard)), htmx=htmx)
        assert refused.status_code == 422, bad
    unknown = auth.post("/accounts/bulk/set-class", {"ids": [str(ids[0])], "customer_class": "Nope"}, htmx=htmx)
    assert unknown.status_code == 422 and "No customer class named" in unknown.get_data(as_text=True)
    assert state(app, world.account) == before
    done = auth.post("/accounts/bulk/set-class", {"ids": [str(i) for i in ids], "customer_class": str(standard),
                                                  "next": "/accounts"}, htmx=htmx)
    if htmx:
        assert done.status_code == 200 and "Put 3 accounts in the class" in done.get_data(as_text=True)
        assert json.loads(done.headers["HX-Trigger"])["accounts-bulk-finished"]["ids"] == ids
    else:
        assert done.status_code == 303 and done.headers["Location"] == "/accounts"
    with app.app_context():
        assert set(db.session.scalars(select(Account.customer_class_id).where(Account.id.in_(ids)))) == {standard}
        events = db.session.scalars(select(AuditEvent.account_id).where(AuditEvent.action == "class_set")).all()
        assert sorted(events) == ids
        first = db.session.get(Account, ids[0])
        assert first.status == "suspended"  # 30 days overdue in a 15/20 class: the step was due, applied at once
        assert first.dunning_next_on is None or first.dunning_next_on > today()
        assert db.session.get(Account, ids[1]).dunning_next_on is None  # no invoice: nothing to look at


# ---------------------------------------------------------------- the dunning card

def test_the_dunning_card_shows_the_label_the_step_the_invoices_and_the_next_30_days(app, world, auth, client,
                                                                                     standard):
    account_id = overdue(app, world, standard, 10)
    with app.app_context():
        ledger.record_payment(db.session.get(User, world.admin.id), account_id, "9.00")
    auth.login(world.support.email)
    page = client.get(f"/accounts/{account_id}").get_data(as_text=True)
    card = page[page.index('data-testid="dunning-card"'):].split("</section>")[0]
    limit_on = (today() + timedelta(days=5)).isoformat()
    assert 'data-testid="dunning-label">Limitation pending<' in card
    assert f"Limitation on {limit_on}" in card
    assert "#1" in card and "$49.00" in card and "$9.00" in card and "$40.00" in card  # paid so far, still owed
    upcoming = card[card.index('data-testid="dunning-upcoming"'):]
    assert "Limited" in upcoming and "Suspended" in upcoming and limit_on in upcoming
    assert "dunning-actions" not in card  # support reads; it cannot reschedule
    fragment = client.get(f"/accounts/{account_id}/dunning", headers=HX).get_data(as_text=True)
    assert fragment.lstrip().startswith("<section") and "Limitation pending" in fragment
    assert 'hx-trigger="account-status-changed-%d from:body"' % account_id in fragment
    invoices = page[page.index('data-testid="billing-card"'):]
    assert "Paid so far" in invoices and "payment-form" not in invoices  # support cannot record payments


def test_the_card_says_when_everything_is_paid_but_a_manual_suspension_stays(app, world, auth, client, standard):
    from portal.domain import suspension

    account_id = overdue(app, world, standard, 5)
    with app.app_context():
        admin = db.session.get(User, world.admin.id)
        suspension.suspend(admin, account_id, "non_payment", "Will not pay")
        ledger.record_payment(admin, account_id, "49.00")
    auth.login(world.admin.email)
    page = client.get(f"/accounts/{account_id}").get_data(as_text=True)
    assert 'data-testid="dunning-all-paid"' in page and "stays suspended until a super admin reactivates it" in page


# ---------------------------------------------------------------- Reschedule

@pytest.mark.parametrize("htmx", [False, True])
def test_reschedule_is_a_dialog_for_htmx_and_a_page_without_javascript(app, world, auth, client, standard, htmx):
    account_id = overdue(app, world, standard, 10)
    auth.login(world.admin.email)
    page = client.get(f"/accounts/{account_id}").get_data(as_text=True)
    assert f'id="dunning-reschedule-{account_id}"' in page and "Cancel dates…" not in page
    dialog = client.get(f"/accounts/{account_id}/reschedule", headers=HX if htmx else {}).get_data(as_text=True)
    assert ("<html" in dialog) is not htmx and ("data-autoopen" in dialog) is htmx
    assert 'name="limitation_date"' in dialog and 'name="suspension_date"' in dialog
    assert (today() + timedelta(days=5)).isoformat() in dialog  # the class's limitation date, as a hint


@pytest.mark.parametrize("htmx", [False, True])
def test_reschedule_shifts_the_suspension_and_the_card_refreshes(app, world, auth, client, standard, htmx):
    account_id = overdue(app, world, standard, 16)  # limited now; suspension due in 4 days
    new_date = today() + timedelta(days=14)
    auth.login(world.admin.email)
    done = auth.post(f"/accounts/{account_id}/reschedule",
                     reason(suspension_date=new_date.isoformat(), limitation_date="",
                            version=str(version(app, account_id))), htmx=htmx)
    if htmx:
        assert done.status_code == 200
        events = json.loads(done.headers["HX-Trigger"])
        assert events["account-status-changed"] == {"id": account_id} and "account-rescheduled" in events
        assert done.headers["HX-Retarget"] == "#dunning-dialog"
        assert f"next: suspension on {new_date.isoformat()}" in done.get_data(as_text=True)  # the oob flash
    else:
        assert done.status_code == 303 and done.headers["Location"] == f"/accounts/{account_id}"
    assert live_override(app, account_id) == (None, new_date, None)
    card = client.get(f"/accounts/{account_id}/dunning", headers=HX).get_data(as_text=True)
    assert f"Suspension on {new_date.isoformat()}" in card and f"Suspension shifted to {new_date.isoformat()}" in card
    assert "Cancel dates…" in card


@pytest.mark.parametrize("htmx", [False, True])
def test_reschedule_refuses_bad_dates_and_a_missing_reason_at_the_field_and_changes_nothing(app, world, auth, client,
                                                                                          standard, htmx):
    account_id = overdue(app, world, standard, 10)
    class_limit = today() + timedelta(days=5)
    auth.login(world.admin.email)
    before = state(app, account_id)
    cases = [
        (reason(limitation_date=(class_limit - timedelta(days=1)).isoformat()), "limitation_date", "later date wins"),
        (reason(limitation_date=today().isoformat()), "limitation_date", "after today"),
        (reason(limitation_date="2026-02-30"), "limitation_date", "YYYY-MM-DD"),
        (reason(limitation_date=(class_limit + timedelta(days=3)).isoformat(), reason_note=""), "reason_note", ""),
        (reason(), "limitation_date", "Give a new limitation date"),
    ]
    for data, field, words in cases:
        response = auth.post(f"/accounts/{account_id}/reschedule", data, htmx=htmx)
        body = response.get_data(as_text=True)
        assert response.status_code == 422, data
        assert f'id="{field}-error"' in body or f'id="dunning-{field}-error"' in body, (field, body)
        assert words in body
        assert ("<html" in body) is not htmx
        assert 'id="dunning-reason_category-error"' not in body  # the override's own reason is a good one
    assert state(app, account_id) == before


def test_two_admins_rescheduling_at_once_the_second_is_refused(app, world, auth, client, standard):
    account_id = overdue(app, world, standard, 10)
    shown = version(app, account_id)
    with app.app_context():
        overrides.shift(db.session.get(User, world.admin2.id), account_id,
                        limitation_date=today() + timedelta(days=8), reason_note="first admin")
    before = state(app, account_id)
    auth.login(world.admin.email)
    late = auth.post(f"/accounts/{account_id}/reschedule",
                     reason(limitation_date=(today() + timedelta(days=9)).isoformat(), version=str(shown)), htmx=True)
    assert late.status_code == 409 and "changed by someone else" in late.get_data(as_text=True)
    assert state(app, account_id) == before


def test_support_and_customers_cannot_open_or_send_the_dialogs(app, world, auth, client, standard):
    account_id = overdue(app, world, standard, 16)
    before = state(app, account_id)
    for who in (world.support, world.manager):
        auth.login(who.email)
        for path in ("reschedule", "change-status", "cancel-dates"):
            assert client.get(f"/accounts/{account_id}/{path}").status_code == 403
            assert auth.post(f"/accounts/{account_id}/{path}", reason(until_choice="1w")).status_code == 403
        for path in ("payments", "invoices"):
            assert auth.post(f"/accounts/{account_id}/{path}", {"amount": "49.00", "due": "2030-01-01"}).status_code \
                == 403
        auth.logout()
    assert state(app, account_id) == before
    auth.login(world.manager.email)
    assert client.get(f"/accounts/{account_id}/dunning").status_code == 403
    assert client.get("/dunning/upcoming").status_code == 403


# ---------------------------------------------------------------- Change status (lift) and Cancel dates

@pytest.mark.parametrize("htmx", [False, True])
def test_change_status_lifts_for_two_business_days_one_week_or_a_date(app, world, auth, client, standard, htmx):
    account_id = overdue(app, world, standard, 21)  # suspended by the schedule
    auth.login(world.admin.email)
    dialog = client.get(f"/accounts/{account_id}/change-status", headers=HX if htmx else {}).get_data(as_text=True)
    two = business_days_after(today(), 2)
    assert "2 business days" in dialog and two.isoformat() in dialog and "1 week" in dialog
    done = auth.post(f"/accounts/{account_id}/change-status",
                     reason(until_choice="2bd", version=str(version(app, account_id))), htmx=htmx)
    assert done.status_code == (200 if htmx else 303)
    assert live_override(app, account_id) == (None, None, two)
    card = client.get(f"/accounts/{account_id}/dunning", headers=HX).get_data(as_text=True)
    assert "Suspension delayed" in card and f"Full service until <strong>{two.isoformat()}</strong>" in card
    week = auth.post(f"/accounts/{account_id}/change-status", reason(until_choice="1w"), htmx=htmx)
    assert week.status_code == (200 if htmx else 303)
    assert live_override(app, account_id)[2] == today() + timedelta(days=7)
    typed = (today() + timedelta(days=3)).isoformat()
    assert auth.post(f"/accounts/{account_id}/change-status", reason(until_choice="date", until_date=typed),
                     htmx=htmx).status_code == (200 if htmx else 303)
    assert live_override(app, account_id)[2].isoformat() == typed
    with app.app_context():
        assert db.session.get(Account, account_id).status == "active"


def test_change_status_refuses_bad_dates_at_the_field_and_an_account_not_restricted_in_the_dialog(
        app, world, make, auth, client, standard):
    account_id = overdue(app, world, standard, 21)
    auth.login(world.admin.email)
    before = state(app, account_id)
    for data, words in ((reason(until_choice="date", until_date=(today() + timedelta(days=31)).isoformat()),
                         "at most 30 days"),
                        (reason(until_choice="date", until_date=today().isoformat()), "after today"),
                        (reason(until_choice="date", until_date="soon"), "YYYY-MM-DD"),
                        (reason(until_choice=""), "Choose how long")):
        response = auth.post(f"/accounts/{account_id}/change-status", data, htmx=True)
        body = response.get_data(as_text=True)
        assert response.status_code == 422 and 'id="until-error"' in body and words in body, data
        assert 'id="dunning-reason_category-error"' not in body  # the lift's own reason is a good one
    assert state(app, account_id) == before
    fresh = overdue(app, world, standard, 3, account_id=world.other_account)  # pending, not restricted
    dialog = client.get(f"/accounts/{fresh}/change-status", headers=HX).get_data(as_text=True)
    assert 'data-testid="dunning-not-available"' in dialog
    before = state(app, fresh)
    refused = auth.post(f"/accounts/{fresh}/change-status", reason(until_choice="1w"), htmx=True)
    assert refused.status_code == 409 and "nothing to lift" in refused.get_data(as_text=True)
    assert state(app, fresh) == before


@pytest.mark.parametrize("htmx", [False, True])
def test_cancel_dates_ends_the_manual_dates_and_the_class_schedule_applies_at_once(app, world, auth, client, standard,
                                                                                  htmx):
    account_id = overdue(app, world, standard, 21)
    with app.app_context():
        overrides.lift(db.session.get(User, world.admin.id), account_id, today() + timedelta(days=5),
                       reason_note="Paying soon")
    auth.login(world.admin.email)
    dialog = client.get(f"/accounts/{account_id}/cancel-dates", headers=HX if htmx else {}).get_data(as_text=True)
    assert "Lifted until" in dialog and ("data-autoopen" in dialog) is htmx
    before = state(app, account_id)
    missing = auth.post(f"/accounts/{account_id}/cancel-dates", reason(reason_note="", reason_category="promise_not_kept"),
                        htmx=htmx)
    assert missing.status_code == 422 and 'id="dunning-reason_note-error"' in missing.get_data(as_text=True)
    assert state(app, account_id) == before
    done = auth.post(f"/accounts/{account_id}/cancel-dates", reason(reason_category="promise_not_kept"), htmx=htmx)
    assert done.status_code == (200 if htmx else 303)
    assert live_override(app, account_id) is None
    with app.app_context():
        assert db.session.get(Account, account_id).status == "suspended"  # the suspension was due: applied at once
    again = auth.post(f"/accounts/{account_id}/cancel-dates", reason(reason_category="promise_not_kept"), htmx=True)
    assert again.status_code == 409 and "no shifted or lifted date" in again.get_data(as_text=True)


def test_the_overrides_take_their_own_reasons_and_refuse_a_suspensions_at_the_field(app, world, auth, client,
                                                                                      standard):
    account_id = overdue(app, world, standard, 16)  # limited now; suspension due in 4 days
    auth.login(world.admin.email)
    for path, listed, first in (("reschedule", "Payment plan agreed", "promise_to_pay"),
                                ("change-status", "Invoice disputed", "promise_to_pay"),
                                ("cancel-dates", "Promise not kept", "promise_not_kept")):
        dialog = client.get(f"/accounts/{account_id}/{path}", headers=HX).get_data(as_text=True)
        if 'data-testid="dunning-not-available"' in dialog:
            continue  # cancel-dates before any manual date: nothing to choose
        assert listed in dialog and "Non-payment" not in dialog and "Inactivity" not in dialog, path
        assert re.search(rf'<option value="{first}"[^>]*selected', dialog), path
    before = state(app, account_id)
    refused = auth.post(f"/accounts/{account_id}/reschedule",
                        reason(reason_category="non_payment", suspension_date=(today() + timedelta(days=14)).isoformat()),
                        htmx=True)
    body = refused.get_data(as_text=True)
    assert refused.status_code == 422 and 'id="dunning-reason_category-error"' in body
    assert "reasons for new dates: promise to pay, payment plan agreed" in body
    assert state(app, account_id) == before
    done = auth.post(f"/accounts/{account_id}/reschedule",
                     reason(reason_category="payment_plan", suspension_date=(today() + timedelta(days=14)).isoformat()),
                     htmx=True)
    assert done.status_code == 200
    timeline = client.get(f"/accounts/{account_id}/timeline", headers=HX).get_data(as_text=True)
    assert "Payment plan agreed" in timeline
    card = client.get(f"/accounts/{account_id}/dunning", headers=HX).get_data(as_text=True)
    assert f"Why: Payment plan agreed — {NOTE}" in card


# ---------------------------------------------------------------- payments and invoices

@pytest.mark.parametrize("htmx", [False, True])
def test_recording_a_payment_says_what_it_did_and_restores_service(app, world, auth, client, standard, htmx):
    account_id = overdue(app, world, standard, 16)  # limited
    auth.login(world.admin.email)
    page = client.get(f"/accounts/{account_id}").get_data(as_text=True)
    assert 'data-testid="payment-form"' in page and 'data-testid="invoice-form"' in page
    done = auth.post(f"/accounts/{account_id}/payments", {"amount": "60.00", "invoice": "1", "reference": "CHK-1"},
                     htmx=htmx)
    if htmx:
        body = done.get_data(as_text=True)
        assert done.status_code == 200 and 'data-testid="billing-message"' in body and "<html" not in body
        assert "service is restored" in body and "$11.00 more than was owed is kept as credit" in body
        assert json.loads(done.headers["HX-Trigger"])["account-status-changed"] == {"id": account_id}
    else:
        assert done.status_code == 303
        assert "service is restored" in client.get(done.headers["Location"]).get_data(as_text=True)
    with app.app_context():
        account = db.session.get(Account, account_id)
        assert (account.status, account.balance_cents, account.credit_cents) == ("active", 0, 1100)
        assert db.session.scalar(select(Payment.reference)) == "CHK-1"


@pytest.mark.parametrize("htmx", [False, True])
def test_bad_payments_and_invoices_are_refused_at_the_field_and_change_nothing(app, world, auth, client, standard,
                                                                               htmx):
    account_id = overdue(app, world, standard, 16)
    auth.login(world.admin.email)
    before = state(app, account_id)
    for data, field, words in (({"amount": "0"}, "payment-amount", "above zero"),
                               ({"amount": "-5"}, "payment-amount", "above zero"),
                               ({"amount": "abc"}, "payment-amount", "in dollars"),
                               ({"amount": "10", "invoice": "99"}, "payment-invoice", "no open invoice #99"),
                               ({"amount": "10", "reference": "x" * 101}, "payment-reference", "100 characters")):
        response = auth.post(f"/accounts/{account_id}/payments", data, htmx=htmx)
        body = response.get_data(as_text=True)
        assert response.status_code == 422 and f'id="{field}-error-{account_id}"' in body and words in body, data
        assert ("<html" in body) is not htmx
    for data, field in (({"amount": "", "due": "2030-01-01"}, "invoice-amount"),
                        ({"amount": "10", "due": "tomorrow"}, "invoice-due")):
        response = auth.post(f"/accounts/{account_id}/invoices", data, htmx=htmx)
        assert response.status_code == 422 and f'id="{field}-error-{account_id}"' in response.get_data(as_text=True)
    assert state(app, account_id) == before


def test_adding_an_invoice_shows_it_with_what_is_paid_so_far(app, world, auth, client, standard):
    auth.login(world.admin.email)
    due = (today() + timedelta(days=30)).isoformat()
    done = auth.post(f"/accounts/{world.account}/invoices", {"amount": "120.00", "due": due}, htmx=True)
    body = done.get_data(as_text=True)
    assert done.status_code == 200 and f"Invoice #1 of $120.00 added, due {due}" in body
    assert json.loads(done.headers["HX-Trigger"])["invoice-added"] == {"id": world.account}
    assert auth.post(f"/accounts/{world.account}/payments", {"amount": "20"}).status_code == 303
    page = client.get(f"/accounts/{world.account}").get_data(as_text=True)
    row = page[page.index('data-seq="1"'):].split("</tr>")[0]
    assert "$120.00" in row and "$20.00" in row and "$100.00 still owed" in row


# ---------------------------------------------------------------- Upcoming

def test_upcoming_lists_the_next_7_days_by_date_filters_by_class_and_exports_csv(app, world, make, auth, client,
                                                                                standard):
    other = make.customer_class("Other", limit_after_days=30, suspend_after_days=40)
    overdue(app, world, standard, 12)  # limitation in 3 days
    overdue(app, world, other, 35, amount="80.00", account_id=world.other_account)  # suspension in 5 days
    auth.login(world.support.email)
    page = client.get("/dunning/upcoming").get_data(as_text=True)
    rows = page.split('data-testid="upcoming-row"')[1:]
    assert len(rows) == 2 and "Limitation" in rows[0] and "Suspension" in rows[1]  # by date
    assert "$49.00" in rows[0] and "#1" in rows[0] and "$80.00" in rows[1]
    filtered = client.get(f"/dunning/upcoming?class={other}", headers=HX).get_data(as_text=True)
    assert filtered.count('data-testid="upcoming-row"') == 1 and "$80.00" in filtered and "<html" not in filtered
    export = client.get(f"/dunning/upcoming.csv?class={standard}")
    assert export.status_code == 200 and export.mimetype == "text/csv"
    lines = list(csv.reader(io.StringIO(export.get_data(as_text=True))))
    assert lines[0][:3] == ["date", "action", "number"]
    assert lines[1][:2] == [(today() + timedelta(days=3)).isoformat(), "limitation"] and lines[1][5] == "49.00"
    assert len(lines) == 2
    assert client.get("/dunning/upcoming.csv?class=abc").status_code == 422
    assert "showing every class" in client.get("/dunning/upcoming?class=abc").get_data(as_text=True)


def test_upcoming_says_so_when_nothing_is_coming(app, world, auth, client):
    auth.login(world.admin.email)
    page = client.get("/dunning/upcoming").get_data(as_text=True)
    assert 'data-testid="upcoming-empty"' in page


# ---------------------------------------------------------------- the dunning page

def test_the_dunning_page_previews_today_and_run_now_starts_it_once(app, world, make, auth, client, standard):
    account_id = overdue(app, world, standard, 0)
    with app.app_context():  # due a look today: 16 days overdue, not limited yet (the step waits for the run)
        account = db.session.get(Account, account_id)
        db.session.execute(Invoice.__table__.update().where(Invoice.account_id == account_id)
                           .values(due_date=today() - timedelta(days=16)))
        account.dunning_next_on = today()
        db.session.commit()
    auth.login(world.admin.email)
    page = client.get("/dunning").get_data(as_text=True)
    assert 'data-step="limited"' in page and "Limit service" in page
    assert "Blue Harbor Bistro" in page and 'data-testid="run-now"' in page
    started = auth.post("/dunning/run")
    assert started.status_code == 303 and started.headers["Location"].startswith("/sweeps/runs/")
    run_id = int(started.headers["Location"].rsplit("/", 1)[1])
    with app.app_context():
        runs.process_run(run_id, worker_name="test", poll=0)
        assert db.session.get(Account, account_id).status == "limited"
    report = client.get(f"/sweeps/runs/{run_id}").get_data(as_text=True)
    assert "Daily dunning evaluation" in report and 'data-step="limited"' in report and "1 limited" in report
    assert "← Dunning" in report and "Left as they were" in report
    assert "Daily dunning" in client.get("/sweeps").get_data(as_text=True)  # the run history names it too
    again = auth.post("/dunning/run")
    body = again.get_data(as_text=True)
    assert again.status_code == 409 and "already been started" in body and f"/sweeps/runs/{run_id}" in body
    assert f"run #{run_id}" in client.get("/dunning").get_data(as_text=True)
    auth.logout()
    auth.login(world.support.email)
    assert client.get("/dunning").status_code == 403
    assert auth.post("/dunning/run").status_code == 403


@pytest.mark.parametrize("htmx", [False, True])
def test_the_daily_time_is_saved_audited_and_refused_at_the_field(app, world, auth, client, htmx):
    auth.login(world.admin.email)
    assert 'value="02:00"' in client.get("/dunning").get_data(as_text=True)
    before = state(app, world.account)
    refused = auth.post("/dunning/schedule", {"time_of_day": "25:00", "enabled": "1"}, htmx=htmx)
    body = refused.get_data(as_text=True)
    assert refused.status_code == 422 and 'id="dunning-time_of_day-error"' in body and ("<html" in body) is not htmx
    assert state(app, world.account) == before
    saved = auth.post("/dunning/schedule", {"time_of_day": "6:30", "enabled": "1"}, htmx=htmx)
    assert saved.status_code == (204 if htmx else 303)
    with app.app_context():
        row = db.session.scalar(select(DunningSchedule))
        assert (row.time_of_day, row.enabled) == ("06:30", True)
        assert db.session.scalar(select(AuditEvent.action).order_by(AuditEvent.id.desc()).limit(1)) == \
            "dunning_schedule_updated"
    auth.logout()
    auth.login(world.support.email)
    assert auth.post("/dunning/schedule", {"time_of_day": "03:00"}).status_code == 403


def test_the_navigation_shows_the_dunning_pages_to_the_roles_that_may_use_them(app, world, auth, client):
    auth.login(world.admin.email)
    nav = client.get("/accounts").get_data(as_text=True).split("</nav>")[0]
    assert "/classes" in nav and "/dunning/upcoming" in nav and 'href="/dunning"' in nav
    auth.logout()
    auth.login(world.support.email)
    nav = client.get("/accounts").get_data(as_text=True).split("</nav>")[0]
    assert "/dunning/upcoming" in nav and "/classes" not in nav and 'href="/dunning"' not in nav
