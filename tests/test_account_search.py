"""Finding accounts: filter parsing, prefix search, keyset pages (both ways, every sort), the bounded walk,
counts by status, and the bulk engine's "filter" selection, on SQLite and PostgreSQL."""
from datetime import datetime

import pytest
from sqlalchemy import func, select
from werkzeug.datastructures import MultiDict

from portal.domain import account_search as search
from portal.domain import runs
from portal.domain.errors import ValidationFailed
from portal.extensions import db
from portal.models import Account, CustomerClass

NAMES = ["Blue Oak Bistro", "blue oak bistro", "Blue River Cafe", "Bluebell Bakery", "Golden Fork Grill",
         "golden fork grill", "Quiet Table", "Zebra Spa", "Éclair House", "Blue Oak Bistro"]


def add_accounts(rows):
    """Insert accounts (dicts of overrides) in one go; return their ids in order."""
    start = (db.session.scalar(select(func.max(Account.id))) or 0) + 1
    objs = []
    for n, row in enumerate(rows, start):
        fields = dict(id=n, number=f"A{n:07d}", name=f"Account {n}", email=f"hello{n}@example.test",
                      status="active", created_at=datetime(2024, 1, 1), settings={})
        fields.update(row)
        objs.append(Account(**fields))
    db.session.add_all(objs)
    db.session.commit()
    return [o.id for o in objs]


def parse(**args):
    return search.parse_filters(MultiDict(args))


def all_pages(f, direction_checks=True):
    """Follow Next to the end; return the ids in order (checking Previous returns the page before)."""
    seen, pages = [], []
    page = search.list_page(f)
    while True:
        pages.append([r.id for r in page.rows])
        seen.extend(r.id for r in page.rows)
        if not page.next_cursor:
            break
        f.cursor = search.decode_cursor(page.next_cursor, f.sort)
        previous_rows = pages[-1]
        page = search.list_page(f)
        if direction_checks and page.prev_cursor and not page.next_is_continuation:
            back = parse(sort=f.sort, per_page=str(f.per_page), **{k: v for k, v in f.args().items()
                                                                   if k not in ("sort", "per_page")})
            back.cursor = search.decode_cursor(page.prev_cursor, f.sort)
            assert [r.id for r in search.list_page(back).rows] == previous_rows
    return seen


@pytest.fixture
def classes(ctx):
    a, b = CustomerClass(name="Standard"), CustomerClass(name="Trial")
    db.session.add_all([a, b])
    db.session.commit()
    return a.id, b.id


# ---------------------------------------------------------------- parsing

@pytest.mark.parametrize("args, field, expect", [
    ({"balance_min": "abc"}, "balance_min", ("balance_min", None)),
    ({"balance_max": "1e400"}, "balance_max", ("balance_max", None)),
    ({"balance_min": "NaN"}, "balance_min", ("balance_min", None)),
    ({"status": "deleted"}, "status", ("status", "")),
    ({"class": "abc"}, "class", ("class_id", None)),
    ({"class": "987654"}, "class", ("class_id", None)),
    ({"per_page": "1000000"}, "per_page", ("per_page", 200)),
    ({"per_page": "lots"}, "per_page", ("per_page", 50)),
    ({"active_before": "2024-13-45"}, "active_before", ("active_before", None)),
    ({"active_after": "yesterday"}, "active_after", ("active_after", None)),
    ({"exempt": "maybe"}, "exempt", ("exempt", None)),
    ({"sort": "status; DROP TABLE accounts"}, "sort", ("sort", "name")),
    ({"cursor": "not-a-cursor"}, "cursor", ("cursor", None)),
    ({"q": "x" * 500}, "q", ("q", "")),  # refused, not cut (a cut search would find something else)
])
def test_nonsense_values_are_ignored_and_explained(ctx, args, field, expect):
    f = parse(**args)
    assert field in f.problems and f.problems[field]
    attribute, value = expect
    assert getattr(f, attribute) == value
    assert search.list_page(f).rows == []  # and the list still answers


def test_a_reversed_range_is_ignored_with_a_message(ctx):
    f = parse(balance_min="50", balance_max="10", active_after="2025-01-01", active_before="2024-01-01")
    assert (f.balance_min, f.balance_max, f.active_after, f.active_before) == (None, None, None, None)
    assert set(f.problems) == {"balance_max", "active_before"}


