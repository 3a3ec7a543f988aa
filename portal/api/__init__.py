"""The JSON API for integrations: /api/v1, OpenAPI 3.1, bearer tokens with scopes, problem+json errors.

    problems      errors as RFC 9457 problem documents, one stable type per domain error
    auth          the bearer token, its scope, the rate limit per token, and the log of every use
    idempotency   Idempotency-Key on pushes: the first answer again, never a second write
    schemas       the request and response shapes (marshmallow), shared by the resources
    accounts      list, one account, its timeline, and the status changes (suspend ... cancel)
    billing       invoices and payments pushed by a billing system, write-offs
    cancellations the cancellation log: log a request, retention, the CSV
    runs          the sweep rules' preview, clean-ups, a run's progress and report, undo
    docs          the OpenAPI document (/api/v1/openapi.json) and the docs page (vendored Swagger UI)

Every view calls the same domain function the page and the command call; nothing here decides anything
the domain decides. The ingestion endpoint (portal/web/ingest_api.py) lives beside it under /api/v1.
"""
import http
import os

from flask_smorest import Api
from flask_smorest.spec import openapi_cli
from flask_smorest.utils import prepare_response

from portal.api.problems import CONTENT_TYPE

PREFIX = "/api/v1"
DESCRIPTION = """\
The Account Suspension Portal's API for integrations: a billing system pushes invoices and payments, other
systems read and change account status, feed the cancellation log and drive clean-up runs.

**Authentication.** Send a token as `Authorization: Bearer ak_…` (super admins create tokens under Settings →
API tokens, or with `flask api-token create`). Each operation names the scope it needs; a token without it
gets `403` (type `forbidden`), a missing, unknown, expired or revoked token `401`. The session cookie of the
pages is never accepted. Requests are rate-limited per token (`429`, type `rate-limited`).

**Errors** are `application/problem+json` (RFC 9457) with a stable `type`: `validation` (with `errors` by
field), `not-found`, `invalid-transition`, `conflict`, `unpaid-invoices` (with `invoices`), `not-allowed`
(the account's state or the token owner's role refuses it), `idempotency-key-reused`, `payload-too-large`,
`malformed-json`, `rate-limited`, and so on. A refused request changes nothing.

**Pushes** (`POST …/invoices`, `POST …/payments`) take an `Idempotency-Key` header: the same key with the same
body answers the first answer again (header `Idempotent-Replayed: true`) and writes nothing; the same key
with another body is refused (`422`, type `idempotency-key-reused`). Keys are kept for 24 hours.
"""


# The OpenAPI documents built in this process, by the settings and routes they were built from (PortalApi).
_DOCUMENTS = {}


def _document_key(app, blueprints):
    """What an app's OpenAPI document is made of besides the code: its API settings and its API routes."""
    settings = sorted((k, repr(v)) for k, v in app.config.items() if k.startswith(("API_", "OPENAPI_")))
    names = {blueprint.name for blueprint in blueprints}
    routes = sorted((rule.rule, rule.endpoint, tuple(sorted(rule.methods or ())))
                    for rule in app.url_map.iter_rules() if rule.endpoint.partition(".")[0] in names)
    return tuple(settings), tuple(sorted(names)), tuple(routes)


