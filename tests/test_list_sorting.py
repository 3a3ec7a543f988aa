"""The account list's sort orders (last activity, status), their cursors, a page's place among the matches,
and the walk's "keep looking" offered only while more matches may follow (both databases)."""
from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select
from werkzeug.datastructures import MultiDict

from portal.domain import account_search as search
from portal.domain.account_search import reading
from portal.extensions import db
from portal.models import Account

STATUSES = ["active", "suspended", "limited", "cancelled", "active", "active", "suspended"]
NEVER = datetime(1900, 1, 1)


def add_accounts(rows):
    start = (db.session.scalar(select(func.max(Account.id))) or 0) + 1
    objs = []
    for n, row in enumerate(rows, start):
        fields = dict(id=n, number=f"A{n:07d}", name=f"Account {n:03d}", email=f"hello{n}@example.test",
                      status="active", created_at=datetime(2024, 1, 1), settings={})
        fields.update(row)
        objs.append(Account(**fields))
    db.session.add_all(objs)
    db.session.commit()
    return [o.id for o in objs]


def parse(**args):
    return search.parse_filters(MultiDict(args))


def walk_pages(f):
    """Follow Next to the end; return (ids in order, the pages' (start, count), the ids walking back)."""
    seen, places, pages = [], [], []
    page = search.list_page(f)
    while True:
        seen.extend(r.id for r in page.rows)
        places.append((page.start, len(page.rows)))
        pages.append((f.cursor, page))
        if not page.next_cursor:
            break
        f.cursor = search.decode_cursor(page.next_cursor, f.sort)
        page = search.list_page(f)
    back = []
    cursor = pages[-1][1].prev_cursor
    while cursor:
        f.cursor = search.decode_cursor(cursor, f.sort)
        page = search.list_page(f)
        back = [r.id for r in page.rows] + back
        cursor = page.prev_cursor
    return seen, places, back


@pytest.fixture
def population(ctx):
    """57 accounts: every status, some never active, some sharing the same last activity."""
    base = datetime(2026, 3, 1, 12, 0)
    rows = []
    for i in range(57):
        last = None if i % 5 == 0 else base - timedelta(days=(i * 7) % 11)  # ties and NULLs
        rows.append(dict(name=f"Shop {(i * 13) % 57:02d}", status=STATUSES[i % len(STATUSES)],
                         last_activity_at=last))
    add_accounts(rows)
    return {a.id: a for a in db.session.scalars(select(Account))}


def expected(accounts, sort):
    key = {"activity": lambda a: (a.last_activity_at or NEVER, a.id),
           "status": lambda a: (a.status, a.id)}[sort.lstrip("-")]
    return [a.id for a in sorted(accounts.values(), key=key, reverse=sort.startswith("-"))]


@pytest.mark.parametrize("sort", ["activity", "-activity", "status", "-status"])
def test_new_sorts_page_through_every_account_once_in_order_both_ways(population, sort):
    seen, places, back = walk_pages(parse(sort=sort, per_page="10"))
    assert seen == expected(population, sort)
    assert back == seen[:len(back)] and len(back) == 50  # from the last page back to the first
    assert places == [(0, 10), (10, 10), (20, 10), (30, 10), (40, 10), (50, 7)]


def test_never_active_accounts_come_last_when_newest_first_and_first_when_oldest_first(population):
    never = {i for i, a in population.items() if a.last_activity_at is None}
    newest = [r.id for r in search.list_page(parse(sort="-activity", per_page="200")).rows]
    oldest = [r.id for r in search.list_page(parse(sort="activity", per_page="200")).rows]
    assert set(newest[-len(never):]) == never and set(oldest[:len(never)]) == never
    assert "never last" in search.SORTS["-activity"].label and "never first" in search.SORTS["activity"].label


@pytest.mark.parametrize("sort", ["status", "-status", "activity"])
def test_a_tiny_budget_walks_each_sort_without_missing_or_repeating(population, monkeypatch, sort):
    """The status sort is walked status by status; a stretch without matches keeps looking where it stopped."""
    monkeypatch.setattr(search, "WINDOWS", (2, 3))
    monkeypatch.setattr(search, "SCAN_BUDGET", 5)
    monkeypatch.setattr(search, "RARE_SET", 0)
    f = parse(sort=sort, per_page="4", exempt="no", active_after="2026-02-25")
    seen, _places, _back = walk_pages(f)
    matching = {i for i, a in population.items() if a.last_activity_at and a.last_activity_at >= datetime(2026, 2, 25)}
    assert seen == [i for i in expected(population, sort) if i in matching]


