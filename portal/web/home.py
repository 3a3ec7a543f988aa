"""Landing pages: the root redirect, the account manager's home, health check."""
from flask import Blueprint, redirect, url_for
from flask_login import current_user

from portal import health
from portal.domain import audit
from portal.domain.accounts import get_account
from portal.domain.billing import open_invoices
from portal.domain.gate import may
from portal.web.access import public, roles_required
from portal.web.auth import home_url_for
from portal.web.helpers import render

bp = Blueprint("home", __name__)


@bp.route("/")
@public
def index():
    """Send a signed-in user to their role's home page, anyone else to sign in."""
    if current_user.is_authenticated:
        return redirect(home_url_for(current_user))
    return redirect(url_for("auth.login"))


@bp.route("/healthz")
@public
def healthz():
    """Say whether the database and Redis answer: 200 when both do, else 503 naming what is down."""
    all_up, services = health.report()
    body = {"status": "ok" if all_up else "unavailable", **services}
    if not all_up:
        body["down"] = [name for name, state in services.items() if state == "down"]
    return body, 200 if all_up else 503, {"Cache-Control": "no-store"}


@bp.route("/my-account")
@roles_required("account_manager")
def my_account():
    """Show the account manager their account: status, invoices, people and who may sign in now."""
    account = get_account(current_user, current_user.account_id)
    people = [(person, may(person, "login", account)) for person in account.users]
    return render("home/my_account.html", account=account, invoices=open_invoices(account.id, include_paid=True),
                  events=audit.timeline(account.id, limit=20), people=people,
                  refused=[person for person, sign_in in people if not sign_in])
