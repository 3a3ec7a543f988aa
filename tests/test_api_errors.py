"""Errors under /api/v1 are problem documents (RFC 9457); the pages keep their HTML errors, and the ingestion
endpoint its own JSON shape."""
from portal.api.problems import TYPES
from tests.api_support import Api, make_token, problem


def test_an_unknown_api_path_or_method_is_a_problem_and_a_page_stays_html(app, client, world):
    api = Api(client, make_token(app, world.admin.id))
    problem(api.get("/api/v1/nothing-here"), 404, "not-found")
    body = problem(client.delete("/api/v1/accounts"), 405, "method-not-allowed")
    assert body["instance"] == "/api/v1/accounts"
    page = client.get("/nothing-here")
    assert page.status_code == 404 and page.mimetype == "text/html"
    assert "find that page or record" in page.get_data(as_text=True)


def test_a_nul_byte_in_the_query_is_a_problem_on_the_api(app, client, world):
    api = Api(client, make_token(app, world.admin.id))
    problem(api.get("/api/v1/accounts?q=a%00b"), 400, "bad-request")
    assert client.get("/accounts?q=a%00b").mimetype == "text/html"


def test_the_ingestion_endpoint_keeps_its_own_answers(client):
    response = client.post("/api/v1/ingest", json={"records": []})
    assert response.status_code == 401 and response.mimetype == "application/json"
    assert set(response.get_json()) == {"error", "message"}


def test_an_unexpected_error_is_a_server_error_problem_and_is_logged(app, client, world, monkeypatch, caplog):
    from portal.api import accounts

    def broken(_number):
        raise RuntimeError("database on fire")

    monkeypatch.setattr(accounts, "find_account", broken)
    api = Api(client, make_token(app, world.admin.id))
    body = problem(api.get("/api/v1/accounts/T0000001"), 500, "server-error")
    assert "fire" not in body["detail"]  # nothing internal leaks
    assert "database on fire" in caplog.text


def test_every_type_has_a_title():
    assert all(TYPES.values()) and len(TYPES) == len(set(TYPES))
