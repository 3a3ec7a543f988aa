"""The accounts API on both databases: the list with the list page's filters and cursors, one account with the
dunning schedule's words, its timeline, and the status changes, each answering the new state or a problem
document that changes nothing."""
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from portal.domain.billing import ledger
from portal.domain.dunning import status as dunning_status
from portal.extensions import db
from portal.models import Account, AuditEvent, Invoice, ScheduleOverride, User
from portal.timeutil import utcnow
from tests.api_support import Api, make_token, number_of, problem

REASON = {"reason_category": "non_payment", "reason_note": "Asked by the billing system."}
OVERRIDE = {"reason_category": "promise_to_pay", "reason_note": "Promised on the phone."}
PAID = {"reason_category": "paid", "reason_note": "Paid through the billing system."}  # reactivation has its own


@pytest.fixture
def api(app, client, world):
    return Api(client, make_token(app, world.admin.id))


def today():
    return utcnow().date()


def overdue(app, world, make, days_overdue, account_id=None):
    """Put the account in a class (limit after 15 days, suspend after 20) with an invoice due days_overdue ago."""
    class_id = make.customer_class("Standard", limit_after_days=15, suspend_after_days=20)
    with app.app_context():
        account = db.session.get(Account, account_id or world.account)
        account.customer_class_id = class_id
        db.session.commit()
        ledger.add_invoice(db.session.get(User, world.admin.id), account.id, "49.00",
                           today() - timedelta(days=days_overdue))
        db.session.remove()
    return account_id or world.account


def snapshot(app, account_id):
    """What a refusal must leave as it was."""
    with app.app_context():
        account = db.session.get(Account, account_id)
        found = (account.status, account.version, account.exempt, account.balance_cents,
                 db.session.scalar(select(func.count()).select_from(AuditEvent)),
                 db.session.scalar(select(func.count()).select_from(ScheduleOverride)),
                 db.session.scalar(select(func.count()).select_from(Invoice)))
        db.session.remove()
    return found


# ---------------------------------------------------------------- reading

def test_one_account_shows_the_dunning_schedules_words(app, api, world, make):
    account_id = overdue(app, world, make, 10)  # limitation due in 5 days
    number = number_of(app, account_id)
    body = api.get(f"/api/v1/accounts/{number}").get_json()
    with app.app_context():
        record = dunning_status.record(db.session.get(Account, account_id))
    assert body["number"] == number and body["status"] == "active"
    assert body["label"] == record["label"] and body["dunning_status"] == record["status"] != "active"
    assert body["pending_action"] == "limitation"
    assert body["pending_date"] == (today() + timedelta(days=5)).isoformat()
    assert body["overdue_invoices"] == [1] and body["overdue_cents"] == 4900 and body["balance_cents"] == 4900
    assert body["customer_class"].startswith("Standard") and body["exempt"] is False
    assert api.get(f"/api/v1/accounts/{number.lower()}").get_json()["number"] == number


def test_an_unknown_account_is_a_404_problem(api):
    body = problem(api.get("/api/v1/accounts/T9999999"), 404, "not-found")
    assert body["detail"] == "Account not found." and body["instance"] == "/api/v1/accounts/T9999999"


def test_the_list_pages_with_cursors_and_filters(app, api, world, make):
    for n in range(12):
        make.account(name=f"Zephyr {n:02d}")
    first = api.get("/api/v1/accounts?q=Zephyr&per_page=10").get_json()
    assert [a["name"] for a in first["items"]] == [f"Zephyr {n:02d}" for n in range(10)]
    assert first["next_cursor"] and first["prev_cursor"] is None
    second = api.get(f"/api/v1/accounts?q=Zephyr&per_page=10&cursor={first['next_cursor']}").get_json()
    assert [a["name"] for a in second["items"]] == ["Zephyr 10", "Zephyr 11"] and second["next_cursor"] is None
    suspended = make.account(name="Zephyr suspended", status="suspended")
    only = api.get("/api/v1/accounts?q=Zephyr&status=suspended").get_json()["items"]
    assert [a["number"] for a in only] == [number_of(app, suspended)]
    assert only[0]["label"] == "Suspended"


