"""Rules, sweep and exemption pages over HTTP, with and without htmx."""
from datetime import date, datetime

import pytest
from sqlalchemy import delete, func, select

from portal.domain import runs, sweeps
from portal.domain.runs import processing as run_processing
from portal.extensions import db
from portal.models import Account, AuditEvent, SuspensionRule, SweepRun, SweepSchedule

OLD = datetime(2022, 1, 1)


@pytest.fixture
def site(app, make, auth):
    """Default rules, three dormant accounts and one owing, a super admin signed in."""
    ids = {"dormant": [make.account(name=f"Dormant {i}", created_at=OLD, last_activity_at=OLD) for i in range(3)]}
    ids["owing"] = make.account(name="Owing <Bistro>", created_at=OLD, last_activity_at=datetime.now())
    make.invoice(ids["owing"], amount_cents=9900, due_date=date(2025, 1, 1))
    ids["admin"] = make.user("super_admin")
    ids["support"] = make.user("support")
    with app.app_context():
        db.session.execute(delete(SuspensionRule))
        db.session.execute(delete(SweepSchedule))
        for rule in sweeps.DEFAULT_RULES:
            db.session.add(SuspensionRule(enabled=True, **rule))
        db.session.commit()
    auth.login(ids["admin"].email)
    return ids


def _html(response):
    return response.get_data(as_text=True)


def _count(app, model, *where):
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(model).where(*where))


# ---------------------------------------------------------------- rules page

def test_rules_page_lists_rules_and_escapes_names(client, site):
    page = client.get("/rules")
    assert page.status_code == 200
    html = _html(page)
    assert "Inactive 12+ months" in html and "no reservation for 12+ months" in html
    assert "Non-payment" in html and "Inactivity" in html


@pytest.mark.parametrize("htmx", [False, True])
def test_a_bad_rule_is_shown_again_with_the_message_by_the_field(app, client, auth, site, htmx):
    response = auth.post("/rules", {"name": "Bad", "inactivity_months": "-2"}, htmx=htmx)
    assert response.status_code == 422
    html = _html(response)
    assert 'id="inactivity_months-error"' in html and "from 1 to 600" in html
    assert 'aria-invalid="true"' in html and 'value="-2"' in html
    assert ("<h1>" in html) is (not htmx)  # htmx gets the form block alone
    assert _count(app, SuspensionRule) == 2


def test_a_rule_without_conditions_is_refused(app, auth, site):
    response = auth.post("/rules", {"name": "Nothing"}, htmx=True)
    assert response.status_code == 422 and "Set at least one condition" in _html(response)
    assert _count(app, SuspensionRule) == 2


def test_adding_editing_disabling_and_deleting_a_rule(app, client, auth, site):
    created = auth.post("/rules", {"name": "Owes <a lot>", "min_balance": "100", "enabled": "1"})
    assert created.status_code == 303 and created.headers["Location"] == "/rules"
    html = _html(client.get("/rules"))
    assert "Owes &lt;a lot&gt;" in html and "balance over $100.00" in html
    with app.app_context():
        rule_id = db.session.scalar(select(SuspensionRule.id).where(SuspensionRule.name == "Owes <a lot>"))
    assert 'value="100.00"' in _html(client.get(f"/rules/{rule_id}/edit"))
    bad = auth.post(f"/rules/{rule_id}", {"name": "Owes", "min_balance": "lots"}, htmx=True)
    assert bad.status_code == 422 and "Enter an amount in dollars" in _html(bad)
    saved = auth.post(f"/rules/{rule_id}", {"name": "Owes", "min_balance": "150", "enabled": "1"}, htmx=True)
    assert saved.status_code == 204 and saved.headers["HX-Redirect"] == "/rules"
    assert auth.post(f"/rules/{rule_id}/enabled", {"enabled": "0"}).status_code == 303
    assert auth.post(f"/rules/{rule_id}/delete").status_code == 303
    assert _count(app, SuspensionRule) == 2
    assert [a for a in ("rule_created", "rule_updated", "rule_disabled", "rule_deleted")
            if _count(app, AuditEvent, AuditEvent.action == a) != 1] == []