def test_cursors_carry_each_sort_key_and_refuse_the_wrong_kind(ctx):
    when = datetime(2026, 3, 1, 12, 30, 5, 123)
    token = search.encode_cursor("-activity", "after", when, 7, 50)
    assert search.decode_cursor(token, "-activity") == ("after", when, 7, 50)
    assert search.decode_cursor(search.encode_cursor("status", "before", "limited", 3, 0), "status") == \
        ("before", "limited", 3, 0)
    assert search.decode_cursor(search.encode_cursor("activity", "after", "not a time", 3), "activity") is None
    assert search.decode_cursor(search.encode_cursor("status", "after", 12, 3), "status") is None
    assert search.decode_cursor(search.encode_cursor("name", "after", "x", 3, -4), "name") is None
    assert search.decode_cursor(token, "activity") is None  # tied to its sort order


def test_a_rare_status_answers_at_once_whatever_the_budget(ctx, monkeypatch):
    """Cancelled: few, read by their ids; limited (more than RARE_SET here): along the rare statuses' index."""
    monkeypatch.setattr(search, "WINDOWS", (2, 3))
    monkeypatch.setattr(search, "SCAN_BUDGET", 5)
    rows = [dict(name=f"Shop {i:02d}", status="active") for i in range(40)]
    for i in (3, 17, 38):
        rows[i]["status"] = "cancelled"
    for i in (5, 21):
        rows[i]["status"] = "limited"
    ids = add_accounts(rows)
    page = search.list_page(parse(status="cancelled"))
    assert [r.id for r in page.rows] == [ids[3], ids[17], ids[38]] and not page.next_cursor
    monkeypatch.setattr(search, "RARE_SET", 1)  # limited is now "too many" for ids: walked, still at once,
    page = search.list_page(parse(status="limited", per_page="10"))  # past none of the 35 active accounts
    assert [r.id for r in page.rows] == [ids[5], ids[21]] and not page.next_cursor
    page = search.list_page(parse(status="limited", exempt="no", per_page="10"))
    assert [r.id for r in page.rows] == [ids[5], ids[21]] and not page.next_cursor


def test_no_match_is_an_empty_page_at_once_without_walking(ctx, monkeypatch):
    add_accounts([dict(name=f"Shop {i:02d}", status="active") for i in range(30)])
    monkeypatch.setattr(search, "RARE_SET", 0)

    def no_walk(*args, **kwargs):
        raise AssertionError("walked although nothing matches")

    monkeypatch.setattr(reading, "_walk", no_walk)
    page = search.list_page(parse(status="suspended", exempt="no"))
    assert page.rows == [] and not page.next_cursor and not page.next_is_continuation


def test_keep_looking_only_while_more_matches_may_follow(ctx, monkeypatch):
    """The walk stops at its budget each time; once the counted matches are all shown, it stops offering more."""
    monkeypatch.setattr(search, "WINDOWS", (2, 3))
    monkeypatch.setattr(search, "SCAN_BUDGET", 5)
    monkeypatch.setattr(search, "RARE_SET", 0)
    rows = [dict(name=f"Shop {i:02d}", status="active") for i in range(30)]
    rows[1]["status"] = rows[12]["status"] = "suspended"
    ids = add_accounts(rows)
    f = parse(status="suspended", exempt="no", per_page="10")
    page = search.list_page(f)
    assert [r.id for r in page.rows] == [ids[1]] and page.next_is_continuation  # a second one exists
    f.cursor = search.decode_cursor(page.next_cursor, f.sort)
    page = search.list_page(f)
    assert page.rows == [] and page.next_is_continuation  # Shop 06-10: nothing, but one is still to come
    f.cursor = search.decode_cursor(page.next_cursor, f.sort)
    page = search.list_page(f)
    assert [r.id for r in page.rows] == [ids[12]] and page.start == 1
    assert not page.next_cursor and not page.next_is_continuation  # both counted matches shown: no more
    db.session.get(Account, ids[12]).status = "active"
    db.session.commit()
    page = search.list_page(parse(status="suspended", exempt="no", per_page="10"))
    assert [r.id for r in page.rows] == [ids[1]] and not page.next_cursor  # the only match: nothing to look for


def test_the_export_of_a_rare_status_holds_every_one_of_them(ctx, monkeypatch):
    """The list reads a rare status at once; the export (its own plan) still gives every matching account."""
    monkeypatch.setattr(search, "SMALL_SET", 2)
    ids = add_accounts([dict(name=f"Shop {i:02d}", status="cancelled" if i % 3 == 0 else "active")
                        for i in range(20)])
    numbers = [row[0] for row in search.export_rows(parse(status="cancelled"))][1:]  # after the header
    assert sorted(numbers) == sorted(f"A{i:07d}" for n, i in enumerate(ids) if n % 3 == 0)
