"""Automated campaigns: create, pause, resume and end them, their history, and planning their survey requests.

A running campaign (state active) sends its survey `delay_hours` after each ingested visit, at most
`daily_limit` a UTC day. Ingestion plans the requests (plan_requests, in its own transaction); the
campaign job sends the due ones (portal.domain.features.campaign_job: enqueue_due, send_due). A suspension
never changes a campaign: the job asks the gate and holds it, noting so in the history.
"""
from datetime import datetime, time, timedelta

from sqlalchemy import case, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from portal.domain.audit import actor_label
from portal.domain.errors import DomainError, InvalidTransition, ValidationFailed
from portal.domain.features.campaign_job import enqueue_due, send_due  # noqa: F401  (the job's entry points)
from portal.domain.features.surveys import KINDS, find_survey, own_account
from portal.domain.gate import require
from portal.domain.parsing import InvalidValue, record_id, text_problem, whole_number
from portal.extensions import db
from portal.models import Campaign, CampaignEvent, Survey, SurveyRequest
from portal.timeutil import utcnow

STATES = {"draft": "Draft", "active": "Running", "paused": "Paused", "ended": "Ended"}
NAME_MAX = 200
DELAY_MAX = 24 * 365  # hours
LIMIT_MAX = 100_000
# action -> (states it starts from, state it leads to, history kind, message)
TRANSITIONS = {
    "pause": (("active",), "paused", "paused", "Paused."),
    "resume": (("paused",), "active", "resumed", "Resumed."),
    "end": (("draft", "active", "paused"), "ended", "ended", "Ended; its pending requests are cancelled."),
}
REFUSALS = {"pause": "Only a running campaign can be paused.", "resume": "Only a paused campaign can be resumed.",
            "end": "This campaign has already ended."}


class CampaignNotFound(DomainError):
    """No such campaign in the actor's account (another account's looks exactly the same)."""

    status_code = 404

    def __init__(self, message="We couldn't find that campaign."):
        super().__init__(message)


def list_campaigns(account_id, now=None):
    """Return the account's campaigns, newest first, each with its survey and request counts.

    Returns:
        Rows of (Campaign, survey subject, pending requests, requests sent today (UTC)).
    """
    day = datetime.combine((now or utcnow()).date(), time.min)
    counts = (select(SurveyRequest.campaign_id,
                     func.sum(case((SurveyRequest.status == "pending", 1), else_=0)).label("pending"),
                     func.sum(case(((SurveyRequest.status == "sent") & (SurveyRequest.sent_at >= day), 1),
                                   else_=0)).label("sent_today"))
              .where(SurveyRequest.account_id == account_id, SurveyRequest.campaign_id.is_not(None))
              .group_by(SurveyRequest.campaign_id).subquery())
    stmt = (select(Campaign, Survey.subject, func.coalesce(counts.c.pending, 0), func.coalesce(counts.c.sent_today, 0))
            .outerjoin(Survey, Survey.id == Campaign.survey_id)
            .outerjoin(counts, counts.c.campaign_id == Campaign.id)
            .where(Campaign.account_id == account_id).order_by(Campaign.id.desc()))
    return list(db.session.execute(stmt))


def get_campaign(actor, campaign_id):
    """Return one campaign of the actor's account.

    Raises:
        CampaignNotFound: no such campaign, or it belongs to another account.
    """
    campaign_id = record_id(campaign_id)
    campaign = db.session.get(Campaign, campaign_id) if campaign_id else None
    if campaign is None or campaign.account_id != getattr(actor, "account_id", None):
        raise CampaignNotFound()
    return campaign


def history(campaign_id, limit=100):
    """Return the campaign's history, newest first."""
    return list(db.session.scalars(select(CampaignEvent).where(CampaignEvent.campaign_id == campaign_id)
                                   .order_by(CampaignEvent.id.desc()).limit(limit)))


def _number(value, field, low, high, message, errors):
    try:
        return whole_number(value, low, high, message)
    except InvalidValue as exc:
        errors[field] = exc.message
        return None


def _fields(account, name, survey_id, delay_hours, daily_limit):
    errors = {}
    name = (name or "").strip() if isinstance(name, str) else ""
    if not name:
        errors["name"] = "Give the campaign a name."
    elif len(name) > NAME_MAX:
        errors["name"] = f"Keep the name to {NAME_MAX} characters."
    elif text_problem(name, "The name"):
        errors["name"] = text_problem(name, "The name")
    survey = find_survey(account.id, survey_id)
    if survey is None:
        errors["survey_id"] = "Choose one of your surveys or reminders."
    delay = _number(delay_hours, "delay_hours", 1, DELAY_MAX,
                    f"Enter how many hours after a visit to send it: a whole number from 1 to {DELAY_MAX:,}.", errors)
    limit = _number(daily_limit, "daily_limit", 1, LIMIT_MAX,
                    f"Enter how many to send a day at most: a whole number from 1 to {LIMIT_MAX:,}.", errors)
    if errors:
        raise ValidationFailed(errors)
    return name, survey, delay, limit


