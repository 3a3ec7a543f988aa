"""The email outbox: rows written in the action's transaction, delivered later by an RQ job.

An email's life: `pending` (waiting) or `held` (its recipient's email is paused by the gate, e.g. a
member of a suspended account) -> `sending` (claimed by one delivery run) -> `sent`, or back to
`pending` after a failure, or `failed` once the server has refused it MAX_ATTEMPTS times. A run that
cannot connect to the server counts no attempt against any email: an SMTP outage of any length loses
nothing (the delivery job retries for about a day, then the scheduler's tick queues it again). While
an email is `sending`, `sent_at`
holds the time of the claim, so a claim left behind by a killed worker is taken back after
CLAIM_LEASE (the email may then go out twice: delivery is at least once, never lost).
"""
import logging
import smtplib
from datetime import timedelta
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from flask import current_app
from sqlalchemy import select, update

from portal.domain.gate import REASONS, SUSPENSION_BANNERS, may
from portal.extensions import QUEUE_MAIL, db, get_queue
from portal.models import Account, OutboxEmail, User
from portal.timeutil import utcnow

log = logging.getLogger(__name__)
MAX_ATTEMPTS = 20
CLAIM_LEASE = timedelta(minutes=10)
MEMBER_ROLES = ("tier_manager", "user")
CUSTOMER_ROLES = ("account_manager",) + MEMBER_ROLES
DELIVERY_JOB_ID = "deliver-outbox"
DEFAULT_RETRY_INTERVALS = [10, 30, 60, 120, 300]  # seconds; the last one repeats
DEFAULT_RETRY_MAX = 300  # with the 5-minute interval: about a day of retries before RQ gives up
# Errors that say the SMTP server cannot be reached or talked to: stop this run, retry later.
SERVER_ERRORS = (OSError, smtplib.SMTPServerDisconnected, smtplib.SMTPConnectError, smtplib.SMTPHeloError,
                 smtplib.SMTPNotSupportedError)


def render_email(template, **context):
    """Render a plain-text email template under templates/email/ (no page context, works in jobs and CLI)."""
    context.setdefault("billing_contact", current_app.config["BILLING_CONTACT"])
    context.setdefault("reasons", REASONS)
    context.setdefault("banners", SUSPENSION_BANNERS)
    return current_app.jinja_env.get_template(f"email/{template}").render(**context)


def _mail_paused(user, account):
    """True when the gate pauses this customer's email (e.g. a member of a suspended account)."""
    return user.role in CUSTOMER_ROLES and not may(user, "receive_email", account)


def queue_email(user, kind, subject, template, account=None, now=None, **context):
    """Add an email for user to the current transaction's outbox and return it (the caller commits).

    Args:
        user: the recipient User.
        kind: a short name of the email (account_suspended, ...).
        subject: the subject line.
        template: a Jinja template under templates/email/ rendering the plain-text body.
        account: the account the email is about (default: the user's own).
        now: when it was queued (default now).
        context: values for the template.

    The email is `held` instead of `pending` when the gate pauses the recipient's email; release_held
    lets it go on reactivation.
    """
    account = account if account is not None else user.account
    held = _mail_paused(user, account)
    body = render_email(template, user=user, account=account, **context)
    email = OutboxEmail(created_at=now or utcnow(), account_id=account.id if account else None, user_id=user.id,
                        kind=kind, to_addr=user.email, subject=subject, body=body,
                        status="held" if held else "pending")
    db.session.add(email)
    return email


# Emails to a customer's own address (no portal user): the kind names the gate action ("system") whose
# refusal holds them, checked when queued and again at delivery (an account suspended meanwhile).
ADDRESS_MAIL_ACTIONS = {
    "campaign_survey": "run_campaign",
    "campaign_reminder": "run_campaign",
    "manual_survey": "send_notification",
    "manual_reminder": "send_notification",
}


def _address_mail_paused(kind, account):
    """True when the gate pauses an email of this kind to a customer's address of the account."""
    return account is not None and not may("system", ADDRESS_MAIL_ACTIONS[kind], account)


