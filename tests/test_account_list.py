"""The account list over HTTP: full page and htmx fragments, URLs that reproduce a view, pages, counts,
rows that refresh themselves, what each role sees, and bad input (never a 500)."""
import json
import re
from datetime import datetime
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import select, update

from portal.domain import account_search as search
from portal.extensions import db
from portal.models import Account, User
from tests.conftest import SNAPSHOTS

HX = {"HX-Request": "true"}


@pytest.fixture
def app_config():
    return {"LOGIN_RATE_LIMIT": "1000 per minute"}


@pytest.fixture
def accounts(app, world, make):
    """The world's two accounts plus a dozen more, with a spread of names, statuses and balances."""
    def build():
        return {i: make.account(name=f"{'Blue' if i % 2 else 'Green'} Shop {i:02d}",
                                status="suspended" if i % 4 == 0 else "active", balance_cents=i * 1000,
                                last_activity_at=datetime(2025, 1, 1) if i % 3 else None) for i in range(12)}

    return SNAPSHOTS.get("account_list_accounts", app, build)


def login(auth, person):
    response = auth.login(person.email)
    assert response.status_code in (302, 303)


def rows(html):
    return re.findall(r'data-testid="account-row" data-account-id="(\d+)"', html)


def test_staff_see_the_list_with_filters_and_rows(world, accounts, auth, client):
    login(auth, world.support)
    response = client.get("/accounts")
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and "<html" in html
    assert 'role="search"' in html and 'id="q"' in html and 'id="status-chips"' in html
    assert len(rows(html)) == 14
    assert "Vary" in response.headers and "HX-Request" in response.headers["Vary"]


def test_customers_cannot_see_the_list(world, auth, client):
    login(auth, world.manager)
    assert client.get("/accounts").status_code == 403
    assert client.get("/accounts/counts", headers=HX).status_code == 403
    assert client.get(f"/accounts/{world.account}/row", headers=HX).status_code == 403


def test_htmx_gets_only_the_results_and_the_canonical_url_to_push(world, accounts, auth, client):
    login(auth, world.admin)
    response = client.get("/accounts?q=blue&status=&balance_min=&sort=name&per_page=50", headers=HX)
    html = response.get_data(as_text=True)
    assert "<html" not in html and html.lstrip().startswith("<section id=\"account-results\"")
    assert response.headers["HX-Push-Url"] == "/accounts?q=blue"  # empty and default values dropped
    assert len(rows(html)) == 7  # six Blue Shops and the world's Blue Harbor Bistro
    assert 'hx-swap-oob="true"' in html and "Showing 7 accounts matching" in html


def test_the_same_view_is_not_pushed_twice_nor_a_refresh_of_the_results(world, accounts, auth, client):
    login(auth, world.support)
    again = client.get("/accounts?q=blue", headers={**HX, "HX-Current-URL": "http://localhost/accounts?q=blue"})
    assert "HX-Push-Url" not in again.headers and len(rows(again.get_data(as_text=True))) == 7
    refresh = client.get("/accounts?q=blue", headers={**HX, "HX-Trigger": "account-results"})
    assert "HX-Push-Url" not in refresh.headers


def test_the_url_reproduces_the_view_and_the_form_is_refilled(world, accounts, auth, client):
    login(auth, world.support)
    url = "/accounts?q=blue&status=active&balance_min=30&sort=-balance&per_page=25"
    html = client.get(url).get_data(as_text=True)
    assert 'id="q" name="q" value="blue"' in html
    assert re.search(r'id="status-active" value="active"\s+checked', html)
    assert '<option value="-balance" selected>' in html and 'value="30"' in html
    ids = rows(html)
    expected = [str(accounts[i]) for i in (11, 9, 7, 5, 3)]  # blue, active, balance >= $30, highest first
    assert ids == expected


def test_next_and_previous_pages_follow_signed_cursors(world, accounts, auth, client):
    login(auth, world.support)
    first = client.get("/accounts?per_page=10", headers=HX).get_data(as_text=True)
    next_url = re.search(r'href="([^"]+)"[^>]*rel="next"', first).group(1).replace("&amp;", "&")
    second = client.get(next_url, headers=HX)
    assert second.headers["HX-Push-Url"] == next_url
    second_html = second.get_data(as_text=True)
    assert len(rows(second_html)) == 4 and not set(rows(second_html)) & set(rows(first))
    assert 'rel="next"' not in second_html and 'data-testid="first-page"' in second_html
    prev_url = re.search(r'href="([^"]+)"[^>]*rel="prev"', second_html).group(1).replace("&amp;", "&")
    assert rows(client.get(prev_url, headers=HX).get_data(as_text=True)) == rows(first)


