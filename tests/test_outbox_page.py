"""The outbox page: emails by status with filters, one email escaped, sending a failed one again, a run's counts."""
import re
import threading
from datetime import datetime, timedelta
from types import SimpleNamespace

import pytest
from redis import Redis
from rq import Queue
from sqlalchemy import func, select

from portal.domain import notify, outbox, runs
from portal.domain.errors import Conflict
from portal.extensions import QUEUE_MAIL, db
from portal.models import Account, AuditEvent, OutboxEmail, User

HX = {"HX-Request": "true"}
T0 = datetime(2026, 11, 20, 10, 0)


@pytest.fixture
def app_config():
    return {"LOGIN_RATE_LIMIT": "1000 per minute"}


def _email(account_id, to, status, kind="account_suspended", subject="Your account is suspended", body="Hello",
           attempts=0, last_error=None, at=T0, sent_at=None):
    email = OutboxEmail(created_at=at, account_id=account_id, kind=kind, to_addr=to, subject=subject, body=body,
                        status=status, attempts=attempts, last_error=last_error, sent_at=sent_at)
    db.session.add(email)
    db.session.flush()
    return email.id


@pytest.fixture
def mail(app, world):
    """One email in each status, two kinds, two accounts, and a bulk run's emails."""
    m = SimpleNamespace(world=world)
    with app.app_context():
        acct, other = db.session.get(Account, world.account), db.session.get(Account, world.other_account)
        m.number, m.other_number = acct.number, other.number
        m.sent = _email(acct.id, world.manager.email, "sent", attempts=1, sent_at=T0 + timedelta(minutes=1))
        m.failed = _email(acct.id, world.manager.email, "failed", attempts=notify.MAX_ATTEMPTS,
                          last_error="550 Mailbox unavailable", subject="Reminder <b>bold</b>",
                          body="<script>alert('x')</script>\nLine two", kind="survey_reminder",
                          at=T0 + timedelta(hours=1))
        m.pending = _email(other.id, world.other_manager.email, "pending", at=T0 + timedelta(hours=2))
        m.held = _email(acct.id, world.member.email, "held", kind="survey_reminder", at=T0 + timedelta(hours=3))
        m.sending = _email(other.id, "Otto.Other@Example.test", "sending", at=T0 + timedelta(hours=4))
        db.session.commit()
        run = runs.start_run(db.session.get(User, world.admin.id), "bulk", "suspend",
                             {"type": "ids", "ids": [other.id]}, "non_payment", "Unpaid", enqueue=False,
                             now=T0 + timedelta(hours=5), as_of=T0 + timedelta(hours=5))
        runs.process_run(run.id, worker_name="test", poll=0)
        m.run = run.id
        m.run_emails = list(db.session.scalars(select(OutboxEmail.id).where(OutboxEmail.id > m.sending)))
    return m


def _ids(html):
    return [int(i) for i in re.findall(r'data-email-id="(\d+)"', html)]


def _row(app, email_id):
    with app.app_context():
        e = db.session.get(OutboxEmail, email_id)
        return (e.status, e.attempts, e.last_error, e.sent_at)


def _audits(app, action="email_resent"):
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.action == action))


def test_the_outbox_lists_every_email_newest_first_with_its_status_counts(app, mail, auth, client):
    auth.login(mail.world.admin.email)
    response = client.get("/outbox")
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and "<html" in html
    with app.app_context():
        every = list(db.session.scalars(select(OutboxEmail.id).order_by(OutboxEmail.id.desc())))
    assert _ids(html) == every
    assert re.search(r'data-testid="outbox-tab-failed"[^>]*>\s*Failed\s*<span class="count">1</span>', html)
    assert re.search(r'data-testid="outbox-tab-held"[^>]*>\s*Held while suspended\s*<span class="count">1</span>', html)
    fragment = client.get("/outbox", headers=HX).get_data(as_text=True)
    assert fragment.lstrip().startswith('<div id="outbox-log"') and _ids(fragment) == every


