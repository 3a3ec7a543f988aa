"""The account list over HTTP, with and without htmx: sortable headings, "11–20 of 14" under the table, chips
that agree with each other and the page and come again after a change, "More filters", the ticked count's
place, and a live filter's wrong value marked at its field (both databases)."""
import re

import pytest

from portal.domain import account_search as search
from tests.test_account_list import HX, accounts, app_config, login, rows  # noqa: F401  (fixtures)


def html_of(response):
    return response.get_data(as_text=True)


@pytest.mark.parametrize("htmx", [False, True])
def test_headings_are_sort_links_with_aria_sort_on_the_sorted_one(world, accounts, auth, client, htmx):
    login(auth, world.admin)
    page = html_of(client.get("/accounts?sort=-activity&exempt=no", headers=HX if htmx else {}))
    sorted_heading = re.findall(r'<th scope="col"[^>]*? aria-sort="(\w+)">\s*<a class="sort-heading" href="([^"]+)"', page)
    assert len(sorted_heading) == 1 and sorted_heading[0][0] == "descending"
    assert "sort=activity" in sorted_heading[0][1] and "exempt=no" in sorted_heading[0][1]  # turns it around
    links = dict(re.findall(r'href="([^"]+)" hx-get="[^"]+" hx-target="#account-results" hx-swap="outerHTML"\s+'
                            r'data-testid="sort-([\w-]+)"', page))
    assert {v: k for k, v in links.items()}.keys() >= {"number", "name", "status", "balance", "activity"}
    status_link = next(k for k, v in links.items() if v == "status").replace("&amp;", "&")
    assert "sort=-status" in status_link  # a first click on Status shows suspended first
    after = client.get(status_link, headers=HX)
    assert after.status_code == 200
    shown = rows(html_of(after))
    assert re.search(r'<th scope="col"[^>]*? aria-sort="descending">\s*<a[^>]+data-testid="sort-status"', html_of(after))
    assert '<option value="-status" selected>' in html_of(after)  # the form's sort follows (out of band)
    with client.application.app_context():
        from portal.extensions import db
        from portal.models import Account

        statuses = [db.session.get(Account, int(i)).status for i in shown]
    assert statuses == sorted(statuses, reverse=True) and statuses[0] == "suspended"


def test_the_range_under_the_table_and_its_total_from_the_counts(world, accounts, auth, client):
    login(auth, world.support)
    first = html_of(client.get("/accounts?per_page=10", headers=HX))
    assert re.search(r'data-testid="list-range">1–10<span id="list-total"', first)
    nxt = re.search(r'href="([^"]+)"[^>]*rel="next"', first).group(1).replace("&amp;", "&")
    second = html_of(client.get(nxt, headers=HX))
    assert re.search(r'data-testid="list-range">11–14<span id="list-total" data-testid="list-total" hx-preserve', second)
    counts = html_of(client.get("/accounts/counts?per_page=10", headers=HX))
    assert re.search(r'<span id="list-total" data-testid="list-total" hx-swap-oob="true"> of 14</span>', counts)
    suspended = html_of(client.get("/accounts/counts?status=suspended", headers=HX))
    assert re.search(r'hx-swap-oob="true"> of 3</span>', suspended)