@pytest.mark.parametrize("query, field", [
    ("balance_min=abc", "balance_min"),
    ("status=%3Cscript%3Ealert(1)", "status"),
    ("per_page=99999999999999999999", "per_page"),
    ("cursor=eyJ0YW1wZXJlZCI6dHJ1ZX0.bad", "cursor"),
    ("class=1%20OR%201%3D1", "class"),
    ("active_before=31%2F12%2F2024", "active_before"),
    ("sort=../../etc", "sort"),
    ("exempt=sometimes", "exempt"),
])
@pytest.mark.parametrize("htmx", [False, True])
def test_nonsense_input_is_ignored_visibly_never_a_500(world, accounts, auth, client, query, field, htmx):
    login(auth, world.support)
    response = client.get(f"/accounts?{query}", headers=HX if htmx else {})
    html = response.get_data(as_text=True)
    a_field = field not in ("cursor", "status", "run")  # a field of the form (status: the chips say it)
    assert response.status_code == (422 if htmx and a_field else 200)
    assert 'data-testid="filter-problems"' in html and "ignored" in html
    assert len(rows(html)) == 14  # the list still shows, without the bad value
    if not htmx and a_field:
        assert re.search(rf'id="{field}"[^>]*aria-invalid="true"', html) or \
            re.search(rf'name="{field}"[^>]*aria-invalid="true"', html)
    if htmx and a_field:  # the message next to the field, swapped in out of band; portal.js marks the field
        assert re.search(rf'<p class="field-error" id="{field}-problem" data-problem-for="{field}"\s*hx-swap-oob="true">\w',
                         html) or re.search(rf'id="{field}"[^>]*aria-invalid="true"', html)
    assert "<script>alert(1)" not in html  # nothing typed comes back unescaped


def test_a_nul_byte_is_refused_with_a_message_not_a_500(world, accounts, auth, client):
    login(auth, world.support)
    response = client.get("/accounts?q=blue%00", headers=HX)
    assert response.status_code == 400 and response.get_data(as_text=True).strip()


def test_a_huge_page_size_is_capped(world, accounts, auth, client):
    login(auth, world.support)
    response = client.get("/accounts?per_page=100000", headers=HX)
    assert response.headers["HX-Push-Url"] == "/accounts?per_page=200"
    assert "At most 200 accounts are shown per page" in response.get_data(as_text=True)


def test_status_counts_come_in_their_own_request(app, world, accounts, auth, client):
    login(auth, world.support)
    html = client.get("/accounts").get_data(as_text=True)
    assert 'hx-get="/accounts/counts"' in html and 'hx-trigger="load"' in html
    chips = client.get("/accounts/counts", headers=HX).get_data(as_text=True)
    assert chips.lstrip().startswith('<fieldset id="status-chips"')
    assert re.search(r'data-testid="count-all">14<', chips)
    assert re.search(r'data-testid="count-suspended">3<', chips)
    assert "Counts of all accounts, exact" in chips
    filtered = client.get("/accounts/counts?q=blue", headers=HX).get_data(as_text=True)
    assert re.search(r'data-testid="count-active">7<', filtered) and "Counts for this search" in filtered
    # without htmx the counts URL sends the browser to the list itself
    assert client.get("/accounts/counts?q=blue").headers["Location"] == "/accounts?q=blue"


def test_capped_counts_say_so(world, accounts, auth, client, monkeypatch):
    monkeypatch.setattr(search, "COUNT_CAP", 3)
    login(auth, world.support)
    chips = client.get("/accounts/counts?q=blue", headers=HX).get_data(as_text=True)
    assert re.search(r'data-testid="count-all">3\+<', chips)
    assert "“+” means at least" in chips


def test_support_sees_no_controls_and_the_endpoints_refuse_them(app, world, accounts, auth, client):
    login(auth, world.support)
    html = client.get("/accounts").get_data(as_text=True)
    assert 'name="ids"' not in html and "bulk-form" not in html and "row-status-action" not in html
    assert client.get(f"/accounts/{accounts[1]}/status-dialog", headers=HX).status_code == 403
    assert auth.post(f"/accounts/{accounts[1]}/suspend", {"reason_category": "other", "reason_note": "x",
                                                          "confirm": "1"}, htmx=True).status_code == 403
    assert auth.post("/accounts/bulk/confirm", {"action": "suspend", "ids": [accounts[1]]}).status_code == 403
    assert auth.post("/accounts/bulk", {"action": "suspend", "ids": [accounts[1]], "reason_category": "other",
                                        "reason_note": "x"}).status_code == 403
    with app.app_context():
        assert db.session.get(Account, accounts[1]).status == "active"


def _one(app, account_id):
    """A search that finds this account alone: its name's words and its number ("green shop 04" could also find
    a Green Shop whose number or email holds 04, since each word may match any of the three)."""
    with app.app_context():
        account = db.session.get(Account, account_id)
        return "+".join(account.name.lower().split()[:2] + [account.number.lower()])


