"""The pages of a search, on SQLite and PostgreSQL: following Next from the first page lists exactly the accounts a
plain reading of the rules matches (every word somewhere in name, email or number, capitals of A-Z aside), in name
order both ways, each once, whichever path the list takes (the bounds on database work are drawn small, so every
path is taken: the candidate set, the range of names starting with what was typed merged with the other
candidates, a status's own rows, the bounded walk with its "keep looking" pages); and a walk
testing a search in name order reads the index's entries, rows only for its matches (migration 0011).
"""
import re
from contextlib import contextmanager
from datetime import datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, event
from werkzeug.datastructures import MultiDict

from portal.domain import account_search as search
from portal.extensions import db
from portal.models import Account

WORDS = ["maple", "Maplewood", "amaple", "bay", "Bakery", "oak", "map", "le", "Bayside", "maple-bay", "maple bay"]
QUERIES = ["maple", "map", "bay", "maple bay", "bay maple", "aple", "maple oak", "MAPLE", "bakery", "maplewood",
           "maple oa", "bay ak", "hello", "map si", "maple bay ba", "Maple  Bay"]


def matches(account, q):
    text = f"{account['name']} {account['email']} {account['number']}".lower()
    return all(word.lower() in text for word in dict.fromkeys(q.split()))


def reference(accounts, q, descending):
    found = [a for a in accounts if matches(a, q)]
    return [a["id"] for a in sorted(found, key=lambda a: (a["name"].lower(), a["id"]), reverse=descending)]


def listed(q, sort, per_page, status=""):
    """Every id the list shows, following Next (continuation pages included) to the end."""
    f = search.parse_filters(MultiDict({"q": q, "sort": sort, "status": status}))
    f.per_page = per_page
    ids = []
    for _ in range(500):
        page = search.list_page(f)
        ids.extend(r.id for r in page.rows)
        if not page.next_cursor:
            return ids
        f.cursor = search.decode_cursor(page.next_cursor, f.sort)
    raise AssertionError("the pager did not end")


@contextmanager
def sent():
    """Collect (statement, parameters) of each statement the app's engine sends inside the block."""
    seen = []

    def listen(conn, cursor, statement, parameters, context, executemany):
        seen.append((statement, parameters))

    event.listen(db.engine, "before_cursor_execute", listen)
    try:
        yield seen
    finally:
        event.remove(db.engine, "before_cursor_execute", listen)


accounts_strategy = st.lists(
    st.tuples(st.lists(st.sampled_from(WORDS), min_size=1, max_size=3),
              st.sampled_from(["hello", "maple", "bay", "info"]),
              st.sampled_from(["active", "suspended", "suspended", "cancelled"])),
    min_size=1, max_size=40)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=accounts_strategy, q=st.sampled_from(QUERIES), descending=st.booleans(),
       status=st.sampled_from(["", "", "cancelled", "suspended"]),
       search_set=st.sampled_from([1, 2, 4, 1000]), windows=st.sampled_from([(2, 3), (1, 1), (5, 50)]),
       per_page=st.sampled_from([1, 3, 7]), prefix_split=st.sampled_from([0, 2, 500]))
def test_every_match_once_in_name_order_whatever_the_path(ctx, monkeypatch, rows, q, descending, status,
                                                         search_set, windows, per_page, prefix_split):
    monkeypatch.setattr(search, "SEARCH_SET", search_set)
    monkeypatch.setattr(search, "WINDOWS", windows)
    monkeypatch.setattr(search, "SCAN_BUDGET", sum(windows))
    monkeypatch.setattr(search, "SMALL_SET", 1)
    monkeypatch.setattr(search, "RARE_SET", 3)  # a status of at most 3 accounts is read in full
    monkeypatch.setattr(search, "PREFIX_SPLIT_FROM", prefix_split)
    accounts = []
    try:
        for n, (words, mailbox, state) in enumerate(rows, 1):
            accounts.append(dict(id=n, number=f"A{n:07d}", name=" ".join(words), email=f"{mailbox}{n}@example.test",
                                 status=state))
        db.session.add_all([Account(created_at=datetime(2024, 1, 1), settings={}, **a) for a in accounts])
        db.session.commit()
        expect = [i for i in reference(accounts, q, descending) if not status or accounts[i - 1]["status"] == status]
        assert listed(q, "-name" if descending else "name", per_page, status) == expect
        chips = search.count_by_status(search.parse_filters(MultiDict({"q": q, "status": status})))
        for state in ("active", "suspended", "cancelled"):  # the chips: each status's matches, exactly
            assert chips.number(state) == len([a for a in accounts if matches(a, q) and a["status"] == state])
    finally:
        db.session.rollback()
        db.session.execute(delete(Account))
        db.session.commit()


def _walk_statement(app, captured_sql):
    walks = [(st, p) for st, p in captured_sql
             if "row_number() OVER" in st or "INDEXED BY ix_accounts_name_lower" in st]
    walks = [(st, p) for st, p in walks if "LIKE" in st]
    assert walks, [st for st, _p in captured_sql]
    return walks[-1]


