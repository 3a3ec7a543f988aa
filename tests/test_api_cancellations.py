"""The cancellation log through the API on both databases: log a request with the log page's fields, read it
newest first with the page's filters and cursor, record retention and an outcome, and the CSV."""
import csv
import io
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from portal.extensions import db
from portal.models import Account, AuditEvent, CancellationRequest, RetentionAttempt
from portal.timeutil import utcnow
from tests.api_support import Api, make_token, number_of, problem


@pytest.fixture
def api(app, client, world):
    return Api(client, make_token(app, world.admin.id))


def request_body(number, **extra):
    body = {"account_number": number, "channel": "call", "contact_name": "Rita Owner", "phone": "(201) 555-0123",
            "collected_cents": 120000, "months": 14, "reason_code": "too_expensive", "reason": "Prices went up"}
    body.update(extra)
    return body


def test_logging_a_request_takes_the_log_pages_fields(app, api, world):
    number = number_of(app, world.account)
    created = api.post("/api/v1/cancellation-requests", request_body(number))
    assert created.status_code == 201
    body = created.get_json()
    assert body == dict(body, account_number=number, phone="+12015550123", collected_cents=120000, months=14,
                        outcome="open", request_date=utcnow().date().isoformat(), attempts=[])
    assert body["logged_by"] == world.admin.email
    with app.app_context():
        event = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "cancellation_requested")).one()
        assert event.actor_label.startswith("API token ‘integration’")


def test_the_account_figures_are_filled_when_left_out(app, api, world):
    number = number_of(app, world.account)
    body = api.post("/api/v1/cancellation-requests", {"account_number": number, "channel": "email",
                                                      "contact_name": "Rita", "reason_code": "not_using"}).get_json()
    assert body["collected_cents"] == 0 and body["months"] > 0 and body["phone"] is None


def test_bad_fields_are_refused_by_name_and_nothing_is_logged(app, api, world):
    number = number_of(app, world.account)
    tomorrow = (utcnow().date() + timedelta(days=1)).isoformat()
    body = problem(api.post("/api/v1/cancellation-requests",
                            request_body(number, channel="fax", phone="12", request_date=tomorrow,
                                         reason_code="other", reason="")), 422, "validation")
    assert set(body["errors"]) == {"channel", "phone", "request_date", "reason"}
    body = problem(api.post("/api/v1/cancellation-requests", request_body("T9999999")), 422, "validation")
    assert "account_number" in body["errors"]
    problem(api.post("/api/v1/cancellation-requests", request_body(number, collected_cents=-1)), 422, "validation")
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(CancellationRequest)) == 0


def test_the_log_is_newest_first_filtered_and_paged(app, api, world):
    number, other = number_of(app, world.account), number_of(app, world.other_account)
    today = utcnow().date()
    for days, who, channel in ((3, number, "call"), (1, other, "text"), (2, number, "email")):
        api.post("/api/v1/cancellation-requests",
                 request_body(who, channel=channel, request_date=(today - timedelta(days=days)).isoformat()))
    items = api.get("/api/v1/cancellation-requests").get_json()["items"]
    assert [i["request_date"] for i in items] == [(today - timedelta(days=d)).isoformat() for d in (1, 2, 3)]
    assert [i["channel"] for i in api.get("/api/v1/cancellation-requests?channel=email").get_json()["items"]] \
        == ["email"]
    assert {i["account_number"] for i in api.get(f"/api/v1/cancellation-requests?q={other}").get_json()["items"]} \
        == {other}
    problem(api.get("/api/v1/cancellation-requests?channel=fax"), 422, "validation")
    problem(api.get("/api/v1/cancellation-requests?after=yesterday"), 422, "validation")


def test_a_retention_attempt_and_its_outcome(app, api, world):
    number = number_of(app, world.account)
    created = api.post("/api/v1/cancellation-requests", request_body(number)).get_json()
    url = f"/api/v1/cancellation-requests/{created['id']}/retention-attempts"
    attempt = api.post(url, {"offer": "discount", "answer": "undecided", "note": "Will think about it"})
    assert attempt.status_code == 201 and attempt.get_json()["outcome"] == "open"
    done = api.post(url, {"offer": "downgrade", "answer": "accepted", "outcome": "retained"}).get_json()
    assert done["outcome"] == "retained" and [a["offer"] for a in done["attempts"]] == ["discount", "downgrade"]
    problem(api.post(url, {"offer": "none", "answer": "declined"}), 409, "invalid-transition")
    problem(api.post("/api/v1/cancellation-requests/999999/retention-attempts",
                     {"offer": "none", "answer": "declined"}), 404, "not-found")
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(RetentionAttempt)) == 2


def test_a_pause_is_refused_while_invoices_are_unpaid(app, api, world, make):
    make.invoice(world.account, amount_cents=900)
    number = number_of(app, world.account)
    created = api.post("/api/v1/cancellation-requests", request_body(number)).get_json()
    until = (utcnow().date() + timedelta(days=30)).isoformat()
    body = problem(api.post(f"/api/v1/cancellation-requests/{created['id']}/retention-attempts",
                            {"offer": "pause", "answer": "accepted", "outcome": "paused", "pause_until": until}),
                   409, "unpaid-invoices")
    assert body["invoices"][0]["owed_cents"] == 900
    with app.app_context():
        assert db.session.get(Account, world.account).status == "active"
        assert db.session.scalar(select(func.count()).select_from(RetentionAttempt)) == 0


def test_the_csv_holds_the_spreadsheets_columns(app, api, world):
    number = number_of(app, world.account)
    api.post("/api/v1/cancellation-requests", request_body(number, contact_name="=cmd()"))
    response = api.get("/api/v1/cancellation-requests/export.csv")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    rows = list(csv.reader(io.StringIO(response.get_data(as_text=True))))
    assert rows[0][:6] == ["Name", "Phone", "Date of cancellation", "Total amount collected", "Months in program",
                           "Reason"]
    assert rows[1][0] == "'=cmd()" and rows[1][3] == "$1,200.00" and rows[1][6] == number


def test_logging_needs_the_cancellations_scope_and_retention_a_super_admin(app, client, world):
    reader = Api(client, make_token(app, world.admin.id, scopes=["accounts:read"]))
    number = number_of(app, world.account)
    body = problem(reader.post("/api/v1/cancellation-requests", request_body(number)), 403, "forbidden")
    assert body["required_scope"] == "cancellations:write"
    assert reader.get("/api/v1/cancellation-requests").status_code == 200
