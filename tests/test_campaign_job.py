"""The campaign job: queued by the tick, run by a real RQ worker, within daily limits, once, held by the gate."""
import logging
import threading
from datetime import datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis import Redis
from rq import Queue
from sqlalchemy import delete, func, select

from portal.domain import notify
from portal.domain.features import campaign_job, ticks
from portal.extensions import QUEUE_DEFAULT, db
from portal.models import Campaign, CampaignEvent, IngestionRecord, OutboxEmail, Survey, SurveyRequest
from tests.campaign_helpers import (add_campaign, add_survey, campaign_row, events, ingest, reactivate, set_status,
                                    statuses, survey_emails, suspend)

DAY1 = datetime(2026, 11, 2)
VISIT = DAY1 + timedelta(hours=8)  # due an hour later with a 1-hour delay


def at(day, hour):
    return DAY1 + timedelta(days=day, hours=hour)


def sent_per_day(campaign_id):
    rows = db.session.execute(select(SurveyRequest.sent_at).where(SurveyRequest.campaign_id == campaign_id,
                                                                 SurveyRequest.status == "sent")).scalars()
    days = {}
    for sent_at in rows:
        days[sent_at.date()] = days.get(sent_at.date(), 0) + 1
    return days


def assert_each_request_sent_once(campaign_id):
    sent = db.session.execute(select(SurveyRequest.id, SurveyRequest.outbox_email_id)
                              .where(SurveyRequest.campaign_id == campaign_id, SurveyRequest.status == "sent")).all()
    emails = [e for e in survey_emails() if e.kind.startswith("campaign_")]
    assert len(emails) == len(sent)
    assert sorted(e.id for e in emails) == sorted(email_id for _, email_id in sent)


# ---------------------------------------------------------------- queued by the tick, run by a real worker

def test_the_job_runs_in_a_real_worker_and_sends_due_requests_once_within_the_daily_limit(app, world, run_worker):
    with app.app_context():
        campaign = add_campaign(world.account, add_survey(world.account).id, delay_hours=1, daily_limit=3)
        ingest(world.account, VISIT, count=5)
        ingest(world.account, at(0, 11), count=1)  # due at noon: not yet at 10:00
        campaign_id = campaign.id
        assert campaign_job.enqueue_due(at(0, 10)) == "send-campaigns-202611021000"
        db.session.remove()
    result = run_worker(QUEUE_DEFAULT)
    assert result.returncode == 0, result.stderr[-3000:]
    with app.app_context():
        assert statuses(campaign_id) == {"sent": 3, "pending": 3}
        assert_each_request_sent_once(campaign_id)
        assert {e.status for e in survey_emails()} == {"pending"}  # in the outbox, for the mail worker
        assert events(campaign_id)[-1] == ("sent", "sent 3 survey requests")
        assert campaign_job.enqueue_due(at(0, 13)) is not None  # later the same day: the limit is reached
        db.session.remove()
    assert run_worker(QUEUE_DEFAULT).returncode == 0
    with app.app_context():
        assert statuses(campaign_id) == {"sent": 3, "pending": 3}
        assert campaign_job.enqueue_due(at(1, 10)) is not None  # the next day: the rest, once
        db.session.remove()
    assert run_worker(QUEUE_DEFAULT).returncode == 0
    with app.app_context():
        assert statuses(campaign_id) == {"sent": 6}
        assert sent_per_day(campaign_id) == {DAY1.date(): 3, (DAY1 + timedelta(days=1)).date(): 3}
        assert_each_request_sent_once(campaign_id)
        db.session.remove()


def test_ticks_within_a_minute_queue_the_job_once(ctx, world, redis_server):
    add_campaign(world.account, add_survey(world.account).id)
    queue = Queue(QUEUE_DEFAULT, connection=Redis.from_url(redis_server.url))
    first = ticks.tick(at(0, 10))["campaigns"]
    assert ticks.tick(at(0, 10) + timedelta(seconds=40))["campaigns"] == first == "send-campaigns-202611021000"
    assert queue.job_ids == [first]
    ticks.tick(at(0, 10) + timedelta(minutes=1))
    assert len(queue.job_ids) == 2


def test_nothing_is_queued_without_a_running_or_held_campaign(ctx, world, redis_server):
    add_campaign(world.account, add_survey(world.account).id, state="paused")
    assert campaign_job.enqueue_due(at(0, 10)) is None
    assert Queue(QUEUE_DEFAULT, connection=Redis.from_url(redis_server.url)).job_ids == []