def test_a_search_walk_in_name_order_reads_rows_only_for_its_matches(app, ctx, monkeypatch):
    """SQLite: before the LIKE, every column the walk reads comes from the name index's cursor (the row is sought
    only for an entry that matched). PostgreSQL: the window of the walk is an index-only scan of the name index."""
    monkeypatch.setattr(search, "SEARCH_SET", 1)  # a common search: the list walks its order
    db.session.add_all([Account(number=f"A{n:07d}", name=f"Maple Shop {n}", email=f"shop{n}@example.test",
                                status="active", created_at=datetime(2024, 1, 1), settings={}) for n in range(1, 6)])
    db.session.commit()
    with sent() as captured:
        f = search.parse_filters(MultiDict({"q": "shop"}))
        assert len(search.list_page(f).rows) == 5
    statement, parameters = _walk_statement(app, captured)
    with db.engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            program = conn.exec_driver_sql("EXPLAIN " + statement, parameters).all()
            opened = {r[2]: r[5] for r in program if r[1] == "OpenRead"}  # cursor -> KeyInfo (an index) or a count
            like_at = next(r[0] for r in program if r[1] == "Function" and str(r[5]).startswith("like"))
            before = [r for r in program if r[1] == "Column" and r[0] < like_at]
            tables = {cursor for cursor, info in opened.items() if not str(info).startswith("k(")}
            assert before and not [r for r in before if r[2] in tables], program
        else:
            with conn.begin() as tx:
                conn.exec_driver_sql(
                    "INSERT INTO accounts (number, name, email, status, created_at, settings) "
                    "SELECT 'F' || g, 'Filler ' || g, 'filler' || g || '@example.test', 'active', "
                    "timestamp '2020-01-01', '{}' FROM generate_series(1, 20000) AS g")
                conn.exec_driver_sql("ANALYZE accounts")
                plan = [r[0] for r in conn.exec_driver_sql("EXPLAIN " + statement, parameters).all()]
                tx.rollback()
            assert any("Index Only Scan using ix_accounts_name_lower" in line for line in plan), plan


def test_a_word_starting_more_names_than_the_search_set_skips_the_trigram_lookup(ctx, monkeypatch):
    """Six names start with "Maple", SEARCH_SET is 3: the search is common (each of those names holds the word),
    known from the name index alone, so the trigram index is not read, and the page is still every match."""
    monkeypatch.setattr(search, "SEARCH_SET", 3)
    names = [f"Maple Shop {n}" for n in range(6)] + ["Blue Maple Cafe", "Zed Grill"]
    db.session.add_all([Account(number=f"A{n:07d}", name=name, email=f"hello{n}@example.test", status="active",
                                created_at=datetime(2024, 1, 1), settings={}) for n, name in enumerate(names, 1)])
    db.session.commit()
    with sent() as statements:
        page = search.list_page(search.parse_filters(MultiDict({"q": "maple"})))
    assert [r.name for r in page.rows] == ["Blue Maple Cafe"] + [f"Maple Shop {n}" for n in range(6)]
    trigram_read = re.compile(r"SELECT accounts\.id(?: AS id)?\s+FROM accounts\s+WHERE lower\(\(")
    lookups = [s for s, _p in statements if "MATCH" in s or trigram_read.search(s)]
    assert not lookups, lookups


@pytest.mark.parametrize("sort", ["name", "-name"])
def test_names_starting_with_what_was_typed_are_walked_and_the_other_candidates_merged(ctx, monkeypatch, sort):
    """"maple bay": six names start with it, two other accounts hold both words elsewhere. The list walks that
    range of the name index and merges the two others in (found by a set difference on the index), and the page is
    every match in name order, both ways."""
    monkeypatch.setattr(search, "PREFIX_SPLIT_FROM", 3)
    rows = [(f"Maple Bay Shop {n}", f"shop{n}@example.test") for n in range(6)]
    rows += [("Blue Maple Bay Cafe", "cafe@example.test"), ("Zed Grill", "maple@bay-grill.test"),
             ("Maple Oak", "oak@example.test"), ("Bay Tavern", "tavern@example.test")]
    db.session.add_all([Account(number=f"A{n:07d}", name=name, email=email, status="active",
                                created_at=datetime(2024, 1, 1), settings={})
                        for n, (name, email) in enumerate(rows, 1)])
    db.session.commit()
    with sent() as statements:
        page = search.list_page(search.parse_filters(MultiDict({"q": "maple bay", "sort": sort})))
    expect = ["Blue Maple Bay Cafe"] + [f"Maple Bay Shop {n}" for n in range(6)] + ["Zed Grill"]
    assert [r.name for r in page.rows] == (expect if sort == "name" else expect[::-1])
    assert any("EXCEPT" in s for s, _p in statements), statements


def test_the_export_of_a_typed_prefix_reads_its_candidates_not_every_id_range(ctx, monkeypatch):
    """The list's walk of a typed prefix is the list's alone: the export reads the search's candidates by id, in
    one statement, rather than testing every account chunk by chunk."""
    monkeypatch.setattr(search, "PREFIX_SPLIT_FROM", 1)  # three candidates, one of them ("Bay Maple") elsewhere
    monkeypatch.setattr(search, "EXPORT_CHUNK", 2)  # id ranges would show as several statements
    db.session.add_all([Account(number=f"A{n:07d}", name=name, email=f"hello{n}@example.test", status="active",
                                created_at=datetime(2024, 1, 1), settings={})
                        for n, name in enumerate(["Maple Bay Shop", "Maple Bay Cafe", "Oak Grill", "Bay Maple"], 1)])
    db.session.commit()
    with sent() as statements:
        exported = list(search.export_rows(search.parse_filters(MultiDict({"q": "maple bay"}))))
    assert sorted(row[1] for row in exported[1:]) == ["Bay Maple", "Maple Bay Cafe", "Maple Bay Shop"], exported
    assert not [s for s, _p in statements if "accounts.id >= " in s], statements
