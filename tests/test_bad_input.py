"""The nine kinds of input the probe found answering 500, each now a clear 4xx (or a visible, ignored value) that
changes nothing: over HTTP as staff, and through the `flask` commands that take the same values."""
import csv
import io
import logging

import click
import pytest
from sqlalchemy import delete, func, select

from portal.cli import common as cli_common
from portal.domain import account_search as search
from portal.domain import sweeps
from portal.domain.billing import ledger
from portal.domain.dunning import classes
from portal.domain.errors import ValidationFailed
from portal.extensions import db
from portal.models import Account, AuditEvent, SuspensionRule, SweepRun, SweepSchedule, User

HX = {"HX-Request": "true"}
LAST_CODE_POINT = "\U0010ffff"
BEFORE_SURROGATES = "\ud7ff"  # the next code point is the first surrogate, U+D800
HUGE_IDS = ("9223372036854775808", "2147483648", "99999999999999999999999")  # 2^63, 2^31 (PostgreSQL's integer)


@pytest.fixture
def app_config():
    return {"LOGIN_RATE_LIMIT": "1000 per minute"}


@pytest.fixture
def site(app, world, make):
    """The world, a few Blue Shops, the default rules and a schedule."""
    for i in range(5):
        make.account(name=f"Blue Shop {i}")
    with app.app_context():
        db.session.execute(delete(SuspensionRule))
        for rule in sweeps.DEFAULT_RULES:
            db.session.add(SuspensionRule(enabled=True, **rule))
        db.session.commit()
    return world


def counts(app):
    """Rows of the tables a bad request could change."""
    with app.app_context():
        result = {model.__name__: db.session.scalar(select(func.count()).select_from(model))
                  for model in (Account, AuditEvent, SuspensionRule, SweepRun, SweepSchedule)}
        result["suspended"] = db.session.scalar(select(func.count()).select_from(Account)
                                                .where(Account.status != "active"))
        db.session.remove()
        return result


def html(response):
    return response.get_data(as_text=True)


# ---------------------------------------------------------------- 1, 2: text the database cannot take

@pytest.mark.parametrize("q", [LAST_CODE_POINT, "blue" + LAST_CODE_POINT, BEFORE_SURROGATES,
                               "blue" + BEFORE_SURROGATES, "\ufdd0", "blue\ufffe"])
@pytest.mark.parametrize("path", ["/accounts", "/accounts/counts"])
def test_a_search_with_a_character_that_cannot_be_searched_is_explained(app, site, auth, client, q, path):
    auth.login(site.support.email)
    response = client.get(path, query_string={"q": q}, headers=HX)
    refused = path == "/accounts" and q not in (BEFORE_SURROGATES, "blue" + BEFORE_SURROGATES)
    assert response.status_code == (422 if refused else 200), response.status_code  # 422: the field is marked
    if refused:
        assert 'data-testid="filter-problems"' in html(response) and "t be used (U+" in html(response)


@pytest.mark.parametrize("q", ["blue\ud800", "\udcff", LAST_CODE_POINT])
def test_a_stored_or_typed_search_with_a_surrogate_is_refused_at_the_field(ctx, q):
    f = search.parse_filters({"q": q})
    assert f.q == "" and "can't be used" in f.problems["q"]
    assert search.list_page(f).rows is not None and search.count_by_status(f) is not None


def test_a_command_given_bytes_that_are_not_text_says_so(app, runner, site):
    before = counts(app)
    for text in ("\udcff", "T" + LAST_CODE_POINT):  # how Python hands invalid UTF-8 in argv to the command
        result = runner.invoke(args=["account", "suspend", text, "--reason", "other", "--note", "n",
                                     "--as", site.admin.email])
        assert result.exit_code == 1 and "can't be used" in result.output, result.output
        assert result.exception is None or isinstance(result.exception, SystemExit)
    result = runner.invoke(args=["account", "suspend", str(site.account), "--reason", "other",
                                 "--note", "n\udcff", "--as", site.admin.email])
    assert result.exit_code == 1 and "can't be used" in result.output, result.output
    assert counts(app) == before


# ---------------------------------------------------------------- 3-6: digits that are not ASCII digits

@pytest.mark.parametrize("name", ["class", "per_page"])
@pytest.mark.parametrize("value", ["²", "٣", "１"])
def test_unicode_digits_in_the_list_are_ignored_visibly(site, auth, client, name, value):
    auth.login(site.support.email)
    response = client.get("/accounts", query_string={name: value})
    assert response.status_code == 200
    assert 'data-testid="filter-problems"' in html(response)


@pytest.mark.parametrize("ids", [["²"], ["1", "²"], ["٣"]])
def test_unicode_digits_as_ticked_ids_are_refused(app, site, auth, ids):
    auth.login(site.admin.email)
    before = counts(app)
    for path in ("/accounts/bulk/confirm", "/accounts/bulk"):
        response = auth.post(path, {"action": "suspend", "scope": "selected", "ids": ids,
                                    "reason_category": "other", "reason_note": "n"})
        assert response.status_code == 422 and 'data-testid="bulk-problem"' in html(response)
    assert counts(app) == before


