"""What a run changed: the account list's "changed by run #N" filter for every kind of run (clean-up, scheduled
sweep, bulk suspend and reactivate made at once or queued, undo, the daily dunning run), with the other filters,
the CSV export and bulk actions; unknown runs explained at the field; the undone and undo links on run pages; the
finished bulk dialog naming its run."""
import csv
import io
import re
from datetime import date, datetime, timedelta

import pytest
from sqlalchemy import delete, func, select

from portal.domain import bulk, runs, suspension, sweeps
from portal.domain.dunning.daily import start_daily_run
from portal.extensions import db
from portal.models import Account, AuditEvent, SuspensionRule, SweepRun, User

HX = {"HX-Request": "true"}
OLD = datetime(2022, 1, 1)
DAY = date(2026, 12, 1)


@pytest.fixture
def app_config():
    return {"LOGIN_RATE_LIMIT": "1000 per minute", "BULK_ASYNC_THRESHOLD": 3}


@pytest.fixture
def town(app, make, auth):
    """Four dormant shops (one exempt), two recent ones, one overdue in a dunning class; one inactivity rule."""
    cls = make.customer_class(limit_after_days=15, suspend_after_days=40)
    ids = {f"old{i}": make.account(name=f"Old Shop {i}", created_at=OLD, last_activity_at=OLD) for i in range(4)}
    ids["exempt"] = make.account(name="Old Exempt", created_at=OLD, last_activity_at=OLD, exempt=True)
    for i in range(2):
        ids[f"recent{i}"] = make.account(name=f"Recent Shop {i}", created_at=OLD, last_activity_at=datetime.now())
    ids["owing"] = make.account(name="Owing Shop", created_at=OLD, last_activity_at=datetime.now(),
                                customer_class_id=cls)
    make.invoice(ids["owing"], due_date=DAY - timedelta(days=20))
    ids["manager"] = make.user("account_manager", ids["old0"])
    admin = make.user("super_admin")
    ids["admin_id"], ids["admin_email"] = admin.id, admin.email
    with app.app_context():
        db.session.execute(delete(SuspensionRule))
        db.session.add(SuspensionRule(enabled=True, **sweeps.DEFAULT_RULES[0]))  # inactive 12+ months
        db.session.get(Account, ids["owing"]).dunning_next_on = DAY
        db.session.commit()
    auth.login(admin.email)
    return ids


def _admin(town):
    return db.session.get(User, town["admin_id"])


def _listed(client, query, htmx=True):
    """The account ids the list shows for a query string (a fragment with htmx, the whole page without)."""
    response = client.get(f"/accounts?{query}", headers=HX if htmx else {})
    assert response.status_code == 200
    return {int(i) for i in re.findall(r'data-testid="account-row" data-account-id="(\d+)"', _html(response))}


def _html(response):
    return response.get_data(as_text=True)


def _exported(client, query):
    response = client.get(f"/accounts/export.csv?{query}")
    assert response.status_code == 200, _html(response)
    rows = list(csv.DictReader(io.StringIO(_html(response))))
    return {row["name"] for row in rows}


def _names(app, ids):
    with app.app_context():
        return set(db.session.scalars(select(Account.name).where(Account.id.in_(ids))))


def _cleanup(app, town):
    with app.app_context():
        run = sweeps.start_cleanup(_admin(town), sweeps.BY_RULE, "Dormant shops")
        runs.process_run(run.id, worker_name="test", poll=0)
        return run.id


def _undo(app, town, run_id):
    with app.app_context():
        undo = sweeps.start_undo(_admin(town), run_id, "other", "Too strict")
        runs.process_run(undo.id, worker_name="test", poll=0)
        return undo.id


def _changed_by_events(app, run_id):
    with app.app_context():
        return set(db.session.scalars(select(AuditEvent.account_id).where(
            AuditEvent.actor_run_id == run_id, AuditEvent.account_id.is_not(None))))


DORMANT = [f"old{i}" for i in range(4)]


# ---------------------------------------------------------------- each kind of run

def test_a_cleanup_and_its_undo_each_list_what_they_changed(app, client, town):
    cleanup = _cleanup(app, town)
    suspended = {town[k] for k in DORMANT}  # not the exempt one
    assert _listed(client, f"run={cleanup}") == suspended
    with app.app_context():  # an admin reactivates one by hand: the undo leaves it alone
        suspension.reactivate(_admin(town), town["old3"], "other", "Paid at the counter")
    undo = _undo(app, town, cleanup)
    assert _listed(client, f"run={undo}") == suspended - {town["old3"]} == _changed_by_events(app, undo)
    # the undone run still lists what it changed (now active again): suspended_by_run_id would list nothing
    assert _listed(client, f"run={cleanup}") == suspended
    assert _listed(client, f"run={cleanup}&status=suspended") == set()
    with app.app_context():
        assert db.session.scalar(select(func.count()).where(Account.suspended_by_run_id == cleanup)) == 0


