"""Customers' listings and their directory connections (being written)."""
from flask import Blueprint

bp = Blueprint("listings", __name__, url_prefix="/listings")
