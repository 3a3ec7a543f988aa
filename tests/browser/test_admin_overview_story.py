"""The admin's whole story in a real browser (issue 15): a clean-up suspends three dormant shops and their
suspension emails are delivered to a local mail catcher; the super admin signs in onto the overview, opens the
last run from its panel, follows "accounts it changed" to the list filtered by the run (exactly those three, not
the account an admin suspended by hand), downloads them as CSV, opens one account's events in the audit log from
its timeline, and from there reads its suspension email in the outbox."""
import csv
import io
from datetime import datetime

import pytest
from playwright.sync_api import expect
from sqlalchemy import select, update

from portal import mailcatcher
from portal.domain import notify, runs, suspension
from portal.extensions import db
from portal.models import Account, OutboxEmail, User
from tests.conftest import browser_login
from tests.services import free_port

pytestmark = pytest.mark.browser
OLD = datetime(2022, 1, 1)
NOTE = "Yearly clean-up of dormant shops"
DORMANT = {"type": "rules", "rules": [{"id": 1, "name": "Inactive 12+ months", "enabled": True, "inactivity_months": 12,
                                       "min_balance_cents": None, "overdue_days": None}]}


@pytest.fixture
def cleaned_up(app, world, make, tmp_path):
    """Three dormant shops (a manager each) suspended by a finished clean-up, their emails delivered; a busy
    account suspended by an admin beforehand (suspended, but not by the run)."""
    shops = {}
    for i in range(3):
        account_id = make.account(name=f"Sleepy Shop {i}", created_at=OLD, last_activity_at=OLD)
        shops[account_id] = (f"Sleepy Shop {i}", f"Manager {i}",
                             make.user("account_manager", account_id, name=f"Manager {i}").email)
    by_hand = make.account(name="Busy Suspended Shop", last_activity_at=datetime.now())
    from aiosmtpd.controller import Controller

    port = free_port()
    catcher = Controller(mailcatcher.Catcher(str(tmp_path / "mail"), out=io.StringIO()),
                         hostname="127.0.0.1", port=port)
    catcher.start()
    try:
        with app.app_context():
            db.session.execute(update(Account).where(Account.id.in_([world.account, world.other_account]))
                               .values(last_activity_at=datetime.now()))  # the world's accounts are busy
            db.session.commit()
            admin = db.session.get(User, world.admin.id)
            suspension.suspend(admin, by_hand, "other", "Suspended by hand")
            run = runs.start_run(admin, "cleanup", "suspend", DORMANT, "inactivity", NOTE, chunk_size=2,
                                 enqueue=False).id
            done = runs.process_run(run, connections=1)
            assert (done["status"], done["changed"]) == ("done", 3)
            app.config.update(SMTP_HOST="127.0.0.1", SMTP_PORT=port)
            notify.deliver_pending()
            sent = db.session.scalars(select(OutboxEmail.to_addr).where(OutboxEmail.kind == "account_suspended",
                                                                        OutboxEmail.status == "sent")).all()
            numbers = dict(db.session.execute(select(Account.id, Account.number).where(Account.id.in_(shops))).all())
            db.session.remove()
    finally:
        catcher.stop()
    assert sorted(sent) == sorted(email for _shop, _manager, email in shops.values())
    assert len(mailcatcher.messages(str(tmp_path / "mail"))) == 3  # really delivered
    return run, {numbers[account_id]: shop for account_id, shop in shops.items()}


def test_overview_last_run_its_accounts_csv_audit_log_and_the_email(page, world, cleaned_up):
    run_id, shops = cleaned_up
    browser_login(page, world.admin.email)
    assert page.url.endswith("/overview")  # signing in lands on the overview
    expect(page.get_by_test_id("status-count-suspended")).to_have_text("4")

    last = page.get_by_test_id("overview-run").first  # the last runs, newest first
    expect(last).to_have_attribute("data-run-id", str(run_id))
    expect(last.get_by_test_id("run-outcome")).to_have_text("3 changed")
    last.get_by_role("link", name=f"#{run_id}").click()
    page.wait_for_url(f"**/sweeps/runs/{run_id}")
    expect(page.get_by_test_id("run-live")).to_have_attribute("data-status", "done")
    expect(page.get_by_test_id("count-changed")).to_have_text("3")

    page.get_by_test_id("changed-accounts-link").click()
    expect(page.get_by_test_id("run-chip")).to_have_text(f"Changed by run #{run_id} ×")
    rows = page.get_by_test_id("account-row")
    expect(rows).to_have_count(3)
    shown = sorted(rows.nth(i).get_by_role("link").first.inner_text() for i in range(3))
    assert shown == sorted(shops)  # exactly the run's, not the account suspended by hand
    expect(page.get_by_text("Busy Suspended Shop")).to_have_count(0)

    with page.expect_download() as download:
        page.get_by_test_id("export-csv").click()
    with open(download.value.path(), newline="", encoding="utf-8-sig") as f:
        exported = list(csv.DictReader(f))
    assert sorted((r["number"], r["name"], r["status"]) for r in exported) == sorted(
        (number, name, "suspended") for number, (name, _manager, _email) in shops.items())

    number = sorted(shops)[0]
    name, manager, manager_email = shops[number]
    page.get_by_role("link", name=number, exact=True).click()
    page.wait_for_url("**/accounts/*")
    expect(page.get_by_test_id("status-badge")).to_have_text("Suspended")
    page.get_by_test_id("timeline-audit-link").click()
    page.wait_for_url("**/audit?*")
    expect(page.get_by_test_id("audit-scope")).to_contain_text(f"Account {number} {name}")
    events = page.get_by_test_id("audit-row")
    expect(events).to_have_count(1)  # the account's one event: the run's suspension
    expect(events).to_contain_text("Active → Suspended")
    expect(events).to_contain_text(NOTE)
    expect(events.get_by_test_id("audit-run-link")).to_have_text(f"Run #{run_id}")

    page.get_by_test_id("audit-account-emails").click()
    page.wait_for_url("**/outbox?*")
    email = page.get_by_test_id("outbox-row")
    expect(email).to_have_count(1)
    expect(email).to_have_attribute("data-status", "sent")
    expect(email.locator(".outbox-to")).to_have_text(manager_email)
    email.get_by_test_id("outbox-open").click()
    dialog = page.get_by_test_id("outbox-email")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_role("heading", level=2)).to_have_text(f"Your account {number} has been suspended")
    expect(page.get_by_test_id("outbox-email-status")).to_have_text("Sent")
    expect(page.get_by_test_id("outbox-email-to")).to_have_text(manager_email)
    text = page.get_by_test_id("outbox-email-text")
    expect(text).to_contain_text(f"Hello {manager},")
    expect(text).to_contain_text(f"Account: {number} ({name})")
    expect(text).to_contain_text(f"Note: {NOTE}")
