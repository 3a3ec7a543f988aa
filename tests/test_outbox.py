"""Suspension emails: outbox rows, an RQ job with retries, real SMTP (aiosmtpd), held mail for members."""
import threading
import time
from email import message_from_bytes

import pytest
from redis import Redis
from rq import Queue
from rq.registry import ScheduledJobRegistry
from sqlalchemy import select

from portal.domain import notify, suspension
from portal.extensions import QUEUE_MAIL, db
from portal.models import Account, OutboxEmail, User
from tests.services import free_port

pytestmark = pytest.mark.slow


class Inbox:
    """An aiosmtpd handler that keeps what it receives (optionally slowly, or refusing one address)."""

    def __init__(self, delay=0.0, refuse=None):
        self.messages, self.delay, self.refuse = [], delay, refuse
        self.lock = threading.Lock()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address == self.refuse:
            return "550 No such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.delay:
            import asyncio

            await asyncio.sleep(self.delay)
        with self.lock:
            self.messages.append(message_from_bytes(envelope.content))
        return "250 Message accepted for delivery"


class SmtpServer:
    """A real SMTP server on a loopback port, which the test starts and stops."""

    def __init__(self, port, inbox):
        from aiosmtpd.controller import Controller

        self.controller = Controller(inbox, hostname="127.0.0.1", port=port)
        self.inbox = inbox

    def __enter__(self):
        self.controller.start()
        return self.inbox

    def __exit__(self, *exc):
        self.controller.stop()


@pytest.fixture
def smtp_port():
    return free_port()


@pytest.fixture
def app_config(smtp_port):
    return {"SMTP_HOST": "127.0.0.1", "SMTP_PORT": smtp_port, "MAIL_RETRY_INTERVALS": [1]}


@pytest.fixture
def mail_worker(run_worker, smtp_port):
    """Run a real worker process on the mail queue (burst), with the same SMTP settings."""

    def run(with_scheduler=False):
        args = (["--with-scheduler"] if with_scheduler else []) + [QUEUE_MAIL]
        result = run_worker(*args, extra_env={"PORTAL_SMTP_HOST": "127.0.0.1", "PORTAL_SMTP_PORT": smtp_port})
        assert result.returncode == 0, result.stderr[-3000:]
        return result

    return run


def act(app, world, action, reason="non_payment", note="Invoices 3 and 4 unpaid."):
    with app.app_context():
        getattr(suspension, action)(db.session.get(User, world.admin.id), world.account, reason, note)
        db.session.remove()


def outbox(app):
    with app.app_context():
        rows = [(e.to_addr, e.kind, e.status, e.attempts) for e in
                db.session.scalars(select(OutboxEmail).order_by(OutboxEmail.id))]
        db.session.remove()
        return rows


def queue_member_note(app, world, who="member"):
    """Queue an everyday notification to one of the account's people (as other features will)."""
    with app.app_context():
        person = db.session.get(User, getattr(world, who).id)
        notify.queue_email(person, "reminder", "Your week ahead", "account_reactivated.txt",
                           account=person.account, note="A reminder")
        db.session.commit()
        db.session.remove()


# ---------------------------------------------------------------- real SMTP, real worker

def test_suspension_and_reactivation_emails_reach_the_managers_over_smtp(app, world, make, smtp_port, mail_worker):
    second_manager = make.user("account_manager", world.account, name="Max Manager")
    make.user("account_manager", world.account, email_notifications=False)  # opted out: no email
    with SmtpServer(smtp_port, Inbox()) as inbox:
        act(app, world, "suspend")
        mail_worker()
        act(app, world, "reactivate", reason="other", note="Paid in full.")
        mail_worker()
    got = [(m["To"], m["Subject"]) for m in inbox.messages]
    with app.app_context():
        number = db.session.get(Account, world.account).number
    assert sorted(got) == sorted([
        (world.manager.email, f"Your account {number} has been suspended"),
        (second_manager.email, f"Your account {number} has been suspended"),
        (world.manager.email, f"Your account {number} is active again"),
        (second_manager.email, f"Your account {number} is active again"),
    ])
    body = inbox.messages[0].get_payload(decode=True).decode()
    assert "suspended for non-payment of dues" in body and "Invoices 3 and 4 unpaid." in body
    assert "please contact billing@portal.test" in body
    assert {status for _to, _kind, status, _n in outbox(app)} == {"sent"}


