"""Every query the account list sends is planned without a full scan of `accounts`.

The list's main shapes (first page, filtered page, prefix searches, deep pages, each sort, the walk's
"keep looking", bad input, filtered counts, export, one row) are requested over HTTP; each SELECT on
accounts they send is EXPLAINed on the same database. A test fails when the plan reads the whole table:
SQLite `SCAN accounts` without an index, PostgreSQL `Seq Scan on accounts` (asked with enable_seqscan off,
so a seq scan in the plan means no index can serve the query, not that the test table is small). A walk
along an index without a range is allowed only inside a LIMIT, which bounds it.

The one documented exception is the unfiltered status count (`GROUP BY status` over all accounts): it
runs in its own request, is kept until something changes, then brought up to date from what changed (that
step is checked like the rest), and is checked to be the only query of its kind.
"""
import re

import pytest
from sqlalchemy import event

from portal.domain import account_search as search
from portal.extensions import db
from tests.conftest import SNAPSHOTS

HX = {"HX-Request": "true"}
# the full count of every account by status (portal.domain.status_counts._count): a GROUP BY over accounts with
# no WHERE; its step after a change reads only the new audit events and the accounts added since (checked)
GLOBAL_COUNTS = re.compile(r"\bFROM accounts GROUP BY (accounts\.)?status\b", re.I)


@pytest.fixture
def population(app, world, make):
    def build():
        cls = make.customer_class()
        for i in range(40):
            make.account(name=f"{['Blue', 'Green', 'Red'][i % 3]} Shop {i:02d}", customer_class_id=cls,
                         status=["active", "suspended", "cancelled", "active"][i % 4], balance_cents=(i % 7) * 1000,
                         exempt=(i % 10 == 0))
        return cls

    return SNAPSHOTS.get("query_plans_population", app, build)


@pytest.fixture
def captured(app):
    """Collect (statement, parameters) of every SELECT that reads accounts."""
    seen = []
    with app.app_context():
        engine = db.engine

    def listen(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith(("SELECT", "WITH")) and re.search(r"\bFROM accounts\b", statement):
            seen.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", listen)
    yield seen
    event.remove(engine, "before_cursor_execute", listen)


def explain(app, statement, parameters):
    """Return the plan lines of a statement as this database would run it."""
    return explain_all(app, [(statement, parameters)])[0]


# PostgreSQL plans by its statistics, and at the test's forty accounts it may walk the primary key for a filter
# whose index it would take at any real size (and which autovacuum's timing decides). Its plans are therefore
# taken over the test's accounts plus this many analysed filler accounts (active, not exempt, no class), inside a
# transaction that is rolled back.
PG_FILLER = 5_000


def explain_all(app, statements):
    """Return the plan lines of each (statement, parameters) as this database would run it."""
    with app.app_context():
        with db.engine.connect() as conn:
            if conn.dialect.name != "postgresql":
                return [[r[-1] for r in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + st, params).all()]
                        for st, params in statements]
            with conn.begin() as tx:
                conn.exec_driver_sql(
                    "INSERT INTO accounts (number, name, email, status, created_at, last_activity_at, settings, "
                    "balance_cents) "
                    "SELECT 'F' || g, 'Filler ' || g, 'filler' || g || '@example.test', 'active', "
                    "timestamp '2020-01-01' + g * interval '1 hour', timestamp '2024-01-01' + g * interval '1 hour', "
                    f"'{{}}', mod(g, 50) * 100 FROM generate_series(1, {PG_FILLER}) AS g")
                conn.exec_driver_sql("ANALYZE accounts")
                conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
                plans = [[r[0] for r in conn.exec_driver_sql("EXPLAIN " + st, params).all()]
                         for st, params in statements]
                tx.rollback()
            return plans


