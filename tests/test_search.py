"""Search inside names, emails and account numbers: words in any order, the database keeping its index in step,
bad input answered at the field without a full scan, the same set in the list, the counts, the export and a bulk run, and
query plans at a realistic shape, on SQLite and PostgreSQL."""
import csv
import io
import re
from datetime import datetime

import pytest
from sqlalchemy import func, select, text
from werkzeug.datastructures import MultiDict

from portal.domain import account_search as search
from portal.domain import bulk
from portal.extensions import db
from portal.models import Account, User

HX = {"HX-Request": "true"}
SHOPS = [  # (name, email, number)
    ("Maple Bay Bakery", "hello@maplebay.example", "A0002629"),
    ("Bayside Fish Bar", "orders@bayside-fish.example", "A0012345"),
    ("Golden Bakery Lane", "golden@bakerylane.example", "A0000777"),
    ("Copper Fox Salon", "copper.fox@salon.example", "A0030001"),
    ("Quiet Anchor Cafe", "hello@quiet-anchor.example", "A0040002"),
    ("Café Zoë", "zoe@cafe-zoe.example", "A0050003"),
    ("100% Organic_Store", "shop@organic.example", "A0060004"),
    ('The "NEAR" Diner', "near*diner@example.test", "A0070005"),
]


@pytest.fixture
def shops(app):
    """The SHOPS as accounts; returns {name: id}."""
    with app.app_context():
        rows = [Account(number=number, name=name, email=email, status="active", created_at=datetime(2024, 1, 1),
                        settings={}) for name, email, number in SHOPS]
        db.session.add_all(rows)
        db.session.commit()
        return {r.name: r.id for r in rows}


def names(q, **args):
    return sorted(r.name for r in search.list_page(search.parse_filters(MultiDict({"q": q, **args}))).rows)


# ---------------------------------------------------------------- what people type

@pytest.mark.parametrize("q, expect", [
    ("bakery", ["Golden Bakery Lane", "Maple Bay Bakery"]),
    ("BAKERY", ["Golden Bakery Lane", "Maple Bay Bakery"]),
    ("akery", ["Golden Bakery Lane", "Maple Bay Bakery"]),  # inside a word
    ("bay bak", ["Maple Bay Bakery"]),  # two words, both must be there
    ("bak bay", ["Maple Bay Bakery"]),  # in any order
    ("bay   BAK ", ["Maple Bay Bakery"]),
    ("bay", ["Bayside Fish Bar", "Maple Bay Bakery"]),
    ("bakerylane", ["Golden Bakery Lane"]),  # part of an email
    ("fox@sal", ["Copper Fox Salon"]),
    ("quiet-anchor", ["Quiet Anchor Cafe"]),
    ("2629", ["Maple Bay Bakery"]),  # an account number by its digits
    ("a0002629", ["Maple Bay Bakery"]),
    ("0012", ["Bayside Fish Bar"]),
    ("bakery nothing", []),
    ("maple example", ["Maple Bay Bakery"]),  # words in different fields
    ("café zoë", ["Café Zoë"]),  # letters outside ASCII, as typed
    ("zoë", []),  # no 3 ASCII letters in a row: alone, a prefix (no name, email or number starts with it)
    ("caf", ["Café Zoë", "Quiet Anchor Cafe"]),
])
def test_search_finds_words_anywhere_in_name_email_or_number(ctx, shops, q, expect):
    assert names(q) == expect


def test_a_word_does_not_span_two_fields(ctx, shops):
    # "bakery" + " " + "hello": the search text joins the fields with a space, and a word has none
    assert names("eryhello") == []
    assert names("bakery hello") == ["Maple Bay Bakery"]


def test_short_words_alone_match_the_start_and_with_a_long_word_anywhere(ctx, shops):
    assert names("b") == ["Bayside Fish Bar"]  # a prefix of name, email or number (the btree indexes)
    assert names("go") == ["Golden Bakery Lane"]
    assert names("a0") == sorted(name for name, _e, _n in SHOPS)  # every number starts with A0
    assert names("bakery la") == ["Golden Bakery Lane"]  # "la" checked inside the rows "bakery" found
    assert names("ba bay") == ["Bayside Fish Bar", "Maple Bay Bakery"]


def test_unicode_case_beyond_ascii_is_matched_as_typed(ctx, shops):
    assert names("CAFÉ") == []  # É and é differ: lower() folds A-Z only here (SQLite; PostgreSQL in the C locale)
    assert names("café") == ["Café Zoë"]
    assert names("CAFé") == ["Café Zoë"]


# ---------------------------------------------------------------- the database keeps the index in step

