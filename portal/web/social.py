"""Customers' social monitor: connected feeds, imported posts, reply/flag/hide (being written)."""
from flask import Blueprint

bp = Blueprint("social", __name__, url_prefix="/social")