def full_scans(plan, statement):
    """Return the plan lines that read all of accounts (an unbounded walk of an index counts too)."""
    bounded = re.search(r"\bLIMIT\b", statement, re.I) is not None
    bad = []
    for n, line in enumerate(plan):
        text = line.strip().lstrip("->").strip()
        if re.match(r"SCAN accounts\s*$", text) or "Seq Scan on accounts" in text:
            bad.append(line)
        elif re.match(r"SCAN accounts USING (COVERING )?INDEX", text) and not bounded:
            bad.append(line)
        elif re.match(r"Index (Only )?Scan( Backward)? using \w+ on accounts", text) and not bounded:
            following = plan[n + 1:n + 3]
            if not any("Index Cond" in f for f in following):
                bad.append(line)
    return bad


def check(app, captured, what):
    assert captured, f"{what}: no query on accounts was seen"
    problems = []
    statements = [(st, params) for st, params in captured if not GLOBAL_COUNTS.search(st)]
    for (statement, parameters), plan in zip(statements, explain_all(app, statements)):
        bad = full_scans(plan, statement)
        if bad:
            problems.append(f"{' '.join(statement.split())[:300]}\n    plan: {plan}")
    assert not problems, f"{what}: full scans of accounts:\n" + "\n".join(problems)
    captured.clear()


def login(auth, who):
    auth.login(who.email)


SHAPES = [
    ("first page", "/accounts"),
    ("filtered page", "/accounts?status=suspended&class={cls}&balance_min=10"),
    ("status chip", "/accounts?status=cancelled"),
    ("prefix search on names", "/accounts?q=blue"),
    ("prefix search on emails", "/accounts?q=acct1"),
    ("prefix search on numbers", "/accounts?q=t00"),
    ("search with a filter", "/accounts?q=green&status=active&sort=-balance"),
    ("sorted by balance", "/accounts?sort=-balance&per_page=10"),
    ("sorted by number", "/accounts?sort=number&per_page=10"),
    ("exempt only", "/accounts?exempt=yes"),
    ("not exempt", "/accounts?exempt=no"),
    ("inactive before", "/accounts?active_before=2025-01-01"),
    ("active after", "/accounts?active_after=2024-01-01&sort=-name"),
    ("sorted by last activity", "/accounts?sort=-activity&per_page=10"),
    ("sorted by status", "/accounts?sort=-status&per_page=10&exempt=no"),
    ("limited, by name", "/accounts?status=limited&class={cls}"),
    ("cancelled, by balance", "/accounts?status=cancelled&sort=-balance&exempt=no"),
    ("bad input", "/accounts?balance_min=abc&status=nope&per_page=999999&cursor=bad&class=x"),
    ("filtered counts", "/accounts/counts?q=blue"),
    ("counts, limited + class", "/accounts/counts?status=limited&class={cls}"),
    ("a search in a rare status", "/accounts?q=blue&status=cancelled"),
    ("filtered export", "/accounts/export.csv?q=red&status=active"),
    ("full export", "/accounts/export.csv"),
]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # PostgreSQL's choice follows its statistics
def test_a_rare_status_is_counted_on_its_own_index_alone(app, world, population, auth, client, captured,
                                                         monkeypatch):
    """SQLite: the limited accounts of a class are counted along the rare statuses' index, status and class read
    from its entries (a covering scan: no row is read)."""
    monkeypatch.setattr(search, "COUNT_CAP", 5)  # more than that in the class: the chosen status counted on its own
    login(auth, world.support)
    captured.clear()
    assert client.get(f"/accounts/counts?status=limited&class={population}", headers=HX).status_code == 200
    counted = [(st, p) for st, p in captured if "accounts.status = ?" in st and "count(" in st]
    assert counted, captured
    plans = explain_all(app, counted)
    assert any("COVERING INDEX ix_accounts_rare_status_name" in line for plan in plans for line in plan), plans


@pytest.mark.parametrize("what, url", SHAPES, ids=[s[0] for s in SHAPES])
def test_each_list_query_uses_an_index(app, world, population, auth, client, captured, what, url):
    login(auth, world.support)
    captured.clear()
    response = client.get(url.format(cls=population), headers=HX)
    response.get_data()
    assert response.status_code == (422 if what == "bad input" else 200)  # 422: the wrong fields are marked
    check(app, captured, what)


