"""In a real browser: fix a bad rule, preview, confirm the clean-up by typing the count, watch the run's progress
update itself while a real worker runs it, see polling stop when it is done, then exempt an account."""
import threading
import time
from datetime import datetime

import pytest
from playwright.sync_api import expect
from sqlalchemy import delete, update

from portal.extensions import db
from portal.models import Account, SuspensionRule
from tests.conftest import browser_login

pytestmark = pytest.mark.browser
OLD = datetime(2022, 1, 1)


@pytest.fixture
def app_config():
    return {"CLEANUP_CONFIRM_THRESHOLD": 3, "SWEEP_CHUNK_SIZE": 2}


@pytest.fixture
def dormant(app, world, make):
    ids = [make.account(name=f"Sleepy Shop {i}", created_at=OLD, last_activity_at=OLD) for i in range(6)]
    with app.app_context():
        db.session.execute(delete(SuspensionRule))
        db.session.execute(update(Account).where(Account.id.in_([world.account, world.other_account]))
                           .values(last_activity_at=datetime.now()))  # the world's accounts are busy
        db.session.commit()
    return ids


def test_rules_preview_confirm_and_watch_the_run(page, app, world, dormant, run_worker):
    browser_login(page, world.admin.email)
    page.get_by_role("link", name="Rules").click()
    expect(page.get_by_text("No rules yet")).to_be_visible()

    page.get_by_label("Name").fill("Asleep for a year")
    page.get_by_label("No reservation for at least (months)").fill("-12")
    page.get_by_role("button", name="Add rule").click()
    field = page.get_by_label("No reservation for at least (months)")
    expect(page.locator("#inactivity_months-error")).to_have_text("Enter a number of months from 1 to 600.")
    expect(field).to_have_attribute("aria-invalid", "true")
    field.fill("12")
    page.get_by_role("button", name="Add rule").click()
    expect(page.get_by_test_id("rule")).to_have_count(1)
    expect(page.get_by_test_id("rule")).to_contain_text("no reservation for 12+ months")

    page.get_by_role("link", name="Sweeps").click()
    page.get_by_role("link", name="Preview and start a clean-up…").click()
    expect(page.get_by_test_id("would-change")).to_have_text("6")
    expect(page.get_by_test_id("sample-row")).to_have_count(6)
    page.get_by_label("Note").fill("Yearly clean-up")
    page.get_by_label("Type 6 to confirm").fill("60")
    page.get_by_role("button", name="Suspend 6 accounts").click()
    expect(page.locator("#confirm_count-error")).to_contain_text("Type 6 to confirm")

    page.get_by_label("Type 6 to confirm").fill("6")
    page.get_by_role("button", name="Suspend 6 accounts").click()
    page.wait_for_url("**/sweeps/runs/*")
    live = page.get_by_test_id("run-live")
    expect(live).to_have_attribute("data-status", "queued")
    expect(page.get_by_text("waiting for a sweep worker")).to_be_visible()

    polls = []
    page.on("request", lambda request: polls.append(time.monotonic()) if "/progress" in request.url else None)
    outcome = {}
    worker = threading.Thread(target=lambda: outcome.setdefault("result", run_worker("sweeps")))
    worker.start()
    worker.join(120)
    assert outcome["result"].returncode == 0, outcome["result"].stderr[-2000:]
    expect(live).to_have_attribute("data-status", "done", timeout=15_000)  # the page updated itself
    expect(page.get_by_test_id("count-changed")).to_have_text("6")
    expect(page.get_by_test_id("progress-bar")).to_have_attribute("aria-valuenow", "100")
    expect(page.get_by_text("Undo this run…")).to_be_visible()
    done_at = time.monotonic()
    time.sleep(2.5)
    assert polls and not [t for t in polls if t > done_at + 0.2], "polling went on after the run finished"

    page.goto(f"/accounts/{dormant[0]}")
    expect(page.get_by_test_id("status-badge")).to_have_text("Suspended")
    page.get_by_text("Exempt this account from sweeps…").click()  # the form shows only when asked for
    page.get_by_label("Why it is exempt").fill("Family business")
    page.get_by_role("button", name="Exempt from sweeps").click()
    expect(page.get_by_test_id("exempt-state")).to_contain_text("Reason: Family business")
    expect(page.get_by_label("Why sweeps may consider it again")).to_be_hidden()  # folded again once done
    page.get_by_text("Let sweeps consider it again…").click()
    expect(page.get_by_label("Why sweeps may consider it again")).to_be_visible()