def queue_address_email(account, to_addr, kind, subject, template, now=None, **context):
    """Add an email to a customer's address (not a portal user) to the current transaction's outbox.

    Args:
        account: the Account on whose behalf it is sent (its state decides whether it is held).
        to_addr: the recipient's email address (already validated).
        kind: one of ADDRESS_MAIL_ACTIONS (campaign_survey, manual_reminder, ...).
        subject: the subject line.
        template: a Jinja template under templates/email/ rendering the plain-text body.
        now: when it was queued (default now).
        context: values for the template (`account` is given).

    Returns:
        The OutboxEmail, flushed (it has an id); `held` instead of `pending` while the gate pauses its kind,
        released with the account's other held mail by release_held on reactivation.

    Raises:
        ValueError: kind is not one of ADDRESS_MAIL_ACTIONS (a programming error).
    """
    if kind not in ADDRESS_MAIL_ACTIONS:
        raise ValueError(f"unknown customer email kind {kind!r}")
    body = render_email(template, account=account, **context)
    email = OutboxEmail(created_at=now or utcnow(), account_id=account.id, user_id=None, kind=kind, to_addr=to_addr,
                        subject=subject, body=body,
                        status="held" if _address_mail_paused(kind, account) else "pending")
    db.session.add(email)
    db.session.flush()
    return email


def account_managers(account_id):
    """Return the account managers of an account who receive email."""
    stmt = select(User).where(User.account_id == account_id, User.role == "account_manager",
                              User.disabled.is_(False), User.email_notifications.is_(True)).order_by(User.id)
    return list(db.session.scalars(stmt))


def hold_members_mail(account_id):
    """Hold the pending emails of the account's tier managers and users (on suspension); return how many."""
    members = select(User.id).where(User.account_id == account_id, User.role.in_(MEMBER_ROLES))
    result = db.session.execute(update(OutboxEmail)
                                .where(OutboxEmail.account_id == account_id, OutboxEmail.status == "pending",
                                       OutboxEmail.user_id.in_(members))
                                .values(status="held").execution_options(synchronize_session=False))
    return result.rowcount


def release_held(account_id):
    """Mark the account's held emails pending again (after reactivation); return how many."""
    result = db.session.execute(update(OutboxEmail)
                                .where(OutboxEmail.account_id == account_id, OutboxEmail.status == "held")
                                .values(status="pending").execution_options(synchronize_session=False))
    return result.rowcount


def kick_delivery():
    """Ask a worker to deliver pending email now; return False if Redis could not be reached.

    Call it after the commit that queued the emails. The job has a fixed id (one delivery job at a
    time) and retries with growing intervals while SMTP is down; whatever stays pending is also sent
    by the next kick or by `flask outbox-deliver`. It also queues the webhook job when an endpoint is
    enabled (the changes that send email are the ones webhooks announce).
    """
    from rq import Retry

    from portal.domain import webhooks

    webhooks.kick()

    config = current_app.config
    try:
        get_queue(QUEUE_MAIL).enqueue(
            "portal.jobs.deliver_outbox", job_id=DELIVERY_JOB_ID, job_timeout=300,
            retry=Retry(max=config.get("MAIL_RETRY_MAX", DEFAULT_RETRY_MAX),
                        interval=config.get("MAIL_RETRY_INTERVALS", DEFAULT_RETRY_INTERVALS)))
    except Exception as exc:  # noqa: BLE001 - the email is safe in the outbox; the next kick sends it
        log.warning("could not enqueue email delivery: %s", exc)
        return False
    return True


def kick_if_stranded():
    """Queue delivery if emails are pending and no delivery job is queued, scheduled or running.

    The scheduler calls this on every tick, so email left pending after RQ gave up retrying (or
    queued while Redis was down) goes out without waiting for the next action. Returns True if queued.
    """
    from rq.exceptions import NoSuchJobError
    from rq.job import Job

    if db.session.scalar(select(OutboxEmail.id).where(OutboxEmail.status == "pending").limit(1)) is None:
        return False
    try:
        job = Job.fetch(DELIVERY_JOB_ID, connection=get_queue(QUEUE_MAIL).connection)
        if job.get_status(refresh=False) in ("queued", "scheduled", "started", "deferred"):
            return False
    except NoSuchJobError:
        pass
    except Exception as exc:  # noqa: BLE001 - Redis down: the next tick tries again
        log.warning("could not look up the delivery job: %s", exc)
        return False
    return kick_delivery()


def _message(email):
    msg = EmailMessage()
    msg["From"] = current_app.config["MAIL_FROM"]
    msg["To"] = email.to_addr
    msg["Subject"] = email.subject
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = make_msgid(idstring=f"outbox-{email.id}")
    msg.set_content(email.body)
    return msg


def _claim(email_id, now):
    """Take one pending email for this run (compare-and-set); False if another run has it."""
    result = db.session.execute(update(OutboxEmail)
                                .where(OutboxEmail.id == email_id, OutboxEmail.status == "pending")
                                .values(status="sending", sent_at=now, attempts=OutboxEmail.attempts + 1)
                                .execution_options(synchronize_session=False))
    db.session.commit()
    return result.rowcount == 1