@pytest.mark.parametrize("status", ["pending", "sending", "sent", "failed", "held"])
def test_filter_by_status(app, mail, auth, client, status):
    auth.login(mail.world.support.email)
    html = client.get("/outbox", query_string={"status": status}).get_data(as_text=True)
    assert set(re.findall(r'data-testid="outbox-row" data-email-id="\d+" data-status="([a-z]+)"', html)) == {status}


def test_filters_by_kind_recipient_account_and_run_alone_and_combined(app, mail, auth, client):
    auth.login(mail.world.support.email)

    def ids(**args):
        return sorted(_ids(client.get("/outbox", query_string=args).get_data(as_text=True)))

    assert ids(kind="survey_reminder") == sorted([mail.failed, mail.held])
    assert ids(recipient=mail.world.member.email) == [mail.held]
    assert ids(recipient="Otto.Other@Example.test") == [mail.sending]
    assert ids(account=mail.number.lower()) == sorted([mail.sent, mail.failed, mail.held])
    assert ids(run=str(mail.run)) == sorted(mail.run_emails) and mail.run_emails
    assert ids(run=f"#{mail.run}", status="pending") == sorted(mail.run_emails)
    assert ids(account=mail.number, kind="survey_reminder", status="failed") == [mail.failed]
    assert ids(account=mail.other_number, kind="survey_reminder") == []


@pytest.mark.parametrize("args, field, message", [
    ({"status": "lost"}, "status", "Choose one of the listed statuses."),
    ({"kind": "nonsense"}, "kind", "No email is of that kind"),
    ({"account": "Z0000000"}, "account", "No account has the number “Z0000000”"),
    ({"run": "999"}, "run", "There is no run “999”"),
    ({"run": "soon"}, "run", "There is no run “soon”"),
])
def test_bad_filters_are_explained_at_their_field_and_list_nothing(app, mail, auth, client, args, field, message):
    auth.login(mail.world.admin.email)
    for headers in ({}, HX):
        response = client.get("/outbox", query_string=args, headers=headers)
        html = response.get_data(as_text=True)
        assert response.status_code == 422
        error = re.search(rf'id="outbox-{field}-error"[^>]*>([^<]+)<', html)
        assert error and message in error.group(1)
        assert _ids(html) == []


def test_one_email_shows_its_recipient_subject_escaped_body_attempts_and_error(app, mail, auth, client):
    auth.login(mail.world.support.email)
    page = client.get(f"/outbox/{mail.failed}")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "<html" in html
    assert re.search(r'<dialog id="outbox-email-dialog"[^>]* open', html)
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in html and "<script>alert" not in html
    assert "Reminder &lt;b&gt;bold&lt;/b&gt;" in html
    assert re.search(r'data-testid="outbox-email-attempts">20<', html)
    assert "550 Mailbox unavailable" in html and mail.world.manager.email in html
    assert 'data-testid="outbox-resend"' not in html  # support reads only
    dialog = client.get(f"/outbox/{mail.failed}", headers=HX).get_data(as_text=True)
    assert dialog.lstrip().startswith('<dialog id="outbox-email-dialog"') and "data-autoopen" in dialog
    assert client.get("/outbox/99999").status_code == 404


def test_a_failed_email_is_sent_again_audited_and_delivery_is_queued(app, mail, auth, client, redis_server):
    auth.login(mail.world.admin.email)
    html = client.get(f"/outbox/{mail.failed}", headers=HX).get_data(as_text=True)
    assert 'data-testid="outbox-resend"' in html
    response = auth.post(f"/outbox/{mail.failed}/resend", htmx=True, page="/outbox")
    body = response.get_data(as_text=True)
    assert response.status_code == 200 and 'data-testid="outbox-resent"' in body
    assert body.lstrip().startswith('<div id="outbox-email-body"')
    assert "outbox-email-resent" in response.headers["HX-Trigger"]
    assert _row(app, mail.failed)[:2] == ("pending", 0)
    with app.app_context():
        event = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "email_resent")).one()
        assert event.account_id == mail.world.account and event.actor_user_id == mail.world.admin.id
        assert event.data["email_id"] == mail.failed and event.data["attempts"] == notify.MAX_ATTEMPTS
    assert notify.DELIVERY_JOB_ID in Queue(QUEUE_MAIL, connection=Redis.from_url(redis_server.url)).job_ids


