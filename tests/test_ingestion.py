"""The Data page: CSV uploads (with and without htmx), bad files and rows, keys shown once, the records' pages."""
import hashlib
import io
from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select, update

from portal.domain import gate, suspension
from portal.domain.features import ingestion
from portal.extensions import db
from portal.models import Account, AuditEvent, IngestionKey, IngestionRecord, SurveyRequest, User

GOOD = (b"name,email,visited_at,external_id\n"
        b"Rita Guest,rita@example.com,2026-11-30T19:30,v-1\n"
        b"Bo Guest,bo@example.com,2026-11-29,v-2\n")


@pytest.fixture
def app_config():
    return {"LOGIN_RATE_LIMIT": "1000 per minute"}


def upload(auth, data, htmx=False, filename="visits.csv"):
    """Post a file to the upload form as a signed-in manager."""
    token = auth.csrf_token("/data")
    headers = {"HX-Request": "true", "X-CSRFToken": token} if htmx else {}
    form = {"file": (io.BytesIO(data), filename)}
    if not htmx:
        form["csrf_token"] = token
    return auth.client.post("/data/upload", data=form, headers=headers, content_type="multipart/form-data")


def counts(app):
    with app.app_context():
        found = {m.__tablename__: db.session.scalar(select(func.count()).select_from(m))
                 for m in (IngestionRecord, SurveyRequest, AuditEvent, IngestionKey)}
        db.session.remove()
    return found


def records(app):
    with app.app_context():
        found = {r.external_id: (r.customer_name, r.customer_email, r.visited_at, r.source, r.created_by_id)
                 for r in db.session.scalars(select(IngestionRecord))}
        db.session.remove()
    return found


def set_status(app, account_id, status):
    with app.app_context():
        db.session.execute(update(Account).where(Account.id == account_id).values(status=status))
        db.session.commit()
        db.session.remove()


@pytest.fixture
def manager(auth, world):
    auth.login(world.manager.email)
    return world.manager


# ---------------------------------------------------------------- the page and uploads

def test_the_page_shows_the_upload_form_the_keys_and_no_records_yet(client, manager):
    page = client.get("/data").get_data(as_text=True)
    assert 'action="/data/upload"' in page and 'action="/data/keys"' in page
    assert "No records yet" in page and "No key yet" in page
    assert "email</strong> and" in page and "At most 5,000 rows and 2 MB a file" in page


def test_only_account_managers_have_the_page(client, auth, world):
    auth.login(world.tier.email)
    assert client.get("/data").status_code == 403


def test_an_upload_without_htmx_shows_the_whole_page_with_the_report(app, auth, manager):
    response = upload(auth, GOOD)
    body = response.get_data(as_text=True)
    assert response.status_code == 200 and "<html" in body
    assert "2 accepted, 0 duplicates, 0 rejected" in body
    assert body.count('class="badge ingest-outcome-accepted"') == 2
    assert records(app) == {
        "v-1": ("Rita Guest", "rita@example.com", datetime(2026, 11, 30, 19, 30), "upload", manager.id),
        "v-2": ("Bo Guest", "bo@example.com", datetime(2026, 11, 29), "upload", manager.id)}
    assert body.count('data-testid="record-row"') == 2  # the latest records, on the same page
    with app.app_context():
        event_ = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "data_ingested"))
        assert event_.actor_user_id == manager.id and event_.data["source"] == "upload"
        assert (event_.data["accepted"], event_.data["duplicated"], event_.data["rejected"]) == (2, 0, 0)


