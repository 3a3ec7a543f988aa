"""What the campaign and survey tests share: surveys, campaigns, ingested visits, the account's state."""
import itertools
from datetime import timedelta

from sqlalchemy import func, select

from portal.domain import suspension
from portal.domain.features import campaigns
from portal.extensions import db
from portal.models import Account, Campaign, CampaignEvent, IngestionRecord, OutboxEmail, Survey, SurveyRequest, User

_visits = itertools.count(1)


def add_survey(account_id, kind="survey", subject="How was your visit?", body="Tell us in one minute."):
    """Add a survey (in the current app context) and return it."""
    survey = Survey(account_id=account_id, kind=kind, subject=subject, body=body)
    db.session.add(survey)
    db.session.commit()
    return survey


def add_campaign(account_id, survey_id, delay_hours=1, daily_limit=100, state="active", name="After visit"):
    """Add a campaign directly (in the current app context) and return it."""
    campaign = Campaign(account_id=account_id, name=name, state=state, survey_id=survey_id, delay_hours=delay_hours,
                        daily_limit=daily_limit)
    db.session.add(campaign)
    db.session.commit()
    return campaign


def ingest(account_id, visited_at, count=1, email=True, now=None):
    """Insert visits as ingestion does and plan their requests (one transaction); return the planned count."""
    account = db.session.get(Account, account_id)
    records = []
    for _ in range(count):
        n = next(_visits)
        records.append(IngestionRecord(account_id=account_id, source="api", external_id=f"visit-{n}",
                                       customer_name=f"Guest {n}",
                                       customer_email=f"guest{n}@example.test" if email else None,
                                       visited_at=visited_at, payload="{}", created_at=now or visited_at))
    db.session.add_all(records)
    db.session.flush()
    planned = campaigns.plan_requests(account, records, now or visited_at)
    db.session.commit()
    return planned


def set_status(account_id, status):
    """Put the account in a state directly (as a bulk sweep does: nothing else is touched)."""
    db.session.get(Account, account_id).status = status
    db.session.commit()


def suspend(world, note="Overdue."):
    suspension.suspend(db.session.get(User, world.admin.id), world.account, "non_payment", note)


def reactivate(world, note="Paid."):
    suspension.reactivate(db.session.get(User, world.admin.id), world.account, "paid", note)


def count(model, *where):
    return db.session.scalar(select(func.count()).select_from(model).where(*where))


def statuses(campaign_id=None):
    """{status: n} of the survey requests (of one campaign)."""
    stmt = select(SurveyRequest.status, func.count()).group_by(SurveyRequest.status)
    if campaign_id is not None:
        stmt = stmt.where(SurveyRequest.campaign_id == campaign_id)
    return dict(db.session.execute(stmt).all())


def events(campaign_id):
    """The campaign's history, oldest first, as (kind, message)."""
    return [(e.kind, e.message) for e in db.session.scalars(select(CampaignEvent)
                                                             .where(CampaignEvent.campaign_id == campaign_id)
                                                             .order_by(CampaignEvent.id))]


def survey_emails(account_id=None):
    """The outbox emails to customers' addresses, oldest first."""
    stmt = select(OutboxEmail).where(OutboxEmail.user_id.is_(None)).order_by(OutboxEmail.id)
    if account_id is not None:
        stmt = stmt.where(OutboxEmail.account_id == account_id)
    return list(db.session.scalars(stmt))


def campaign_row(campaign_id):
    """Every column of the campaign's row (to compare before and after)."""
    row = db.session.execute(select(Campaign.__table__).where(Campaign.id == campaign_id)).one()
    return tuple(row)


HOUR = timedelta(hours=1)
