"""POST /api/v1/ingest: the ingestion endpoint, authenticated by an account's ingestion key (being written)."""
from flask import Blueprint

bp = Blueprint("ingest_api", __name__, url_prefix="/api/v1")
