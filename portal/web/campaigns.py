"""Customers' campaigns: create, pause, resume, end, and their history (being written)."""
from flask import Blueprint

bp = Blueprint("campaigns", __name__, url_prefix="/campaigns")
