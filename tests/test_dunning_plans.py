"""A daily dunning run reads the accounts due a look, and their people, through indexes, not every row.

A day with few accounts due has one chunk whose id range spans nearly every account (the benchmark's
"next day" at 1M accounts), so a statement that walks the chunk's id range, or scans accounts or users,
costs as much as the whole database; so does listing the run's candidates when it starts. Every statement
the run's start and processing send that reads accounts or users is EXPLAINed on its own connection (the
chunk's temporary table lives there) just before it runs. It fails on SQLite's `SCAN accounts`, `SCAN
users` or a walk of the accounts' id range (`rowid>? AND rowid<?`), and on PostgreSQL's `Seq Scan on
accounts|users` (asked with enable_seqscan off, so a seq scan in the plan means no index can serve the
statement).
"""
import re
from datetime import date, timedelta

import pytest
from sqlalchemy import event

from portal.domain import runs
from portal.domain.dunning.daily import start_daily_run
from portal.extensions import db
from portal.models import Account

DAY = date(2026, 12, 1)
TOUCHES = re.compile(r"\b(accounts|users)\b")
SQLITE_BAD = re.compile(r"^SCAN (accounts|users)\b"
                        r"|^SEARCH accounts USING INTEGER PRIMARY KEY \(rowid>\? AND rowid<\?\)")
POSTGRES_BAD = re.compile(r"Seq Scan on (accounts|users)\b")


@pytest.fixture
def few_due(app, make):
    """40 accounts with overdue invoices and a manager each; only the first, a middle one and the last are due."""
    cls = make.customer_class(limit_after_days=15, suspend_after_days=20)
    ids = []
    for i in range(40):
        aid = make.account(customer_class_id=cls)
        make.invoice(aid, due_date=DAY - timedelta(days=10 + i % 20))
        make.user("account_manager", aid)
        make.user("user", aid)
        ids.append(aid)
    with app.app_context():
        due = {ids[0], ids[20], ids[-1]}
        for aid in ids:
            db.session.get(Account, aid).dunning_next_on = DAY if aid in due else DAY + timedelta(days=30)
        db.session.get(Account, ids[20]).dunning_since = DAY - timedelta(days=25)  # the Python path too
        db.session.commit()
    return due


def _plan(cursor, dialect, statement, parameters):
    explain = cursor.connection.cursor()
    try:
        if dialect == "postgresql":
            explain.execute("SET LOCAL enable_seqscan = off")
            explain.execute("EXPLAIN " + statement, parameters)
            lines = [row[0] for row in explain.fetchall()]
            explain.execute("SET LOCAL enable_seqscan = on")
            return lines
        explain.execute("EXPLAIN QUERY PLAN " + statement, parameters)
        return [row[-1] for row in explain.fetchall()]
    finally:
        explain.close()


def _plans_of(app, action):
    """Run action() in an app context; return (its result, [(statement, plan)]) of what it sent to the database."""
    plans = []

    def listen(conn, cursor, statement, parameters, context, executemany):
        if executemany or not TOUCHES.search(statement) or not re.match(r"\s*(SELECT|INSERT|UPDATE|WITH)", statement):
            return
        plans.append((statement, _plan(cursor, conn.dialect.name, statement, parameters)))

    with app.app_context():
        engine = db.engine
        event.listen(engine, "before_cursor_execute", listen)
        try:
            result = action()
        finally:
            event.remove(engine, "before_cursor_execute", listen)
    return result, plans


def _offenders(app, plans):
    with app.app_context():
        bad = POSTGRES_BAD if db.engine.dialect.name == "postgresql" else SQLITE_BAD
    return [(statement.split("\n")[0][:120], line) for statement, plan in plans for line in plan
            if bad.search(line.strip().lstrip("->").strip())]


def test_starting_a_run_lists_only_the_accounts_due(app, few_due):
    run_id, plans = _plans_of(app, lambda: start_daily_run(None, DAY, enqueue=False).id)
    with app.app_context():
        assert runs.progress(run_id)["chunks"] == 1
    assert any("dunning_next_on" in statement for statement, _plan in plans)  # the candidates were listed
    assert _offenders(app, plans) == []


def test_a_chunk_reads_only_the_accounts_due_and_their_people(app, few_due):
    with app.app_context():
        run_id = start_daily_run(None, DAY, enqueue=False).id
    state, plans = _plans_of(app, lambda: (runs.process_run(run_id, worker_name="test", poll=0),
                                          runs.progress(run_id))[1])
    assert state["status"] == "done" and state["matched"] == 3 and state["changed"] >= 2, state
    assert any("dunning_chunk_rows" in statement for statement, _plan in plans)  # the SQL path was planned
    assert _offenders(app, plans) == []
