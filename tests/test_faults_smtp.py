"""SMTP down for an hour (and for six) of simulated time: the delivery job runs when RQ would run it (at each
action that queues email, and after each failure at the job's own retry intervals), every run fails while
nothing listens on the SMTP port, and once a real SMTP server answers again every email goes out, once."""
import re
from collections import Counter
from datetime import timedelta

import pytest
from rq.job import Job
from sqlalchemy import select

from portal import jobs
from portal.domain import notify, suspension
from portal.extensions import db, get_redis
from portal.models import OutboxEmail, User
from portal.timeutil import utcnow
from tests.services import free_port
from tests.test_outbox import Inbox, SmtpServer

# Not ALONE: the outage's hours are simulated (every time is a parameter) and a refused connection fails at once,
# so nothing here depends on how busy the machine is.
pytestmark = pytest.mark.slow
ACCOUNTS = 4
ACTION_EVERY = timedelta(minutes=10)


@pytest.fixture
def smtp_port():
    return free_port()  # nothing listens there until the test starts a server: connections are refused


@pytest.fixture
def app_config(smtp_port):
    return {"SMTP_HOST": "127.0.0.1", "SMTP_PORT": smtp_port, "SMTP_TIMEOUT": 2}


def rq_runs(kicks, intervals, retries, until):
    """The times the delivery job runs while every run fails: at each kick (an action enqueues it afresh, so
    RQ counts its retries from the first again), and after each failed run its next retry interval later (the
    last interval repeats; one retry planned at a time, since the job has one id), until retries run out."""
    times, kicks = [], sorted(kicks)
    next_retry, retried = None, 0
    while True:
        upcoming = [t for t in (next_retry, kicks[0] if kicks else None) if t is not None and t <= until]
        if not upcoming:
            return times
        at = min(upcoming)
        if kicks and at == kicks[0]:
            kicks.pop(0)
            retried = 0
        else:
            retried += 1
        times.append(at)
        next_retry = at + timedelta(seconds=intervals[min(retried, len(intervals) - 1)]) if retried < retries else None


def _delivered_once(inbox):
    """Outbox ids of the messages the server received, counted (each Message-ID names its outbox row)."""
    ids = [re.search(r"outbox-(\d+)@", message["Message-ID"]).group(1) for message in inbox.messages]
    return Counter(int(i) for i in ids)


@pytest.mark.parametrize("outage", [timedelta(hours=1), timedelta(hours=6)], ids=["an hour", "six hours"])
def test_smtp_down_for_hours_loses_no_email_and_sends_none_twice(ctx, make, smtp_port, outage):
    admin = db.session.get(User, make.user("super_admin").id)
    accounts = [make.account(name=f"Customer {i}") for i in range(ACCOUNTS)]
    for account_id in accounts:
        make.user("account_manager", account_id)
    start = utcnow() - outage - timedelta(minutes=1)  # the simulated outage ends now: claims are stamped now
    actions = [start + ACTION_EVERY * i for i in range(int(outage / ACTION_EVERY))]

    def act(n, at):  # suspend, later reactivate, each account in turn: one email to its manager each time
        account_id = accounts[n % ACCOUNTS]
        change = suspension.suspend if (n // ACCOUNTS) % 2 == 0 else suspension.reactivate
        change(admin, account_id, "other", f"Action {n}", now=at)

    act(0, start)
    job = Job.fetch(notify.DELIVERY_JOB_ID, connection=get_redis())  # what the action queued: RQ's retry policy
    intervals, retries = job.retry_intervals, job.retries_left
    assert sum(intervals[min(i, len(intervals) - 1)] for i in range(retries)) >= 24 * 3600  # RQ retries for a day
    with pytest.raises(jobs.DeliveryIncomplete):
        jobs.deliver_outbox()  # the job fails while SMTP is down, so RQ retries it

    runs = rq_runs(actions, intervals, retries, until=start + outage)
    done = 1
    for at in runs:
        while done < len(actions) and actions[done] <= at:
            act(done, actions[done])
            done += 1
        sent, failed = notify.deliver_pending(now=at)
        assert (sent, failed) == (0, 1)  # stops at the first email: the server cannot be reached
        db.session.expire_all()
        assert db.session.scalar(select(OutboxEmail.id).where(OutboxEmail.status == "failed")) is None, (
            f"an email was given up {at - start} into the outage, after {runs.index(at) + 1} delivery runs")
    assert len(runs) > notify.MAX_ATTEMPTS  # more runs than the attempts an email the server refuses gets

    queued = set(db.session.scalars(select(OutboxEmail.id)))
    assert len(queued) == len(actions)
    with SmtpServer(smtp_port, Inbox()) as inbox:
        assert notify.deliver_pending(now=start + outage + timedelta(seconds=10)) == (len(queued), 0)
        assert notify.deliver_pending(now=start + outage + timedelta(seconds=40)) == (0, 0)  # a late retry: nothing
    assert _delivered_once(inbox) == Counter(queued)
    assert set(db.session.scalars(select(OutboxEmail.status))) == {"sent"}