def test_with_redis_down_the_tick_logs_and_goes_on(ctx, world, caplog):
    add_campaign(world.account, add_survey(world.account).id)
    ctx.config["REDIS_URL"] = "redis://127.0.0.1:1/0"
    ctx.extensions.pop("portal_redis", None)
    with caplog.at_level(logging.WARNING):
        assert campaign_job.enqueue_due(at(0, 10)) is None
    assert "could not queue the campaign job" in caplog.text


# ---------------------------------------------------------------- two workers at once

def run_together(app, monkeypatch, workers=2):
    """Run send_due in several threads that all read the due requests before any of them claims one."""
    barrier = threading.Barrier(workers, timeout=10)
    waits = []
    real_batch = campaign_job._send_batch

    def batch_after_all_have_read(*args):
        if len(waits) < workers:
            waits.append(1)
            try:
                barrier.wait()
            except threading.BrokenBarrierError:
                pass
        return real_batch(*args)

    monkeypatch.setattr(campaign_job, "_send_batch", batch_after_all_have_read)
    results, errors = [], []

    def worker():
        with app.app_context():
            try:
                results.append(campaign_job.send_due(now=at(0, 10))["sent"])
            except Exception as exc:  # noqa: BLE001 - reported below
                errors.append(exc)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=worker) for _ in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == [] and len(waits) == workers
    return sorted(results)


def test_two_workers_at_once_send_each_request_once(app, world, monkeypatch):
    """Both read the same due requests before either claims one; the compare-and-set keeps each once.

    Seen to fail with the claim's `status = 'pending'` condition removed ([30, 30]: 60 emails for 30 requests).
    """
    with app.app_context():
        campaign_id = add_campaign(world.account, add_survey(world.account).id, daily_limit=100).id
        ingest(world.account, VISIT, count=30)
        db.session.remove()
    assert run_together(app, monkeypatch) == [0, 30]
    with app.app_context():
        assert statuses(campaign_id) == {"sent": 30}
        assert_each_request_sent_once(campaign_id)
        assert len({e.to_addr for e in survey_emails()}) == 30
        db.session.remove()


def test_three_workers_at_once_keep_the_daily_limit(app, world, monkeypatch):
    with app.app_context():
        campaign_id = add_campaign(world.account, add_survey(world.account).id, daily_limit=7).id
        ingest(world.account, VISIT, count=30)
        db.session.remove()
    assert run_together(app, monkeypatch, workers=3) == [0, 0, 7]
    with app.app_context():
        assert statuses(campaign_id) == {"sent": 7, "pending": 23}
        assert_each_request_sent_once(campaign_id)
        db.session.remove()


# ---------------------------------------------------------------- held by the gate, and back

def test_while_suspended_the_job_sends_nothing_notes_it_once_and_after_reactivation_sends_the_backlog_once(ctx, world):
    campaign = add_campaign(world.account, add_survey(world.account).id, delay_hours=1, daily_limit=2)
    campaign_id = campaign.id
    ingest(world.account, VISIT, count=3)
    before = campaign_row(campaign_id)
    suspend(world)
    for hour in (10, 11, 12):
        assert campaign_job.send_due(now=at(0, hour)) == {"campaigns": 1, "sent": 0, "held": 1}
    assert statuses(campaign_id) == {"pending": 3} and survey_emails() == []
    assert events(campaign_id) == [("held", "paused: account suspended")]
    row = db.session.get(Campaign, campaign_id, populate_existing=True)
    assert (row.state, row.held_reason) == ("active", "paused: account suspended")
    reactivate(world)
    assert campaign_job.send_due(now=at(0, 14))["sent"] == 2
    assert campaign_job.send_due(now=at(0, 15))["sent"] == 0  # the daily limit
    assert events(campaign_id) == [("held", "paused: account suspended"), ("released", "resumed: account reactivated"),
                                   ("sent", "sent 2 survey requests")]
    assert campaign_row(campaign_id) == before  # the campaign's row is exactly as before the suspension
    assert campaign_job.send_due(now=at(1, 10))["sent"] == 1
    assert campaign_job.send_due(now=at(1, 11))["sent"] == 0
    assert statuses(campaign_id) == {"sent": 3}
    assert_each_request_sent_once(campaign_id)
    assert campaign_row(campaign_id) == before


