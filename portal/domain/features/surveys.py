"""Surveys and reminders: the account's texts, and sending one to a customer by hand.

Account managers write the surveys (gate action manage_campaigns); account and tier managers send one
by hand (send_survey / send_reminder), which the gate refuses while the account is suspended or limited.
A sent one is a SurveyRequest (manual, status sent) with its email in the outbox; campaigns send the
same surveys automatically (portal.domain.features.campaigns).
"""
from email_validator import EmailNotValidError, validate_email
from sqlalchemy import select, update

from portal.domain import notify
from portal.domain.errors import Conflict, DomainError, ValidationFailed
from portal.domain.gate import require
from portal.domain.parsing import record_id, text_problem
from portal.extensions import db
from portal.models import Account, Campaign, OutboxEmail, Survey, SurveyRequest, User
from portal.timeutil import utcnow

KINDS = {"survey": "Survey", "reminder": "Reminder"}
SEND_ACTIONS = {"survey": "send_survey", "reminder": "send_reminder"}
EMAIL_TEMPLATES = {"survey": "survey_request.txt", "reminder": "survey_reminder.txt"}
SUBJECT_MAX, BODY_MAX, NAME_MAX, EMAIL_MAX = 200, 5000, 200, 255


class SurveyNotFound(DomainError):
    """No such survey in the actor's account (another account's looks exactly the same)."""

    status_code = 404

    def __init__(self, message="We couldn't find that survey."):
        super().__init__(message)


def own_account(actor):
    """Return the actor's account read fresh (the gate must see its current state)."""
    if not getattr(actor, "account_id", None):
        return None
    return db.session.get(Account, actor.account_id, populate_existing=True)


def list_surveys(account_id):
    """Return the account's surveys and reminders, newest first."""
    return list(db.session.scalars(select(Survey).where(Survey.account_id == account_id)
                                   .order_by(Survey.id.desc())))


def find_survey(account_id, survey_id):
    """Return the account's survey with this id (text or int), or None (another account's is None too)."""
    survey_id = record_id(survey_id)
    survey = db.session.get(Survey, survey_id) if survey_id else None
    return survey if survey is not None and survey.account_id == account_id else None


def get_survey(actor, survey_id):
    """Return one survey of the actor's account.

    Raises:
        SurveyNotFound: no such survey, or it belongs to another account.
    """
    survey = find_survey(getattr(actor, "account_id", None), survey_id)
    if survey is None:
        raise SurveyNotFound()
    return survey


def _text(value, field, what, limit, errors, required=False):
    text = (value or "").strip() if isinstance(value, str) or value is None else str(value).strip()
    if required and not text:
        errors[field] = f"Enter {what}."
    elif len(text) > limit:
        errors[field] = f"Keep {what} to {limit:,} characters."
    elif text_problem(text, what.capitalize()):
        errors[field] = text_problem(text, what.capitalize())
    return text or None


def _survey_fields(kind, subject, body):
    errors = {}
    kind = (kind or "survey").strip() if isinstance(kind, str) else "survey"
    if kind not in KINDS:
        errors["kind"] = "Choose survey or reminder."
    subject = _text(subject, "subject", "the subject", SUBJECT_MAX, errors, required=True)
    body = _text(body, "body", "the text", BODY_MAX, errors)
    if errors:
        raise ValidationFailed(errors)
    return kind, subject, body


def create_survey(actor, kind, subject, body, now=None):
    """Add a survey or reminder to the actor's account.

    Args:
        actor: an account manager (User).
        kind: "survey" or "reminder".
        subject: its subject line (the email's), 1 to 200 characters.
        body: its text, up to 5,000 characters (optional).
        now: the time of creation (default now).

    Returns:
        The new Survey.

    Raises:
        PermissionDenied: the gate refuses manage_campaigns (suspended or limited account, another role).
        ValidationFailed: a bad field; nothing is stored.
    """
    account = own_account(actor)
    require(actor, "manage_campaigns", account)
    kind, subject, body = _survey_fields(kind, subject, body)
    survey = Survey(account_id=account.id, kind=kind, subject=subject, body=body, created_at=now or utcnow())
    db.session.add(survey)
    db.session.commit()
    return survey


def update_survey(actor, survey_id, kind, subject, body):
    """Change a survey's kind, subject and text (requests already sent keep what they said).

    Raises:
        SurveyNotFound: no such survey in the actor's account.
        PermissionDenied: the gate refuses manage_campaigns.
        ValidationFailed: a bad field; nothing is changed.
    """
    account = own_account(actor)
    survey = get_survey(actor, survey_id)
    require(actor, "manage_campaigns", account)
    kind, subject, body = _survey_fields(kind, subject, body)
    survey.kind, survey.subject, survey.body = kind, subject, body
    db.session.commit()
    return survey