@pytest.mark.parametrize("day", ["²", "٣", "3²"])
def test_unicode_digits_as_the_day_of_the_month_are_refused_at_the_field(app, site, auth, day):
    auth.login(site.admin.email)
    before = counts(app)
    response = auth.post("/sweeps/schedule", {"mode": "monthly", "day_of_month": day, "time_of_day": "03:00",
                                              "enabled": "1"})
    assert response.status_code == 422 and "day of the month from 1 to 31" in html(response)
    assert counts(app) == before


def test_unicode_digits_in_a_rule_and_a_version_are_refused(app, site, auth):
    auth.login(site.admin.email)
    before = counts(app)
    response = auth.post("/rules", {"name": "Odd", "inactivity_months": "١٢"})
    assert response.status_code == 422 and "whole number" in html(response)
    response = auth.post(f"/accounts/{site.account}/suspend", {"reason_category": "other", "reason_note": "n",
                                                                "confirm": "1", "version": "²"})
    assert response.status_code == 409 and "out of date" in html(response)
    assert counts(app) == before


# ---------------------------------------------------------------- 7: money beyond the decimal context

@pytest.mark.parametrize("amount", ["1e1000000", "-1e1000000", "1e-1000000", "9" * 5000])
def test_a_huge_amount_is_refused_at_the_field(app, site, auth, client, amount):
    auth.login(site.admin.email)
    before = counts(app)
    response = auth.post("/rules", {"name": "Huge", "min_balance": amount})
    assert response.status_code == 422 and 'id="min_balance-error"' in html(response)
    for name in ("balance_min", "balance_max"):
        response = client.get("/accounts", query_string={name: amount})
        assert response.status_code == 200 and 'data-testid="filter-problems"' in html(response)
    response = auth.post("/accounts/bulk/confirm", {"action": "suspend", "scope": "filter", "balance_min": amount})
    assert response.status_code == 422
    assert counts(app) == before


# ---------------------------------------------------------------- 8: ids and cursors beyond the integer columns

@pytest.mark.parametrize("huge", HUGE_IDS)
def test_an_id_beyond_the_columns_range_is_not_found(app, site, auth, client, huge):
    auth.login(site.admin.email)
    before = counts(app)
    for path in (f"/accounts/{huge}", f"/accounts/{huge}/row", f"/accounts/{huge}/status-dialog",
                 f"/accounts/{huge}/timeline", f"/accounts/bulk/runs/{huge}", f"/sweeps/runs/{huge}",
                 f"/sweeps/runs/{huge}/progress", f"/rules/{huge}/edit"):
        assert client.get(path).status_code == 404, path
    for path in (f"/accounts/{huge}/suspend", f"/accounts/{huge}/exempt", f"/sweeps/runs/{huge}/undo",
                 f"/sweeps/runs/{huge}/resume", f"/rules/{huge}", f"/rules/{huge}/delete"):
        assert auth.post(path, {"reason_category": "other", "reason_note": "n", "name": "x"}).status_code == 404, path
    response = auth.post("/accounts/bulk/confirm", {"action": "suspend", "scope": "selected", "ids": [huge]})
    assert response.status_code == 422
    assert counts(app) == before


@pytest.mark.parametrize("before", [*HUGE_IDS, "-1", "²", "abc"])
def test_a_run_history_cursor_beyond_range_or_not_a_number_is_refused(site, auth, client, before):
    auth.login(site.admin.email)
    for headers in ({}, HX):
        response = client.get("/sweeps", query_string={"before": before}, headers=headers)
        assert response.status_code == 400 and "page link" in html(response)


@pytest.mark.parametrize("command", [["sweep", "status"], ["sweep", "resume", "--no-wait"],
                                     ["sweep", "undo", "--reason", "other", "--note", "n", "--no-wait"]])
@pytest.mark.parametrize("run_id", [HUGE_IDS[0], "²"])
def test_a_command_given_a_run_id_beyond_range_says_it_is_not_found(app, runner, site, command, run_id):
    result = runner.invoke(args=[*command[:2], run_id, *command[2:]])
    assert result.exit_code == 1 and "Run not found" in result.output, result.output


@pytest.mark.parametrize("value", [HUGE_IDS[0], "²"])
def test_a_command_given_an_account_id_beyond_range_says_it_is_not_found(app, runner, site, value):
    result = runner.invoke(args=["account", "suspend", value, "--reason", "other", "--note", "n",
                                 "--as", site.admin.email])
    assert result.exit_code == 1 and "No account with number or id" in result.output, result.output


@pytest.mark.parametrize("as_of", ["2026-11-31", "١٢", "99999-01-01", "2026-01-01T25:00"])
def test_a_command_given_a_bad_date_says_how_to_write_it(runner, site, as_of):
    result = runner.invoke(args=["sweep", "preview", "--as-of", as_of])
    assert result.exit_code == 2 and "YYYY-MM-DD" in result.output, result.output