def test_the_index_follows_inserts_renames_and_deletes(ctx, shops):
    account = Account(number="A0099999", name="Harbor Pretzel Works", email="hi@pretzel.example", status="active",
                      created_at=datetime(2024, 1, 1), settings={})
    db.session.add(account)
    db.session.commit()
    assert names("pretzel") == ["Harbor Pretzel Works"]
    account.name = "Harbor Noodle Works"
    db.session.commit()
    assert names("noodle") == ["Harbor Noodle Works"]
    assert names("pretzel") == ["Harbor Noodle Works"]  # still in its email
    account.email = "hi@noodles.example"
    db.session.commit()
    assert names("pretzel") == []
    # a plain SQL statement (not the portal's code) is seen too: the triggers, not the app, keep the index
    db.session.execute(text("UPDATE accounts SET number = 'A0088888' WHERE id = :id"), {"id": account.id})
    db.session.commit()
    assert names("88888") == ["Harbor Noodle Works"] and names("99999") == []
    db.session.execute(text("UPDATE accounts SET status = 'suspended' WHERE id = :id"), {"id": account.id})
    db.session.commit()
    assert names("noodle") == ["Harbor Noodle Works"]
    db.session.delete(account)
    db.session.commit()
    assert names("noodle") == []
    if db.engine.dialect.name == "sqlite":  # FTS5 checks its index against the accounts table
        db.session.execute(text("INSERT INTO accounts_search (accounts_search, rank) VALUES ('integrity-check', 1)"))


def test_the_migration_indexed_the_rows_already_there(app):
    """Accounts written before migration 0008 are found: the upgrade builds the index from them."""
    from flask_migrate import downgrade, upgrade

    with app.app_context():
        downgrade(revision="0007")
        db.session.execute(text(
            "INSERT INTO accounts (number, name, email, status, exempt, balance_cents, created_at, settings, version) "
            "VALUES ('A0000042', 'Older Lantern Tavern', 'old@lantern.example', 'active', false, 0, "
            "'2020-01-01 00:00:00', '{}', 1)"))
        db.session.commit()
        upgrade()
        assert names("lantern tav") == ["Older Lantern Tavern"]


# ---------------------------------------------------------------- bad input

BAD = ["b", " ", "   ", "x" * 10_000, '"', '"bakery', "*", "bak*", "NEAR", "NEAR(bay bak)", "bay OR bak",
       "bay AND NOT bak", "name:bakery", "^bak", "(bakery)", "%", "%%%", "_", "___", "100%", "c_f",
       "organic_store", "'; DROP TABLE accounts; --", "日本語", "🙂🙂🙂", "é", "\\", "bak\\", "🙂 bakery"]


@pytest.mark.parametrize("htmx", [True, False], ids=["htmx", "full page"])
def test_bad_input_answers_with_results_or_a_message(world, shops, auth, client, htmx):
    """Each bad string gets a page (or the field's error), never a 500. That none of them reads all of accounts is
    checked on their query plans (tests/test_query_plans.py), which holds whatever the machine's speed."""
    auth.login(world.support.email)
    for q in BAD:
        response = client.get("/accounts", query_string={"q": q}, headers=HX if htmx else {})
        html = response.get_data(as_text=True)
        too_long = len(q) > search.Q_MAX
        # a search refused at the field may answer 422 (the live filters' field error); every other one finds
        assert response.status_code == 200 or too_long and response.status_code == 422, (q[:40], response.status_code)
        if too_long:  # refused with the reason (and, on the full page, the field marked)
            assert "at most 100 characters; this one has 10,000" in html
            assert htmx or 'id="q" name="q"' in html and 'aria-invalid="true"' in html


def test_search_syntax_and_wildcards_are_taken_literally(ctx, shops):
    assert names("%") == [] and names("_") == []  # short: a prefix, and no name starts with them
    assert names("100%") == ["100% Organic_Store"]
    assert names("organic_store") == ["100% Organic_Store"]
    assert names("organicXstore") == []  # _ is not "any character"
    assert names("c_f") == []
    assert names('"near"') == ['The "NEAR" Diner']
    assert names("near*diner") == ['The "NEAR" Diner']
    assert names("near") == ['The "NEAR" Diner']
    assert names("bay OR bak") == []  # OR is a word to find, not an operator
    assert names("NEAR(bay bak)") == []
    assert names("name:bakery") == []
    assert names("(bakery)") == []
    assert names("^bak") == []
    assert names("'; DROP TABLE accounts; --") == []
    assert db.session.scalar(select(func.count()).select_from(Account)) == len(SHOPS)


def test_only_spaces_is_no_search_and_too_long_is_refused_at_the_field(ctx, shops):
    f = search.parse_filters(MultiDict({"q": "   "}))
    assert f.q == "" and not f.problems and len(search.list_page(f).rows) == len(SHOPS)
    f = search.parse_filters(MultiDict({"q": "bakery " * 2000}))
    assert f.q == "" and "at most 100 characters; this one has 13,999" in f.problems["q"]