def test_a_scheduled_sweep_lists_what_it_suspended(app, client, town):
    with app.app_context():
        suspension.suspend(_admin(town), town["old1"], "other", "By hand first")
        run = sweeps.start_recurring(None, "recurring:2026-12")
        runs.process_run(run.id, worker_name="test", poll=0)
    assert _listed(client, f"run={run.id}") == {town["old0"], town["old2"], town["old3"]}


def test_bulk_changes_made_at_once_and_queued_each_list_what_they_changed(app, client, town):
    with app.app_context():
        inline = bulk.apply(_admin(town), "suspend", "selected", [town["recent0"], town["old0"], town["exempt"]],
                            None, "other", "Checked by phone")
        assert not inline.queued and inline.run_id
        run = db.session.get(SweepRun, inline.run_id)
        assert (run.kind, run.status, run.changed, run.skipped) == ("bulk", "done", 2, 1)
        # every audit event of the change carries the run, as a queued run's do
        events = db.session.execute(select(AuditEvent.account_id, AuditEvent.actor_user_id).where(
            AuditEvent.actor_run_id == inline.run_id, AuditEvent.account_id.is_not(None))).all()
        assert sorted(events) == sorted([(town["recent0"], town["admin_id"]), (town["old0"], town["admin_id"])])
    assert _listed(client, f"run={inline.run_id}") == {town["recent0"], town["old0"]}
    with app.app_context():  # more than the threshold of 3: a queued run, reactivating
        queued = bulk.apply(_admin(town), "reactivate", "filter", (), {"exempt": "no"}, "other", "Done")
        assert queued.queued
        runs.process_run(queued.run_id, worker_name="test", poll=0)
    assert _listed(client, f"run={queued.run_id}") == {town["recent0"], town["old0"]}


def test_a_queued_bulk_suspension_lists_what_it_suspended(app, client, town):
    with app.app_context():
        queued = bulk.apply(_admin(town), "suspend", "filter", (), {"q": "old"}, "other", "Dormant")
        assert queued.queued
        runs.process_run(queued.run_id, worker_name="test", poll=0)
    assert _listed(client, f"run={queued.run_id}") == {town[k] for k in DORMANT}


def test_the_daily_dunning_run_lists_what_it_limited(app, client, town):
    with app.app_context():
        run = start_daily_run(None, DAY, enqueue=False)
        runs.process_run(run.id, worker_name="test", poll=0)
        assert db.session.get(Account, town["owing"]).status == "limited"
    assert _listed(client, f"run={run.id}") == {town["owing"]}


# ---------------------------------------------------------------- with the other filters, the CSV, bulk

def _number(app, town, key):
    with app.app_context():
        return db.session.get(Account, town[key]).number


def test_the_filter_works_with_other_filters_and_the_csv(app, client, town):
    # Searched by a name and the account's number: "old shop 1" would also find a shop whose email or number
    # holds a 1 (each word may match any of the three).
    cleanup = _cleanup(app, town)
    assert _listed(client, f"run={cleanup}&q=old+shop+{_number(app, town, 'old1')}") == {town["old1"]}
    assert _listed(client, f"run={cleanup}&status=active") == set()
    assert _listed(client, f"run={cleanup}&exempt=yes") == set()
    assert _listed(client, f"run={cleanup}&sort=-name&per_page=10") == {town[k] for k in DORMANT}
    assert _exported(client, f"run={cleanup}") == {f"Old Shop {i}" for i in range(4)}
    assert _exported(client, f"run={cleanup}&q=old+shop+{_number(app, town, 'old2')}") == {"Old Shop 2"}
    with app.app_context():
        suspension.reactivate(_admin(town), town["old0"], "other", "Paid")
    assert _exported(client, f"run={cleanup}&status=suspended") == {"Old Shop 1", "Old Shop 2", "Old Shop 3"}


def test_the_filter_works_when_the_run_changed_many_accounts(app, client, town, monkeypatch):
    """Past SMALL_SET the list walks its sort index and the export reads the run's ids in chunks."""
    from portal.domain import account_search

    cleanup = _cleanup(app, town)
    monkeypatch.setattr(account_search, "SMALL_SET", 1)
    monkeypatch.setattr(account_search, "EXPORT_CHUNK", 2)
    assert _listed(client, f"run={cleanup}") == {town[k] for k in DORMANT}
    assert _listed(client, f"run={cleanup}&q=old+shop+{_number(app, town, 'old3')}") == {town["old3"]}
    assert _exported(client, f"run={cleanup}") == {f"Old Shop {i}" for i in range(4)}
    assert _exported(client, f"run={cleanup}&q=old+shop+{_number(app, town, 'old3')}") == {"Old Shop 3"}


def test_a_bulk_action_over_the_filtered_list_keeps_to_the_run(app, auth, town):
    cleanup = _cleanup(app, town)
    response = auth.post("/accounts/bulk/confirm", {"action": "reactivate", "scope": "filter", "run": str(cleanup),
                                                    "next": f"/accounts?run={cleanup}"}, htmx=True, page="/accounts")
    html = _html(response)
    assert response.status_code == 200 and re.search(r"exactly <strong>4</strong>", html)
    assert f'name="run" value="{cleanup}"' in html  # carried to the apply form


