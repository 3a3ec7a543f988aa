"""`flask ingestion key create|list|revoke`: a key printed once for scripts, listed by prefix, revoked."""
import hashlib
import json

import pytest
from sqlalchemy import select, update

from portal.extensions import db
from portal.models import Account, AuditEvent, IngestionKey


def number_of(app, account_id):
    with app.app_context():
        return db.session.get(Account, account_id).number


def stored_keys(app):
    with app.app_context():
        found = list(db.session.scalars(select(IngestionKey).order_by(IngestionKey.id)))
        db.session.expunge_all()
    return found


def test_create_prints_the_key_once_and_stores_its_digest(app, runner, world):
    number = number_of(app, world.account)
    result = runner.invoke(args=["ingestion", "key", "create", number, "--name", "Nightly export",
                                 "--as", world.manager.email])
    assert result.exit_code == 0, result.output
    text = result.stdout.strip()
    assert text.startswith("ik_") and len(text) == 46 and "\n" not in text  # stdout is the key alone, for scripts
    assert "It is shown only now" in result.stderr
    [key] = stored_keys(app)
    assert (key.account_id, key.name, key.prefix) == (world.account, "Nightly export", text[:11])
    assert key.digest == hashlib.sha256(text.encode()).hexdigest() and key.created_by_id == world.manager.id
    listed = runner.invoke(args=["ingestion", "key", "list", number])
    assert listed.exit_code == 0 and f"#{key.id}  {text[:11]}…  Nightly export" in listed.output
    assert "last used never  active" in listed.output and text not in listed.output
    client = app.test_client()
    response = client.post("/api/v1/ingest", headers={"Authorization": f"Bearer {text}"},
                           data=json.dumps({"records": [{"email": "a@example.com", "visited_at": "2026-11-30"}]}),
                           content_type="application/json")
    assert response.status_code == 200 and response.get_json()["accepted"] == 1


@pytest.mark.parametrize("who, message", [
    ("tier", "Your role does not allow this action."),
    ("member", "Your role does not allow this action."),
    ("other_manager", "Your role does not allow this action."),
    ("support", "Your role does not allow this action."),
])
def test_create_is_refused_to_anyone_but_the_accounts_manager(app, runner, world, who, message):
    result = runner.invoke(args=["ingestion", "key", "create", number_of(app, world.account), "--name", "Till",
                                 "--as", getattr(world, who).email])
    assert result.exit_code == 1 and message in result.output
    assert stored_keys(app) == []


def test_create_is_refused_while_the_account_is_suspended(app, runner, world):
    with app.app_context():
        db.session.execute(update(Account).where(Account.id == world.account).values(status="suspended"))
        db.session.commit()
    result = runner.invoke(args=["ingestion", "key", "create", number_of(app, world.account), "--name", "Till",
                                 "--as", world.manager.email])
    assert result.exit_code == 1 and "Your account is suspended, so this can't be changed right now" in result.output
    assert stored_keys(app) == []


@pytest.mark.parametrize("args, message", [
    (["NOPE123", "--name", "Till", "--as", "{manager}"], "No account with number or id 'NOPE123'."),
    (["{number}", "--name", "Till", "--as", "nobody@example.com"], "No user with email 'nobody@example.com'."),
    (["{number}", "--name", "", "--as", "{manager}"], "Name the key after what will use it"),
    (["{number}", "--name", "x" * 101, "--as", "{manager}"], "Keep the name to 100 characters"),
])
def test_create_says_what_is_wrong(app, runner, world, args, message):
    values = {"manager": world.manager.email, "number": number_of(app, world.account)}
    result = runner.invoke(args=["ingestion", "key", "create", *[a.format(**values) for a in args]])
    assert result.exit_code == 1 and message in result.output
    assert stored_keys(app) == []


def test_a_super_admin_creates_and_revokes_keys_for_any_account(app, runner, world):
    number = number_of(app, world.account)
    created = runner.invoke(args=["ingestion", "key", "create", number, "--name", "Support's", "--as",
                                  world.admin.email])
    assert created.exit_code == 0, created.output
    [key] = stored_keys(app)
    revoked = runner.invoke(args=["ingestion", "key", "revoke", str(key.id), "--as", world.admin.email])
    assert revoked.exit_code == 0, revoked.output


def test_revoke_ends_the_key_once_and_is_audited(app, runner, world):
    number = number_of(app, world.account)
    text = runner.invoke(args=["ingestion", "key", "create", number, "--name", "Till",
                               "--as", world.manager.email]).stdout.strip()
    [key] = stored_keys(app)
    result = runner.invoke(args=["ingestion", "key", "revoke", str(key.id), "--as", world.manager.email])
    assert result.exit_code == 0 and result.output.strip() == f"Revoked key #{key.id} {text[:11]}… 'Till'."
    [key] = stored_keys(app)
    assert key.revoked_at is not None and key.revoked_by_id == world.manager.id
    assert "revoked 20" in runner.invoke(args=["ingestion", "key", "list", number]).output
    again = runner.invoke(args=["ingestion", "key", "revoke", str(key.id), "--as", world.manager.email])
    assert again.exit_code == 1 and "was already revoked" in again.output
    with app.app_context():
        actions = db.session.scalars(select(AuditEvent.action).order_by(AuditEvent.id)).all()
    assert actions == ["ingestion_key_created", "ingestion_key_revoked"]
    response = app.test_client().post("/api/v1/ingest", headers={"Authorization": f"Bearer {text}"},
                                      json={"records": [{"email": "a@example.com", "visited_at": "2026-11-30"}]})
    assert response.status_code == 401


@pytest.mark.parametrize("key_id, code, message", [("abc", 2, "use a key id"), ("0", 2, "use a key id"),
                                                   ("999999", 1, "No such ingestion key.")])
def test_revoke_says_what_is_wrong(app, runner, world, key_id, code, message):
    result = runner.invoke(args=["ingestion", "key", "revoke", key_id, "--as", world.manager.email])
    assert result.exit_code == code and message in result.output


def test_revoke_of_another_accounts_key_is_not_found(app, runner, world, make):
    other_key = make.features(world.other_account).key
    result = runner.invoke(args=["ingestion", "key", "revoke", str(other_key), "--as", world.manager.email])
    assert result.exit_code == 1 and "No such ingestion key." in result.output
    assert all(key.revoked_at is None for key in stored_keys(app))


def test_list_of_an_account_without_keys_says_so(app, runner, world):
    result = runner.invoke(args=["ingestion", "key", "list", number_of(app, world.account)])
    assert result.exit_code == 0 and "No ingestion key in" in result.output
