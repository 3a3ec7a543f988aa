"""The effect matrix: what each action does in each state and role, read from the gate's table (being written)."""
from flask import Blueprint

bp = Blueprint("effects", __name__, url_prefix="/effects")
