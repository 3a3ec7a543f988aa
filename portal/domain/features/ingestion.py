"""Data ingestion: an account's transactions (a customer's visit) come in as ingestion records.

Two ways in, one path: a manager's CSV upload on the Data page (the gate's `import_data`) and the endpoint
POST /api/v1/ingest with an ingestion key (the gate asked as "system" for `ingest_data`). Both are refused
while the account is suspended or limited, before anything is read or written.

A batch (one request, one file) is one transaction: its accepted rows, the survey requests the running
campaigns plan for them (campaigns.plan_requests), the key's last use and one `data_ingested` audit event.
Rows are judged one by one: accepted, duplicate (the external id was ingested before, or earlier in the same
batch) or rejected with the reason; the valid rows are inserted even when others are rejected. A refusal, a
malformed request or file, or a server error inserts nothing.

Each row: email and visited_at are required; name and external_id are optional. Without an external_id the
row's id is derived from its email and visit, "auto-" and 32 hex digits of SHA-256(lower(email) "|" visit
as YYYY-MM-DDTHH:MM:SS), so the same visit sent twice is the same record. Duplicates are found by the
database's unique constraint (account, external_id) with INSERT ... ON CONFLICT DO NOTHING, so two requests
bringing the same row at the same moment insert it once.

Limits (settings, or PORTAL_<NAME> in the environment): INGEST_MAX_ROWS records per request (1,000),
INGEST_MAX_BYTES per request body (1 MB), INGEST_UPLOAD_MAX_ROWS rows per file (5,000),
INGEST_UPLOAD_MAX_BYTES per file (2 MB); in a row: name 200 characters, email 254, external_id 100,
the whole row 4,096 bytes as JSON.
"""
import json
from dataclasses import dataclass, field

from sqlalchemy import select, tuple_, update

from portal.domain import audit
from portal.domain.errors import Conflict, ValidationFailed
from portal.domain.features import campaigns
from portal.domain.features.ingestion_csv import read_rows
from portal.domain.features.ingestion_rows import (EXTERNAL_ID_MAX, ROW_MAX_BYTES, BatchTooLarge,  # noqa: F401
                                                   MalformedBatch, check_row, parse_batch, setting, size_text)
from portal.domain.gate import require
from portal.domain.parsing import ID_MAX, InvalidValue, iso_datetime, text_problem, whole_number
from portal.extensions import db
from portal.models import Account, IngestionRecord
from portal.plurals import count
from portal.timeutil import utcnow

INSERT_CHUNK = 500  # rows per INSERT statement (SQLite allows 32,766 parameters in one)

@dataclass
class RowResult:
    """What became of one row: its index (position in the request, or line in the file)."""

    index: int
    external_id: str | None
    outcome: str  # accepted | duplicate | rejected
    reason: str | None = None


@dataclass
class BatchResult:
    """What became of a batch, row by row, and how many survey requests the campaigns planned."""

    source: str
    rows: list = field(default_factory=list)
    planned: int = 0

    def count(self, outcome):
        return sum(1 for row in self.rows if row.outcome == outcome)

    @property
    def counts(self):
        return {"accepted": self.count("accepted"), "duplicated": self.count("duplicate"),
                "rejected": self.count("rejected")}

    def as_json(self):
        return {**self.counts, "survey_requests_planned": self.planned,
                "results": [{"index": r.index, "external_id": r.external_id, "outcome": r.outcome,
                             "reason": r.reason} for r in self.rows]}


# ---------------------------------------------------------------- one batch

def _insert(account_id, rows, source, key_id, user_id, now):
    """Insert rows not yet there (ON CONFLICT DO NOTHING); return {external_id: IngestionRecord} of those inserted."""
    dialect = db.session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    inserted = {}
    for start in range(0, len(rows), INSERT_CHUNK):
        chunk = [{"account_id": account_id, "source": source, "external_id": clean["external_id"],
                  "customer_name": clean["name"], "customer_email": clean["email"],
                  "visited_at": clean["visited_at"], "key_id": key_id, "created_by_id": user_id,
                  "payload": payload, "created_at": now} for _index, clean, payload in rows[start:start + INSERT_CHUNK]]
        stmt = (insert(IngestionRecord).values(chunk)
                .on_conflict_do_nothing(index_elements=["account_id", "external_id"]).returning(IngestionRecord))
        inserted.update((record.external_id, record) for record in db.session.scalars(stmt))
    return inserted


def _judge(rows, now, label_row):
    """Check each row; return (results by index, [(index, clean, payload)] to insert)."""
    results, valid, first_index = {}, [], {}
    for index, values, payload, problem in rows:
        try:
            if problem:
                raise InvalidValue(problem)
            clean = check_row(values, now)
            if len(payload.encode("utf-8")) > ROW_MAX_BYTES:
                raise InvalidValue(f"the row is over {ROW_MAX_BYTES:,} bytes")
        except InvalidValue as exc:
            external_id = values.get("external_id")
            shown = external_id.strip()[:EXTERNAL_ID_MAX] if isinstance(external_id, str) else None
            results[index] = RowResult(index, shown if shown and not text_problem(shown) else None, "rejected",
                                       exc.message)
            continue
        external_id = clean["external_id"]
        if external_id in first_index:
            results[index] = RowResult(index, external_id, "duplicate",
                                       f"repeats {label_row} {first_index[external_id]} of this batch")
            continue
        first_index[external_id] = index
        valid.append((index, clean, payload))
    return results, valid