def test_a_negative_sample_size_is_refused(runner, site):
    result = runner.invoke(args=["sweep", "preview", "--sample", "-1"])
    assert result.exit_code == 2 and "--sample" in result.output, result.output


# ---------------------------------------------------------------- 9: the CSV export's stream

def test_an_export_with_values_that_are_not_valid_is_refused_before_any_row(app, site, auth, client):
    auth.login(site.support.email)
    for query in ({"q": LAST_CODE_POINT}, {"class": "²"}, {"balance_min": "1e1000000"}, {"sort": "²"}):
        response = client.get("/accounts/export.csv", query_string=query)
        assert response.status_code == 422, query
        assert response.mimetype == "text/html" and "nothing was exported" in html(response).lower()
    response = client.get("/accounts/export.csv", query_string={"q": "blue" + BEFORE_SURROGATES})
    assert response.status_code == 200 and list(csv.reader(io.StringIO(html(response)))) == [
        list(search.EXPORT_HEADER)]  # a valid search that matches nothing


def test_an_export_that_fails_midway_ends_with_a_clear_last_line_and_is_logged(app, site, auth, client, monkeypatch,
                                                                              caplog):
    from portal.domain.account_search import export

    monkeypatch.setattr(search, "EXPORT_CHUNK", 2)
    real_fetch, calls = export.fetch, []

    def failing_fetch(stmt):
        calls.append(stmt)
        if len(calls) == 2:
            raise RuntimeError("the database went away")
        return real_fetch(stmt)

    monkeypatch.setattr(export, "fetch", failing_fetch)
    auth.login(site.support.email)
    with caplog.at_level(logging.ERROR):
        response = client.get("/accounts/export.csv")
        table = list(csv.reader(io.StringIO(html(response))))
    assert response.status_code == 200 and table[0] == list(search.EXPORT_HEADER)
    assert len(table) == 1 + 2 + 1  # the header, the first chunk's rows, then the notice
    assert table[-1][0].startswith("EXPORT INCOMPLETE") and "download it again" in table[-1][0]
    assert "export of accounts failed" in caplog.text and "the database went away" in caplog.text


def test_an_export_that_fails_before_its_first_row_is_an_error_page_not_a_download(app, site, auth, client,
                                                                                  monkeypatch):
    from portal.domain.account_search import export

    def failing_fetch(stmt):
        raise RuntimeError("the database went away")

    monkeypatch.setattr(export, "fetch", failing_fetch)
    auth.login(site.support.email)
    response = client.get("/accounts/export.csv")
    assert response.status_code == 500 and response.mimetype == "text/html"
    assert "Content-Disposition" not in response.headers



@pytest.mark.parametrize("call, field, message", [
    (lambda admin, account: ledger.add_invoice(admin, account, "10", "9999-12-31"), "due", "YYYY-MM-DD"),
    (lambda admin, account: ledger.add_invoice(admin, account, "1e1000000", "2026-09-30"), "amount",
     "amount in dollars"),
    (lambda admin, account: ledger.add_invoice(admin, account, "١٢", "2026-09-30"), "amount", "amount in dollars"),
    (lambda admin, account: ledger.record_payment(admin, account, "1", "²"), "invoice", "has no open invoice"),
    (lambda admin, account: classes.parse_class({"name": "Odd", "limit_after_days": "²"}), "limit_after_days",
     "whole number of days"),
])
def test_billing_and_dunning_read_their_input_the_same_way(ctx, site, make, call, field, message):
    make.invoice(site.account, amount_cents=5000)
    before = counts(ctx)
    with pytest.raises(ValidationFailed) as refused:
        call(db.session.get(User, site.admin.id), site.account)
    assert message in refused.value.field_errors[field]
    db.session.rollback()
    assert counts(ctx) == before


@pytest.mark.parametrize("text", ["9999-12-31", "0001-01-01", "²", "2026-02-30"])
def test_the_dunning_commands_days_are_iso_dates_in_range(text):
    with pytest.raises(click.BadParameter, match="use a date such as"):
        cli_common.parse_day(text)


# ---------------------------------------------------------------- a request body over the limit

@pytest.mark.parametrize("htmx", [False, True])
def test_a_request_body_over_the_limit_gets_413_and_changes_nothing(app, site, auth, client, htmx):
    """A suspension whose form is over MAX_CONTENT_LENGTH (PORTAL_MAX_REQUEST_BYTES) is refused before any view."""
    auth.login(site.admin.email)
    before = counts(app)
    limit = app.config["MAX_CONTENT_LENGTH"]
    assert limit == 6 * 1024 * 1024
    response = auth.post(f"/accounts/{site.account}/suspend", {
        "reason_category": "other", "reason_note": "x" * (limit + 1), "confirm": "1"}, htmx=htmx)
    assert response.status_code == 413
    body = html(response)
    assert "That request is larger than the portal accepts; nothing was changed." in body
    if htmx:
        assert "<html" not in body.lower() and 'data-status="413"' in body  # the message alone, for htmx
    else:
        assert "<html" in body.lower() and "Request too large" in body  # the portal's error page
    assert counts(app) == before
