"""POST /api/v1/ingest: keyed ingestion, the gate's refusals (nothing inserted), duplicates, races and bad input."""
import hashlib
import json
import threading
from datetime import datetime

import pytest
from sqlalchemy import event, func, select, update

from portal.domain import gate, suspension
from portal.domain.features import campaigns, ingestion_keys
from portal.extensions import db
from portal.models import Account, AuditEvent, IngestionKey, IngestionRecord, SurveyRequest, User

URL = "/api/v1/ingest"
NOW = datetime(2026, 12, 1, 12, 0)


@pytest.fixture
def app_config():
    return {"INGEST_RATE_LIMIT": "1000 per minute"}


def new_key(app, manager, name="Till"):
    """Create a key as the manager; return its text."""
    with app.app_context():
        _key, text = ingestion_keys.create_key(db.session.get(User, manager.id), manager.account_id, name)
        db.session.remove()
    return text


def post(client, key, body, content_type="application/json", headers=None):
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    sent = {"Content-Type": content_type, **(headers or {})}
    if key is not None:
        sent["Authorization"] = f"Bearer {key}"
    return client.post(URL, data=data, headers=sent)


def row(external_id="visit-1", email="rita@example.com", visited_at="2026-11-30T19:30", name="Rita Guest"):
    return {"name": name, "email": email, "visited_at": visited_at, "external_id": external_id}


def counts(app):
    """Rows of the tables an ingestion writes."""
    with app.app_context():
        found = {model.__tablename__: db.session.scalar(select(func.count()).select_from(model))
                 for model in (IngestionRecord, SurveyRequest, AuditEvent)}
        found["key_uses"] = db.session.scalar(select(func.count()).select_from(IngestionKey)
                                              .where(IngestionKey.last_used_at.is_not(None)))
        db.session.remove()
    return found


def set_status(app, account_id, status):
    with app.app_context():
        db.session.execute(update(Account).where(Account.id == account_id).values(status=status))
        db.session.commit()
        db.session.remove()


# ---------------------------------------------------------------- accepted rows

def test_a_batch_is_ingested_with_counts_and_a_result_per_row(app, client, world):
    key = new_key(app, world.manager)
    body = {"records": [row("v-1", visited_at="2026-11-30T19:30+02:00"), row("v-2", email="Bo@Example.COM", name=None),
                        row("v-3", email="not an email")]}
    response = post(client, key, body)
    assert response.status_code == 200, response.get_json()
    answer = response.get_json()
    assert (answer["accepted"], answer["duplicated"], answer["rejected"]) == (2, 0, 1)
    assert [(r["index"], r["external_id"], r["outcome"]) for r in answer["results"]] == [
        (0, "v-1", "accepted"), (1, "v-2", "accepted"), (2, "v-3", "rejected")]
    assert "email 'not an email' is not a valid address" in answer["results"][2]["reason"]
    with app.app_context():
        records = {r.external_id: r for r in db.session.scalars(select(IngestionRecord))}
        assert set(records) == {"v-1", "v-2"}
        assert records["v-1"].visited_at == datetime(2026, 11, 30, 17, 30)  # the offset, converted to UTC
        assert records["v-2"].customer_email == "Bo@example.com" and records["v-2"].customer_name is None
        stored = db.session.scalar(select(IngestionKey))
        assert {r.source for r in records.values()} == {"api"} and {r.key_id for r in records.values()} == {stored.id}
        assert json.loads(records["v-1"].payload) == row("v-1", visited_at="2026-11-30T19:30+02:00")
        assert stored.last_used_at is not None
        event_ = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "data_ingested"))
        assert event_.account_id == world.account
        assert event_.data["accepted"] == 2 and event_.data["rejected"] == 1 and event_.data["duplicated"] == 0
        assert event_.data["key_prefix"] == key[:11] and event_.actor_label.startswith(f"Ingestion key {key[:11]}")