def test_a_filter_the_list_page_would_ignore_is_refused(api):
    body = problem(api.get("/api/v1/accounts?class=999999"), 422, "validation")
    assert "customer_class" in body["errors"]
    assert "cursor" in problem(api.get("/api/v1/accounts?cursor=forged"), 422, "validation")["errors"]
    assert "sort" in problem(api.get("/api/v1/accounts?sort=sideways"), 422, "validation")["errors"]
    assert "nonsense" in problem(api.get("/api/v1/accounts?nonsense=1"), 422, "validation")["errors"]


def test_date_times_carry_their_offset(app, api, world):
    body = api.get(f"/api/v1/accounts/{number_of(app, world.account)}").get_json()
    assert body["created_at"] == "2024-01-01T00:00:00+00:00"


def test_the_timeline_is_newest_first_and_names_who_acted(app, api, world):
    number = number_of(app, world.account)
    api.post(f"/api/v1/accounts/{number}/suspend", REASON)
    api.post(f"/api/v1/accounts/{number}/reactivate", PAID)
    items = api.get(f"/api/v1/accounts/{number}/timeline?limit=2").get_json()["items"]
    assert [e["action"] for e in items] == ["reactivated", "suspended"]
    assert items[0]["actor"].startswith("API token ‘integration’ (ak_") and items[0]["state_after"] == "active"


# ---------------------------------------------------------------- changing status

def test_suspend_and_reactivate_answer_the_new_state(app, api, world):
    number = number_of(app, world.account)
    suspended = api.post(f"/api/v1/accounts/{number}/suspend", REASON)
    assert suspended.status_code == 200
    assert suspended.get_json()["status"] == "suspended" and suspended.get_json()["label"] == "Suspended"
    assert suspended.get_json()["status_reason"] == "non_payment"
    reactivated = api.post(f"/api/v1/accounts/{number}/reactivate",
                           dict(PAID, expected_version=suspended.get_json()["version"]))
    assert reactivated.status_code == 200 and reactivated.get_json()["status"] == "active"


def test_refusals_are_problems_that_change_nothing(app, api, world):
    number = number_of(app, world.account)
    before = snapshot(app, world.account)
    body = problem(api.post(f"/api/v1/accounts/{number}/reactivate", PAID), 409, "invalid-transition")
    assert body["current_status"] == "active"
    body = problem(api.post(f"/api/v1/accounts/{number}/suspend", {"reason_category": "mood", "reason_note": ""}),
                   422, "validation")
    assert set(body["errors"]) == {"reason_category", "reason_note"}
    problem(api.post(f"/api/v1/accounts/{number}/suspend", dict(REASON, expected_version=0)), 409, "conflict")
    assert "color" in problem(api.post(f"/api/v1/accounts/{number}/suspend", dict(REASON, color="red")),
                              422, "validation")["errors"]
    problem(api.post(f"/api/v1/accounts/{number}/suspend", raw='{"reason_category": '), 400, "malformed-json")
    problem(api.post(f"/api/v1/accounts/{number}/suspend", raw="[1, 2]"), 422, "validation")
    problem(api.post(f"/api/v1/accounts/{number}/suspend", {"reason_category": 7, "reason_note": ["x"]}),
            422, "validation")
    assert "reason_note" in problem(api.post(f"/api/v1/accounts/{number}/suspend",
                                             dict(REASON, reason_note="nul\x00byte")), 422, "validation")["errors"]
    huge = {"reason_category": "other", "reason_note": "x" * 100_000}
    problem(api.post(f"/api/v1/accounts/{number}/suspend", huge), 413, "payload-too-large")
    assert snapshot(app, world.account) == before


def test_a_customer_request_suspension_is_refused_listing_the_unpaid_invoices(app, api, world, make):
    make.invoice(world.account, amount_cents=1250, due_date=today() + timedelta(days=3))
    number = number_of(app, world.account)
    before = snapshot(app, world.account)
    body = problem(api.post(f"/api/v1/accounts/{number}/suspend",
                            {"reason_category": "customer_request", "reason_note": "They asked."}),
                   409, "unpaid-invoices")
    assert body["invoices"] == [{"seq": 1, "owed_cents": 1250,
                                 "due_date": (today() + timedelta(days=3)).isoformat()}]
    assert snapshot(app, world.account) == before