def test_an_upload_with_htmx_answers_the_upload_block_and_announces_it(app, auth, manager):
    response = upload(auth, GOOD, htmx=True)
    body = response.get_data(as_text=True)
    assert response.status_code == 200 and "<html" not in body and body.lstrip().startswith('<div id="upload">')
    assert response.headers["HX-Trigger"] == "data-ingested" and "HX-Request" in response.headers["Vary"]
    assert "2 accepted" in body
    refreshed = auth.client.get("/data", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert refreshed.lstrip().startswith('<div id="records"') and refreshed.count('data-testid="record-row"') == 2


def test_headers_in_any_case_and_order_and_semicolons_are_read(app, auth, manager):
    data = (b"\xef\xbb\xbfEXTERNAL_ID;Visited At;E-Mail;Email;NAME;notes\n"
            b"v-1;2026-11-30;x;rita@example.com;Rita;likes the window seat\n")
    body = upload(auth, data).get_data(as_text=True)
    assert "1 accepted" in body
    assert records(app)["v-1"][:3] == ("Rita", "rita@example.com", datetime(2026, 11, 30))


def test_rows_are_judged_one_by_one_and_the_valid_ones_come_in(app, auth, manager):
    data = (b"name,email,visited_at,external_id\n"
            b"Rita,rita@example.com,2026-11-30,v-1\n"
            b"Bad Email,rita.example.com,2026-11-30,v-2\n"
            b"Bad Date,bo@example.com,30/11/2026,v-3\n"
            + b"L" * 201 + b",long@example.com,2026-11-30,v-4\n"
            b"Rita again,rita@example.com,2026-11-30,v-1\n"
            b"Extra,extra@example.com,2026-11-30,v-6,surplus\n"
            b"\n"
            b",noname@example.com,2026-11-28,\n")
    body = upload(auth, data).get_data(as_text=True)
    assert "2 accepted, 1 duplicate, 4 rejected" in body
    assert "email &#39;rita.example.com&#39; is not a valid address" in body
    assert "visited_at &#39;30/11/2026&#39; is not a date" in body
    assert "name is over 200 characters" in body
    assert "repeats line 2 of this batch" in body
    assert "the row has 1 more cell than the header" in body
    assert set(records(app)) == {"v-1", ingestion.check_row({"email": "noname@example.com",
                                                             "visited_at": "2026-11-28"}, datetime(2026, 12, 1))
                                 ["external_id"]}
    again = upload(auth, data).get_data(as_text=True)  # the same file again: nothing new
    assert "0 accepted, 3 duplicates, 4 rejected" in again and "already ingested" in again
    assert len(records(app)) == 2


@pytest.mark.parametrize("data, message", [
    (b"", "The file is empty."),
    (b"\xef\xbb\xbf  \n", "The file is empty."),
    (b"name,email,visited_at\n", "The file has a header but no rows."),
    (b"Rita,rita@example.com,2026-11-30,v-1\n", "No header found. The first line must name the columns"),
    (b"name,visited_at,external_id\nRita,2026-11-30,v-1\n", "The header has no email column"),
    (b"name,external_id\nRita,v-1\n", "The header has no email and no visited_at column"),
    (b"email,EMAIL,visited_at\na@example.com,a@example.com,2026-11-30\n", "The column email appears twice"),
    ("name,email,visited_at\nRené,rene@example.com,2026-11-30\n".encode("latin-1"),
     "The file is not UTF-8 text (line 2"),
    (b"email,visited_at\n\x00\x01\x02\x03binary", "This is a binary file, not CSV text."),
    (b"PK\x03\x04\x14\x00\x06\x00rest of a workbook", "This file is an Excel workbook or another zip file, not CSV."),
    (b'email,visited_at\n"a@example.com,2026-11-30\n', "The file is not valid CSV near line"),
    (b'email,visited_at\na@example.com,"2026"-11-30\n', "The file is not valid CSV near line 2"),
])
def test_a_bad_file_is_refused_whole_with_the_reason(app, auth, manager, data, message):
    before = counts(app)
    response = upload(auth, data)
    assert response.status_code == 422
    assert message.replace("'", "&#39;") in response.get_data(as_text=True)
    assert counts(app) == before


@pytest.mark.parametrize("app_config", [{"INGEST_UPLOAD_MAX_ROWS": 2, "LOGIN_RATE_LIMIT": "1000 per minute"}])
def test_a_file_with_too_many_rows_is_refused_whole(app, auth, manager):
    data = GOOD + b"Cy,cy@example.com,2026-11-28,v-3\n"
    response = upload(auth, data)
    assert response.status_code == 422 and "The file has more than 2 rows" in response.get_data(as_text=True)
    assert records(app) == {}
    assert upload(auth, GOOD).status_code == 200


@pytest.mark.parametrize("app_config", [{"INGEST_UPLOAD_MAX_BYTES": 100, "LOGIN_RATE_LIMIT": "1000 per minute"}])
def test_a_file_over_the_size_limit_is_refused_whole(app, auth, manager):
    response = upload(auth, GOOD + b"x" * 200)
    assert response.status_code == 422
    assert "The file is over 100 bytes; split it and upload each part." in response.get_data(as_text=True)
    assert records(app) == {}


def test_posting_without_a_file_asks_for_one(auth, manager):
    token = auth.csrf_token("/data")
    response = auth.client.post("/data/upload", data={"csrf_token": token})
    assert response.status_code == 422 and "Choose the CSV file to upload." in response.get_data(as_text=True)


def test_a_suspended_account_sees_the_gates_message_and_an_upload_inserts_nothing(app, auth, world, make):
    make.features(world.account)
    with app.app_context():
        suspension.suspend(db.session.get(User, world.admin.id), world.account, "non_payment", "Unpaid")
        db.session.remove()
    auth.login(world.manager.email)
    message = gate.MANAGER_READ_ONLY.format(billing_contact="billing@portal.test")
    page = auth.client.get("/data").get_data(as_text=True)
    assert message.replace("'", "&#39;") in page and 'action="/data/upload"' not in page
    before = counts(app)
    response = upload(auth, GOOD, htmx=True)
    assert response.status_code == 422 and message.replace("'", "&#39;") in response.get_data(as_text=True)
    assert counts(app) == before


def test_a_limited_account_cannot_upload_but_can_manage_keys(app, auth, world):
    set_status(app, world.account, "limited")
    auth.login(world.manager.email)
    page = auth.client.get("/data").get_data(as_text=True)
    limited = gate.LIMITED_FEATURE.format(billing_contact="billing@portal.test")
    assert limited in page and 'action="/data/upload"' not in page and 'action="/data/keys"' in page
    assert upload(auth, GOOD).status_code == 422
    assert records(app) == {}
    assert auth.post("/data/keys", {"name": "Till"}).status_code == 200


# ---------------------------------------------------------------- keys

def test_a_new_key_is_shown_once_and_stored_as_a_digest(app, auth, manager):
    response = auth.post("/data/keys", {"name": "Till in the shop"}, page="/data")
    body = response.get_data(as_text=True)
    assert response.status_code == 200
    text = body.split('data-testid="new-key-text"')[0].rsplit('value="', 1)[1].split('"')[0]
    assert text.startswith("ik_") and len(text) == 46
    with app.app_context():
        key = db.session.scalar(select(IngestionKey))
        assert key.digest == hashlib.sha256(text.encode()).hexdigest() and key.prefix == text[:11]
        assert key.name == "Till in the shop" and key.created_by_id == manager.id and key.revoked_at is None
        assert text not in str([getattr(key, c.name) for c in IngestionKey.__table__.columns])
        event_ = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "ingestion_key_created"))
        assert event_.data == {"key_id": key.id, "name": "Till in the shop", "prefix": text[:11]}
        assert text not in str(event_.data)
    later = auth.client.get("/data").get_data(as_text=True)
    assert text not in later and text[:11] in later


