"""The campaign job: every scheduler tick queues it; it sends the due survey requests of running campaigns.

For each campaign the job first asks the gate, as "system", for run_campaign. While the gate refuses
(the account is suspended, or its service limited) the campaign sends nothing, and its history says so
once ("paused: account suspended"), remembered in Campaign.held_reason; when the gate allows it again the
history says "resumed: account reactivated", held_reason is cleared, and the campaign carries on with
its pending requests, within its daily limit. The campaign's own state is never touched by this.

Sending is safe with any number of workers at once: a batch takes the campaign's row lock before it
counts what was sent today (so two workers never pass the daily limit together), and each request is
claimed by compare-and-set (pending -> sent) in the transaction that queues its email, so a request a
worker read before another sent it is skipped, never sent twice.
"""
import logging
from datetime import datetime, time, timedelta

from sqlalchemy import exists, func, or_, select, update

from portal import plurals
from portal.domain import notify
from portal.domain.features.surveys import queue_request_email
from portal.domain.gate import STATE_LABELS, may
from portal.extensions import QUEUE_DEFAULT, db, get_queue
from portal.models import Account, Campaign, CampaignEvent, Survey, SurveyRequest
from portal.timeutil import utcnow

log = logging.getLogger(__name__)
JOB = "portal.jobs.send_campaigns"
PAGE = 500  # campaigns read at a time
BATCH = 100  # requests claimed per transaction
RESUMED_NOTE = "resumed: account reactivated"


def job_id(now):
    """The job's id for the minute of now: ticks within one minute queue it once."""
    return f"send-campaigns-{now:%Y%m%d%H%M}"


def enqueue_due(now):
    """Queue the campaign job for this minute, if any campaign runs or is held; return its id or None.

    Redis down is logged and answers None (the next tick tries again; nothing is lost: the requests wait
    in the database).
    """
    from rq.exceptions import DuplicateJobError

    work = exists().where(or_(Campaign.state == "active", Campaign.held_reason.is_not(None)))
    if not db.session.scalar(select(work)):
        return None
    identifier = job_id(now)
    try:
        get_queue(QUEUE_DEFAULT).enqueue(JOB, kwargs={"now": now}, job_id=identifier, job_timeout=600,
                                         unique=True, description=f"campaign sends {now:%Y-%m-%d %H:%M} UTC")
    except DuplicateJobError:
        pass  # this minute's job is already queued (or running)
    except Exception as exc:  # noqa: BLE001 - Redis down: the next tick queues it
        log.warning("could not queue the campaign job: %s", exc)
        return None
    return identifier


def held_note(account):
    """The history note for a campaign the gate holds: "paused: account suspended" (the state's words)."""
    return f"paused: account {STATE_LABELS.get(account.status, account.status).lower()}"


def send_due(now=None):
    """Send the due pending requests of every running campaign through the outbox, within daily limits.

    Args:
        now: the time taken as now (default now); the daily limit counts requests sent on its UTC day.

    Returns:
        {"campaigns": campaigns looked at, "sent": requests sent, "held": campaigns the gate holds}.
    """
    now = now or utcnow()
    totals = {"campaigns": 0, "sent": 0, "held": 0}
    last_id = 0
    while True:
        page = [(campaign.id, campaign.state, campaign.held_reason, may("system", "run_campaign", account),
                 held_note(account))
                for campaign, account in db.session.execute(
                    select(Campaign, Account).join(Account, Account.id == Campaign.account_id)
                    .where(Campaign.id > last_id, or_(Campaign.state == "active", Campaign.held_reason.is_not(None)))
                    .order_by(Campaign.id).limit(PAGE).execution_options(populate_existing=True))]
        db.session.commit()  # end the read: each campaign below has its own transactions
        if not page:
            break
        for campaign_id, state, held_reason, decision, note in page:
            last_id = campaign_id
            totals["campaigns"] += 1
            if not decision:
                if state == "active" and held_reason != note:
                    _note_held(campaign_id, note, now)
                totals["held"] += 1
                continue
            if held_reason is not None:
                _note_resumed(campaign_id, now)
            if state == "active":
                totals["sent"] += _send_campaign(campaign_id, now)
    if totals["sent"]:
        notify.kick_delivery()
    return totals