def test_the_accepted_records_go_to_the_campaigns_planning_in_the_same_transaction(app, client, world, monkeypatch):
    key = new_key(app, world.manager)
    seen = []

    def plan(account, records, now):
        seen.append((account.id, sorted(r.external_id for r in records), all(r.id for r in records)))
        return 7

    monkeypatch.setattr(campaigns, "plan_requests", plan)
    answer = post(client, key, {"records": [row("a"), row("b"), row("a"), row("c", email="")]}).get_json()
    assert seen == [(world.account, ["a", "b"], True)]
    assert answer["survey_requests_planned"] == 7


def test_a_server_error_while_planning_inserts_nothing(app, client, world, monkeypatch):
    key = new_key(app, world.manager)
    before = counts(app)

    def broken(account, records, now):
        raise RuntimeError("the campaigns table is on fire")

    monkeypatch.setattr(campaigns, "plan_requests", broken)
    response = post(client, key, {"records": [row("a"), row("b")]})
    assert response.status_code == 500 and response.is_json
    assert counts(app) == before


# ---------------------------------------------------------------- the gate

def test_a_suspended_account_is_refused_with_423_and_no_row_is_inserted(app, client, world, make):
    make.features(world.account)  # a running campaign, which would plan a survey request per record
    key = new_key(app, world.manager)
    with app.app_context():
        suspension.suspend(db.session.get(User, world.admin.id), world.account, "non_payment", "Unpaid since March")
        db.session.remove()
    before = counts(app)
    assert before["ingestion_records"] == 1 and before["survey_requests"] == 1  # the factory's own
    response = post(client, key, {"records": [row("v-1"), row("v-2")]})
    assert response.status_code == 423
    assert response.get_json() == {"error": "Ingestion paused", "message": gate.PAUSED}
    assert counts(app) == before  # no record, no survey request, no audit event, the key's last use untouched

    with app.app_context():  # reactivated: the same batch comes in, and the campaign plans its requests
        suspension.reactivate(db.session.get(User, world.admin.id), world.account, "other", "Paid")
        db.session.remove()
    response = post(client, key, {"records": [row("v-1"), row("v-2")]})
    assert response.status_code == 200 and response.get_json()["accepted"] == 2
    after = counts(app)
    assert after["ingestion_records"] == before["ingestion_records"] + 2
    assert after["survey_requests"] == before["survey_requests"] + response.get_json()["survey_requests_planned"]


@pytest.mark.parametrize("status", gate.STATES)
def test_every_state_follows_the_gates_table(app, client, world, status):
    key = new_key(app, world.manager)
    set_status(app, world.account, status)
    with app.app_context():
        decision = gate.may("system", "ingest_data", db.session.get(Account, world.account))
    before = counts(app)
    response = post(client, key, {"records": [row()]})
    if decision:
        assert response.status_code == 200 and response.get_json()["accepted"] == 1
    else:
        assert response.status_code == 423 and response.get_json()["message"] == decision.message
        assert counts(app) == before
    if status == "limited":  # ingest_data is paused while limited too
        assert response.status_code == 423 and response.get_json()["message"] == gate.PAUSED_LIMITED


def test_a_suspension_committed_while_the_batch_is_read_refuses_it(app, client, world, monkeypatch):
    """The gate allowed it, then the account was suspended before the first write: nothing is inserted."""
    from portal.domain.features import ingestion

    key = new_key(app, world.manager)
    real_parse = ingestion.parse_batch

    def suspend_meanwhile(body):
        with db.engine.begin() as other:  # another request's connection
            other.execute(update(Account).where(Account.id == world.account).values(status="suspended"))
        return real_parse(body)

    monkeypatch.setattr(ingestion, "parse_batch", suspend_meanwhile)
    before = counts(app)
    response = post(client, key, {"records": [row()]})
    assert response.status_code == 423 and response.get_json()["message"] == gate.PAUSED
    assert counts(app) == before


# ---------------------------------------------------------------- keys