def test_good_values_parse_and_round_trip_to_canonical_arguments(ctx, classes):
    f = parse(q="  Blue   Oak ", status="suspended", **{"class": str(classes[0])}, balance_min="$1,250.5",
              balance_max="2000", active_after="2024-01-01", active_before="2025-06-30", exempt="no",
              sort="-balance", per_page="25")
    assert f.problems == {}
    assert (f.q, f.balance_min, f.balance_max, f.exempt) == ("Blue Oak", 125050, 200000, False)
    assert parse(**f.args()).args() == f.args()
    assert f.args()["balance_min"] == "1250.5"


def test_a_cursor_is_signed_and_tied_to_its_sort_order(ctx):
    token = search.encode_cursor("name", "after", "blue", 3)
    assert search.decode_cursor(token, "name") == ("after", "blue", 3, None)
    assert search.decode_cursor(token, "-balance") is None
    assert search.decode_cursor(token[:-2] + "xx", "name") is None
    forged = search.encode_cursor("-balance", "after", "not-a-number", 3)
    assert search.decode_cursor(forged, "-balance") is None


# ---------------------------------------------------------------- search and filters

def test_search_finds_words_anywhere_in_name_email_or_number(ctx):
    ids = add_accounts([{"name": n} for n in NAMES] + [{"name": "Other", "email": "BLUEPRINT@corp.test"}])
    by_name = {r.name for r in search.list_page(parse(q="BLUE OAK")).rows}
    assert by_name == {"Blue Oak Bistro", "blue oak bistro"}
    assert len(search.list_page(parse(q="blue oak")).rows) == 3  # two identical names are two accounts
    assert {r.name for r in search.list_page(parse(q="blueP")).rows} == {"Other"}  # email
    assert [r.id for r in search.list_page(parse(q=f"a{ids[4]:07d}")).rows] == [ids[4]]  # number
    assert len(search.list_page(parse(q="oak")).rows) == 3  # inside the name, not only its start
    assert {r.name for r in search.list_page(parse(q="oak BLUE")).rows} == {"Blue Oak Bistro", "blue oak bistro"}
    assert search.list_page(parse(q="%")).rows == []  # no wildcards
    assert [r.name for r in search.list_page(parse(q="É")).rows] == ["Éclair House"]  # a short word: a prefix


def test_filters_combine(ctx, classes):
    standard, trial = classes
    ids = add_accounts([
        dict(status="suspended", customer_class_id=standard, balance_cents=5000, last_activity_at=datetime(2023, 5, 1)),
        dict(status="suspended", customer_class_id=trial, balance_cents=5000, last_activity_at=None),
        dict(status="active", customer_class_id=standard, balance_cents=100, last_activity_at=datetime(2026, 1, 1)),
        dict(status="cancelled", customer_class_id=standard, balance_cents=0, exempt=True,
             last_activity_at=datetime(2022, 1, 1)),
    ])

    def found(**args):
        return {r.id for r in search.list_page(parse(**args)).rows}

    assert found(status="suspended") == {ids[0], ids[1]}
    assert found(**{"class": str(standard)}, balance_min="10") == {ids[0]}
    assert found(balance_max="1") == {ids[2], ids[3]}
    assert found(active_before="2024-01-01") == {ids[0], ids[1], ids[3]}  # includes never-active
    assert found(active_after="2023-01-01", active_before="2024-01-01") == {ids[0]}
    assert found(exempt="yes") == {ids[3]}
    assert found(exempt="no") == {ids[0], ids[1], ids[2]}


@pytest.mark.parametrize("sort", list(search.SORTS))
def test_pages_cover_every_account_once_in_order_both_ways(ctx, sort):
    rows = [dict(name=NAMES[i % len(NAMES)], balance_cents=(i * 37) % 5 * 100) for i in range(57)]
    add_accounts(rows)
    f = parse(sort=sort, per_page="10")
    seen = all_pages(f)
    key = search.SORTS[sort].column()
    order = (key.desc(), Account.id.desc()) if search.SORTS[sort].descending else (key.asc(), Account.id.asc())
    assert seen == list(db.session.scalars(select(Account.id).order_by(*order)))


def test_going_back_from_the_second_page_shows_the_first_page(ctx):
    add_accounts([{"name": f"Name {i:02d}"} for i in range(25)])
    first = search.list_page(parse(per_page="10"))
    f = parse(per_page="10")
    f.cursor = search.decode_cursor(first.next_cursor, "name")
    second = search.list_page(f)
    assert second.prev_cursor and not second.at_start
    f.cursor = search.decode_cursor(second.prev_cursor, "name")
    back = search.list_page(f)
    assert [r.id for r in back.rows] == [r.id for r in first.rows] and back.at_start