def test_creating_a_key_with_htmx_answers_the_keys_block(auth, manager):
    response = auth.post("/data/keys", {"name": "Website"}, htmx=True, page="/data")
    body = response.get_data(as_text=True)
    assert response.status_code == 200 and body.lstrip().startswith('<div id="keys">') and "ik_" in body
    assert response.headers["HX-Trigger"] == "ingestion-key-created"


@pytest.mark.parametrize("name, message", [("", "Name the key"), ("k" * 101, "Keep the name to 100 characters"),
                                           ("bad\ufffe", "can&#39;t be used")])
def test_a_key_needs_a_sensible_name(app, auth, manager, name, message):
    response = auth.post("/data/keys", {"name": name}, page="/data")
    assert response.status_code == 422 and message in response.get_data(as_text=True)
    assert counts(app)["ingestion_keys"] == 0


def test_an_account_has_at_most_twenty_active_keys(app, auth, manager):
    from portal.domain.features import ingestion_keys

    with app.app_context():
        user = db.session.get(User, manager.id)
        for n in range(ingestion_keys.ACTIVE_KEYS_MAX):
            ingestion_keys.create_key(user, manager.account_id, f"Key {n}")
        db.session.remove()
    response = auth.post("/data/keys", {"name": "One more"}, page="/data")
    assert response.status_code == 422 and "already has 20 active keys" in response.get_data(as_text=True)