def _hold_state(account, actor, action):
    """Write only if the account is still in the state the gate allowed (a suspension racing the batch wins)."""
    held = db.session.execute(update(Account).where(Account.id == account.id, Account.status == account.status)
                              .values(status=Account.status).execution_options(synchronize_session=False))
    if held.rowcount != 1:
        account_id = account.id
        db.session.rollback()
        require(actor, action, db.session.get(Account, account_id, populate_existing=True))
        raise Conflict("The account changed while this batch was being read. Nothing was inserted; send it again.")


def _ingest(account, rows, source, gate, now, label_row, key=None, user=None):
    """Judge, insert and plan one batch in one transaction; return its BatchResult.

    Args:
        account: the Account (the gate has allowed `gate` = (actor, action) on it).
        rows: [(index, {field: text}, payload JSON, a problem found while reading it or None)] in order.
        source: "api" or "upload".
        gate: (actor, action) to ask again if the account's state changes before the commit.
        now: the time of ingestion.
        label_row: how a reason names an earlier row of the batch: "index" (3) or "line" (4).
        key, user: the IngestionKey or the User that brought the batch.
    """
    results, valid = _judge(rows, now, label_row)
    inserted = _insert(account.id, valid, source, key.id if key else None, user.id if user else None, now)
    for index, clean, _payload in valid:
        accepted = clean["external_id"] in inserted
        results[index] = RowResult(index, clean["external_id"], "accepted" if accepted else "duplicate",
                                   None if accepted else "already ingested")
    batch = BatchResult(source, [results[row[0]] for row in rows])
    records = [inserted[clean["external_id"]] for _i, clean, _p in valid if clean["external_id"] in inserted]
    if records:
        batch.planned = campaigns.plan_requests(account, records, now) or 0
    if key is not None:
        key.last_used_at = now
    data = {"source": source, **batch.counts, "survey_requests_planned": batch.planned}
    data.update({"key_id": key.id, "key_prefix": key.prefix} if key is not None else {})
    actor = user if user is not None else f"Ingestion key {key.prefix}… ({key.name})"
    audit.record("data_ingested", account.id, actor, data=data, now=now)
    _hold_state(account, *gate)
    db.session.commit()
    return batch


# ---------------------------------------------------------------- the two ways in

def ingest_batch(key, body, now=None):
    """Ingest a request body sent with an ingestion key, as the system (the gate's ingest_data).

    Args:
        key: the IngestionKey that authenticated the request (ingestion_keys.authenticate).
        body: the request body (bytes of JSON, see parse_batch).
        now: the time of ingestion (default now).

    Returns:
        BatchResult, row by row in the request's order.

    Raises:
        PermissionDenied: the gate refuses (account suspended, limited or cancelled); nothing is written.
        MalformedBatch, BatchTooLarge: see parse_batch; nothing is written.
        Conflict: the account's state changed during the batch (and the gate still allows it); nothing written.
    """
    now = now or utcnow()
    account = db.session.get(Account, key.account_id, populate_existing=True)
    require("system", "ingest_data", account)
    rows = parse_batch(body)
    return _ingest(account, rows, "api", ("system", "ingest_data"), now, "index", key=key)


def ingest_upload(actor, data, now=None):
    """Ingest an uploaded CSV file (see ingestion_csv) into the actor's account (the gate's import_data).

    Args:
        actor: the account manager uploading it.
        data: the file's bytes (at most INGEST_UPLOAD_MAX_BYTES).
        now: the time of ingestion (default now).

    Returns:
        BatchResult, row by row; a row's index is the line it starts on.

    Raises:
        PermissionDenied: the gate refuses (account suspended or limited); nothing is written.
        ValidationFailed(file): the file is too large, not UTF-8 CSV, has no header or required column,
            no rows or too many; nothing is written.
        Conflict: as ingest_batch.
    """
    now = now or utcnow()
    account = db.session.get(Account, actor.account_id, populate_existing=True) if actor.account_id else None
    require(actor, "import_data", account)
    limit = setting("INGEST_UPLOAD_MAX_BYTES")
    if len(data or b"") > limit:
        raise ValidationFailed({"file": f"The file is over {size_text(limit)}; split it and upload each part."})
    rows = [(row.line, row.values, json.dumps(row.received, sort_keys=True),
             f"the row has {count(row.extra_cells, 'more cell')} than the header "
             "(a comma inside a value needs quotes)" if row.extra_cells else None)
            for row in read_rows(data, setting("INGEST_UPLOAD_MAX_ROWS"))]
    return _ingest(account, rows, "upload", (actor, "import_data"), now, "line", user=actor)


# ---------------------------------------------------------------- reading

def list_records(account_id, after=None, size=50):
    """Return (records, next cursor): up to size of the account's records newest first, after a cursor.

    The cursor is the (created_at, id) of the last record of the previous page (see parse_cursor).
    """
    stmt = select(IngestionRecord).where(IngestionRecord.account_id == account_id)
    if after is not None:
        stmt = stmt.where(tuple_(IngestionRecord.created_at, IngestionRecord.id) < tuple_(*after))
    stmt = stmt.order_by(IngestionRecord.created_at.desc(), IngestionRecord.id.desc()).limit(size + 1)
    records = list(db.session.scalars(stmt))
    more = len(records) > size
    records = records[:size]
    return records, (f"{records[-1].created_at.isoformat()}_{records[-1].id}" if more else None)


def parse_cursor(text):
    """Return the (created_at, id) a page link carries, or None for no cursor or a bad one (the first page)."""
    stamp, _, ident = (text or "").rpartition("_")
    try:
        return iso_datetime(stamp), whole_number(ident, 1, ID_MAX)
    except InvalidValue:
        return None
