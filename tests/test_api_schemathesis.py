"""Schemathesis against the app on both databases: every operation of the OpenAPI document, with generated
inputs (valid and invalid), authenticated by a token holding every scope. No answer may be a server error, and
none may break the document (status, content type, headers, body schema); invalid input must be refused.

Half the valid cases name real rows (the account, its invoice, a request, a run), so the domain is reached, not only
the 404 of a random account number. Bounded: MAX_EXAMPLES per operation keeps it well under a minute.
"""
from datetime import timedelta

import pytest
import schemathesis
from schemathesis import GenerationMode
from sqlalchemy import delete
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import (content_type_conformance, negative_data_rejection, not_a_server_error,
                                 response_headers_conformance, response_schema_conformance, status_code_conformance)

from portal.domain import sweeps
from portal.extensions import db
from portal.models import SuspensionRule
from portal.timeutil import utcnow
from tests.api_support import Api, make_token, number_of

MAX_EXAMPLES = 50
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_headers_conformance,
          response_schema_conformance, negative_data_rejection]
pytestmark = pytest.mark.filterwarnings("ignore")


@pytest.fixture
def app_config():
    return {"API_RATE_LIMIT": "100000 per minute"}  # the rate limit has its own test; here every case is answered


@pytest.fixture
def seeded(app, client, world, make):
    """An account owing two invoices, a cancellation request on it and a finished-or-queued run."""
    token = make_token(app, world.admin.id, name="schemathesis")
    with app.app_context():
        db.session.execute(delete(SuspensionRule))
        db.session.add_all(SuspensionRule(enabled=True, **rule) for rule in sweeps.DEFAULT_RULES)
        db.session.commit()
    make.invoice(world.account, amount_cents=2500, seq=1, due_date=utcnow().date() - timedelta(days=40))
    make.invoice(world.account, amount_cents=1000, seq=2)
    number = number_of(app, world.account)
    api = Api(client, token)
    request_id = api.post("/api/v1/cancellation-requests", {"account_number": number, "channel": "call",
                                                             "contact_name": "Rita", "reason_code": "other",
                                                             "reason": "Moving"}).get_json()["id"]
    run = api.post("/api/v1/runs/cleanup", {"reason_note": "Fuzzing"})
    assert run.status_code == 202, run.get_data(as_text=True)
    return {"token": token, "real": {"number": number, "seq": 1, "request_id": request_id,
                                     "run_id": run.get_json()["id"]}}


def _exercise(operation, token, real, failures):
    cases = st.one_of(operation.as_strategy(GenerationMode.POSITIVE), operation.as_strategy(GenerationMode.NEGATIVE))

    @settings(max_examples=MAX_EXAMPLES, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(case=cases, use_real=st.booleans())
    def run(case, use_real):
        positive = case.meta is None or case.meta.generation.mode == GenerationMode.POSITIVE
        if use_real and positive and case.path_parameters:  # a negative case keeps its invalid parameter
            for name in case.path_parameters:
                case.path_parameters[name] = real.get(name, case.path_parameters[name])
        response = case.call(headers={"Authorization": f"Bearer {token}"})
        try:
            case.validate_response(response, checks=CHECKS)
        except Exception as exc:  # noqa: BLE001 - collect every operation's failure, then report them all
            failures.append(f"{operation.label}: {exc}"[:2000])
            raise

    try:
        run()
    except Exception:  # noqa: BLE001 - already recorded (hypothesis re-raises the shrunk failure)
        pass


def test_no_operation_answers_a_server_error_or_breaks_the_document(app, seeded):
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    failures, operations = [], 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1
        _exercise(operation, seeded["token"], seeded["real"], failures)
    assert operations >= 20
    assert failures == [], "\n\n".join(dict.fromkeys(failures))
