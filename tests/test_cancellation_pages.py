"""Cancellation pages through HTTP, with and without htmx: logging, the log and its CSV, retention, the cancel
dialog (write off and cancel in one post), the import and the overview. Each refusal changes nothing."""
import csv
import html
import io
from datetime import date, timedelta

import pytest
from openpyxl import Workbook
from sqlalchemy import func, select

from portal.extensions import db
from portal.models import Account, AuditEvent, CancellationRequest, Invoice, RetentionAttempt
from portal.timeutil import utcnow

HX = {"HX-Request": "true"}
FORM = {"channel": "call", "contact_name": "Dana Diaz", "phone": "201 555 0123", "request_date": "2026-11-28",
        "collected": "1200", "months": "10", "reason_code": "too_expensive", "reason": "Budget cut."}


@pytest.fixture
def app_config():
    return {"LOGIN_RATE_LIMIT": "1000 per minute"}


def state(app, account_id):
    with app.app_context():
        account = db.session.get(Account, account_id)
        count = lambda model: db.session.scalar(select(func.count()).select_from(model))  # noqa: E731
        written_off = db.session.scalar(select(func.count()).select_from(Invoice)
                                        .where(Invoice.written_off_at.is_not(None)))
        result = (account.status, account.version, account.balance_cents, count(CancellationRequest),
                  count(RetentionAttempt), count(AuditEvent), written_off)
        db.session.remove()
        return result


def number_of(app, account_id):
    with app.app_context():
        number = db.session.get(Account, account_id).number
        db.session.remove()
        return number


def log_one(auth, world, **extra):
    response = auth.post("/cancellations", dict(FORM, account_id=world.account, **extra))
    assert response.status_code == 303, response.get_data(as_text=True)
    return int(response.headers["Location"].rsplit("/", 1)[1])


def test_support_finds_the_account_and_logs_a_request(app, client, auth, world, make):
    auth.login(world.support.email)
    number = number_of(app, world.account)
    found = client.get("/cancellations/new?q=blue+harbor", headers=HX)
    assert found.status_code == 200 and number in found.get_data(as_text=True)
    assert "<html" not in found.get_data(as_text=True)  # the results fragment only
    page = client.get(f"/cancellations/new?account_id={world.account}").get_data(as_text=True)
    assert "Blue Harbor Bistro" in page and 'name="months"' in page
    request_id = log_one(auth, world)
    detail = client.get(f"/cancellations/{request_id}").get_data(as_text=True)
    assert "Dana Diaz" in detail and "(201) 555-0123" in detail and "Record an attempt" not in detail
    listing = client.get("/accounts?q=blue").get_data(as_text=True)
    assert 'data-testid="open-request"' in listing
    account_page = client.get(f"/accounts/{world.account}").get_data(as_text=True)
    assert f"#{request_id}" in account_page and "Cancel account…" not in account_page


@pytest.mark.parametrize("field, value, message", [
    ("account_id", "", "Find the account first"),
    ("contact_name", "", "Enter the contact"),
    ("request_date", (date.today() + timedelta(days=2)).isoformat(), "future"),
    ("collected", "-1", "negative"), ("collected", "abc", "amount collected"),
    ("months", "-2", "negative"), ("months", "1.5", "whole number"),
    ("phone", "123", "phone number"),
])
def test_bad_request_input_is_refused_at_the_field(app, client, auth, world, field, value, message):
    auth.login(world.support.email)
    before = state(app, world.account)
    for htmx in (False, True):
        response = auth.post("/cancellations", {**FORM, "account_id": world.account, field: value}, htmx=htmx)
        assert response.status_code == 422
        body = response.get_data(as_text=True)
        assert message in body
        assert 'aria-invalid="true"' in body or field == "account_id"
        assert ("<html" in body) != htmx
    assert state(app, world.account) == before