def test_revoking_a_key_ends_it_and_is_audited(app, auth, manager, client):
    auth.post("/data/keys", {"name": "Till"}, page="/data")
    with app.app_context():
        key_id = db.session.scalar(select(IngestionKey.id))
    response = auth.post(f"/data/keys/{key_id}/revoke", page="/data")
    assert response.status_code == 303 and response.headers["Location"] == "/data"
    page = auth.client.get("/data").get_data(as_text=True)
    assert "is revoked; requests with it are refused from now on" in page and "Revoked" in page
    with app.app_context():
        key = db.session.get(IngestionKey, key_id)
        assert key.revoked_at is not None and key.revoked_by_id == manager.id
        assert db.session.scalar(select(AuditEvent.data).where(AuditEvent.action == "ingestion_key_revoked"))[
            "key_id"] == key_id
    again = auth.post(f"/data/keys/{key_id}/revoke", htmx=True, page="/data")
    assert again.status_code == 422 and "was already revoked" in again.get_data(as_text=True)


def test_another_accounts_key_cannot_be_revoked(app, auth, manager, make, world):
    other_key = make.features(world.other_account).key
    response = auth.post(f"/data/keys/{other_key}/revoke", page="/data")
    assert response.status_code == 404
    with app.app_context():
        assert db.session.get(IngestionKey, other_key).revoked_at is None


def test_while_suspended_keys_cannot_be_created_but_can_be_revoked(app, auth, world, make):
    key_id = make.features(world.account).key
    set_status(app, world.account, "suspended")
    auth.login(world.manager.email)
    page = auth.client.get("/data").get_data(as_text=True)
    assert 'action="/data/keys"' not in page and f'action="/data/keys/{key_id}/revoke"' in page
    refused = auth.post("/data/keys", {"name": "Sneaky"}, page="/data")
    assert refused.status_code == 422 and "so this can&#39;t be changed right now" in refused.get_data(as_text=True)
    assert auth.post(f"/data/keys/{key_id}/revoke", page="/data").status_code == 303
    with app.app_context():
        assert db.session.get(IngestionKey, key_id).revoked_at is not None
        assert db.session.scalar(select(func.count()).select_from(IngestionKey)) == 1


# ---------------------------------------------------------------- the records' pages

def test_the_latest_records_come_in_keyset_pages(app, auth, manager):
    start = datetime(2026, 11, 1)
    with app.app_context():
        db.session.add_all([IngestionRecord(account_id=manager.account_id, source="api", external_id=f"r-{n:02d}",
                                            customer_email=f"g{n}@example.com", visited_at=start, payload="{}",
                                            created_at=start + timedelta(minutes=n // 2)) for n in range(60)])
        db.session.commit()
    first = auth.client.get("/data").get_data(as_text=True)
    assert first.count('data-testid="record-row"') == 50 and "r-59" in first and "r-10" in first and "r-09" not in first
    older = first.split('data-testid="older-records"')[0].rsplit('href="', 1)[1].split('"')[0].replace("&amp;", "&")
    second = auth.client.get(older, headers={"HX-Request": "true"}).get_data(as_text=True)
    assert second.lstrip().startswith('<div id="records"') and second.count('data-testid="record-row"') == 10
    assert "r-09" in second and "r-00" in second and "r-10" not in second and "Older" not in second
    assert "No records yet" not in auth.client.get("/data?after=garbage").get_data(as_text=True)