def test_super_admins_get_row_checkboxes_and_the_dialog_link(app, world, accounts, auth, client):
    login(auth, world.admin)
    account_id = accounts[4]  # suspended: the row offers reactivation
    q = _one(app, account_id)
    html = client.get(f"/accounts?q={q}").get_data(as_text=True)
    assert f'name="ids" value="{account_id}" form="bulk-form"' in html
    link = re.search(r'id="status-action-(\d+)" href="([^"]+)"', html)
    assert link.group(1) == str(account_id)
    target = link.group(2).replace("&amp;", "&")
    assert target.startswith(f"/accounts/{account_id}/status-dialog?next=")
    assert parse_qs(urlsplit(target).query)["next"] == [f"/accounts?q={q}"]
    assert "Reactivate…" in html
    dialog = client.get(target, headers=HX).get_data(as_text=True)
    assert 'id="status-dialog"' in dialog and "data-autoopen" in dialog


def test_a_row_listens_for_its_status_change_and_refetches_itself(app, world, accounts, auth, client):
    login(auth, world.admin)
    account_id = accounts[1]
    html = client.get("/accounts?q=blue+shop+01").get_data(as_text=True)
    row_tag = re.search(rf'<tr id="account-row-{account_id}"[^>]*>', html).group(0)
    # account-status-changed {"id": N} is relayed as account-status-changed-N by portal.js (no filter: CSP)
    assert f'hx-trigger="account-status-changed-{account_id} from:body"' in row_tag
    row_url = re.search(r'hx-get="([^"]+)"', row_tag).group(1).replace("&amp;", "&")
    token = auth.csrf_token("/accounts")
    response = client.post(f"/accounts/{account_id}/suspend", headers={**HX, "X-CSRFToken": token},
                           data={"reason_category": "other", "reason_note": "Row test", "confirm": "1",
                                 "version": "1", "next": "/accounts?q=blue+shop+01"})
    trigger = json.loads(response.headers["HX-Trigger"])["account-status-changed"]
    assert trigger == {"id": account_id, "status": "suspended"}
    fragment = client.get(row_url, headers=HX).get_data(as_text=True)
    assert fragment.lstrip().startswith(f'<tr id="account-row-{account_id}"')
    assert 'data-testid="status-badge">Suspended<' in fragment and "Reactivate…" in fragment
    assert "next=/accounts?q%3Dblue%2Bshop%2B01" in fragment or "next=%2Faccounts" in fragment


def test_the_row_fragment_without_htmx_goes_to_the_account_page(world, accounts, auth, client):
    login(auth, world.support)
    response = client.get(f"/accounts/{accounts[2]}/row")
    assert response.status_code == 302 and response.headers["Location"] == f"/accounts/{accounts[2]}"
    assert client.get("/accounts/999999/row", headers=HX).status_code == 302


def test_an_empty_search_says_so(world, accounts, auth, client):
    login(auth, world.support)
    html = client.get("/accounts?q=zzzz", headers=HX).get_data(as_text=True)
    assert "No accounts match this search and these filters." in html
    assert "No accounts to show." in html


def test_a_stretch_without_matches_offers_to_keep_looking(world, accounts, auth, client, monkeypatch):
    monkeypatch.setattr(search, "WINDOWS", (2, 2))
    monkeypatch.setattr(search, "SCAN_BUDGET", 4)
    monkeypatch.setattr(search, "RARE_SET", 0)  # a status this rare is otherwise read by its ids at once
    login(auth, world.support)
    with client.application.app_context():
        last = db.session.scalar(select(Account.id).where(Account.name == "Green Shop 10"))
        db.session.execute(update(Account).where(Account.status == "suspended").values(status="active"))
        db.session.get(Account, last).status = "suspended"
        db.session.commit()
    html = client.get("/accounts?status=suspended", headers=HX).get_data(as_text=True)
    assert 'data-testid="keep-looking-note"' in html and "Keep looking ›" in html
    found = []
    for _ in range(20):
        found += rows(html)
        more = re.search(r'href="([^"]+)"[^>]*rel="next"', html)
        if not more:
            break
        html = client.get(more.group(1).replace("&amp;", "&"), headers=HX).get_data(as_text=True)
    assert found == [str(last)]


def test_a_signed_out_htmx_request_is_sent_to_sign_in(client):
    response = client.get("/accounts?q=blue", headers=HX)
    assert response.status_code == 401 and response.headers["HX-Redirect"].startswith("/login")


def test_a_disabled_staff_member_is_refused(app, world, auth, client):
    login(auth, world.support)
    with app.app_context():
        db.session.execute(select(User).where(User.id == world.support.id)).scalar_one().disabled = True
        db.session.commit()
    assert client.get("/accounts").status_code in (302, 303)