def _finish(email_id, error=None, counted=True):
    """Record the outcome of a claimed email and commit; counted=False gives the claim's attempt back
    (the server was never reached, so the email itself was not refused)."""
    email = db.session.get(OutboxEmail, email_id, populate_existing=True)
    if error is None:
        email.status, email.sent_at, email.last_error = "sent", utcnow(), None
    else:
        if not counted:
            email.attempts -= 1
        email.status = "failed" if email.attempts >= MAX_ATTEMPTS else "pending"
        email.sent_at, email.last_error = None, str(error)[:500] or error.__class__.__name__
    db.session.commit()


def _paused_now(email):
    """True when the gate now pauses this email: its user's mail, or its kind of mail to a customer's address."""
    account = db.session.get(Account, email.account_id) if email.account_id else None
    if email.user_id is None:
        return email.kind in ADDRESS_MAIL_ACTIONS and _address_mail_paused(email.kind, account)
    user = db.session.get(User, email.user_id)
    return user is not None and _mail_paused(user, account if account is not None else user.account)


def _hold_if_paused(email):
    """Hold an email whose recipient's mail the gate now pauses (suspended after it was queued)."""
    if not _paused_now(email):
        return False
    db.session.execute(update(OutboxEmail).where(OutboxEmail.id == email.id, OutboxEmail.status == "pending")
                       .values(status="held").execution_options(synchronize_session=False))
    db.session.commit()
    return True


def _reclaim_stale(now):
    db.session.execute(update(OutboxEmail)
                       .where(OutboxEmail.status == "sending", OutboxEmail.sent_at < now - CLAIM_LEASE)
                       .values(status="pending", sent_at=None).execution_options(synchronize_session=False))
    db.session.commit()


def _open_smtp(cfg):
    """Connect to the relay: STARTTLS (certificate checked) and sign-in when configured.

    A relay that refuses the sign-in cannot take any email: that is reported as an unreachable server
    (SMTPConnectError), so the run stops and no email is charged an attempt.
    """
    smtp = smtplib.SMTP(cfg["SMTP_HOST"], cfg["SMTP_PORT"], timeout=cfg["SMTP_TIMEOUT"])
    try:
        if cfg.get("SMTP_STARTTLS"):
            import ssl

            smtp.starttls(context=ssl.create_default_context())
        if cfg.get("SMTP_USER"):
            smtp.login(cfg["SMTP_USER"], cfg.get("SMTP_PASSWORD") or "")
    except smtplib.SMTPAuthenticationError as exc:
        smtp.close()
        raise smtplib.SMTPConnectError(exc.smtp_code, f"the relay refused the sign-in: {exc.smtp_error!r}") from exc
    except BaseException:
        smtp.close()
        raise
    return smtp


class _Connection:
    """One SMTP connection per delivery run, opened on first use."""

    def __init__(self):
        self.smtp = None

    def send(self, msg):
        if self.smtp is None:
            self.smtp = _open_smtp(current_app.config)
        self.smtp.send_message(msg)

    def close(self):
        if self.smtp is not None:
            try:
                self.smtp.quit()
            except (OSError, smtplib.SMTPException):
                self.smtp.close()


def deliver_pending(batch=200, now=None):
    """Send pending emails over SMTP, oldest first, until none are left; return (sent, failed).

    Each email is claimed (compare-and-set) before it is sent, so two runs at once never send it twice,
    and marked sent in its own commit right after the server accepts it. An email the server refuses
    goes back to pending with its error (failed after MAX_ATTEMPTS refusals); when the server cannot be
    reached the run stops at once (an attempt is counted only against an email whose sending broke an
    open connection) and everything not sent stays pending for the next run.
    """
    _reclaim_stale(now or utcnow())
    sent = failed = 0
    last_id = 0
    connection = _Connection()
    try:
        while True:
            emails = list(db.session.scalars(select(OutboxEmail)
                                             .where(OutboxEmail.status == "pending", OutboxEmail.id > last_id)
                                             .order_by(OutboxEmail.id).limit(batch)))
            if not emails:
                return sent, failed
            for email in emails:
                last_id = email.id
                if _hold_if_paused(email) or not _claim(email.id, utcnow()):
                    continue
                try:
                    connection.send(_message(email))
                except SERVER_ERRORS as exc:  # counted only if the server was reached (no connection: no attempt)
                    _finish(email.id, exc, counted=connection.smtp is not None)
                    log.warning("SMTP server unavailable (%s); %d email(s) sent this run", exc, sent)
                    return sent, failed + 1
                except smtplib.SMTPException as exc:
                    _finish(email.id, exc)
                    failed += 1
                    continue
                _finish(email.id)
                sent += 1
    finally:
        connection.close()