def test_with_smtp_down_the_action_succeeds_and_the_email_goes_out_when_smtp_returns(app, world, smtp_port,
                                                                                    mail_worker, redis_server):
    act(app, world, "suspend")  # nothing listens on the SMTP port
    with app.app_context():
        assert db.session.get(Account, world.account).status == "suspended"
    mail_worker()
    [(to, kind, status, attempts)] = outbox(app)
    assert (to, kind, status, attempts) == (world.manager.email, "account_suspended", "pending", 0)  # never reached
    with app.app_context():
        assert db.session.scalars(select(OutboxEmail.last_error)).one()  # why it is still waiting
    registry = ScheduledJobRegistry(queue=Queue(QUEUE_MAIL, connection=Redis.from_url(redis_server.url)))
    assert registry.get_job_ids() == [notify.DELIVERY_JOB_ID]  # RQ retries it
    with SmtpServer(smtp_port, Inbox()) as inbox:
        deadline = time.monotonic() + 30
        while not inbox.messages and time.monotonic() < deadline:
            time.sleep(1.1)  # the retry is due one second after the failure (MAIL_RETRY_INTERVALS)
            mail_worker(with_scheduler=True)
    assert [m["To"] for m in inbox.messages] == [world.manager.email]
    assert [row[2:] for row in outbox(app)] == [("sent", 1)]  # only the try that reached the server counts


def test_with_redis_down_the_action_still_succeeds_and_the_email_waits_in_the_outbox(app, world, smtp_port,
                                                                                   runner):
    app.config["REDIS_URL"] = "redis://127.0.0.1:1/0"
    app.extensions.pop("portal_redis", None)
    act(app, world, "suspend")
    assert [row[2] for row in outbox(app)] == ["pending"]
    with SmtpServer(smtp_port, Inbox()) as inbox:
        result = runner.invoke(args=["outbox-deliver"])
    assert result.exit_code == 0 and "Sent 1" in result.output
    assert [m["To"] for m in inbox.messages] == [world.manager.email]


# ---------------------------------------------------------------- held for members while suspended

def test_members_mail_is_held_while_suspended_and_sent_after_reactivation(app, world, smtp_port, mail_worker):
    queue_member_note(app, world, "member")  # pending before the suspension
    act(app, world, "suspend")
    queue_member_note(app, world, "tier")  # queued during the suspension
    statuses = {(to, kind): status for to, kind, status, _n in outbox(app)}
    assert statuses[(world.member.email, "reminder")] == "held"
    assert statuses[(world.tier.email, "reminder")] == "held"
    assert statuses[(world.manager.email, "account_suspended")] == "pending"
    with SmtpServer(smtp_port, Inbox()) as inbox:
        mail_worker()
        assert [m["To"] for m in inbox.messages] == [world.manager.email]
        act(app, world, "reactivate", reason="other", note="Settled.")
        mail_worker()
    assert sorted(m["To"] for m in inbox.messages) == sorted(
        [world.manager.email, world.member.email, world.tier.email, world.manager.email])


def test_delivery_holds_a_members_email_whose_account_was_suspended_after_it_was_queued(ctx, world, smtp_port):
    queue_member_note(ctx, world, "member")
    account = db.session.get(Account, world.account)
    account.status = "suspended"  # e.g. a bulk sweep that does not touch the outbox
    db.session.commit()
    with SmtpServer(smtp_port, Inbox()) as inbox:
        assert notify.deliver_pending() == (0, 0)
    assert inbox.messages == []
    assert db.session.scalars(select(OutboxEmail.status)).one() == "held"