def create_campaign(actor, name, survey_id, delay_hours, daily_limit, now=None):
    """Create a running campaign in the actor's account.

    Args:
        actor: an account manager (User).
        name: 1 to 200 characters.
        survey_id: the survey or reminder of the actor's account it sends.
        delay_hours: hours after a visit to send it (1 to 8,760).
        daily_limit: the most it sends in a UTC day (1 to 100,000).
        now: the time of creation (default now).

    Returns:
        The new Campaign (state active), with a "created" history row.

    Raises:
        PermissionDenied: the gate refuses manage_campaigns (suspended or limited account, another role).
        ValidationFailed: empty name, unknown or another account's survey, a delay or limit under 1; nothing stored.
    """
    now = now or utcnow()
    account = own_account(actor)
    require(actor, "manage_campaigns", account)
    name, survey, delay, limit = _fields(account, name, survey_id, delay_hours, daily_limit)
    campaign = Campaign(account_id=account.id, name=name, automated=True, state="active", survey_id=survey.id,
                        delay_hours=delay, daily_limit=limit, created_by_id=actor.id, created_at=now, updated_at=now)
    db.session.add(campaign)
    db.session.flush()
    db.session.add(CampaignEvent(campaign_id=campaign.id, at=now, kind="created", actor_label=actor_label(actor),
                                 message=f"Created: sends “{survey.subject}” {delay} h after each visit, "
                                         f"at most {limit:,} a day."))
    db.session.commit()
    return campaign


def change_state(actor, campaign_id, action, now=None):
    """Pause, resume or end a campaign (compare-and-set on its state); ending is final.

    Ending cancels the campaign's pending requests. Nothing here looks at the account's state beyond
    asking the gate: a campaign held by a suspension keeps its own state.

    Args:
        actor: an account manager (User).
        campaign_id: a campaign of the actor's account.
        action: "pause", "resume" or "end".
        now: the time of the change (default now).

    Returns:
        The Campaign as changed.

    Raises:
        CampaignNotFound: no such campaign in the actor's account.
        PermissionDenied: the gate refuses manage_campaigns.
        InvalidTransition: the campaign is not in a state this action starts from (e.g. it has ended).
    """
    now = now or utcnow()
    starts, target, kind, message = TRANSITIONS[action]
    campaign = get_campaign(actor, campaign_id)
    require(actor, "manage_campaigns", own_account(actor))
    values = {"state": target, "updated_at": now}
    if target == "ended":
        values["ended_at"] = now
    changed = db.session.execute(update(Campaign).where(Campaign.id == campaign.id, Campaign.state.in_(starts))
                                 .values(**values).execution_options(synchronize_session=False)).rowcount
    if changed != 1:
        db.session.rollback()
        raise InvalidTransition(REFUSALS[action])
    if target == "ended":
        db.session.execute(update(SurveyRequest)
                           .where(SurveyRequest.campaign_id == campaign.id, SurveyRequest.status == "pending")
                           .values(status="cancelled").execution_options(synchronize_session=False))
    db.session.add(CampaignEvent(campaign_id=campaign.id, at=now, kind=kind, message=message,
                                 actor_label=actor_label(actor)))
    db.session.commit()
    return db.session.get(Campaign, campaign.id, populate_existing=True)


def plan_requests(account, records, now):
    """Add, in the caller's transaction, the survey requests the account's running campaigns ask for.

    One request per running campaign and record with an email, due `delay_hours` after the visit (the
    ingestion time when the record has no visit time), of the campaign's survey's kind. One INSERT for
    the batch; the unique (campaign, record) constraint keeps a request once however often it is planned.

    Args:
        account: the Account the records belong to.
        records: the IngestionRecord rows just inserted (flushed, so they have ids).
        now: the time of ingestion.

    Returns:
        How many survey requests were planned.
    """
    records = [r for r in records if r.customer_email]
    if not records:
        return 0
    campaigns = db.session.execute(select(Campaign.id, Campaign.survey_id, Campaign.delay_hours, Survey.kind)
                                   .join(Survey, Survey.id == Campaign.survey_id)
                                   .where(Campaign.account_id == account.id, Campaign.state == "active")).all()
    rows = [{"account_id": account.id, "survey_id": survey_id, "campaign_id": campaign_id,
             "ingestion_record_id": record.id, "kind": kind if kind in KINDS else "survey", "manual": False,
             "recipient_name": record.customer_name, "recipient_email": record.customer_email,
             "due_at": (record.visited_at or now) + timedelta(hours=delay), "status": "pending", "created_at": now}
            for campaign_id, survey_id, delay, kind in campaigns for record in records]
    if not rows:
        return 0
    insert = pg_insert if db.session.get_bind().dialect.name == "postgresql" else sqlite_insert
    table = SurveyRequest.__table__
    stmt = (insert(table).on_conflict_do_nothing(index_elements=["campaign_id", "ingestion_record_id"])
            .returning(table.c.id))
    return len(db.session.execute(stmt, rows).all())  # rows kept by the constraint are not returned
