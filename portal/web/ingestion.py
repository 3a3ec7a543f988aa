"""Customers' data: the CSV upload, the records brought in, and the ingestion keys (being written)."""
from flask import Blueprint

bp = Blueprint("ingestion", __name__, url_prefix="/data")
