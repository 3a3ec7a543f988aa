"""The public profile page (/p/<number>), its editing by account managers, and by super admins (being written)."""
from flask import Blueprint

bp = Blueprint("profiles", __name__)