def test_the_log_filters_pages_and_exports(app, client, auth, world):
    auth.login(world.support.email)
    for day in ("2026-11-01", "2026-11-03", "2026-11-02"):
        log_one(auth, world, request_date=day)
    log_one(auth, world, request_date="2026-10-01", channel="email", reason_code="competitor")
    page = client.get("/cancellations").get_data(as_text=True)
    dates = [d for d in ("2026-11-03", "2026-11-02", "2026-11-01", "2026-10-01") if d in page]
    assert [page.index(d) for d in dates] == sorted(page.index(d) for d in dates) and len(dates) == 4
    only = client.get("/cancellations?channel=email", headers=HX).get_data(as_text=True)
    assert "2026-10-01" in only and "2026-11-01" not in only and "<html" not in only
    ranged = client.get("/cancellations?date_from=2026-11-02&date_to=2026-11-02").get_data(as_text=True)
    assert "2026-11-02" in ranged and "2026-11-03" not in ranged
    with app.app_context():
        from portal.domain.cancellations import log
        rows, after = log.log_page(log.parse_log_filters({}), 2)
        assert [r.request_date.isoformat() for r, _a in rows] == ["2026-11-03", "2026-11-02"]
        args = log.parse_log_filters({}).args(after)
    second = client.get("/cancellations", query_string=args).get_data(as_text=True)
    assert "2026-11-01" in second and "2026-11-03" not in second
    bad = client.get("/cancellations?outcome=nope&after=garbage")
    assert bad.status_code == 200 and "Choose one of the listed values" in bad.get_data(as_text=True)
    exported = client.get("/cancellations/export.csv?reason_code=competitor")
    rows = list(csv.reader(io.StringIO(exported.get_data(as_text=True))))
    assert rows[0] == ["Name", "Phone", "Date of cancellation", "Total amount collected", "Months in program",
                       "Reason", "Account number", "Channel", "Outcome", "Retention notes", "Logged by",
                       "Logged at", "Decided by", "Decided at"]
    assert len(rows) == 2 and rows[1][2] == "2026-10-01" and rows[1][7] == "Email"


def test_support_is_refused_every_decision(app, client, auth, world, make):
    make.invoice(world.account, amount_cents=4000)
    auth.login(world.support.email)
    request_id = log_one(auth, world)
    before = state(app, world.account)
    number = number_of(app, world.account)
    for path, data in ((f"/cancellations/{request_id}/attempts", {"offer": "discount", "answer": "declined"}),
                       (f"/accounts/{world.account}/cancel", {"reason_category": "customer_request",
                                                              "reason_note": "x", "confirm_number": number,
                                                              "write_off": "1", "write_off_note": "y"}),
                       (f"/accounts/{world.account}/payments", {"amount": "40"})):
        assert auth.post(path, data).status_code == 403
        assert auth.post(path, data, htmx=True).status_code == 403
    assert client.get(f"/accounts/{world.account}/cancel").status_code == 403
    assert state(app, world.account) == before


