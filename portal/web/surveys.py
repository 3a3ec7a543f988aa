"""Customers' surveys and reminders sent by hand (being written)."""
from flask import Blueprint

bp = Blueprint("surveys", __name__, url_prefix="/surveys")
