"""Idempotency-Key on pushes: the same key and body answers the first answer again and writes nothing.

The key is claimed first, in the push's own transaction, with one `INSERT ... ON CONFLICT DO NOTHING
RETURNING id` on the unique (token, key) pair: a second push with the key at the same moment waits at that
INSERT until the first one's transaction ends (the row lock of the unique index on PostgreSQL, the write
lock on SQLite), then finds the key taken and answers what the first one stored. The answer is written into
the key's row inside the domain function's transaction, just before its commit (the domain functions'
before_commit hook), so the payment, its key and its answer are committed together or not at all. A refused
push (a domain error) rolls the row back with everything else, so the same key may be sent again once the
problem is fixed. A key stored without its answer (only by an older version) answers 409
`idempotency-key-in-progress`.
"""
import hashlib
import json
from datetime import timedelta

from flask import current_app, request
from marshmallow import EXCLUDE, Schema, fields, validate
from sqlalchemy import delete, select, update

from portal.api.auth import log_with_push, push_committed
from portal.api.problems import ApiProblem
from portal.extensions import db
from portal.models import IdempotencyKey
from portal.timeutil import utcnow

HEADER = "Idempotency-Key"
KEY_MAX = 255
KEPT_HOURS = 24


class IdempotencyHeaderSchema(Schema):
    """The Idempotency-Key header (other headers are ignored)."""

    class Meta:
        unknown = EXCLUDE

    key = fields.String(required=True, data_key=HEADER,
                        validate=[validate.Length(1, KEY_MAX), validate.Regexp(r"^[\x21-\x7e]+$")],
                        metadata={"description": "A unique value per push, such as a UUID (1 to 255 visible "
                                                 "ASCII characters). Kept for 24 hours."})


def fingerprint():
    """SHA-256 of the method, the path and the body (as JSON with sorted keys, so spacing does not matter)."""
    raw = request.get_data(cache=True)
    try:
        body = json.dumps(json.loads(raw), sort_keys=True, separators=(",", ":"))
    except ValueError:
        body = raw.decode("utf-8", "replace")
    return hashlib.sha256(f"{request.method}\n{request.path}\n{body}".encode()).hexdigest()


def _stored(token_id, key):
    return db.session.scalar(select(IdempotencyKey).where(IdempotencyKey.token_id == token_id,
                                                          IdempotencyKey.key == key))


def _replay(row, print_):
    if row is None:  # taken, then forgotten by the pruning in between: as if still being answered
        raise ApiProblem(409, "idempotency-key-in-progress", "A request with this Idempotency-Key is still being "
                         "answered. Nothing was changed; try again in a moment.")
    if row.fingerprint != print_:
        raise ApiProblem(422, "idempotency-key-reused", "This Idempotency-Key was used with another request "
                         "(a different method, path or body). Nothing was changed; use a new key for a new push.")
    if row.response_status is None:
        raise ApiProblem(409, "idempotency-key-in-progress", "A request with this Idempotency-Key is still being "
                         "answered. Nothing was changed; try again in a moment.")
    return _response(row.response_status, row.response_body, replayed=True)


def _response(status, body, replayed=False):
    response = current_app.response_class(body, status=status, mimetype="application/json")
    if replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return response


def _claim(token_id, key, print_):
    """Insert the key's row unless the token used the key before; return its id, or None if it is taken."""
    if db.session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    stmt = (insert(IdempotencyKey)
            .values(token_id=token_id, key=key, fingerprint=print_, created_at=utcnow())
            .on_conflict_do_nothing(index_elements=["token_id", "key"])
            .returning(IdempotencyKey.id))
    return db.session.execute(stmt).scalar()


def run_once(actor, key, push):
    """Answer a push under its Idempotency-Key: replay the stored answer, or run push() and store its answer.

    Args:
        actor: the TokenActor (keys are per token).
        key: the Idempotency-Key header's value.
        push: push(keep) does the push (one domain call, which commits) and calls keep(status, JSON-able body)
            inside the domain's transaction, before its commit (the domain function's before_commit hook).

    Raises:
        ApiProblem: idempotency-key-reused (422), idempotency-key-in-progress (409).
        DomainError: the push was refused; nothing of it, nor the key, was written.
    """
    print_ = fingerprint()
    key_id = _claim(actor.token_id, key, print_)
    if key_id is None:
        db.session.rollback()
        return _replay(_stored(actor.token_id, key), print_)
    answer = {}

    def keep(status, body):
        text = current_app.json.dumps(body)  # as jsonify writes the other answers
        db.session.execute(update(IdempotencyKey).where(IdempotencyKey.id == key_id)
                           .values(response_status=status, response_body=text)
                           .execution_options(synchronize_session=False))
        log_with_push(status)
        answer.update(status=status, text=text)

    try:
        push(keep)
    except Exception:
        db.session.rollback()
        push_committed(False)
        raise
    push_committed(True)
    if not answer:  # a push must store its answer in its own transaction
        raise RuntimeError("the push did not store its answer")
    return _response(answer["status"], answer["text"])


def prune(hours=KEPT_HOURS, now=None):
    """Forget keys older than `hours`; return how many went."""
    cutoff = (now or utcnow()) - timedelta(hours=hours)
    deleted = db.session.execute(delete(IdempotencyKey).where(IdempotencyKey.created_at < cutoff)).rowcount
    db.session.commit()
    return deleted
