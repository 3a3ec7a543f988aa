"""Bulk suspend and reactivate from the account list: the confirmation (exact count, sample), small
selections inline through the suspension domain, large ones as a run on the sweeps queue with progress."""
import json
import re

import pytest
from sqlalchemy import func, select

from portal.domain import account_search as search
from portal.domain import runs
from portal.extensions import db
from portal.models import Account, AuditEvent, OutboxEmail, SweepRun

HX = {"HX-Request": "true"}


@pytest.fixture
def app_config():
    return {"LOGIN_RATE_LIMIT": "1000 per minute", "BULK_ASYNC_THRESHOLD": 4}


@pytest.fixture
def shops(app, world, make):
    """Six "Blue Shop" accounts: 0 already suspended, 1 exempt, the rest active; shop 2 has a manager."""
    ids = [make.account(name=f"Blue Shop {i}", status="suspended" if i == 0 else "active", exempt=(i == 1))
           for i in range(6)]
    make.user("account_manager", ids[2], email="shop2-manager@example.test")
    return ids


def post(auth, path, data, htmx=True):
    return auth.post(path, data, htmx=htmx, page="/accounts")


def state(app, account_id):
    with app.app_context():
        return db.session.get(Account, account_id).status


def test_the_confirmation_shows_the_exact_count_and_a_sample(app, world, shops, auth):
    auth.login(world.admin.email)
    response = post(auth, "/accounts/bulk/confirm", {"action": "suspend", "scope": "filter", "q": "blue shop",
                                                     "status": "active", "next": "/accounts?q=blue+shop"})
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert html.lstrip().startswith('<dialog id="bulk-dialog"') and "data-autoopen" in html
    assert re.search(r"exactly <strong>5</strong>", html)
    assert re.findall(r"<li>(Blue Shop \d)", html) == [f"Blue Shop {i}" for i in range(1, 6)]
    assert "runs in the background" in html  # 5 > the threshold of 4
    assert 'name="q" value="blue shop"' in html and 'name="status" value="active"' in html


def test_ticked_accounts_change_inline_with_one_reason_and_a_summary(app, world, shops, auth):
    auth.login(world.admin.email)
    ticked = [shops[0], shops[1], shops[2], shops[3]]
    response = post(auth, "/accounts/bulk", {"action": "suspend", "scope": "selected", "ids": ticked,
                                             "reason_category": "non_payment", "reason_note": "Unpaid since May",
                                             "next": "/accounts"})
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and 'data-testid="bulk-summary"' in html
    assert "Suspended 2 accounts; left 2 alone (1 already suspended, 1 exempt)." in html
    assert json.loads(response.headers["HX-Trigger"])["accounts-bulk-finished"]["ids"] == [shops[2], shops[3]]
    assert [state(app, i) for i in shops] == ["suspended", "active", "suspended", "suspended", "active", "active"]
    with app.app_context():
        events = db.session.execute(select(AuditEvent.account_id, AuditEvent.action, AuditEvent.reason_category,
                                           AuditEvent.reason_note, AuditEvent.actor_user_id)
                                    .where(AuditEvent.action == "suspended")).all()
        assert sorted(events) == [(shops[2], "suspended", "non_payment", "Unpaid since May", world.admin.id),
                                  (shops[3], "suspended", "non_payment", "Unpaid since May", world.admin.id)]
        emails = db.session.scalars(select(OutboxEmail.to_addr).where(OutboxEmail.kind == "account_suspended"))
        assert list(emails) == ["shop2-manager@example.test"]


def test_reactivating_skips_accounts_that_are_not_suspended(app, world, shops, auth):
    auth.login(world.admin.email)
    response = post(auth, "/accounts/bulk", {"action": "reactivate", "scope": "selected",
                                             "ids": [shops[0], shops[4]], "reason_category": "other",
                                             "reason_note": "Paid at the counter"})
    assert "Reactivated 1 account; left 1 alone (1 already active)." in response.get_data(as_text=True)
    assert state(app, shops[0]) == "active"


def test_without_javascript_the_summary_is_flashed_after_a_303(app, world, shops, auth, client):
    auth.login(world.admin.email)
    response = post(auth, "/accounts/bulk", {"action": "suspend", "scope": "selected", "ids": [shops[4]],
                                             "reason_category": "other", "reason_note": "Asked by phone",
                                             "next": "/accounts?q=blue"}, htmx=False)
    assert response.status_code == 303 and response.headers["Location"] == "/accounts?q=blue"
    assert "Suspended 1 account." in client.get("/accounts?q=blue").get_data(as_text=True)
    confirm = post(auth, "/accounts/bulk/confirm", {"action": "reactivate", "ids": [shops[4]]}, htmx=False)
    page = confirm.get_data(as_text=True)
    assert "<html" in page and "<dialog id=\"bulk-dialog\"" in page and " open" in page


