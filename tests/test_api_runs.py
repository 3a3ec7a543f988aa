"""Sweep runs through the API on both databases: the dry run, a clean-up started with the confirmation count,
its progress and report, and its undo; each the function the sweeps pages call."""
from datetime import datetime

import pytest
from sqlalchemy import delete, select

from portal.domain import runs, sweeps
from portal.extensions import db
from portal.models import Account, SuspensionRule, SweepRun
from tests.api_support import Api, make_token, number_of, problem

OLD = datetime(2023, 1, 1)
NOTE = {"reason_note": "Yearly clean-up from the operations script"}


@pytest.fixture
def dormant(app, make):
    """The default rules, and three accounts with no reservation for years."""
    ids = [make.account(name=f"Dormant {i}", created_at=OLD, last_activity_at=OLD) for i in range(3)]
    with app.app_context():
        db.session.execute(delete(SuspensionRule))
        for rule in sweeps.DEFAULT_RULES:
            db.session.add(SuspensionRule(enabled=True, **rule))
        db.session.commit()
    return ids


@pytest.fixture
def api(app, client, world):
    return Api(client, make_token(app, world.admin.id))


def process(app, run_id):
    with app.app_context():
        result = runs.process_run(run_id, worker_name="test", poll=0)
        db.session.remove()
    return result


def statuses(app, ids):
    with app.app_context():
        found = [db.session.get(Account, i).status for i in ids]
        db.session.remove()
    return found


def test_the_preview_says_what_a_clean_up_would_do(api, dormant, world):
    body = api.get("/api/v1/runs/preview?sample_size=2").get_json()
    assert body["would_change"] == 5  # the three dormant accounts and the world's two, never used
    assert len(body["sample"]) == 2 and body["sample"][0]["rules"] == ["Inactive 12+ months"]
    assert body["needs_confirmation"] is False and body["running_run_id"] is None
    assert {r["name"] for r in body["rules"]} == {r["name"] for r in sweeps.DEFAULT_RULES}


def test_a_clean_up_runs_reports_and_is_undone(app, api, dormant):
    started = api.post("/api/v1/runs/cleanup", NOTE)
    assert started.status_code == 202
    run = started.get_json()
    assert run["kind"] == "cleanup" and run["progress"]["status"] == "queued"
    assert run["triggered_by"] == "Ada Admin"
    problem(api.post("/api/v1/runs/cleanup", NOTE), 409, "run-in-progress")
    process(app, run["id"])
    report = api.get(f"/api/v1/runs/{run['id']}").get_json()
    assert report["progress"]["status"] == "done" and report["progress"]["changed"] == 5
    assert report["progress"]["processed"] == report["progress"]["total"] > 0  # accounts, as the run page says
    assert "accounts" in report["progress"]["summary"]
    assert report["can_undo"] is True
    assert statuses(app, dormant) == ["suspended"] * 3
    assert [r["id"] for r in api.get("/api/v1/runs").get_json()["items"]] == [run["id"]]
    undo = api.post(f"/api/v1/runs/{run['id']}/undo", {"reason_category": "other", "reason_note": "Too early"})
    assert undo.status_code == 202 and undo.get_json()["undo_of_run_id"] == run["id"]
    process(app, undo.get_json()["id"])
    assert statuses(app, dormant) == ["active"] * 3
    problem(api.post(f"/api/v1/runs/{run['id']}/undo", {"reason_category": "other", "reason_note": "again"}),
            409, "invalid-transition")


@pytest.mark.parametrize("app_config", [{"CLEANUP_CONFIRM_THRESHOLD": 2}])
def test_above_the_threshold_the_count_must_be_confirmed(app, api, dormant, app_config):
    body = problem(api.post("/api/v1/runs/cleanup", NOTE), 422, "validation")
    assert "Type 5 to confirm" in body["errors"]["confirm_count"]
    problem(api.post("/api/v1/runs/cleanup", dict(NOTE, confirm_count=4)), 422, "validation")
    with app.app_context():
        assert db.session.scalars(select(SweepRun)).all() == []
    assert api.post("/api/v1/runs/cleanup", dict(NOTE, confirm_count=5)).status_code == 202


def test_an_unknown_run_is_not_found_and_a_bad_reason_is_refused(app, api, dormant):
    problem(api.get("/api/v1/runs/999999"), 404, "not-found")
    problem(api.post("/api/v1/runs/cleanup", {"reason_category": "whim", "reason_note": "x"}), 422, "validation")
    problem(api.post("/api/v1/runs/cleanup", {}), 422, "validation")


def test_a_support_owned_token_cannot_drive_runs(app, client, world, dormant):
    api = Api(client, make_token(app, world.admin2.id))
    with app.app_context():
        from portal.models import User

        db.session.get(User, world.admin2.id).role = "support"
        db.session.commit()
    problem(api.get("/api/v1/runs/preview"), 403, "not-allowed")
    assert number_of(app, world.account)