def test_a_long_word_looks_up_a_few_of_its_trigrams_and_checks_the_rest(ctx, shops):
    from portal.domain.account_search import words

    long_word = "goldenbakerylanegoldenbakerylane"
    found = words.split_words(long_word)
    assert len(words.fts_query(found).split()) == words.TRIGRAMS_PER_WORD
    assert names(long_word) == []  # candidates from three trigrams, then LIKE says no
    assert len(words.fts_query(words.split_words("maple bay bakery lane"))) <= words.TRIGRAMS_MAX * 6
    assert names("golden@bakerylane.example") == ["Golden Bakery Lane"]


# ---------------------------------------------------------------- the same set everywhere

def _export_numbers(client, q):
    response = client.get("/accounts/export.csv", query_string={"q": q})
    assert response.status_code == 200
    return sorted(row[0] for row in list(csv.reader(io.StringIO(response.get_data(as_text=True))))[1:])


@pytest.mark.parametrize("q", ["bay bak", "bakery", "example hello", "b"])
def test_list_counts_export_and_bulk_selection_agree(app, world, shops, auth, client, q):
    auth.login(world.admin.email)
    html = client.get("/accounts", query_string={"q": q, "per_page": "200"}, headers=HX).get_data(as_text=True)
    listed = set(map(int, re.findall(r'data-account-id="(\d+)"', html)))
    with app.app_context():
        f = search.parse_filters(MultiDict({"q": q}))
        by_number = dict(db.session.execute(select(Account.number, Account.id)).all())
        selected = set(db.session.scalars(select(Account.id).where(
            search.selection_clause({"type": "filter", "filter": f.selection_filter()}))))
        counted = search.count_matching(f)
        chips = search.count_by_status(f)
    exported = {by_number[n] for n in _export_numbers(client, q)}
    assert listed == selected == exported and counted == len(listed) == chips.total
    assert listed  # every case finds something


def test_a_bulk_run_over_a_search_changes_exactly_the_listed_accounts(app, world, shops):
    with app.app_context():
        admin = db.session.get(User, world.admin.id)
        outcome = bulk.apply(admin, "suspend", "filter", [], {"q": "bak bay"}, "non_payment", "search test")
        suspended = set(db.session.scalars(select(Account.name).where(Account.status == "suspended",
                                                                      Account.id.in_(shops.values()))))
    assert outcome.changed == 1 and suspended == {"Maple Bay Bakery"}


# ---------------------------------------------------------------- query plans of the search's shapes

SEARCH_SHAPES = ["/accounts?q=bay+bak", "/accounts?q=bakery", "/accounts?q=2629", "/accounts?q=fox%40sal",
                 "/accounts?q=bakery&sort=-number", "/accounts?q=bakery&status=suspended", "/accounts?q=b",
                 "/accounts/counts?q=bakery", "/accounts/export.csv?q=bay+bak",
                 # the list's newer sorts, a word with a short one, a rare status, counts under a status
                 "/accounts?q=bakery&sort=-activity", "/accounts?q=bakery&sort=status", "/accounts?q=bak+b",
                 "/accounts?q=bay&status=cancelled", "/accounts/counts?q=bay+bak&status=active",
                 "/accounts?q=golden+bakery&sort=-balance", "/accounts/export.csv?q=bakery",
                 # a word starting names (its matches together in the name order), in name order both ways
                 "/accounts?q=maple", "/accounts?q=maple&sort=-name", "/accounts?q=golden+lane",
                 # names starting with what was typed: that range walked, the other candidates merged
                 "/accounts?q=maple+bay", "/accounts?q=maple+bay&sort=-name"]


def _plans_at_scale(conn, captured):
    """EXPLAIN each statement; on PostgreSQL among 20,000 analysed filler accounts, rolled back after."""
    from tests.test_query_plans import full_scans

    problems = []
    pg = conn.dialect.name == "postgresql"
    with conn.begin() as tx:
        if pg:  # a few dozen rows make any plan as cheap as any other: plan at a realistic shape
            conn.exec_driver_sql(
                "INSERT INTO accounts (number, name, email, status, exempt, balance_cents, created_at, settings, "
                "version) SELECT 'F' || lpad(g::text, 7, '0'), 'Filler Shop ' || g, 'filler' || g || '@filler.test', "
                "'active', false, 0, timestamp '2020-01-01', '{}', 1 FROM generate_series(1, 20000) AS g")
            # the new entries go to the GIN index's pending list (fastupdate), which autovacuum merges at once
            # on a live database; a search would read the whole list, so the planner would rightly avoid it
            conn.exec_driver_sql("SELECT gin_clean_pending_list('ix_accounts_search_trgm')")
            conn.exec_driver_sql("ANALYZE accounts")
        for statement, parameters in captured:
            plan = [r[0] if pg else r[-1] for r in conn.exec_driver_sql(
                ("EXPLAIN " if pg else "EXPLAIN QUERY PLAN ") + statement, parameters)]
            if full_scans(plan, statement):
                flat = " ".join(statement.split())
                problems.append(f"{flat[:200]} ... {flat[-300:]}\n    {plan}")
        tx.rollback()
    return problems


