"""The account list's CSV says why, when and by which run each status last changed, and its file name says the
day and the filter; it stays a stream of id-range chunks that reads nothing but the accounts table."""
import csv
import io
from datetime import datetime

import pytest
from sqlalchemy import event

from portal.domain import account_search as search
from portal.extensions import db

CHANGED = datetime(2026, 11, 20, 9, 30)


@pytest.fixture
def shops(app, world, make):
    return {
        "manual": make.account(name="Bakery Manual", status="suspended", status_reason="non_payment",
                               status_note="=cmd|' /C calc'!A0", status_source="manual", status_changed_at=CHANGED),
        "swept": make.account(name="Bakery Swept", status="suspended", status_reason="inactivity",
                              status_source="sweep", status_changed_at=CHANGED, suspended_by_run_id=41),
        "active": make.account(name="Bakery Open"),
    }


def _table(response):
    return list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))


def test_the_export_has_status_reason_changed_at_and_run_columns(world, shops, auth, client):
    auth.login(world.support.email)
    rows = {r["name"]: r for r in _table(client.get("/accounts/export.csv?q=bakery"))}
    assert list(search.EXPORT_HEADER)[:9] == ["number", "name", "email", "status", "status_reason", "status_note",
                                              "status_changed_at", "status_source", "run"]
    manual, swept, active = rows["Bakery Manual"], rows["Bakery Swept"], rows["Bakery Open"]
    assert manual["status_reason"] == "Non-payment" and manual["status_source"] == "manual" and manual["run"] == ""
    assert manual["status_note"].startswith("'=")  # a note that looks like a formula stays text in a spreadsheet
    assert manual["status_changed_at"] == "2026-11-20T09:30:00+00:00"
    assert swept["status_reason"] == "Inactivity" and swept["status_source"] == "sweep" and swept["run"] == "41"
    assert active["status_reason"] == active["status_changed_at"] == active["run"] == ""
    assert active["created_at"] == "2024-01-01T00:00:00+00:00"


def test_the_same_columns_come_from_the_chunked_walk(world, shops, auth, client, monkeypatch):
    """Without a narrowing filter the export reads id ranges; the story columns are on the same rows."""
    monkeypatch.setattr(search, "EXPORT_CHUNK", 2)
    auth.login(world.admin.email)
    rows = {r["name"]: r for r in _table(client.get("/accounts/export.csv?status=suspended"))}
    assert rows["Bakery Swept"]["run"] == "41" and rows["Bakery Manual"]["status_source"] == "manual"


def test_the_file_name_says_the_day_and_the_filter_in_safe_characters(world, shops, auth, client):
    from portal.timeutil import utcnow

    auth.login(world.support.email)
    response = client.get("/accounts/export.csv", query_string={"status": "suspended", "q": 'Bäkery "; rm -rf /'})
    day = utcnow().date().isoformat()
    name = f"accounts-{day}-q-bakery-rm-rf-status-suspended.csv"
    assert response.headers["Content-Disposition"] == f"attachment; filename=\"{name}\"; filename*=UTF-8''{name}"
    plain = client.get("/accounts/export.csv").headers["Content-Disposition"]
    assert plain.startswith(f'attachment; filename="accounts-{day}.csv"')


def test_the_export_reads_only_the_accounts_table_one_query_per_chunk(app, world, shops, auth, client, monkeypatch):
    """The new columns live on accounts (no audit trail read per row or per chunk), so a 1M export stays a walk."""
    monkeypatch.setattr(search, "EXPORT_CHUNK", 2)
    auth.login(world.support.email)
    statements = []
    with app.app_context():
        engine = db.engine

    def seen(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", seen)
    try:
        response = client.get("/accounts/export.csv")
        assert response.is_streamed
        table = _table(response)
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    assert len(table) == 5
    assert not [s for s in statements if "audit_events" in s]
    chunks = [s for s in statements if "FROM accounts" in s and "accounts.id >=" in s]
    assert 5 // 2 <= len(chunks) <= 5  # one per chunk of ids (ids are not dense: the world's two come first)