def test_capped_counts_never_contradict_each_other_and_the_chosen_status_is_exact(world, accounts, auth, client,
                                                                                   monkeypatch):
    monkeypatch.setattr(search, "COUNT_CAP", 5)
    login(auth, world.support)
    chips = html_of(client.get("/accounts/counts?exempt=no&status=suspended", headers=HX))
    numbers = dict(re.findall(r'data-testid="count-(\w+)">([\d,+]*)<', chips))
    assert numbers["all"] == "5+"
    assert numbers["suspended"] == "3"  # counted on its own: exact, under the cap
    for status, text in numbers.items():
        if text:
            assert int(text.rstrip("+")) <= 5  # no part above the whole
    assert re.search(r'title="Counting stops at 5 for a search or filter[^"]*"', chips) is None  # "of 3" is exact
    assert "hx-swap-oob=\"true\"> of 3</span>" in chips
    everyone = html_of(client.get("/accounts/counts?exempt=no", headers=HX))
    assert re.search(r'title="Counting stops at 5 for a search or filter, so the list stays fast"> of 5\+</span>',
                     everyone)
    exact = html_of(client.get("/accounts/counts", headers=HX))
    numbers = dict(re.findall(r'data-testid="count-(\w+)">([\d,]*)<', exact))
    assert int(numbers["all"]) == sum(int(v) for k, v in numbers.items() if k != "all" and v) == 14


def test_the_chips_come_again_after_a_change_from_this_page(world, accounts, auth, client):
    login(auth, world.admin)
    page = html_of(client.get("/accounts?exempt=no"))
    chips = re.search(r'<fieldset id="status-chips"[^>]*>', page).group(0)
    assert 'hx-get="/accounts/counts?exempt=no"' in chips and 'hx-target="this"' in chips
    assert 'hx-trigger="account-status-changed from:body, accounts-bulk-finished from:body"' in chips


def test_more_filters_fold_and_open_when_one_of_them_is_in_use_or_wrong(world, accounts, auth, client):
    login(auth, world.support)
    plain = html_of(client.get("/accounts?status=active"))
    assert re.search(r'<details class="more-filters" data-testid="more-filters"\s*>', plain)
    assert re.search(r'<details[^>]*more-filters[^>]*\sopen>', html_of(client.get("/accounts?balance_min=10")))
    assert "(1 in use)" in html_of(client.get("/accounts?balance_min=10"))
    assert re.search(r'<details[^>]*more-filters[^>]*\sopen>', html_of(client.get("/accounts?balance_min=abc")))


def test_the_ticked_count_has_its_polite_live_region(world, accounts, auth, client):
    login(auth, world.admin)
    page = html_of(client.get("/accounts"))
    assert re.search(r'<span id="selected-count"[^>]*role="status" aria-live="polite"', page)


@pytest.mark.parametrize("query, field", [("balance_min=abc", "balance_min"), ("active_after=2024-13-45", "active_after")])
def test_a_live_filter_marks_the_wrong_field_as_the_full_page_does(world, accounts, auth, client, query, field):
    login(auth, world.support)
    full = client.get(f"/accounts?{query}")
    assert full.status_code == 200
    assert re.search(rf'id="{field}"[^>]*aria-invalid="true" aria-describedby="{field}-problem"', html_of(full))
    message = re.search(rf'<p class="field-error" id="{field}-problem" data-problem-for="{field}">([^<]+)</p>',
                        html_of(full)).group(1)
    live = client.get(f"/accounts?{query}", headers=HX)
    assert live.status_code == 422
    assert (f'<p class="field-error" id="{field}-problem" data-problem-for="{field}" hx-swap-oob="true">{message}</p>'
            in html_of(live))
    assert len(rows(html_of(live))) == 14  # the list still shows, without the wrong value
    fixed = client.get("/accounts?balance_min=", headers=HX)
    assert fixed.status_code == 200
    assert re.search(rf'<p class="field-error" id="{field}-problem" data-problem-for="{field}" hidden', html_of(fixed))


def test_a_filter_matching_nothing_says_so_at_once(world, accounts, auth, client, monkeypatch):
    monkeypatch.setattr(search, "WINDOWS", (2, 2))
    monkeypatch.setattr(search, "SCAN_BUDGET", 4)
    monkeypatch.setattr(search, "RARE_SET", 0)
    login(auth, world.support)
    page = html_of(client.get("/accounts?status=suspended&balance_min=999999", headers=HX))
    assert "No accounts match this search and these filters." in page
    assert "keep-looking-note" not in page and 'rel="next"' not in page