def _note_held(campaign_id, note, now):
    """Record once that the gate holds the campaign (compare-and-set on held_reason)."""
    changed = db.session.execute(update(Campaign)
                                 .where(Campaign.id == campaign_id, Campaign.state == "active",
                                        or_(Campaign.held_reason.is_(None), Campaign.held_reason != note))
                                 .values(held_reason=note).execution_options(synchronize_session=False)).rowcount
    if changed == 1:
        db.session.add(CampaignEvent(campaign_id=campaign_id, at=now, kind="held", message=note, actor_label="system"))
    db.session.commit()


def _note_resumed(campaign_id, now):
    """Record once that the gate lets the campaign go again, and clear held_reason."""
    changed = db.session.execute(update(Campaign).where(Campaign.id == campaign_id, Campaign.held_reason.is_not(None))
                                 .values(held_reason=None).execution_options(synchronize_session=False)).rowcount
    if changed == 1:
        db.session.add(CampaignEvent(campaign_id=campaign_id, at=now, kind="released", message=RESUMED_NOTE,
                                     actor_label="system"))
    db.session.commit()


def _day(now):
    start = datetime.combine(now.date(), time.min)
    return start, start + timedelta(days=1)


def _send_campaign(campaign_id, now):
    """Send one campaign's due requests, oldest due first, in batches; return how many were sent."""
    sent = 0
    while True:
        due = list(db.session.scalars(select(SurveyRequest.id)
                                      .where(SurveyRequest.campaign_id == campaign_id,
                                             SurveyRequest.status == "pending", SurveyRequest.due_at <= now)
                                      .order_by(SurveyRequest.due_at, SurveyRequest.id).limit(BATCH)))
        db.session.commit()  # end the read: the batch's first statement takes the campaign's lock
        if not due:
            return sent
        count = _send_batch(campaign_id, due, now)
        sent += count
        if count < len(due):  # the limit is reached, the campaign stopped, or another worker sent them
            return sent


def _send_batch(campaign_id, request_ids, now):
    """Claim and queue the emails of some due requests in one transaction; return how many were sent."""
    locked = db.session.execute(update(Campaign).where(Campaign.id == campaign_id, Campaign.state == "active",
                                                       Campaign.held_reason.is_(None))
                                .values(daily_limit=Campaign.daily_limit)
                                .execution_options(synchronize_session=False)).rowcount
    campaign = db.session.get(Campaign, campaign_id, populate_existing=True)
    account = db.session.get(Account, campaign.account_id, populate_existing=True)
    if locked != 1 or campaign.survey_id is None or not may("system", "run_campaign", account):
        # paused, ended or suspended since it was read: the next tick looks again
        db.session.rollback()
        return 0
    start, end = _day(now)
    sent_today = db.session.scalar(select(func.count()).select_from(SurveyRequest)
                                   .where(SurveyRequest.campaign_id == campaign_id, SurveyRequest.status == "sent",
                                          SurveyRequest.sent_at >= start, SurveyRequest.sent_at < end))
    room = max(campaign.daily_limit - sent_today, 0)
    survey = db.session.get(Survey, campaign.survey_id)
    sent = 0
    for request_id in request_ids[:room]:
        claimed = db.session.execute(update(SurveyRequest)
                                     .where(SurveyRequest.id == request_id, SurveyRequest.status == "pending")
                                     .values(status="sent", sent_at=now)
                                     .execution_options(synchronize_session=False)).rowcount
        if claimed != 1:  # another worker sent it (or the campaign's end cancelled it) after it was read
            continue
        queue_request_email(account, db.session.get(SurveyRequest, request_id, populate_existing=True), survey, now)
        sent += 1
    if sent:
        db.session.add(CampaignEvent(campaign_id=campaign_id, at=now, kind="sent", count=sent, actor_label="system",
                                     message=f"sent {plurals.count(sent, 'survey request')}"))
    db.session.commit()
    return sent