def test_unknown_revoked_and_missing_keys_get_the_same_401(app, client, world):
    key = new_key(app, world.manager)
    revoked = new_key(app, world.manager, "Old till")
    with app.app_context():
        manager = db.session.get(User, world.manager.id)
        found = db.session.scalar(select(IngestionKey).where(IngestionKey.digest == hashlib.sha256(
            revoked.encode()).hexdigest()))
        ingestion_keys.revoke_key(manager, found.id)
    assert post(client, revoked, {"records": [row()]}).status_code == 401
    answers = [post(client, revoked, {"records": [row()]}),
               post(client, key[:-1] + ("A" if key[-1] != "A" else "B"), {"records": [row()]}),
               post(client, "ik_" + "x" * 43, {"records": [row()]}),
               post(client, None, {"records": [row()]}),
               post(client, None, {"records": [row()]}, headers={"Authorization": f"Basic {key}"}),
               post(client, None, b"garbage", headers={"Authorization": "Bearer"})]
    for answer in answers:
        assert answer.status_code == 401
        assert answer.headers["WWW-Authenticate"] == "Bearer"
        assert answer.get_json() == answers[0].get_json()
    assert "missing, wrong or revoked" in answers[0].get_json()["message"]
    assert counts(app)["ingestion_records"] == 0
    assert post(client, key, {"records": [row()]}).status_code == 200  # the other key still works


def test_a_session_cookie_alone_is_401(app, client, auth, world):
    auth.login(world.manager.email)
    assert client.get("/data").status_code == 200  # signed in
    response = post(client, None, {"records": [row()]})
    assert response.status_code == 401 and response.is_json
    assert counts(app)["ingestion_records"] == 0


def test_a_key_brings_records_into_its_own_account_only(app, client, world):
    other = new_key(app, world.other_manager)
    assert post(client, other, {"records": [row()]}).status_code == 200
    with app.app_context():
        assert db.session.scalars(select(IngestionRecord.account_id)).all() == [world.other_account]


# ---------------------------------------------------------------- duplicates

def test_duplicates_in_one_request_and_across_requests_are_inserted_once(app, client, world):
    key = new_key(app, world.manager)
    first = post(client, key, {"records": [row("a"), row("b"), row("a", email="other@example.com")]}).get_json()
    assert [r["outcome"] for r in first["results"]] == ["accepted", "accepted", "duplicate"]
    assert first["results"][2]["reason"] == "repeats index 0 of this batch"
    second = post(client, key, {"records": [row("b"), row("c")]}).get_json()
    assert [(r["outcome"], r["reason"]) for r in second["results"]] == [("duplicate", "already ingested"),
                                                                        ("accepted", None)]
    assert (second["accepted"], second["duplicated"], second["rejected"]) == (1, 1, 0)
    with app.app_context():
        assert sorted(db.session.scalars(select(IngestionRecord.external_id))) == ["a", "b", "c"]
        assert db.session.scalar(select(IngestionRecord.customer_email)
                                 .where(IngestionRecord.external_id == "a")) == "rita@example.com"  # the first kept


def test_a_row_without_external_id_gets_one_from_its_email_and_visit(app, client, world):
    key = new_key(app, world.manager)
    answer = post(client, key, {"records": [row(None), row("", email="RITA@example.com"),
                                            {"email": "rita@example.com", "visited_at": "2026-11-30T19:30:00Z"}]})
    results = answer.get_json()["results"]
    derived = results[0]["external_id"]
    assert derived.startswith("auto-") and len(derived) == 37
    assert [r["external_id"] for r in results] == [derived] * 3  # same email (any case) and visit: same id
    assert [r["outcome"] for r in results] == ["accepted", "duplicate", "duplicate"]
    other_visit = post(client, key, {"records": [row(None, visited_at="2026-11-29")]}).get_json()["results"][0]
    assert other_visit["outcome"] == "accepted" and other_visit["external_id"] != derived