# ---------------------------------------------------------------- the chip and bad input

@pytest.mark.parametrize("htmx", [False, True])
def test_the_filter_shows_as_a_removable_chip(app, client, town, htmx):
    cleanup = _cleanup(app, town)
    html = _html(client.get(f"/accounts?run={cleanup}&q=old", headers=HX if htmx else {}))
    if htmx:  # the results alone: the form with its chip stays on the page
        assert 'data-testid="run-chip"' not in html and "<html" not in html
        return
    assert f"Changed by run #{cleanup}" in html and 'data-testid="run-chip"' in html
    chip = re.search(r'<a class="chip chip-removable" href="([^"]+)"', html).group(1).replace("&amp;", "&")
    assert chip == "/accounts?q=old"  # the other filters stay
    assert f'<input type="hidden" name="run" value="{cleanup}">' in html  # kept when the form is sent
    assert f'href="/sweeps/runs/{cleanup}"' in html
    assert f"/accounts/export.csv?q=old&amp;run={cleanup}" in html or f"run={cleanup}&amp;q=old" in html


@pytest.mark.parametrize("value, message", [("999", "There is no run #999"), ("abc", "takes a run number")])
def test_an_unknown_run_is_explained_at_the_field_and_ignored(app, client, town, value, message):
    _cleanup(app, town)
    page = client.get(f"/accounts?run={value}")
    html = _html(page)
    assert page.status_code == 200 and message in html
    assert re.search(r'<p class="field-error" id="run-problem"[^>]*>[^<]*' + re.escape(message), html)
    assert len(_listed(client, f"run={value}")) == 8  # the filter is ignored: every account
    export = client.get(f"/accounts/export.csv?run={value}")
    assert export.status_code == 422 and "Nothing was exported" in _html(export)


def test_support_sees_the_filter_without_the_link_to_the_run(app, client, auth, town, make):
    cleanup = _cleanup(app, town)
    support = make.user("support")
    auth.logout()
    auth.login(support.email)
    html = _html(client.get(f"/accounts?run={cleanup}"))
    assert f"Changed by run #{cleanup}" in html and f'href="/sweeps/runs/{cleanup}"' not in html
    assert _listed(client, f"run={cleanup}") == {town[k] for k in DORMANT}


# ---------------------------------------------------------------- run pages and the bulk dialog

@pytest.mark.parametrize("htmx", [False, True])
def test_an_undone_run_links_to_its_undo_and_back(app, client, town, htmx):
    cleanup = _cleanup(app, town)
    undo = _undo(app, town, cleanup)
    page = _html(client.get(f"/sweeps/runs/{cleanup}", headers=HX if htmx else {}))  # the whole page either way
    notice = re.search(r'data-testid="undone-notice">(.*?)</p>', page, re.S).group(1)
    assert f'<a href="/sweeps/runs/{undo}">run #{undo}</a>' in notice and "reactivated 4 of the accounts" in notice
    assert f'href="/accounts?run={cleanup}"' in page
    back = _html(client.get(f"/sweeps/runs/{undo}"))
    assert re.search(rf'data-testid="undoes-notice">This run undoes <a href="/sweeps/runs/{cleanup}">run #{cleanup}', back)
    assert f'href="/accounts?run={undo}"' in back


def test_the_finished_bulk_dialog_names_its_run(app, client, auth, town):
    inline = auth.post("/accounts/bulk", {"action": "suspend", "scope": "selected", "ids": [town["recent1"]],
                                          "reason_category": "other", "reason_note": "Asked", "next": "/accounts"},
                       htmx=True, page="/accounts")
    with app.app_context():
        inline_id = db.session.scalar(select(func.max(SweepRun.id)))
    html = _html(inline)
    assert 'data-testid="bulk-summary"' in html and f'href="/sweeps/runs/{inline_id}">Run #{inline_id}</a>' in html
    assert f'href="/accounts?run={inline_id}"' in html
    plain = auth.post("/accounts/bulk", {"action": "reactivate", "scope": "selected", "ids": [town["recent1"]],
                                         "reason_category": "other", "reason_note": "Back", "next": "/accounts"},
                      page="/accounts")
    assert plain.status_code == 303
    assert f"It is recorded as run #{inline_id + 1}." in _html(client.get("/accounts"))
    queued = auth.post("/accounts/bulk", {"action": "suspend", "scope": "filter", "q": "old", "reason_category":
                                          "other", "reason_note": "Dormant", "next": "/accounts"},
                       htmx=True, page="/accounts")
    run_id = int(re.search(r"/accounts/bulk/runs/(\d+)", _html(queued)).group(1))
    assert 'data-testid="bulk-run"' not in _html(queued)  # not finished yet
    with app.app_context():
        runs.process_run(run_id, worker_name="test", poll=0)
    done = _html(client.get(f"/accounts/bulk/runs/{run_id}", headers=HX))
    assert f'href="/sweeps/runs/{run_id}">Run #{run_id}</a>' in done and f'href="/accounts?run={run_id}"' in done