def test_bad_search_strings_use_an_index(app, world, population, auth, client, captured):
    """The strings of tests/test_search.py's bad input (one character, spaces, 10,000 characters, FTS and LIKE
    syntax, SQL, unicode) as the list, its counts and the export send them: none reads all of accounts."""
    from tests.test_search import BAD

    login(auth, world.support)
    captured.clear()
    for q in BAD:
        for path in ("/accounts", "/accounts/counts", "/accounts/export.csv"):
            sent = len(captured)
            response = client.get(path, query_string={"q": q}, headers=HX)
            response.get_data()
            assert response.status_code in (200, 422), (path, q[:40], response.status_code)
            # only a string refused at the field (over 100 characters) sends no query
            assert len(captured) > sent or len(q) > search.Q_MAX, (path, q[:40])
    check(app, captured, "bad search strings")  # every statement seen, EXPLAINed in one go


@pytest.mark.parametrize("sort", list(search.SORTS))
def test_deep_pages_use_an_index_in_every_sort(app, world, population, auth, client, captured, sort):
    login(auth, world.support)
    html = client.get(f"/accounts?sort={sort}&per_page=10", headers=HX).get_data(as_text=True)
    for _ in range(2):
        next_url = re.search(r'href="([^"]+)"[^>]*rel="next"', html).group(1).replace("&amp;", "&")
        html = client.get(next_url, headers=HX).get_data(as_text=True)
    prev_url = re.search(r'href="([^"]+)"[^>]*rel="prev"', html).group(1).replace("&amp;", "&")
    client.get(prev_url, headers=HX)
    check(app, captured, f"deep pages sorted by {sort}")


def test_the_bounded_walk_and_the_merged_search_use_indexes(app, world, population, auth, client, captured,
                                                            monkeypatch):
    monkeypatch.setattr(search, "SMALL_SET", 3)  # every filter counts as "many": the walk path
    monkeypatch.setattr(search, "SEARCH_SET", 3)
    monkeypatch.setattr(search, "WINDOWS", (4, 4))
    monkeypatch.setattr(search, "SCAN_BUDGET", 8)
    login(auth, world.support)
    for url in ("/accounts?status=cancelled&exempt=yes", "/accounts?q=blue", "/accounts?q=blue&sort=-name",
                "/accounts?balance_min=20&class={cls}", "/accounts/export.csv?q=blue"):
        client.get(url.format(cls=population), headers=HX).get_data()
    check(app, captured, "walk")


def test_a_row_and_the_unfiltered_counts(app, world, population, auth, client, captured, make):
    login(auth, world.support)
    client.get(f"/accounts/{world.account}/row", headers=HX)
    client.get("/accounts/counts", headers=HX)
    grouped = [s for s, _p in captured if GLOBAL_COUNTS.search(s)]
    assert len(grouped) == 1  # the documented exception: one pass, in its own request, kept
    check(app, captured, "row and counts")
    before = _list_total(client.get("/accounts/counts", headers=HX).get_data(as_text=True))
    assert captured and not [s for s, _p in captured if GLOBAL_COUNTS.search(s)]  # kept: not counted again
    check(app, captured, "kept counts")
    make.account(name="Added Shop", status="suspended")  # a change: the counts step from what changed
    html = client.get("/accounts/counts", headers=HX).get_data(as_text=True)
    assert not [s for s, _p in captured if GLOBAL_COUNTS.search(s)]  # brought up to date, not counted again
    assert any(re.search(r"\bFROM accounts WHERE id > ", s) for s, _p in captured), "no step was seen"
    assert _list_total(html) == before + 1  # the step counted the new account
    check(app, captured, "counts brought up to date")


def _list_total(html):
    return int(re.search(r'data-testid="list-total"[^>]*>\s*of ([\d,]+)', html).group(1).replace(",", ""))


def test_the_detector_catches_a_full_scan(app, population):
    """The check itself fails on a query no index can serve (so the tests above can fail)."""
    plan = explain(app, "SELECT id FROM accounts WHERE contact_phone = '1'", {} if _pg(app) else ())
    assert full_scans(plan, "SELECT id FROM accounts WHERE contact_phone = '1'")