def test_admin_records_a_failed_attempt_then_writes_off_and_cancels_in_one_post(app, client, auth, world, make):
    make.invoice(world.account, amount_cents=7000, due_date=date(2026, 9, 1))
    make.invoice(world.account, amount_cents=5000, due_date=date(2026, 10, 1))
    auth.login(world.admin.email)
    request_id = log_one(auth, world)
    bad = auth.post(f"/cancellations/{request_id}/attempts", {"offer": "gift", "answer": "declined"}, htmx=True)
    assert bad.status_code == 422 and "Choose the offer made" in bad.get_data(as_text=True)
    done = auth.post(f"/cancellations/{request_id}/attempts", {"offer": "discount", "answer": "declined",
                                                              "note": "Wants 50%.", "outcome": "open"}, htmx=True)
    assert done.status_code == 204 and done.headers["HX-Redirect"].endswith(f"/cancellations/{request_id}")
    number = number_of(app, world.account)
    dialog = client.get(f"/accounts/{world.account}/cancel", headers=HX).get_data(as_text=True)
    assert "Write off 2 invoices, $120.00, and cancel" in dialog and "data-autoopen" in dialog
    form = {"reason_category": "customer_request", "reason_note": "Leaving.", "confirm_number": number}
    before = state(app, world.account)
    refused = auth.post(f"/accounts/{world.account}/cancel", form, htmx=True)
    assert refused.status_code == 409
    assert "#1: $70.00 due 2026-09-01; #2: $50.00 due 2026-10-01" in refused.get_data(as_text=True)
    wrong = auth.post(f"/accounts/{world.account}/cancel", dict(form, confirm_number="T9", write_off=["1", "2"],
                                                                write_off_note="Goodwill."))
    assert wrong.status_code == 422 and f"Type the account number, {number}" in wrong.get_data(as_text=True)
    no_reason = auth.post(f"/accounts/{world.account}/cancel", dict(form, write_off=["1", "2"]))
    assert no_reason.status_code == 422 and "Say why the invoice is written off" in no_reason.get_data(as_text=True)
    assert state(app, world.account) == before
    response = auth.post(f"/accounts/{world.account}/cancel", dict(form, write_off=["1", "2"],
                                                                   write_off_note="Goodwill on leaving."))
    assert response.status_code == 303
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "2 invoices written off; account" in page and "is cancelled" in page
    assert state(app, world.account)[0] == "cancelled"
    again = auth.post(f"/accounts/{world.account}/cancel", dict(form))
    assert again.status_code == 409 and "already cancelled" in again.get_data(as_text=True)
    rows = list(csv.reader(io.StringIO(client.get("/cancellations/export.csv").get_data(as_text=True))))
    assert rows[1][8] == "Cancelled" and "Discount, Declined: Wants 50%." in rows[1][9]
    assert rows[1][10] == world.admin.email and rows[1][12] == world.admin.email


def _xlsx(rows):
    book = Workbook()
    for row in rows:
        book.active.append(row)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def test_import_previews_then_imports_once(app, client, auth, world, make):
    number = number_of(app, world.account)
    auth.login(world.support.email)
    data = _xlsx([["Reason for cancellation", "Months in Program", "date of cancellation", "NAME", "Phone",
                   "Total Amount Collected", "Account Number"],
                  ["Too expensive", 6, utcnow().replace(year=2025), "Dana Diaz", "201-555-0123", 300.5, number],
                  ["Moving", 3, "2025-13-01", "Bob", "", 10, number],
                  ["Other", 2, "2025-01-01", "Eve", "", -5, number],
                  ["Other", 2, "2025-01-01", "Zed", "", 5, "NOPE"]])
    preview = client.post("/cancellations/import/preview", data={
        "csrf_token": auth.csrf_token("/cancellations/import"), "file": (io.BytesIO(data), "old sheet.xlsx")},
        content_type="multipart/form-data")
    body = preview.get_data(as_text=True)
    assert preview.status_code == 200, body
    assert "1 request will be created" in body and "3 rows can" in body
    assert "bad date" in body and "bad amount" in body and "unknown account" in body
    assert state(app, world.account)[3] == 0  # a preview writes nothing
    token = body.split('name="token" value="')[1].split('"')[0]
    imported = auth.post("/cancellations/import", {"token": token, "extension": ".xlsx"},
                         page="/cancellations/import")
    assert imported.status_code == 303
    assert state(app, world.account)[3] == 1
    again = client.post("/cancellations/import/preview", data={
        "csrf_token": auth.csrf_token("/cancellations/import"), "file": (io.BytesIO(data), "old sheet.xlsx")},
        content_type="multipart/form-data").get_data(as_text=True)
    assert "0 requests will be created; 1 already imported" in " ".join(again.split())
    replay = auth.post("/cancellations/import", {"token": token, "extension": ".xlsx"}, page="/cancellations/import")
    assert replay.status_code == 422 and state(app, world.account)[3] == 1


