"""`flask api-token ...` and `flask api openapi`: a token printed once for scripts, listed, revoked; the document."""
import json

from sqlalchemy import select

from portal.extensions import db
from portal.models import ApiToken
from tests.api_support import Api, problem


def test_create_prints_the_token_alone_on_standard_output(app, runner, world, client):
    result = runner.invoke(args=["api-token", "create", "nightly-export", "--scopes", "accounts:read,runs:read",
                                 "--as", world.admin.email, "--expires", "2099-01-01"])
    assert result.exit_code != 0 and "within 366 days" in result.output  # too far ahead
    result = runner.invoke(args=["api-token", "create", "nightly-export", "--scopes", "accounts:read,runs:read",
                                 "--as", world.admin.email])
    assert result.exit_code == 0, result.output
    text = result.stdout.strip()
    assert text.startswith("ak_") and "\n" not in text
    assert "shown only now" in result.stderr
    assert Api(client, text).get("/api/v1/accounts").status_code == 200
    with app.app_context():
        token = db.session.scalars(select(ApiToken)).one()
        assert token.scope_list == ["accounts:read", "runs:read"] and token.created_by_id == world.admin.id


def test_create_refuses_a_support_person_and_an_unknown_scope(runner, world):
    result = runner.invoke(args=["api-token", "create", "x", "--scopes", "accounts:read", "--as", world.support.email])
    assert result.exit_code == 1 and "super admin" in result.output
    result = runner.invoke(args=["api-token", "create", "x", "--scopes", "everything", "--as", world.admin.email])
    assert result.exit_code == 1 and "Unknown scope" in result.output


def test_list_and_revoke_by_prefix(app, runner, world, client):
    text = runner.invoke(args=["api-token", "create", "crm", "--scopes", "accounts:read",
                               "--as", world.admin.email]).stdout.strip()
    listed = runner.invoke(args=["api-token", "list"])
    assert listed.exit_code == 0 and text[:11] in listed.output and "crm" in listed.output and "active" in listed.output
    assert text not in listed.output
    revoked = runner.invoke(args=["api-token", "revoke", text[:11] + "…", "--as", world.admin.email])
    assert revoked.exit_code == 0, revoked.output
    problem(Api(client, text).get("/api/v1/accounts"), 401, "unauthorized")
    again = runner.invoke(args=["api-token", "revoke", text[:11], "--as", world.admin.email])
    assert again.exit_code == 1 and "already revoked" in again.output
    assert runner.invoke(args=["api-token", "revoke", "ak_nothing", "--as", world.admin.email]).exit_code == 1


def test_prune_reports_what_it_deleted(runner, world):
    result = runner.invoke(args=["api-token", "prune"])
    assert result.exit_code == 0 and "Deleted 0 logged requests" in result.output


def test_openapi_prints_the_document_and_checks_the_copy(runner, tmp_path, monkeypatch):
    printed = runner.invoke(args=["api", "openapi"])
    assert printed.exit_code == 0
    assert json.loads(printed.output)["openapi"] == "3.1.0"
    assert runner.invoke(args=["api", "openapi", "--check"]).exit_code == 0
    from portal.api import docs

    stale = tmp_path / "openapi.json"
    stale.write_text("{}")
    monkeypatch.setattr(docs, "CHECKED_IN", str(stale))
    checked = runner.invoke(args=["api", "openapi", "--check"])
    assert checked.exit_code == 1 and "--write" in checked.output
    monkeypatch.setattr(docs.write_document, "__defaults__", (str(stale), None))
    assert runner.invoke(args=["api", "openapi", "--write"]).exit_code == 0
    assert runner.invoke(args=["api", "openapi", "--check"]).exit_code == 0