def test_while_limited_the_job_holds_the_campaign_too(ctx, world):
    campaign_id = add_campaign(world.account, add_survey(world.account).id).id
    ingest(world.account, VISIT, count=1)
    set_status(world.account, "limited")
    campaign_job.send_due(now=at(0, 10))
    campaign_job.send_due(now=at(0, 11))
    assert statuses(campaign_id) == {"pending": 1}
    assert events(campaign_id) == [("held", "paused: account limited")]
    set_status(world.account, "suspended")  # a limited account suspended: the note says so
    campaign_job.send_due(now=at(0, 12))
    assert events(campaign_id)[-1] == ("held", "paused: account suspended")


def test_a_campaign_paused_by_its_manager_is_not_sent_and_not_noted(ctx, world):
    campaign_id = add_campaign(world.account, add_survey(world.account).id, state="paused").id
    ingest(world.account, VISIT, count=1)
    set_status(world.account, "suspended")
    assert campaign_job.send_due(now=at(0, 10)) == {"campaigns": 0, "sent": 0, "held": 0}
    assert events(campaign_id) == []


def test_the_other_accounts_campaigns_go_on_while_one_is_suspended(ctx, world):
    held = add_campaign(world.account, add_survey(world.account).id).id
    running = add_campaign(world.other_account, add_survey(world.other_account).id).id
    ingest(world.account, VISIT, count=2)
    ingest(world.other_account, VISIT, count=2)
    set_status(world.account, "suspended")
    assert campaign_job.send_due(now=at(0, 10)) == {"campaigns": 2, "sent": 2, "held": 1}
    assert (statuses(held), statuses(running)) == ({"pending": 2}, {"sent": 2})


def test_a_campaign_email_queued_before_a_suspension_is_held_at_delivery(ctx, world):
    add_campaign(world.account, add_survey(world.account).id)
    ingest(world.account, VISIT, count=1)
    campaign_job.send_due(now=at(0, 10))
    set_status(world.account, "suspended")
    assert notify.deliver_pending() == (0, 0)
    assert [(e.kind, e.status) for e in survey_emails()] == [("campaign_survey", "held")]


# ---------------------------------------------------------------- the daily-limit and backlog rule, as a property

day_plans = st.lists(st.tuples(st.sampled_from(["active", "active", "suspended", "limited"]),
                               st.integers(0, 5),
                               st.lists(st.sampled_from([10, 14, 23]), min_size=1, max_size=3, unique=True)),
                     min_size=1, max_size=6)


def model(limit, plans):
    """The rule: each tick of an active day sends the oldest due requests, up to the day's limit left."""
    pending, held, per_day, notes = 0, None, {}, []
    for day, (state, visits, hours) in enumerate(plans):
        if state == "active":
            pending += visits  # due at 09:00, before every tick
        sent_today = 0
        for _hour in sorted(hours):
            if state != "active":
                if held != state:
                    notes.append(f"paused: account {state}")
                    held = state
                continue
            if held is not None:
                notes.append("resumed: account reactivated")
                held = None
            n = min(limit - sent_today, pending)
            pending, sent_today = pending - n, sent_today + n
        if sent_today:
            per_day[(DAY1 + timedelta(days=day)).date()] = sent_today
    return per_day, pending, notes, held


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(limit=st.integers(1, 4), plans=day_plans)
def test_emails_sent_per_day_follow_the_reference_model(ctx, world, limit, plans):
    for table in (OutboxEmail, SurveyRequest, CampaignEvent, IngestionRecord, Campaign):
        db.session.execute(delete(table))
    set_status(world.account, "active")
    survey = db.session.scalar(select(func.min(Survey.id))) or add_survey(world.account).id
    campaign_id = add_campaign(world.account, survey, delay_hours=1, daily_limit=limit).id
    for day, (state, visits, hours) in enumerate(plans):
        set_status(world.account, state)
        if state == "active" and visits:  # ingestion is refused while suspended or limited
            ingest(world.account, at(day, 8), count=visits)
        for hour in sorted(hours):
            campaign_job.send_due(now=at(day, hour))
    per_day, pending, notes, held = model(limit, plans)
    assert sent_per_day(campaign_id) == per_day
    assert statuses(campaign_id).get("pending", 0) == pending
    assert [message for kind, message in events(campaign_id) if kind in ("held", "released")] == notes
    assert db.session.get(Campaign, campaign_id, populate_existing=True).held_reason == \
        (f"paused: account {held}" if held else None)
    assert_each_request_sent_once(campaign_id)