@pytest.mark.parametrize("extra", [{}, {"exempt": "no"}], ids=["status only", "with an index-checked filter"])
def test_a_rare_match_is_found_by_a_bounded_walk_that_keeps_looking(ctx, monkeypatch, extra):
    """With a tiny scan budget, a rare status is found window by window; nothing is missed or shown twice.

    (Both ways of walking: one lazy query, and key-range windows where the index checks a filter.)"""
    monkeypatch.setattr(search, "WINDOWS", (3, 4))
    monkeypatch.setattr(search, "SCAN_BUDGET", 7)
    monkeypatch.setattr(search, "RARE_SET", 0)  # else so few are read by their ids from the status index
    ids = add_accounts([dict(name=f"Name {i:02d}", status="suspended" if i in (2, 30, 31, 55) else "active")
                        for i in range(60)])
    f = parse(status="suspended", per_page="10", **extra)
    page = search.list_page(f)
    assert page.next_is_continuation  # the first 7 accounts held only one match
    assert [r.id for r in page.rows] == [ids[2]]
    seen = all_pages(f, direction_checks=False)
    assert seen == [ids[i] for i in (2, 30, 31, 55)]


def test_a_dense_search_walks_its_own_index_and_merges_the_other_fields(ctx, monkeypatch):
    """Many names start with "blue" (walked on the name index), one email does too (merged in order)."""
    monkeypatch.setattr(search, "SMALL_SET", 5)
    rows = [{"name": f"Blue {i:02d}"} for i in range(12)] + [{"name": "Another", "email": "blue@x.test"},
                                                             {"name": "Zed", "email": "bluez@x.test"}]
    ids = add_accounts(rows + [{"name": "Red"}] * 3)
    seen = all_pages(parse(q="blue", per_page="5"))
    assert seen == [ids[12]] + ids[:12] + [ids[13]]


# ---------------------------------------------------------------- counts

def test_counts_of_all_accounts_are_exact_kept_until_a_change_and_agree_with_the_overview(ctx):
    from portal.domain import status_counts

    add_accounts([{"status": s} for s in ["active"] * 3 + ["suspended"] * 2 + ["cancelled"]])
    counts = search.count_by_status(parse())
    assert counts.counts == {"active": 3, "suspended": 2, "cancelled": 1} and counts.total == 6
    assert not counts.capped and not counts.filtered
    again = search.count_by_status(parse(status="suspended"))  # status itself does not narrow the counts
    assert again.cached and again.counts == counts.counts
    add_accounts([{"status": "limited"}])  # a change: counted again at once, not a minute later
    fresh = search.count_by_status(parse())
    assert not fresh.cached and fresh.counts == {"active": 3, "suspended": 2, "cancelled": 1, "limited": 1}
    overview = status_counts.current()
    assert {s: n for s, n in overview.counts.items() if n} == fresh.counts and overview.total == fresh.total


def test_counts_under_a_filter_stop_at_the_cap(ctx, monkeypatch):
    monkeypatch.setattr(search, "COUNT_CAP", 4)
    add_accounts([{"name": f"Blue {i}", "status": "suspended" if i < 2 else "active"} for i in range(3)]
                 + [{"name": "Red"}])
    exact = search.count_by_status(parse(q="blue"))
    assert exact.counts == {"suspended": 2, "active": 1} and not exact.capped and exact.filtered
    add_accounts([{"name": f"Blue more {i}"} for i in range(5)])
    capped = search.count_by_status(parse(q="blue"))
    assert capped.capped and capped.total == 4
    assert sum(capped.counts.values()) == 5  # lower bounds from the first 5 matches


# ---------------------------------------------------------------- the run engine's selection

def test_the_filter_selection_picks_exactly_what_the_list_shows(ctx, classes):
    add_accounts([dict(name=NAMES[i % len(NAMES)], customer_class_id=classes[i % 2],
                       status="suspended" if i % 3 == 0 else "active", balance_cents=i * 100) for i in range(40)])
    f = parse(q="blue", status="active", balance_min="3")
    listed = set(all_pages(parse(**f.args(), per_page="10")))
    clause = runs.selection_clause({"type": "filter", "filter": f.selection_filter()}, None)
    assert set(db.session.scalars(select(Account.id).where(clause))) == listed
    assert search.count_matching(f) == len(listed) > 0


def test_a_broken_stored_filter_is_refused(ctx):
    with pytest.raises(ValidationFailed):
        search.selection_clause({"type": "filter", "filter": {"balance_min": "abc"}})
    with pytest.raises(ValidationFailed):
        search.selection_clause({"type": "mystery"})
