"""Every operation of the API refuses a request without a token (401) and a token without its scope (403),
as problem documents, changing nothing. The operations and their scopes come from the OpenAPI document, so
an operation added later is walked too."""
import pytest
from sqlalchemy import select

from portal import create_app
from portal.api.docs import document
from portal.domain.api_tokens import SCOPES
from portal.extensions import db
from tests.api_support import Api, make_token, number_of, problem
from tests.test_access import _snapshot

METHODS = ("get", "post", "put", "patch", "delete")


def _operations():
    app = create_app({"ENV_NAME": "testing", "SECRET_KEY": "collect", "SQLALCHEMY_DATABASE_URI": "sqlite://",
                      "REDIS_URL": "redis://127.0.0.1:1/0"})
    with app.app_context():
        paths = document(app)["paths"]
    return [(method.upper(), path, op.get("x-required-scope")) for path, item in paths.items()
            for method, op in item.items() if method in METHODS]


OPERATIONS = _operations()


def _url(path, number):
    return (path.replace("{number}", number).replace("{seq}", "1").replace("{request_id}", "1")
            .replace("{run_id}", "1"))


def test_every_operation_names_a_known_scope():
    assert len(OPERATIONS) >= 20
    assert [(m, p) for m, p, scope in OPERATIONS if scope not in SCOPES] == []
    assert {scope for _m, _p, scope in OPERATIONS} == set(SCOPES)  # each scope guards something


@pytest.mark.parametrize("method, path, scope", OPERATIONS, ids=[f"{m} {p}" for m, p, _s in OPERATIONS])
def test_an_operation_refuses_no_token_and_a_token_without_its_scope(app, client, world, redis_server, rows_watch,
                                                                     method, path, scope):
    others = [s for s in SCOPES if s != scope]
    lacking = Api(client, make_token(app, world.admin.id, scopes=others, name="lacking"))
    url = _url(path, number_of(app, world.account))
    before = _snapshot(rows_watch, redis_server.url)
    body = problem(client.open(url, method=method, json={}), 401, "unauthorized")
    assert "Bearer" in body["detail"]
    refused = lacking.client.open(url, method=method, json={}, headers=lacking.headers(key="k"))
    body = problem(refused, 403, "forbidden")
    assert body["required_scope"] == scope and scope in body["detail"]
    after = _snapshot(rows_watch, redis_server.url)
    # the refusal of the known token is logged (api_token_events, last_used_at); nothing else changes
    logged = {"api_token_events", "api_tokens"}
    assert {k: v for k, v in after[0].items() if k not in logged} == {k: v for k, v in before[0].items()
                                                                      if k not in logged}
    from portal.models import ApiTokenEvent

    with app.app_context():
        assert [(e.status, e.outcome) for e in db.session.scalars(select(ApiTokenEvent))] == [(403, "forbidden")]
