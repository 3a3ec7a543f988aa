"""The outbox: emails by status with filters (super admins and support), one email, sending a failed one again.

Support reads the outbox (a customer on the phone asks whether the email went out); only super admins
send an email again.
"""
import json

from flask import Blueprint, flash, request, url_for
from flask_login import current_user

from portal.domain import outbox
from portal.domain.errors import Conflict
from portal.domain.gate import may
from portal.web.access import STAFF, SUPER_ADMIN, roles_required
from portal.web.helpers import is_fragment_request, redirect_after_post, render

bp = Blueprint("outbox", __name__, url_prefix="/outbox")


@bp.app_template_global()
def outbox_statuses():
    """The outbox's statuses and their names, for the templates."""
    return outbox.STATUSES


@bp.route("")
@roles_required(STAFF)
def index():
    """List emails, newest first, by status, kind, recipient, account or run; 422 at a bad filter."""
    f = outbox.parse_filters(request.args)
    rows, after = ([], None) if f.problems else outbox.emails_page(f)
    return render("outbox/index.html", block="outbox_log", status=422 if f.problems else 200, filters=f,
                  rows=rows, kinds=outbox.kind_choices(), kind_label=outbox.kind_label,
                  counts=outbox.status_counts(), cap=outbox.COUNT_CAP,
                  here=url_for("outbox.index", **f.args(f.after)),
                  next_url=url_for("outbox.index", **f.args(after)) if after else None,
                  first_url=url_for("outbox.index", **f.args()))


def _detail(email_id, status=200, error=None, done=None, headers=None, block="email_dialog"):
    email, account = outbox.get_email(email_id)
    return render("outbox/detail.html", block=block, status=status, headers=headers, email=email,
                  account=account, kind_label=outbox.kind_label, can_resend=bool(may(current_user, "resend_email", None)),
                  error=error, done=done, as_dialog=is_fragment_request(),
                  back_url=url_for("outbox.index"))


@bp.route("/<int:email_id>")
@roles_required(STAFF)
def detail(email_id):
    """Show one email: recipient, subject, body, attempts and last error (a dialog for htmx, else a page)."""
    return _detail(email_id)


@bp.route("/<int:email_id>/resend", methods=["POST"])
@roles_required(SUPER_ADMIN)
def resend(email_id):
    """Send a failed email again; an email already sent (or waiting) is refused and nothing changes."""
    try:
        email = outbox.resend(current_user._get_current_object(), email_id)
    except Conflict as exc:
        return _detail(email_id, exc.status_code, error=exc.message, block="email_body")
    message = f"The email to {email.to_addr} is queued to be sent again."
    if is_fragment_request():
        return _detail(email_id, done=message, block="email_body",
                       headers={"HX-Trigger": json.dumps({"outbox-email-resent": {"id": email.id}})})
    flash(message, "success")
    return redirect_after_post("outbox.detail", email_id=email_id)
