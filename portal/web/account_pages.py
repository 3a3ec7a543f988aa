"""Staff pages about one account: its page, and the suspend/reactivate dialog."""
from flask_login import current_user

from portal.domain import audit
from portal.domain.accounts import get_account
from portal.domain.billing import open_invoices
from portal.web.access import STAFF, roles_required
from portal.web.accounts import bp
from portal.web.helpers import render


@bp.route("/<int:account_id>")
@roles_required(STAFF)
def detail(account_id):
    """Show one account: status, people, invoices, timeline."""
    account = get_account(current_user, account_id)
    return render("accounts/detail.html", account=account, invoices=open_invoices(account.id, include_paid=True),
                  events=audit.timeline(account.id))