def test_two_requests_with_the_same_rows_at_the_same_moment_insert_them_once(app, world):
    """Both requests reach the INSERT before either commits; the unique constraint lets one row in, once."""
    key = new_key(app, world.manager)
    barrier = threading.Barrier(2, timeout=20)
    answers = []

    def hold_at_insert(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("INSERT INTO INGESTION_RECORDS"):
            barrier.wait()

    def send():
        answers.append(post(app.test_client(), key, {"records": [row("same-1"), row("same-2")]}))

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", hold_at_insert)
    try:
        threads = [threading.Thread(target=send) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    finally:
        event.remove(engine, "before_cursor_execute", hold_at_insert)
    assert sorted(a.status_code for a in answers) == [200, 200], [a.get_data(as_text=True) for a in answers]
    outcomes = sorted((a.get_json()["accepted"], a.get_json()["duplicated"]) for a in answers)
    assert outcomes == [(0, 2), (2, 0)]
    with app.app_context():
        assert sorted(db.session.scalars(select(IngestionRecord.external_id))) == ["same-1", "same-2"]
        assert db.session.scalar(select(func.count()).select_from(AuditEvent)
                                 .where(AuditEvent.action == "data_ingested")) == 2


# ---------------------------------------------------------------- bad input

@pytest.mark.parametrize("body, message", [
    (b"{not json", "The body is not valid JSON"),
    (b"\xff\xfe{}", "not UTF-8"),
    (b"[]", 'a JSON object with a "records" list'),
    (b'{"rows": []}', 'a JSON object with a "records" list'),
    (b'{"records": {"email": "a@example.com"}}', '"records" must be a list of objects'),
    (b'{"records": []}', '"records" is empty'),
    (b'{"records": ["rita@example.com"]}', "records[0] must be an object"),
    (b'{"records": [{"email": "a@example.com", "visited_at": 20261130}]}',
     "records[0].visited_at must be a string, not a number"),
    (b'{"records": [{"email": ["a@example.com"], "visited_at": "2026-11-30"}]}', "records[0].email must be a string"),
    (b'{"records": [{"email": "a@example.com", "visited_at": "2026-11-30", "external_id": true}]}',
     "records[0].external_id must be a string or an integer, not a boolean"),
    (b'{"records": [{"email": "a@example.com", "visited_at": NaN}]}', "NaN is not a JSON value"),
    (b'{"records": ' + b"[" * 5000 + b"]" * 5000 + b"}", "nested too deeply"),
])
def test_a_malformed_body_is_a_400_saying_what_is_wrong(app, client, world, body, message):
    key = new_key(app, world.manager)
    before = counts(app)
    response = post(client, key, body)
    assert response.status_code == 400, response.get_data(as_text=True)
    assert message in response.get_json()["message"]
    assert counts(app) == before


def test_an_integer_external_id_is_taken_as_its_text(app, client, world):
    key = new_key(app, world.manager)
    answer = post(client, key, {"records": [dict(row(), external_id=12345)]}).get_json()
    assert answer["results"][0]["external_id"] == "12345" and answer["accepted"] == 1


def test_a_body_not_sent_as_json_is_a_415(app, client, world):
    key = new_key(app, world.manager)
    response = post(client, key, json.dumps({"records": [row()]}), content_type="application/x-www-form-urlencoded")
    assert response.status_code == 415 and "Content-Type: application/json" in response.get_json()["message"]


@pytest.mark.parametrize("app_config", [{"INGEST_MAX_ROWS": 3, "INGEST_RATE_LIMIT": "100 per minute"}])
def test_more_records_than_a_request_may_carry_is_a_413(app, client, world):
    key = new_key(app, world.manager)
    response = post(client, key, {"records": [row(f"v-{n}") for n in range(4)]})
    assert response.status_code == 413
    assert response.get_json()["message"] == "4 records in one request; send at most 3 per request."
    assert post(client, key, {"records": [row(f"v-{n}") for n in range(3)]}).status_code == 200


@pytest.mark.parametrize("app_config", [{"INGEST_MAX_BYTES": 2000, "INGEST_RATE_LIMIT": "100 per minute"}])
def test_a_body_over_the_byte_limit_is_a_413(app, client, world):
    key = new_key(app, world.manager)
    response = post(client, key, {"records": [row(f"v-{n}") for n in range(40)]})
    assert response.status_code == 413 and "over 2,000 bytes" in response.get_json()["message"]
    assert counts(app)["ingestion_records"] == 0


@pytest.mark.parametrize("field, value, reason", [
    ("email", "rita.example.com",
     "email 'rita.example.com' is not a valid address: An email address must have an @-sign."),
    ("email", "", "email is missing"),
    ("email", "a" * 250 + "@example.com", "email is over 254 characters"),
    ("visited_at", "30/11/2026", "visited_at '30/11/2026' is not a date (use YYYY-MM-DD"),
    ("visited_at", "2026-02-30", "is not a date"),
    ("visited_at", None, "visited_at is missing"),
    ("visited_at", "2026-12-03T12:00", "visited_at '2026-12-03T12:00' is more than a day in the future"),
    ("name", "R" * 201, "name is over 200 characters (it has 201)"),
    ("name", "Rita\tGuest", "name contains a control character"),
    ("name", "Rita \ud800", "name contains a character that can't be used (U+D800)"),
    ("external_id", "x" * 101, "external_id is over 100 characters"),
])
def test_a_bad_value_rejects_its_row_with_the_reason_and_the_others_come_in(app, client, world, field, value, reason,
                                                                           monkeypatch):
    from portal.domain.features import ingestion

    monkeypatch.setattr(ingestion, "utcnow", lambda: NOW)
    key = new_key(app, world.manager)
    bad = dict(row("bad"), **{field: value})
    body = json.dumps({"records": [row("good"), bad]}).encode()
    answer = post(client, key, body).get_json()
    assert answer["results"][0]["outcome"] == "accepted"
    assert answer["results"][1]["outcome"] == "rejected"
    assert reason in answer["results"][1]["reason"]
    with app.app_context():
        assert db.session.scalars(select(IngestionRecord.external_id)).all() == ["good"]


def test_a_row_with_every_field_wrong_lists_every_problem(app, client, world):
    key = new_key(app, world.manager)
    answer = post(client, key, {"records": [{"name": "N" * 300, "email": "nope", "visited_at": "soon"}]}).get_json()
    reason = answer["results"][0]["reason"]
    assert "name is over 200" in reason and "email 'nope'" in reason and "visited_at 'soon'" in reason


def test_a_row_over_the_size_limit_is_rejected(app, client, world):
    key = new_key(app, world.manager)
    answer = post(client, key, {"records": [dict(row(), notes="n" * 5000), row("ok")]}).get_json()
    assert answer["results"][0] == {"index": 0, "external_id": "visit-1", "outcome": "rejected",
                                    "reason": "the row is over 4,096 bytes"}
    assert answer["results"][1]["outcome"] == "accepted"


@pytest.mark.parametrize("app_config", [{"INGEST_RATE_LIMIT": "2 per minute"}])
def test_too_many_requests_with_one_key_get_a_429(app, client, world):
    key = new_key(app, world.manager)
    other = new_key(app, world.manager, "Website")
    assert [post(client, key, {"records": [row(f"v-{n}")]}).status_code for n in range(2)] == [200, 200]
    refused = post(client, key, {"records": [row("v-9")]})
    assert refused.status_code == 429 and refused.is_json
    assert "Too many requests with this key" in refused.get_json()["message"]
    assert int(refused.headers["Retry-After"]) >= 1
    assert post(client, other, {"records": [row("v-8")]}).status_code == 200  # counted per key
    with app.app_context():
        assert "v-9" not in db.session.scalars(select(IngestionRecord.external_id)).all()
