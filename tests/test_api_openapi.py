"""The OpenAPI document: generated from the code, served at /api/v1/openapi.json, checked in as docs/openapi.json
(this fails when they differ), covering every API route; the docs page from vendored files under the CSP."""
import json
import os

from portal.api.docs import CHECKED_IN, SWAGGER_UI, document_text
from portal.web.headers import CSP
from tests.conftest import ROOT

API_BLUEPRINTS = ("api_accounts", "api_billing", "api_cancellations", "api_runs")


def test_the_checked_in_document_is_the_codes(app):
    with app.app_context():
        generated = document_text()
    with open(CHECKED_IN, encoding="utf-8") as checked_in:
        assert checked_in.read() == generated, ("docs/openapi.json is out of date: run "
                                                "'flask api openapi --write' and commit it")


def test_the_served_document_is_openapi_3_1_and_names_the_security(client):
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200 and response.mimetype == "application/json"
    doc = response.get_json()
    assert doc["openapi"] == "3.1.0" and doc["info"]["version"] == "v1"
    assert doc["components"]["securitySchemes"]["bearerAuth"] == dict(
        doc["components"]["securitySchemes"]["bearerAuth"], type="http", scheme="bearer")
    problem = doc["components"]["responses"]["DEFAULT_ERROR"]["content"]
    assert list(problem) == ["application/problem+json"]
    assert response.headers["Content-Security-Policy"] == CSP


def test_every_api_route_is_in_the_document(app):
    with app.app_context():
        paths = json.loads(document_text())["paths"]
    routes = {(rule.rule, method) for rule in app.url_map.iter_rules()
              if rule.endpoint.split(".")[0] in API_BLUEPRINTS
              for method in rule.methods - {"HEAD", "OPTIONS"}}
    documented = set()
    for path, item in paths.items():
        for method in item:
            if method != "parameters":
                documented.add((path, method.upper()))
    as_flask = {(p.replace("{", "<").replace("}", ">"), m) for p, m in documented}
    missing = {(r, m) for r, m in routes if (r.replace("<int:", "<"), m) not in as_flask}
    assert routes and missing == set()


def test_the_docs_page_uses_vendored_files_under_the_portals_policy(client):
    response = client.get("/api/v1/docs")
    assert response.status_code == 200
    assert response.headers["Content-Security-Policy"] == CSP  # not relaxed for this page
    page = response.get_data(as_text=True)
    assert f"/static/{SWAGGER_UI}/swagger-ui-bundle.js" in page and "/static/js/api-docs.js" in page
    assert "http://" not in page and "https://" not in page  # no CDN
    for name in ("swagger-ui-bundle.js", "swagger-ui.css", "LICENSE"):
        assert os.path.getsize(os.path.join(ROOT, "static", SWAGGER_UI, name)) > 0
    assert client.get(f"/static/{SWAGGER_UI}/swagger-ui-bundle.js").status_code == 200


def test_apps_of_the_same_settings_share_one_document_and_others_get_their_own(monkeypatch):
    """The document is built once per process for the same API settings and routes (portal.api.PortalApi): a
    later app's document is the first one's, and equal to one built afresh; other settings build their own."""
    import portal.api
    from portal import create_app
    from tests.conftest import _config

    config = _config("sqlite://", "redis://127.0.0.1:1/0")
    monkeypatch.setattr(portal.api, "_DOCUMENTS", {})
    first, second = create_app(config), create_app(config)
    spec = first.extensions["portal_api"].spec
    assert second.extensions["portal_api"].spec is spec
    monkeypatch.setattr(portal.api, "_DOCUMENTS", {})
    afresh = create_app(config).extensions["portal_api"].spec
    assert afresh is not spec and afresh.to_dict() == spec.to_dict()
    other = create_app(dict(config, API_TITLE="Another title")).extensions["portal_api"].spec
    assert other is not spec and other.to_dict()["info"]["title"] == "Another title"
    assert {k: v for k, v in other.to_dict().items() if k != "info"} == \
        {k: v for k, v in spec.to_dict().items() if k != "info"}
    with second.test_request_context():
        assert json.loads(second.test_client().get("/api/v1/openapi.json").get_data()) == json.loads(
            json.dumps(spec.to_dict()))
