"""Staff pages about accounts: the list and one account's page."""
from flask import Blueprint
from flask_login import current_user
from sqlalchemy import select

from portal.domain import audit
from portal.domain.accounts import get_account
from portal.domain.billing import open_invoices
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


@bp.route("/<int:account_id>")
@roles_required(STAFF)
def detail(account_id):
    """Show one account: status, people, invoices, timeline."""
    account = get_account(current_user, account_id)
    return render("accounts/detail.html", account=account, invoices=open_invoices(account.id, include_paid=True),
                  events=audit.timeline(account.id))
