"""Idempotency-Key on pushes: the same key and body answers the first answer again and writes nothing.

The key's row is added to the session before the domain function runs, so the domain's own commit writes
it with the invoice or payment, atomically. The unique (token, key) pair is the dedupe: a second push with
the key at the same moment fails to commit (IntegrityError), its whole transaction is gone, and it answers
what the first one stored. A refused push (a domain error) rolls the row back with everything else, so the
same key may be sent again once the problem is fixed. The answer is stored right after the commit; in the
moment between, a replay gets 409 `idempotency-key-in-progress`.
"""
import hashlib
import json
from datetime import timedelta

from flask import current_app, request
from marshmallow import EXCLUDE, Schema, fields, validate
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

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


def run_once(actor, key, push):
    """Answer a push under its Idempotency-Key: replay the stored answer, or run push() and store its answer.

    Args:
        actor: the TokenActor (keys are per token).
        key: the Idempotency-Key header's value.
        push: a function doing the push (one domain call, which commits) and returning (status, JSON-able body).

    Raises:
        ApiProblem: idempotency-key-reused (422), idempotency-key-in-progress (409).
        DomainError: the push was refused; nothing of it, nor the key, was written.
    """
    print_ = fingerprint()
    row = _stored(actor.token_id, key)
    if row is not None:
        return _replay(row, print_)
    row = IdempotencyKey(token_id=actor.token_id, key=key, fingerprint=print_, created_at=utcnow())
    db.session.add(row)  # written by the push's own commit, or rolled back with it
    try:
        status, body = push()
    except IntegrityError:
        db.session.rollback()
        row = _stored(actor.token_id, key)
        if row is None:
            raise
        return _replay(row, print_)
    except Exception:
        db.session.rollback()
        raise
    text = current_app.json.dumps(body)  # as jsonify writes the other answers
    if row not in db.session:  # the push rolled back and went on (none does today): keep the key all the same
        db.session.add(row)
    row.response_status, row.response_body = status, text
    db.session.commit()
    return _response(status, text)


def prune(hours=KEPT_HOURS, now=None):
    """Forget keys older than `hours`; return how many went."""
    cutoff = (now or utcnow()) - timedelta(hours=hours)
    deleted = db.session.execute(delete(IdempotencyKey).where(IdempotencyKey.created_at < cutoff)).rowcount
    db.session.commit()
    return deleted