class PortalApi(Api):
    """flask-smorest's Api with problem+json errors documented, and no error handler of its own.

    portal.web.errors answers every error (HTML for the pages, problem+json under /api/), so smorest's
    app-wide HTTPException handler, which would answer the pages' errors in JSON, is not installed.

    The OpenAPI document is built once per process for the same settings and routes: building it (apispec
    resolving every schema of every operation) is four fifths of building an app, and a process that builds
    several apps (the test suite builds one per test, the benchmarks one per database) would build the same
    document each time. A later app with the same settings and routes is given that document's
    spec object (read-only once built: it is only turned into JSON); any other is built anew.
    """

    def __init__(self, app, blueprints):
        self._key = self._built = None
        self._blueprints = blueprints
        super().__init__(app)

    def _init_spec(self, **kwargs):
        for blueprint in self._blueprints:  # the routes first: they are part of what the document is made of
            self._app.register_blueprint(blueprint)
            self._app.extensions["flask-smorest"]["blp_name_to_api"][blueprint.name] = self
        self._key = _document_key(self._app, self._blueprints)
        self._built = _DOCUMENTS.get(self._key)
        if self._built is None:
            super()._init_spec(**kwargs)
            return
        self.spec, self.flask_plugin, self.ma_plugin = self._built
        self._app.cli.add_command(openapi_cli)

    def register_converter(self, converter, func):
        if self._built is None:  # (a document already built has its converters)
            super().register_converter(converter, func)

    def register_blueprint(self, blp, **options):
        raise TypeError("PortalApi takes its blueprints when it is made: PortalApi(app, blueprints)")

    def document_views(self):
        """Add the blueprints' views to the document, once the converters are registered (as flask-smorest's
        register_blueprint would, the routes already added), and keep it for later apps of this process."""
        if self._built is not None:
            return
        for blueprint in self._blueprints:
            blueprint.register_views_in_doc(self, self._app, self.spec, name=blueprint.name, parameters=None)
            self.spec.tag({"name": blueprint.name, "description": blueprint.description})
        self._built = _DOCUMENTS.setdefault(self._key, (self.spec, self.flask_plugin, self.ma_plugin))

    def _register_error_handlers(self):
        """Leave error handling to portal.web.errors."""

    def _register_responses(self):
        """Register the error responses of every status as problem+json."""
        from portal.api.schemas import ProblemSchema

        # The problem schema is resolved once and referenced: resolving it for each of the 63 statuses copied its
        # fields each time, half of building an app (every test builds one; so does every gunicorn worker).
        self.spec.components.schema("Problem", schema=ProblemSchema)
        problem = {"$ref": "#/components/schemas/Problem"}
        for status in http.HTTPStatus:
            response = {"description": status.phrase}
            if not (100 <= status < 200) and status not in (204, 304):
                response["schema"] = problem
            prepare_response(response, self.spec, CONTENT_TYPE)
            self.spec.components.response(status.name, response, lazy=True)
        response = {"description": "An error, as a problem document (RFC 9457)", "schema": problem}
        prepare_response(response, self.spec, CONTENT_TYPE)
        self.spec.components.response("DEFAULT_ERROR", response, lazy=True)


def _configure(app):
    app.config.setdefault("API_TITLE", "Account Suspension Portal API")
    app.config.setdefault("API_VERSION", "v1")
    app.config.setdefault("OPENAPI_VERSION", "3.1.0")
    app.config.setdefault("API_RATE_LIMIT", os.environ.get("PORTAL_API_RATE_LIMIT", "300 per minute"))
    app.config.setdefault("API_MAX_BODY_BYTES", 64 * 1024)
    app.config.setdefault("API_SPEC_OPTIONS", {
        "info": {"description": DESCRIPTION},
        "servers": [{"url": "/", "description": "This portal"}],
        "components": {"securitySchemes": {"bearerAuth": {
            "type": "http", "scheme": "bearer", "bearerFormat": "ak_ followed by 43 URL-safe characters"}}},
    })


def init_app(app):
    """Build the API for app: its blueprints, their OpenAPI document, the docs page and the request log."""
    from portal.api import accounts, auth, billing, cancellations, docs, runs
    from portal.domain.parsing import ID_MAX
    from portal.web.converters import IdConverter

    _configure(app)
    blueprints = (accounts.blp, billing.blp, cancellations.blp, runs.blp)
    api = PortalApi(app, blueprints)
    api.register_converter(IdConverter, lambda _converter: {"type": "integer", "minimum": 1, "maximum": ID_MAX})
    api.document_views()
    app.extensions["portal_api"] = api
    app.register_blueprint(docs.bp)
    auth.init_app(app, {blueprint.name for blueprint in blueprints})
    return api
