"""CSV export of the list's current filter: the right rows, streamed in chunks, staff only."""
import csv
import io
from datetime import datetime

import pytest
from sqlalchemy import event

from portal.domain import account_search as search
from portal.extensions import db


@pytest.fixture
def accounts(app, world, make):
    ids = [make.account(name=f"Blue Shop {i:02d}", status="suspended" if i % 3 == 0 else "active",
                        balance_cents=i * 150, last_activity_at=datetime(2025, 3, i + 1)) for i in range(10)]
    ids.append(make.account(name="Zed, \"quoted\" & co"))
    return ids


def read_csv(response):
    return list(csv.reader(io.StringIO(response.get_data(as_text=True))))


def test_export_downloads_the_filtered_accounts_as_csv(world, accounts, auth, client):
    auth.login(world.support.email)
    response = client.get("/accounts/export.csv?q=blue&status=suspended")
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert response.headers["Content-Disposition"].startswith('attachment; filename="accounts-')
    assert '-q-blue-status-suspended.csv"' in response.headers["Content-Disposition"]
    table = read_csv(response)
    assert table[0] == list(search.EXPORT_HEADER)
    assert [row[1] for row in table[1:]] == ["Blue Shop 00", "Blue Shop 03", "Blue Shop 06", "Blue Shop 09"]
    column = {name: i for i, name in enumerate(table[0])}
    assert table[2][column["status"]] == "suspended" and table[2][column["balance"]] == "4.50"
    assert table[2][column["last_activity_at"]] == "2025-03-04T00:00:00+00:00"


def test_export_quotes_awkward_values(world, accounts, auth, client):
    auth.login(world.admin.email)
    table = read_csv(client.get("/accounts/export.csv?q=zed"))
    assert table[1][1] == 'Zed, "quoted" & co'


def test_export_of_everything_is_streamed_in_chunks_of_ids(app, world, accounts, auth, client, monkeypatch):
    """Rows are read EXPORT_CHUNK ids at a time while the response streams: memory stays flat."""
    monkeypatch.setattr(search, "EXPORT_CHUNK", 3)
    auth.login(world.support.email)
    statements = []
    with app.app_context():
        engine = db.engine

    def count(conn, cursor, statement, parameters, context, executemany):
        if "FROM accounts" in statement and "accounts.id >=" in statement:
            statements.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        response = client.get("/accounts/export.csv")
        assert response.is_streamed  # a generator body, not one string built in memory
        table = read_csv(response)
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert len(table) == 1 + 13  # header, the world's two accounts, and eleven more
    assert len(statements) >= 13 // 3  # one short query per chunk of ids
    assert [row[0] for row in table[1:]] == sorted(row[0] for row in table[1:])  # id order = number order here


def test_customers_cannot_export(world, auth, client):
    auth.login(world.manager.email)
    assert client.get("/accounts/export.csv").status_code == 403


def test_export_with_a_bad_filter_value_is_refused_with_the_reason(world, accounts, auth, client):
    """A download cannot show that a value was ignored, so it would hold other accounts than asked for."""
    auth.login(world.support.email)
    response = client.get("/accounts/export.csv?balance_min=lots&q=blue")
    assert response.status_code == 422 and response.mimetype == "text/html"
    assert "Nothing was exported: Enter an amount in dollars" in response.get_data(as_text=True)
    table = read_csv(client.get("/accounts/export.csv?q=blue&per_page=lots"))  # page size: not a filter
    assert len(table) == 1 + 11  # the ten Blue Shops and the Blue Harbor Bistro