@pytest.mark.parametrize("fields, message", [
    ({"reason_category": "", "reason_note": "x"}, "Choose a reason."),
    ({"reason_category": "other", "reason_note": ""}, "Write a short note"),
    ({"reason_category": "made-up", "reason_note": "x"}, "Choose one of the listed reasons."),
])
def test_a_missing_reason_keeps_the_dialog_with_the_message(app, world, shops, auth, fields, message):
    auth.login(world.admin.email)
    response = post(auth, "/accounts/bulk", {"action": "suspend", "scope": "selected", "ids": [shops[4]], **fields})
    html = response.get_data(as_text=True)
    assert response.status_code == 422 and message in html and 'aria-invalid="true"' in html
    assert 'name="ids" value="%d"' % shops[4] in html
    assert state(app, shops[4]) == "active"


@pytest.mark.parametrize("data", [
    {"action": "suspend", "scope": "selected"},
    {"action": "suspend", "scope": "selected", "ids": ["abc", "-1"]},
    {"action": "explode", "scope": "selected", "ids": ["1"]},
    {"action": "suspend", "scope": "filter", "balance_min": "lots"},
])
def test_nothing_ticked_or_a_bad_request_is_explained(world, shops, auth, data):
    auth.login(world.admin.email)
    response = post(auth, "/accounts/bulk/confirm", data)
    assert response.status_code == 422 and 'data-testid="bulk-problem"' in response.get_data(as_text=True)


def test_support_cannot_follow_a_bulk_run(app, world, shops, auth, client):
    auth.login(world.support.email)
    assert client.get("/accounts/bulk/runs/1", headers=HX).status_code == 403


@pytest.mark.slow
def test_a_large_selection_runs_on_the_sweeps_queue_with_progress_and_a_summary(app, world, shops, auth, client,
                                                                                run_worker):
    auth.login(world.admin.email)
    data = {"action": "suspend", "scope": "filter", "q": "blue shop", "next": "/accounts?q=blue+shop"}
    confirm = post(auth, "/accounts/bulk/confirm", data).get_data(as_text=True)
    confirmed = int(re.search(r"exactly <strong>(\d+)</strong>", confirm).group(1))
    assert confirmed == 6
    response = post(auth, "/accounts/bulk", {**data, "reason_category": "inactivity", "reason_note": "Dormant"})
    html = response.get_data(as_text=True)
    run_id = int(re.search(r"/accounts/bulk/runs/(\d+)", html).group(1))
    assert 'hx-trigger="every 1s"' in html and 'data-testid="bulk-progress"' in html
    assert "HX-Trigger" not in response.headers  # not finished yet
    result = run_worker("sweeps")
    assert result.returncode == 0, result.stderr[-2000:]
    done = client.get(f"/accounts/bulk/runs/{run_id}?next=/accounts?q%3Dblue%2Bshop", headers=HX)
    done_html = done.get_data(as_text=True)
    assert 'hx-trigger="every 1s"' not in done_html and 'data-status="done"' in done_html
    assert "Done: 4 changed, 2 left alone, of 6 matched." in done_html
    assert "1 already suspended" in done_html and "1 exempt" in done_html
    assert json.loads(done.headers["HX-Trigger"])["accounts-bulk-finished"] == {"run_id": run_id}
    with app.app_context():
        run = db.session.get(SweepRun, run_id)
        assert (run.kind, run.action, run.status) == ("bulk", "suspend", "done")
        assert run.params["selection"] == {"type": "filter", "filter": {"q": "blue shop"}}
        events = db.session.scalar(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.actor_run_id == run_id, AuditEvent.action == "suspended"))
        assert runs.progress(run_id)["matched"] == confirmed  # the run matched what the confirmation counted
    assert events == 4
    assert [state(app, i) for i in shops] == ["suspended", "active", "suspended", "suspended", "suspended",
                                              "suspended"]


def test_the_run_selects_exactly_what_the_confirmation_counted(app, world, shops, auth):
    """The bulk run's filter selection and the list share one WHERE: same accounts, same count."""
    with app.app_context():
        f = search.parse_filters({"q": "blue shop", "exempt": "no"})
        clause = search.selection_clause({"type": "filter", "filter": f.selection_filter()})
        assert db.session.scalar(select(func.count()).where(clause)) == search.count_matching(f) == 5


def test_without_javascript_a_large_selection_goes_to_its_progress_page(app, world, shops, auth, client):
    auth.login(world.admin.email)
    response = post(auth, "/accounts/bulk", {"action": "suspend", "scope": "filter", "q": "blue shop",
                                             "reason_category": "inactivity", "reason_note": "Dormant",
                                             "next": "/accounts?q=blue+shop"}, htmx=False)
    assert response.status_code == 303
    location = response.headers["Location"]
    assert re.match(r"/accounts/bulk/runs/\d+\?next=", location)
    page = client.get(location).get_data(as_text=True)
    assert "<html" in page and 'data-testid="bulk-progress"' in page and ">Refresh<" in page
    assert 'href="/accounts?q=blue+shop"' in page