def test_shift_moves_the_approaching_limitation(app, api, world, make):
    account_id = overdue(app, world, make, 10)
    number = number_of(app, account_id)
    later = today() + timedelta(days=7)  # the class limits in 5 days and suspends in 10
    before = snapshot(app, account_id)
    refused = problem(api.post(f"/api/v1/accounts/{number}/shift", dict(REASON, limitation_date=later.isoformat())),
                      422, "validation")  # a suspension's reason
    assert "promise to pay" in refused["errors"]["reason_category"]
    assert snapshot(app, account_id) == before
    body = api.post(f"/api/v1/accounts/{number}/shift", dict(OVERRIDE, limitation_date=later.isoformat())).get_json()
    assert body["pending_action"] == "limitation" and body["pending_date"] == later.isoformat()
    before = snapshot(app, account_id)
    problem(api.post(f"/api/v1/accounts/{number}/shift", OVERRIDE), 422, "validation")
    problem(api.post(f"/api/v1/accounts/{number}/shift", dict(OVERRIDE, limitation_date="9999-01-01")),
            422, "validation")
    assert snapshot(app, account_id) == before


def test_lift_gives_full_service_until_a_date(app, api, world, make):
    account_id = overdue(app, world, make, 21)  # suspended by the schedule
    number = number_of(app, account_id)
    assert api.get(f"/api/v1/accounts/{number}").get_json()["status"] == "suspended"
    until = today() + timedelta(days=3)
    body = api.post(f"/api/v1/accounts/{number}/lift", dict(OVERRIDE, until=until.isoformat())).get_json()
    assert body["status"] == "active" and body["label"] == "Suspension delayed"
    other = number_of(app, world.other_account)
    problem(api.post(f"/api/v1/accounts/{other}/lift", dict(OVERRIDE, until=until.isoformat())),
            409, "invalid-transition")


def test_exemption_is_set_and_cleared_with_a_reason(app, api, world):
    number = number_of(app, world.account)
    body = api.post(f"/api/v1/accounts/{number}/exemption", {"exempt": True, "reason": "Key partner"}).get_json()
    assert body["exempt"] is True and body["exempt_reason"] == "Key partner"
    problem(api.post(f"/api/v1/accounts/{number}/exemption", {"exempt": True, "reason": "again"}),
            409, "invalid-transition")
    assert "reason" in problem(api.post(f"/api/v1/accounts/{number}/exemption", {"exempt": False, "reason": " "}),
                               422, "validation")["errors"]
    assert api.post(f"/api/v1/accounts/{number}/exemption",
                    {"exempt": False, "reason": "Partnership ended"}).get_json()["exempt"] is False


def test_cancel_writes_off_the_named_invoices_or_is_refused_listing_them(app, api, world, make):
    make.invoice(world.account, amount_cents=2000, seq=1)
    make.invoice(world.account, amount_cents=3000, seq=2)
    number = number_of(app, world.account)
    cancel = {"reason_category": "customer_request", "reason_note": "Moving away.", "confirm_number": number}
    before = snapshot(app, world.account)
    body = problem(api.post(f"/api/v1/accounts/{number}/cancel", dict(cancel, write_off=[1],
                                                                     write_off_note="Goodwill")),
                   409, "unpaid-invoices")
    assert [i["seq"] for i in body["invoices"]] == [2]
    assert "confirm_number" in problem(api.post(f"/api/v1/accounts/{number}/cancel",
                                                dict(cancel, confirm_number="nope")), 422, "validation")["errors"]
    assert snapshot(app, world.account) == before
    done = api.post(f"/api/v1/accounts/{number}/cancel", dict(cancel, write_off=[1, 2], write_off_note="Goodwill"))
    assert done.status_code == 200
    assert done.get_json()["written_off"] == [1, 2] and done.get_json()["account"]["status"] == "cancelled"
    problem(api.post(f"/api/v1/accounts/{number}/suspend", REASON), 409, "invalid-transition")


def test_a_token_made_by_someone_now_support_may_read_but_not_change(app, client, world):
    api = Api(client, make_token(app, world.admin2.id))
    with app.app_context():
        db.session.get(User, world.admin2.id).role = "support"
        db.session.commit()
    number = number_of(app, world.account)
    assert api.get(f"/api/v1/accounts/{number}").status_code == 200
    problem(api.post(f"/api/v1/accounts/{number}/suspend", REASON), 403, "not-allowed")