def parse_address(value, field, errors):
    """Return the email address in value, normalised, or record why not in errors[field]."""
    text = (value or "").strip() if isinstance(value, str) else ""
    if not text:
        errors[field] = "Enter the customer's email address."
        return None
    try:
        address = validate_email(text, check_deliverability=False, test_environment=True).normalized
    except EmailNotValidError:
        errors[field] = "Enter an email address like name@example.com."
        return None
    if len(address) > EMAIL_MAX:
        errors[field] = f"Keep the email address to {EMAIL_MAX} characters."
        return None
    return address


def _send_fields(account, survey_id, recipient_name, recipient_email):
    errors = {}
    survey = find_survey(account.id, survey_id)
    if survey is None:
        errors["survey_id"] = "Choose one of your surveys or reminders."
    name = _text(recipient_name, "recipient_name", "the customer's name", NAME_MAX, errors)
    address = parse_address(recipient_email, "recipient_email", errors)
    if errors:
        raise ValidationFailed(errors)
    return survey, name, address


def _hold_state(account):
    """Tie this transaction to the account state the gate read (a suspension at the same moment waits or wins)."""
    held = db.session.execute(update(Account).where(Account.id == account.id, Account.status == account.status)
                              .values(version=Account.version).execution_options(synchronize_session=False))
    return held.rowcount == 1


def queue_request_email(account, request, survey, now):
    """Queue the outbox email of a request (manual or campaign) and link it; the caller commits."""
    kind = ("manual_" if request.manual else "campaign_") + survey.kind
    email = notify.queue_address_email(account, request.recipient_email, kind, survey.subject,
                                       EMAIL_TEMPLATES[survey.kind], now=now, survey=survey,
                                       recipient_name=request.recipient_name)
    request.outbox_email_id = email.id
    return email


def send_manual(actor, survey_id, recipient_name, recipient_email, now=None):
    """Send a survey or reminder to one customer by hand, if the gate allows it.

    The gate is asked first (for send_reminder when the chosen text is a reminder, else send_survey), so a
    refused manager sees why before any field errors.

    Args:
        actor: an account or tier manager (User).
        survey_id: the survey or reminder of the actor's account to send.
        recipient_name: the customer's name (optional, up to 200 characters).
        recipient_email: the customer's email address.
        now: the time of sending (default now).

    Returns:
        The SurveyRequest (manual, status sent); its email is in the outbox (delivery is kicked).

    Raises:
        PermissionDenied: the gate refuses (suspended or limited account, or a role that may not); nothing stored.
        ValidationFailed: unknown survey, bad name or address; nothing stored.
        Conflict: the account changed state while sending; nothing stored.
    """
    now = now or utcnow()
    account = own_account(actor)
    chosen = find_survey(account.id, survey_id) if account is not None else None
    require(actor, SEND_ACTIONS[chosen.kind if chosen else "survey"], account)
    survey, name, address = _send_fields(account, survey_id, recipient_name, recipient_email)
    if not _hold_state(account):
        db.session.rollback()
        require(actor, SEND_ACTIONS[survey.kind], own_account(actor))
        raise Conflict("Your account changed while you were sending. Nothing was sent; please try again.")
    request = SurveyRequest(account_id=account.id, survey_id=survey.id, kind=survey.kind, manual=True,
                            recipient_name=name, recipient_email=address, due_at=now, status="sent", sent_at=now,
                            created_by_id=actor.id, created_at=now)
    db.session.add(request)
    db.session.flush()
    queue_request_email(account, request, survey, now)
    db.session.commit()
    notify.kick_delivery()
    return request


def recent_requests(account_id, limit=50):
    """Return the account's latest requests, manual and campaign ones, newest first.

    Returns:
        Rows of (SurveyRequest, survey subject, campaign name, sender's name, email status).
    """
    stmt = (select(SurveyRequest, Survey.subject, Campaign.name, User.name, OutboxEmail.status)
            .outerjoin(Survey, Survey.id == SurveyRequest.survey_id)
            .outerjoin(Campaign, Campaign.id == SurveyRequest.campaign_id)
            .outerjoin(User, User.id == SurveyRequest.created_by_id)
            .outerjoin(OutboxEmail, OutboxEmail.id == SurveyRequest.outbox_email_id)
            .where(SurveyRequest.account_id == account_id)
            .order_by(SurveyRequest.id.desc()).limit(limit))
    return list(db.session.execute(stmt))