def test_support_cannot_see_or_change_rules_or_sweeps(app, client, auth, site):
    auth.logout()
    auth.login(site["support"].email)
    for path in ("/rules", "/sweeps", "/sweeps/cleanup", "/sweeps/schedule"):
        assert client.get(path).status_code == 403, path
    assert auth.post("/sweeps/cleanup", {"reason_category": "by_rule", "reason_note": "x"}).status_code == 403
    assert _count(app, SweepRun) == 0


# ---------------------------------------------------------------- clean-up

def test_cleanup_page_shows_the_dry_run(client, site):
    html = _html(client.get("/sweeps/cleanup"))
    assert 'data-testid="would-change">4<' in html
    assert html.count('data-testid="sample-row"') == 4
    assert "Owing &lt;Bistro&gt;" in html and "balance $99.00" in html
    assert 'name="confirm_count"' not in html  # 4 is under the default threshold


@pytest.mark.parametrize("app_config", [{"CLEANUP_CONFIRM_THRESHOLD": 3}])
@pytest.mark.parametrize("htmx", [False, True])
def test_a_wrong_count_is_refused_at_the_field(app, auth, site, htmx):
    response = auth.post("/sweeps/cleanup", {"reason_category": "by_rule", "reason_note": "Clean-up",
                                             "confirm_count": "40"}, htmx=htmx)
    assert response.status_code == 422
    html = _html(response)
    assert 'id="confirm_count-error"' in html and "Type 4 to confirm" in html and 'value="40"' in html
    assert _count(app, SweepRun) == 0


@pytest.mark.parametrize("app_config", [{"CLEANUP_CONFIRM_THRESHOLD": 3}])
def test_the_right_count_starts_the_run_and_a_second_is_refused(app, client, auth, site):
    started = auth.post("/sweeps/cleanup", {"reason_category": "by_rule", "reason_note": "Clean-up",
                                            "confirm_count": "4"})
    assert started.status_code == 303
    with app.app_context():
        run_id = db.session.scalar(select(SweepRun.id))
    assert started.headers["Location"] == f"/sweeps/runs/{run_id}"
    again = auth.post("/sweeps/cleanup", {"reason_category": "by_rule", "reason_note": "Again",
                                          "confirm_count": "4"}, htmx=True)
    assert again.status_code == 409 and f"Run #{run_id} is still in progress" in _html(again)
    assert _count(app, SweepRun) == 1
    assert f"Run <a href=\"/sweeps/runs/{run_id}\">#{run_id}</a> is in progress" in _html(client.get("/sweeps"))


def test_run_page_polls_while_running_and_stops_when_done(app, client, auth, site):
    auth.post("/sweeps/cleanup", {"reason_category": "by_rule", "reason_note": "Clean-up"})
    with app.app_context():
        run_id = db.session.scalar(select(SweepRun.id))
    running = _html(client.get(f"/sweeps/runs/{run_id}"))
    assert 'hx-trigger="every 1s"' in running and "waiting for a sweep worker" in running
    fragment = client.get(f"/sweeps/runs/{run_id}/progress", headers={"HX-Request": "true"})
    assert fragment.status_code == 200 and "<h1>" not in _html(fragment) and 'hx-trigger="every 1s"' in _html(fragment)
    with app.app_context():
        runs.process_run(run_id, worker_name="test", poll=0)
    done = client.get(f"/sweeps/runs/{run_id}/progress", headers={"HX-Request": "true"})
    html = _html(done)
    assert "hx-trigger" not in html  # the partial that replaces the poller does not poll: polling stops
    assert 'data-testid="count-changed">4<' in html and 'aria-valuenow="100"' in html
    assert "Undo this run" in html
    history = _html(client.get("/sweeps"))
    assert f'data-run-id="{run_id}"' in history and "Clean-up" in history