def _pg(app):
    with app.app_context():
        return db.engine.dialect.name == "postgresql"


# ---------------------------------------------------------------- "changed by run #N" (account_search.by_run)

RUN_INDEX = "ix_audit_events_actor_run_id"


def audit_scans(plan):
    """Plan lines that read audit_events other than by a range of its run index (SQLite SEARCH, PostgreSQL an
    index scan with an Index Cond)."""
    bad = []
    for n, line in enumerate(plan):
        text = line.strip().lstrip("->").strip()
        if re.match(r"SCAN audit_events\b", text) or "Seq Scan on audit_events" in text:
            bad.append(line)
        elif re.match(r"SEARCH audit_events USING (COVERING )?INDEX (\w+)", text) and RUN_INDEX not in text:
            bad.append(line)
        elif re.match(r"(Parallel )?(Bitmap Heap Scan|Index (Only )?Scan( Backward)?( using \w+)?) on audit_events", text):
            following = " ".join(plan[n + 1:n + 4])
            if RUN_INDEX not in text + following or ("Index Cond" not in following and "Recheck Cond" not in following):
                bad.append(line)
    return bad


@pytest.fixture
def changed_run(app, population, world):
    """A bulk run that suspended a dozen of the population (its audit events carry its id)."""
    from portal.domain import runs
    from portal.models import Account, User

    with app.app_context():
        ids = list(db.session.scalars(db.select(Account.id).where(Account.status == "active").limit(12)))
        admin = db.session.get(User, world.admin.id)
        run = runs.start_run(admin, "bulk", "suspend", {"type": "ids", "ids": ids}, "other", "Plans", enqueue=False)
        runs.process_run(run.id, worker_name="test", poll=0)
        return run.id


def check_audit_index(app, captured_statements):
    """The run filter reads audit_events through its (actor_run_id, account_id) index, never by a scan."""
    for statement, parameters in captured_statements:
        if "audit_events" not in statement:
            continue
        bad = audit_scans(explain(app, statement, parameters))
        assert not bad, f"{' '.join(statement.split())[:300]}\n    plan: {bad}"


RUN_SHAPES = [
    ("changed by a run", "/accounts?run={run}"),
    ("changed by a run, with filters", "/accounts?run={run}&status=suspended&sort=-balance&q=blue"),
    ("changed by a run, counts", "/accounts/counts?run={run}"),
    ("changed by a run, export", "/accounts/export.csv?run={run}&status=suspended"),
]


@pytest.mark.parametrize("walk", [False, True], ids=["small set", "walk"])
@pytest.mark.parametrize("what, url", RUN_SHAPES, ids=[s[0] for s in RUN_SHAPES])
def test_the_run_filter_uses_the_audit_index(app, world, population, changed_run, auth, client, captured,
                                             monkeypatch, what, url, walk):
    if walk:  # the run changed "many": the list walks its sort index, the export reads the run's ids in chunks
        monkeypatch.setattr(search, "SMALL_SET", 3)
        monkeypatch.setattr(search, "SEARCH_SET", 3)
        monkeypatch.setattr(search, "WINDOWS", (4, 4))
        monkeypatch.setattr(search, "SCAN_BUDGET", 8)
        monkeypatch.setattr(search, "EXPORT_CHUNK", 5)
    login(auth, world.support)
    captured.clear()
    response = client.get(url.format(run=changed_run), headers=HX)
    response.get_data()
    assert response.status_code == 200
    assert any("audit_events" in s for s, _p in captured), "the run filter was not applied"
    check_audit_index(app, captured)
    check(app, captured, what)


def test_the_audit_detector_catches_a_scan(app, population):
    """The audit check fails on a query no audit index serves (so the test above can fail)."""
    statement = "SELECT id FROM accounts WHERE id IN (SELECT account_id FROM audit_events WHERE reason_note = 'x')"
    plan = explain(app, statement, {} if _pg(app) else ())
    assert audit_scans(plan), plan