@pytest.mark.parametrize("filename, data, message", [
    ("sheet.xlsx", b"", "The file is empty."),
    ("sheet.csv", b"\n\n", "The file is empty."),
    ("sheet.pdf", b"%PDF-1.4", "Upload the sheet as .xlsx or .csv."),
    ("sheet.xlsx", b"PK\x03\x04 not really a zip", "not a spreadsheet"),
    ("sheet.csv", b"\x00\x01\x02\xff\xfe", "not a spreadsheet"),
    ("sheet.csv", b"foo,bar,baz\n1,2,3\n", "No recognisable header"),
    ("sheet.csv", b"x" * (5 * 1024 * 1024 + 10), "over 5 MB"),
])
def test_bad_uploads_are_refused(app, client, auth, world, filename, data, message):
    auth.login(world.support.email)
    before = state(app, world.account)
    response = client.post("/cancellations/import/preview", data={
        "csrf_token": auth.csrf_token("/cancellations/import"), "file": (io.BytesIO(data), filename)},
        content_type="multipart/form-data")
    assert response.status_code == 422
    assert message in response.get_data(as_text=True)
    assert state(app, world.account) == before


def test_overview_counts_weeks_save_rate_reasons_and_revenue(app, client, auth, world):
    auth.login(world.admin.email)
    today = date.today()
    monday = today - timedelta(days=today.weekday())
    kept = log_one(auth, world, request_date=monday.isoformat(), collected="1200", months="12")
    lost = log_one(auth, world, request_date=monday.isoformat(), reason_code="competitor")
    log_one(auth, world, request_date=(monday - timedelta(days=7)).isoformat())
    auth.post(f"/cancellations/{kept}/attempts", {"offer": "discount", "answer": "accepted", "outcome": "retained"})
    with app.app_context():
        db.session.get(CancellationRequest, lost).outcome = "cancelled"
        db.session.commit()
        db.session.remove()
    page = client.get(f"/cancellations/overview?date_from={(monday - timedelta(days=7)).isoformat()}"
                      f"&date_to={today.isoformat()}").get_data(as_text=True)
    assert 'data-testid="save-rate">50.0%' in page and 'data-testid="revenue-kept">$100.00' in page
    assert 'role="img"' in page and "Moving to a competitor: 1" in page
    rows = list(csv.reader(io.StringIO(client.get(
        f"/cancellations/overview.csv?date_from={(monday - timedelta(days=7)).isoformat()}"
        f"&date_to={today.isoformat()}").get_data(as_text=True))))
    assert rows[0][0] == "Week of" and rows[-1] == ["Total", "3", "1", "0", "1", "0", "1", "50.0%", "$100.00"]
    assert rows[2][:2] == [monday.isoformat(), "2"]
    bad = client.get("/cancellations/overview?date_from=2026-02-30")
    assert bad.status_code == 422


def test_a_suspension_at_the_customers_request_is_refused_in_the_dialog_while_invoices_are_unpaid(
        app, client, auth, world, make):
    make.invoice(world.account, amount_cents=4000, due_date=date(2026, 10, 1))
    auth.login(world.admin.email)
    before = state(app, world.account)
    response = auth.post(f"/accounts/{world.account}/suspend", {
        "reason_category": "customer_request", "reason_note": "Asked for a break.", "confirm": "1",
        "version": str(before[1])}, htmx=True)
    assert response.status_code == 409
    body = html.unescape(response.get_data(as_text=True))
    assert "can't be suspended at the customer's request" in body and "#1: $40.00 due 2026-10-01" in body
    assert 'id="status-form"' in body
    assert state(app, world.account) == before


def test_an_overview_of_a_period_without_requests_says_so_instead_of_empty_charts(client, auth, world):
    auth.login(world.admin.email)
    html = client.get("/cancellations/overview").get_data(as_text=True)
    assert 'data-testid="overview-empty"' in html and "chart-requests" not in html
    assert 'data-testid="overview-table"' in html  # the figures (all zero) stay as a table, and in the CSV
