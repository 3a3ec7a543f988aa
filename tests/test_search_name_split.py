"""A search for a word that starts many names, in name order: the range of the name index holding the names that
start with the word, merged with the accounts holding it anywhere else (the rest index, migration 0011), on SQLite
and PostgreSQL.

The property: following Next from the first page lists exactly the accounts a plain reading of the rules matches
(every word somewhere in name, email or number, capitals of A-Z aside), in name order, each once, whichever path
the list takes (the bounds on database work are drawn small, so every path is taken: the candidate set, the split,
the bounded walk with its "keep looking" pages).
"""
from datetime import datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, event
from werkzeug.datastructures import MultiDict

from portal.domain import account_search as search
from portal.domain.account_search import reading
from portal.extensions import db
from portal.models import Account

WORDS = ["maple", "Maplewood", "amaple", "bay", "Bakery", "oak", "map", "le", "Bayside", "maple-bay"]
QUERIES = ["maple", "map", "bay", "maple bay", "bay maple", "aple", "maple oak", "MAPLE", "bakery", "maplewood"]


def matches(account, q):
    text = f"{account['name']} {account['email']} {account['number']}".lower()
    return all(word.lower() in text for word in dict.fromkeys(q.split()))


def reference(accounts, q, descending):
    found = [a for a in accounts if matches(a, q)]
    return [a["id"] for a in sorted(found, key=lambda a: (a["name"].lower(), a["id"]), reverse=descending)]


def listed(q, sort, per_page):
    """Every id the list shows, following Next (continuation pages included) to the end."""
    f = search.parse_filters(MultiDict({"q": q, "sort": sort}))
    f.per_page = per_page
    ids = []
    for _ in range(500):
        page = search.list_page(f)
        ids.extend(r.id for r in page.rows)
        if not page.next_cursor:
            return ids
        f.cursor = search.decode_cursor(page.next_cursor, f.sort)
    raise AssertionError("the pager did not end")


accounts_strategy = st.lists(
    st.tuples(st.lists(st.sampled_from(WORDS), min_size=1, max_size=3),
              st.sampled_from(["hello", "maple", "bay", "info"]), st.sampled_from(["active", "suspended"])),
    min_size=1, max_size=40)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=accounts_strategy, q=st.sampled_from(QUERIES), descending=st.booleans(),
       search_set=st.sampled_from([1, 2, 4, 1000]), windows=st.sampled_from([(2, 3), (1, 1), (5, 50)]),
       per_page=st.sampled_from([1, 3, 7]))
def test_every_match_once_in_name_order_whatever_the_path(ctx, monkeypatch, rows, q, descending, search_set,
                                                         windows, per_page):
    monkeypatch.setattr(search, "SEARCH_SET", search_set)
    monkeypatch.setattr(search, "WINDOWS", windows)
    monkeypatch.setattr(search, "SCAN_BUDGET", sum(windows))
    monkeypatch.setattr(search, "SMALL_SET", 1)
    accounts = []
    try:
        for n, (words, mailbox, status) in enumerate(rows, 1):
            accounts.append(dict(id=n, number=f"A{n:07d}", name=" ".join(words), email=f"{mailbox}{n}@example.test",
                                 status=status))
        db.session.add_all([Account(created_at=datetime(2024, 1, 1), settings={}, **a) for a in accounts])
        db.session.commit()
        assert listed(q, "-name" if descending else "name", per_page) == reference(accounts, q, descending)
    finally:
        db.session.rollback()
        db.session.execute(delete(Account))
        db.session.commit()


@pytest.fixture
def clustered(ctx):
    """60 names starting with "Maple" after 300 that don't, and two accounts holding "maple" elsewhere."""
    rows = [dict(name=f"Aaa Filler {n:03d}", email=f"hello{n}@example.test") for n in range(300)]
    rows += [dict(name=f"Maple Shop {n:03d}", email=f"shop{n}@example.test") for n in range(60)]
    rows += [dict(name="Blue Maple Cafe", email="cafe@example.test"), dict(name="Zed Grill", email="maple@grill.test")]
    db.session.add_all([Account(number=f"A{n:07d}", status="active", created_at=datetime(2024, 1, 1), settings={},
                                **row) for n, row in enumerate(rows, 1)])
    db.session.commit()


@pytest.mark.parametrize("sort", ["name", "-name"])
def test_a_word_starting_many_names_fills_its_page_in_one_request(clustered, monkeypatch, sort):
    """With a walk budget far smaller than the 300 names before them, the first page still holds the first
    matches in name order, with no "keep looking", from one lookup of the rest index and no walk outside the range."""
    monkeypatch.setattr(search, "SEARCH_SET", 10)  # "maple": 62 candidates, a common word
    monkeypatch.setattr(search, "WINDOWS", (5, 20))
    monkeypatch.setattr(search, "SCAN_BUDGET", 25)
    statements = []

    def listen(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement)

    event.listen(db.engine, "before_cursor_execute", listen)
    try:
        f = search.parse_filters(MultiDict({"q": "maple", "sort": sort}))
        f.per_page = 25
        page = search.list_page(f)
    finally:
        event.remove(db.engine, "before_cursor_execute", listen)
    names = [r.name for r in page.rows]
    if sort == "name":
        assert names == ["Blue Maple Cafe"] + [f"Maple Shop {n:03d}" for n in range(24)]
    else:
        assert names == ["Zed Grill"] + [f"Maple Shop {n:03d}" for n in range(59, 35, -1)]
    assert page.next_cursor and not page.next_is_continuation
    assert sum("accounts_search_rest" in s or "substr(accounts.name" in s for s in statements) == 1, statements


def test_a_word_common_past_the_names_start_is_walked_as_before(clustered, monkeypatch):
    """More accounts hold the word past their name's start than SEARCH_SET: no split, the common walk."""
    monkeypatch.setattr(search, "SEARCH_SET", 1)
    f = search.parse_filters(MultiDict({"q": "maple"}))
    assert reading.name_split("maple") is None
    monkeypatch.setattr(search, "SEARCH_SET", 2)
    prefix, rest = reading.name_split("maple")
    assert len(rest) == 2 and f.q == "maple"


def test_the_rest_index_follows_inserts_renames_and_deletes(clustered):
    from portal.domain.account_search.conditions import rest_ids

    def rest():
        found = rest_ids("maple", 100)
        return sorted(int(i) for i in found.text.split(",") if i)

    blue = db.session.scalar(db.select(Account.id).where(Account.name == "Blue Maple Cafe"))
    zed = db.session.scalar(db.select(Account.id).where(Account.name == "Zed Grill"))
    assert rest() == [blue, zed]  # the 60 names starting with "Maple" are not in it
    db.session.get(Account, blue).name = "Blue Cafe"
    db.session.get(Account, zed).email = "zed@grill.test"
    db.session.add(Account(number="A9999999", name="Red Maple", email="red@example.test", status="active",
                           created_at=datetime(2024, 1, 1), settings={}))
    db.session.commit()
    red = db.session.scalar(db.select(Account.id).where(Account.name == "Red Maple"))
    shop = db.session.scalar(db.select(Account.id).where(Account.name == "Maple Shop 000"))
    db.session.get(Account, shop).name = "Old Maple Shop"
    db.session.commit()
    assert rest() == sorted([red, shop])
    db.session.delete(db.session.get(Account, red))
    db.session.commit()
    assert rest() == [shop]
