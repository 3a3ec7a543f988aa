"""The email outbox: rows written in the action's transaction, delivered later by an RQ job."""
import logging
import smtplib
from email.message import EmailMessage

from flask import current_app, render_template
from sqlalchemy import select, update

from portal.domain.gate import may
from portal.extensions import QUEUE_MAIL, db, get_queue
from portal.models import OutboxEmail, User
from portal.timeutil import utcnow

log = logging.getLogger(__name__)
MAX_ATTEMPTS = 20


def queue_email(user, kind, subject, template, account=None, **context):
    """Add an email for user to the outbox (held if the gate pauses the user's email); return it.

    Args:
        user: the recipient User.
        kind: a short name of the email (account_suspended, ...).
        subject: the subject line.
        template: a Jinja template under templates/email/ rendering the plain-text body.
        account: the account the email is about (default: the user's own).
        context: values for the template.
    """
    account = account if account is not None else user.account
    held = user.role in ("account_manager", "tier_manager", "user") and not may(user, "receive_email", account)
    body = render_template(f"email/{template}", user=user, account=account,
                           billing_contact=current_app.config["BILLING_CONTACT"], **context)
    email = OutboxEmail(account_id=account.id if account else None, user_id=user.id, kind=kind,
                        to_addr=user.email, subject=subject, body=body,
                        status="held" if held else "pending")
    db.session.add(email)
    return email


def account_managers(account_id):
    """Return the account managers of an account who receive email."""
    stmt = select(User).where(User.account_id == account_id, User.role == "account_manager",
                              User.disabled.is_(False), User.email_notifications.is_(True))
    return list(db.session.scalars(stmt))


def release_held(account_id):
    """Mark the account's held emails pending again (after reactivation); return how many."""
    result = db.session.execute(update(OutboxEmail)
                                .where(OutboxEmail.account_id == account_id, OutboxEmail.status == "held")
                                .values(status="pending"))
    return result.rowcount


def kick_delivery():
    """Ask a worker to deliver pending email now; if Redis is down the scheduled retry picks it up."""
    from rq import Retry

    try:
        get_queue(QUEUE_MAIL).enqueue("portal.jobs.deliver_outbox", job_id="deliver-outbox",
                                      retry=Retry(max=10, interval=[10, 30, 60, 120, 300]),
                                      job_timeout=300)
    except Exception as exc:  # noqa: BLE001 - delivery is retried by the periodic job
        log.warning("could not enqueue email delivery: %s", exc)
        return False
    return True


def _send(email):
    msg = EmailMessage()
    msg["From"] = current_app.config["MAIL_FROM"]
    msg["To"] = email.to_addr
    msg["Subject"] = email.subject
    msg.set_content(email.body)
    cfg = current_app.config
    with smtplib.SMTP(cfg["SMTP_HOST"], cfg["SMTP_PORT"], timeout=cfg["SMTP_TIMEOUT"]) as smtp:
        smtp.send_message(msg)


def deliver_pending(limit=200):
    """Send pending emails over SMTP, oldest first; return (sent, failed).

    Each email is marked sent in its own commit right after SMTP accepts it, so a crash never
    sends one twice from this side. A failure leaves the email pending with its error and count.
    """
    ids = list(db.session.scalars(select(OutboxEmail.id).where(OutboxEmail.status == "pending")
                                  .order_by(OutboxEmail.id).limit(limit)))
    sent = failed = 0
    for email_id in ids:
        email = db.session.get(OutboxEmail, email_id)
        if email is None or email.status != "pending":
            continue
        try:
            _send(email)
        except (OSError, smtplib.SMTPException) as exc:
            email.attempts += 1
            email.last_error = str(exc)[:500]
            if email.attempts >= MAX_ATTEMPTS:
                email.status = "failed"
            db.session.commit()
            failed += 1
            continue
        email.status, email.sent_at, email.attempts = "sent", utcnow(), email.attempts + 1
        db.session.commit()
        sent += 1
    return sent, failed
