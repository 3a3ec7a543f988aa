"""The OpenAPI document (/api/v1/openapi.json, also checked in as docs/openapi.json) and the docs page.

The page is Swagger UI served from static/vendor/ (no CDN: the portal works without internet), started by
static/js/api-docs.js; it runs under the portal's own Content-Security-Policy, unrelaxed.
"""
import json
import os

from flask import Blueprint, current_app, render_template

from portal import ROOT
from portal.web.access import public

bp = Blueprint("api_docs", __name__, url_prefix="/api/v1")
CHECKED_IN = os.path.join(ROOT, "docs", "openapi.json")
SWAGGER_UI = "vendor/swagger-ui-5.35.0"


def document(app=None):
    """The API's OpenAPI document as a dict, generated from the code."""
    app = app or current_app
    return app.extensions["portal_api"].spec.to_dict()


def document_text(app=None):
    """The document as the checked-in file holds it: JSON, keys sorted, two-space indents, a final newline."""
    return json.dumps(document(app), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write_document(path=CHECKED_IN, app=None):
    """Write the document to path (docs/openapi.json by default); return the path."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as out:
        out.write(document_text(app))
    return path


@bp.route("/openapi.json")
@public
def openapi_json():
    """Serve the OpenAPI 3.1 document."""
    return current_app.response_class(document_text(), mimetype="application/json")


@bp.route("/docs")
@public
def docs_page():
    """Show the API's documentation (Swagger UI, from vendored files)."""
    return render_template("api_docs/index.html", swagger_ui=SWAGGER_UI)