# ---------------------------------------------------------------- delivery details

def test_a_refused_recipient_stays_pending_with_its_error_and_the_rest_are_sent(ctx, world, make, smtp_port):
    bad = make.user("account_manager", world.account, email="nobody@example.test")
    suspension.suspend(db.session.get(User, world.admin.id), world.account, "other", "note")
    with SmtpServer(smtp_port, Inbox(refuse=bad.email)) as inbox:
        assert notify.deliver_pending() == (1, 1)
    assert [m["To"] for m in inbox.messages] == [world.manager.email]
    refused = db.session.scalars(select(OutboxEmail).where(OutboxEmail.to_addr == bad.email)).one()
    assert (refused.status, refused.attempts) == ("pending", 1) and "550" in refused.last_error


def test_an_email_is_marked_failed_after_the_last_attempt(ctx, world, smtp_port):
    suspension.suspend(db.session.get(User, world.admin.id), world.account, "other", "note")
    email = db.session.scalars(select(OutboxEmail)).one()
    email.attempts = notify.MAX_ATTEMPTS - 1
    db.session.commit()
    with SmtpServer(smtp_port, Inbox(refuse=world.manager.email)):
        notify.deliver_pending()
    assert db.session.scalars(select(OutboxEmail.status)).one() == "failed"


def test_two_delivery_runs_at_once_send_each_email_once(app, world, make, smtp_port):
    for n in range(12):
        make.user("account_manager", world.account, email=f"manager{n}@many.test")
    act(app, world, "suspend")
    results = []

    def run():
        with app.app_context():
            results.append(notify.deliver_pending())
            db.session.remove()

    with SmtpServer(smtp_port, Inbox(delay=0.02)) as inbox:
        threads = [threading.Thread(target=run) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    sent_to = [m["To"] for m in inbox.messages]
    assert len(sent_to) == len(set(sent_to)) == 13
    assert sum(sent for sent, _failed in results) == 13
    assert {row[2:] for row in outbox(app)} == {("sent", 1)}


def test_a_claim_left_by_a_killed_worker_is_taken_back_after_the_lease(ctx, world, smtp_port):
    from datetime import timedelta

    from portal.timeutil import utcnow

    suspension.suspend(db.session.get(User, world.admin.id), world.account, "other", "note")
    email = db.session.scalars(select(OutboxEmail)).one()
    email.status, email.sent_at = "sending", utcnow() - notify.CLAIM_LEASE - timedelta(minutes=1)
    db.session.commit()
    with SmtpServer(smtp_port, Inbox()) as inbox:
        assert notify.deliver_pending() == (1, 0)
    assert len(inbox.messages) == 1


# ---------------------------------------------------------------- email stranded in the outbox

def test_the_scheduler_tick_sends_email_stranded_while_redis_was_down(app, world, smtp_port, mail_worker):
    from portal.domain import schedule

    redis_url = app.config["REDIS_URL"]
    app.config["REDIS_URL"] = "redis://127.0.0.1:1/0"  # Redis down while the admin acts
    app.extensions.pop("portal_redis", None)
    act(app, world, "suspend")
    app.config["REDIS_URL"] = redis_url  # Redis back; no one acts again
    app.extensions.pop("portal_redis", None)
    assert Queue(QUEUE_MAIL, connection=Redis.from_url(redis_url)).count == 0
    with app.app_context():
        assert schedule.tick()["mail_kicked"] is True
        assert schedule.tick()["mail_kicked"] is False  # the delivery job is already queued
        db.session.remove()
    with SmtpServer(smtp_port, Inbox()) as inbox:
        mail_worker()
    assert [m["To"] for m in inbox.messages] == [world.manager.email]
    assert [row[2] for row in outbox(app)] == ["sent"]
    with app.app_context():
        assert schedule.tick()["mail_kicked"] is False  # nothing pending any more
