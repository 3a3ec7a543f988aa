"""The dunning emails to account managers: warning, limited, suspended, lifted (service restored lives in
account_state). Rendered once per kind with placeholders, filled in per recipient, inserted in one statement,
so a daily run that limits 50,000 accounts queues their emails in one INSERT.
"""
from flask import current_app
from sqlalchemy import insert, select

from portal.extensions import db
from portal.models import Account, OutboxEmail, User

PLACEHOLDERS = {"user": "\x01USER\x01", "number": "\x01NUMBER\x01", "name": "\x01NAME\x01",
                "invoices": "\x01INVOICES\x01", "next_step": "\x01NEXT\x01", "step_date": "\x01STEP\x01"}
KINDS = {
    "limited": ("dunning_limited", "Service on account {number} is limited", "dunning_limited.txt"),
    "suspended": ("dunning_suspended", "Your account {number} has been suspended", "dunning_suspended.txt"),
    "warning_limitation": ("dunning_warning", "Service on account {number} will be limited on {step_date}",
                           "dunning_warning.txt"),
    "warning_suspension": ("dunning_warning", "Account {number} will be suspended on {step_date}",
                           "dunning_warning.txt"),
}


class _Person:
    name = PLACEHOLDERS["user"]


class _Account:
    number = PLACEHOLDERS["number"]
    name = PLACEHOLDERS["name"]


def _render(template, step, with_next):
    return current_app.jinja_env.get_template(f"email/{template}").render(
        user=_Person(), account=_Account(), invoices=PLACEHOLDERS["invoices"],
        next_step=PLACEHOLDERS["next_step"] if with_next else "",
        step_date=PLACEHOLDERS["step_date"], step=step, billing_contact=current_app.config["BILLING_CONTACT"])


def _invoice_words(view):
    """The overdue invoices by sequence number, as the set-based path writes them: "#1, #3"."""
    return ", ".join(f"#{seq}" for seq in sorted(view.overdue_seqs))


def queue_step_emails(what, account_ids, now, views, step_dates=None):
    """Queue one email per account manager of each account: what = limited | suspended | warning_*.

    Args:
        what: a key of KINDS.
        account_ids: the accounts concerned.
        now: the time the emails are queued.
        views: {account id: calendar.View} for the invoice lists and next steps.
        step_dates: {account id: date} of the warned step (warnings only).
    """
    if not account_ids:
        return 0
    kind, subject_text, template = KINDS[what]
    step = what.split("_", 1)[1] if what.startswith("warning_") else None
    bodies = {with_next: _render(template, step, with_next) for with_next in (True, False)}
    recipients = db.session.execute(
        select(User.id, User.name, User.email, User.account_id, Account.number, Account.name.label("account_name"))
        .join(Account, Account.id == User.account_id)
        .where(User.account_id.in_(list(account_ids)), User.role == "account_manager", User.disabled.is_(False),
               User.email_notifications.is_(True))).all()
    rows = []
    for r in recipients:
        view = views.get(r.account_id)
        next_step = view.suspension_on.isoformat() if view and what == "limited" and view.suspension_on else ""
        step_date = (step_dates or {}).get(r.account_id)
        values = {"user": r.name, "number": r.number, "name": r.account_name,
                  "invoices": _invoice_words(view) if view else "", "next_step": next_step,
                  "step_date": step_date.isoformat() if step_date else ""}
        body = bodies[bool(next_step)]
        for key, placeholder in PLACEHOLDERS.items():
            body = body.replace(placeholder, values[key])
        rows.append(dict(created_at=now, account_id=r.account_id, user_id=r.id, kind=kind, to_addr=r.email,
                         subject=subject_text.format(number=r.number, step_date=values["step_date"]), body=body,
                         status="pending", attempts=0))
    if rows:
        db.session.execute(insert(OutboxEmail), rows)
    return len(rows)