def test_without_javascript_a_resend_redirects_to_the_email_with_a_message(app, mail, auth, client):
    auth.login(mail.world.admin.email)
    response = auth.post(f"/outbox/{mail.failed}/resend", page="/outbox")
    assert response.status_code == 303 and response.headers["Location"].endswith(f"/outbox/{mail.failed}")
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "queued to be sent again" in page and _row(app, mail.failed)[0] == "pending"


@pytest.mark.parametrize("which, message", [
    ("sent", "This email was already sent on 2026-11-20 at 10:01 UTC, so it is not sent again."),
    ("pending", "already waiting to be sent"),
    ("held", "held while its recipient"),
])
def test_an_email_not_failed_is_not_sent_again_and_nothing_changes(app, mail, auth, client, which, message):
    email_id = getattr(mail, which)
    before = _row(app, email_id)
    auth.login(mail.world.admin.email)
    for htmx in (True, False):
        response = auth.post(f"/outbox/{email_id}/resend", htmx=htmx, page="/outbox")
        html = response.get_data(as_text=True)
        assert response.status_code == 409
        assert re.search(r'data-testid="outbox-resend-error">[^<]*' + re.escape(message), html)
    assert _row(app, email_id) == before and _audits(app) == 0


def test_two_resends_at_once_move_the_email_once(app, mail):
    """Compare-and-set on status = 'failed': the second finds it pending and is refused (one audit event)."""
    barrier, outcomes = threading.Barrier(2), []

    def resend():
        with app.app_context():
            admin = db.session.get(User, mail.world.admin.id)
            barrier.wait()
            try:
                outbox.resend(admin, mail.failed)
                outcomes.append("moved")
            except Conflict as exc:
                outcomes.append(exc.message)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=resend) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(outcomes, key=len) == ["moved", "This email is already waiting to be sent (or being sent now). "
                                                  "Nothing was changed."]
    assert _audits(app) == 1 and _row(app, mail.failed)[0] == "pending"


def test_support_and_customers_cannot_send_again(app, mail, auth, client):
    for person in (mail.world.support, mail.world.manager):
        auth.login(person.email)
        assert auth.post(f"/outbox/{mail.failed}/resend", page="/login").status_code == 403
        auth.logout()
    assert _row(app, mail.failed)[0] == "failed" and _audits(app) == 0
    auth.login(mail.world.manager.email)
    assert client.get("/outbox").status_code == 403 and client.get(f"/outbox/{mail.failed}").status_code == 403


def test_a_runs_email_counts_by_status(app, mail):
    with app.app_context():
        counts = outbox.outbox_counts_for_run(mail.run)
        assert counts == {"pending": len(mail.run_emails), "sending": 0, "sent": 0, "failed": 0, "held": 0}
        assert len(mail.run_emails) == 1  # the other account's manager
        db.session.get(OutboxEmail, mail.run_emails[0]).status = "sent"
        db.session.commit()
        assert outbox.outbox_counts_for_run(mail.run)["sent"] == 1
        assert outbox.outbox_counts_for_run(mail.run + 100) == dict.fromkeys(outbox.STATUSES, 0)


@pytest.mark.browser
def test_in_a_browser_an_email_opens_in_a_dialog_and_is_sent_again(app, page, mail):
    from playwright.sync_api import expect

    from tests.conftest import browser_login

    browser_login(page, mail.world.admin.email)
    page.goto("/outbox?status=failed")
    page.get_by_test_id("outbox-open").first.click()
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_test_id("outbox-email-text")).to_contain_text("<script>alert('x')</script>")
    expect(dialog.get_by_test_id("outbox-email-error")).to_have_text("550 Mailbox unavailable")
    dialog.get_by_role("button", name="Send again").click()
    expect(dialog.get_by_test_id("outbox-resent")).to_contain_text("queued to be sent again")
    expect(dialog.get_by_test_id("outbox-email-status")).to_have_text("Waiting")
    expect(page.get_by_test_id("outbox-empty")).to_be_visible()  # the list behind refreshed: none failed now
    dialog.get_by_role("link", name="Close").click()
    expect(page.get_by_role("dialog")).to_have_count(0)
    assert _row(app, mail.failed)[0] == "pending"