def test_undo_from_the_run_page(app, client, auth, site):
    auth.post("/sweeps/cleanup", {"reason_category": "by_rule", "reason_note": "Clean-up"})
    with app.app_context():
        run_id = db.session.scalar(select(SweepRun.id))
        runs.process_run(run_id, worker_name="test", poll=0)
    bad = auth.post(f"/sweeps/runs/{run_id}/undo", {"reason_category": "", "reason_note": ""}, htmx=True)
    assert bad.status_code == 422 and 'id="undo-reason_category-error"' in _html(bad)
    undone = auth.post(f"/sweeps/runs/{run_id}/undo", {"reason_category": "other", "reason_note": "Too strict"})
    assert undone.status_code == 303 and undone.headers["Location"] == f"/sweeps/runs/{run_id + 1}"
    page = _html(client.get(f"/sweeps/runs/{run_id + 1}"))
    assert f"Undo run #{run_id + 1}" in page and f'href="/sweeps/runs/{run_id}">Run #{run_id}' in page
    twice = auth.post(f"/sweeps/runs/{run_id}/undo", {"reason_category": "other", "reason_note": "Again"})
    assert twice.status_code == 409 and _count(app, SweepRun) == 2


def test_a_failed_run_shows_why_and_can_be_resumed(app, client, auth, site):
    auth.post("/sweeps/cleanup", {"reason_category": "by_rule", "reason_note": "Clean-up"})
    with app.app_context():
        run_id = db.session.scalar(select(SweepRun.id))
        run_processing._mark_failed(run_id, RuntimeError("database went away"))
    html = _html(client.get(f"/sweeps/runs/{run_id}"))
    assert "This run failed: RuntimeError: database went away" in html and "Resume run" in html
    resumed = auth.post(f"/sweeps/runs/{run_id}/resume", htmx=True)
    assert resumed.status_code == 204 and resumed.headers["HX-Redirect"] == f"/sweeps/runs/{run_id}"
    with app.app_context():
        assert runs.progress(run_id)["status"] == "queued"


# ---------------------------------------------------------------- schedule

@pytest.mark.parametrize("htmx", [False, True])
def test_an_invalid_cron_expression_is_refused(app, auth, site, htmx):
    response = auth.post("/sweeps/schedule", {"enabled": "1", "mode": "cron", "cron": "99 * * * *"}, htmx=htmx)
    assert response.status_code == 422 and 'id="cron-error"' in _html(response)
    assert _count(app, SweepSchedule) == 0


def test_saving_the_schedule_shows_the_next_run(app, client, auth, site):
    saved = auth.post("/sweeps/schedule", {"enabled": "1", "mode": "monthly", "day_of_month": "15",
                                           "time_of_day": "04:30"})
    assert saved.status_code == 303
    html = _html(client.get("/sweeps"))
    assert "Monthly on the 15th at 04:30 UTC" in html and 'data-testid="next-run"' in html
    assert '04:30 UTC' in html


# ---------------------------------------------------------------- exemptions on the account page

def test_the_account_page_shows_the_exemption_card(client, site):
    html = _html(client.get(f"/accounts/{site['owing']}"))
    assert 'data-testid="exempt-card"' in html and "Exempt from sweeps" in html


@pytest.mark.parametrize("htmx", [False, True])
def test_exempting_from_the_account_page(app, client, auth, site, htmx):
    account_id = site["owing"]
    missing = auth.post(f"/accounts/{account_id}/exempt", {"exempt_reason": ""}, htmx=htmx)
    assert missing.status_code == 422 and 'aria-invalid="true"' in _html(missing)
    done = auth.post(f"/accounts/{account_id}/exempt", {"exempt_reason": "Key partner"}, htmx=htmx)
    if htmx:
        assert done.status_code == 200 and "Key partner" in _html(done)
        assert "account-exempted" in done.headers["HX-Trigger"]
    else:
        assert done.status_code == 303 and done.headers["Location"] == f"/accounts/{account_id}"
    assert "Sweeps never suspend this account" in _html(client.get(f"/accounts/{account_id}"))
    again = auth.post(f"/accounts/{account_id}/exempt", {"exempt_reason": "Twice"}, htmx=htmx)
    assert again.status_code == 409
    cleared = auth.post(f"/accounts/{account_id}/exempt/clear", {"exempt_reason": "Contract ended"}, htmx=htmx)
    assert cleared.status_code in (200, 303)
    with app.app_context():
        assert db.session.get(Account, account_id).exempt is False
    assert _count(app, AuditEvent, AuditEvent.account_id == account_id) == 2