@pytest.mark.parametrize("walk", [False, True], ids=["index lookups", "walk (common words)"])
def test_search_queries_never_scan_accounts_in_full(app, world, shops, auth, client, monkeypatch, walk):
    from sqlalchemy import event

    from tests.test_query_plans import GLOBAL_COUNTS

    monkeypatch.setattr(search, "PREFIX_SPLIT_FROM", 0)  # "maple bay": its one name's range, no other candidate
    if walk:  # every search counts as common: the list walks its order and tests the words on each row
        monkeypatch.setattr(search, "SMALL_SET", 1)
        monkeypatch.setattr(search, "SEARCH_SET", 1)
        monkeypatch.setattr(search, "WINDOWS", (4, 4))
        monkeypatch.setattr(search, "SCAN_BUDGET", 8)
    auth.login(world.support.email)
    captured = []
    with app.app_context():
        engine = db.engine

    def listen(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith(("SELECT", "WITH")) and re.search(r"\bFROM accounts\b", statement):
            captured.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", listen)
    try:
        for url in SEARCH_SHAPES:
            response = client.get(url, headers=HX)
            response.get_data()
            assert response.status_code == 200, url
    finally:
        event.remove(engine, "before_cursor_execute", listen)
    captured = [(s, p) for s, p in captured if not GLOBAL_COUNTS.search(s)]  # the search's own counts are checked
    assert any("accounts_search" in s or "LIKE" in s for s, _p in captured)
    assert walk or any("EXCEPT" in s for s, _p in captured)  # the typed-prefix split was planned too
    with engine.connect() as conn:
        problems = _plans_at_scale(conn, captured)
    assert not problems, "full scans of accounts:\n" + "\n".join(problems)


@pytest.mark.parametrize("walk", [False, True], ids=["few candidates", "common (walked)"])
@pytest.mark.parametrize("url", ["/accounts?q=bakery", "/accounts?q=bay+bak&sort=-number",
                                 "/accounts?q=bakery&status=active", "/accounts/counts?q=bakery"])
def test_a_request_asks_the_trigram_index_once(app, world, shops, auth, client, monkeypatch, walk, url):
    """One FTS5 lookup (SQLite) or one GIN-served candidate read (PostgreSQL) per request, at most."""
    from sqlalchemy import event

    if walk:
        monkeypatch.setattr(search, "SEARCH_SET", 1)
        monkeypatch.setattr(search, "COUNT_CAP", 1)
    auth.login(world.support.email)
    with app.app_context():
        engine = db.engine
    lookups = []

    def listen(conn, cursor, statement, parameters, context, executemany):
        # each FTS5 MATCH, or each read of ids by the search text's LIKE (the GIN index), even inside a statement
        # (the search text's expression opens with lower((; a probe of the name index is lower(accounts.name))
        found = re.findall(r"\bMATCH\b|SELECT accounts\.id(?: AS id)?\s+FROM accounts\s+WHERE lower\(\(", statement)
        lookups.extend([statement] * len(found))

    event.listen(engine, "before_cursor_execute", listen)
    try:
        html = client.get(url, headers=HX).get_data(as_text=True)
    finally:
        event.remove(engine, "before_cursor_execute", listen)
    assert len(lookups) <= 1, lookups
    if "counts" not in url:
        assert "Maple Bay Bakery" in html or "Golden Bakery Lane" in html


def test_counts_of_a_common_search_are_lower_bounds_from_its_one_lookup(ctx, shops, monkeypatch):
    monkeypatch.setattr(search, "COUNT_CAP", 1)  # "bak": two candidates, more than the cap
    counts = search.count_by_status(search.parse_filters(MultiDict({"q": "bak"})))
    assert counts.capped and counts.total == 1 and counts.is_lower_bound("")
    assert all(n <= counts.total for n in counts.counts.values())
    monkeypatch.setattr(search, "COUNT_CAP", 10)
    counts = search.count_by_status(search.parse_filters(MultiDict({"q": "bak"})))
    assert not counts.capped and counts.total == 2 and counts.counts == {"active": 2}
