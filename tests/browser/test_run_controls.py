"""In a real browser: a running run's page polls itself while the cancel confirmation, once opened, stays open;
pause, then cancel behind the confirmation; the report says what it kept; "Show them in the account list" opens the
list with the removable "Changed by run #N" chip."""
import time
from datetime import datetime

import pytest
from playwright.sync_api import expect
from sqlalchemy import select, update

from portal.domain import runs
from portal.extensions import db
from portal.models import Account, SweepRun, SweepRunChunk, User
from tests.conftest import browser_login

pytestmark = pytest.mark.browser
OLD = datetime(2022, 1, 1)
DORMANT = {"type": "rules", "rules": [{"id": 1, "name": "Inactive 12+ months", "enabled": True, "inactivity_months": 12,
                                       "min_balance_cents": None, "overdue_days": None}]}


@pytest.fixture
def half_done(app, world, make):
    """A clean-up of twelve dormant shops, chunks of four, the first chunk done, as if a worker were on it."""
    for i in range(12):
        make.account(name=f"Sleepy Shop {i:02d}", created_at=OLD, last_activity_at=OLD)
    with app.app_context():
        db.session.execute(update(Account).where(Account.id.in_([world.account, world.other_account]))
                           .values(last_activity_at=datetime.now()))  # the world's accounts are busy
        admin = db.session.get(User, world.admin.id)
        run = runs.start_run(admin, "cleanup", "suspend", DORMANT, "inactivity", "Dormant", chunk_size=4,
                             enqueue=False)
        db.session.execute(update(SweepRun).where(SweepRun.id == run.id)
                           .values(status="running", started_at=datetime.utcnow(), heartbeat_at=datetime.utcnow()))
        db.session.commit()
        first = db.session.execute(select(SweepRunChunk.id, SweepRunChunk.lo, SweepRunChunk.hi)
                                   .where(SweepRunChunk.run_id == run.id).order_by(SweepRunChunk.id)).first()
        runs.process_chunk(run, *first)
        return run.id, runs.progress(run.id)["processed"]


def test_pause_and_cancel_from_the_run_page_then_see_what_it_changed(page, world, half_done):
    half_done, done = half_done
    assert done > 0
    browser_login(page, world.admin.email)
    polls = []
    page.on("request", lambda request: polls.append(time.monotonic()) if "/progress" in request.url else None)
    page.goto(f"/sweeps/runs/{half_done}")
    live = page.get_by_test_id("run-live")
    expect(live).to_have_attribute("data-status", "running")
    expect(page.get_by_test_id("progress-summary")).to_contain_text(f"{done} of 12 accounts processed (")

    page.get_by_test_id("cancel-run-open").click()  # open the confirmation, then let the page poll under it
    confirm = page.get_by_test_id("cancel-run")
    expect(confirm).to_be_visible()
    opened = time.monotonic()
    page.wait_for_timeout(2500)
    assert [t for t in polls if t > opened], "the live part did not poll"
    expect(confirm).to_be_visible()  # kept open across the swaps

    page.get_by_test_id("pause-run").click()
    expect(page.get_by_test_id("run-status")).to_have_text("Paused")
    expect(page.get_by_test_id("progress-summary")).to_have_text(f"Paused after {done} of 12 accounts.")
    expect(page.get_by_test_id("resume-run")).to_be_visible()
    expect(page.get_by_test_id("pause-run")).to_have_count(0)

    page.get_by_test_id("cancel-run-open").click()
    page.get_by_test_id("cancel-run").click()
    expect(page.get_by_test_id("run-status")).to_have_text("Cancelled")
    expect(page.get_by_test_id("progress-summary")).to_have_text(f"Cancelled after {done} of 12 accounts.")
    expect(page.get_by_test_id("cancelled-note")).to_contain_text("undoing it reverses exactly that")
    expect(page.get_by_text("Undo this run…")).to_be_visible()

    page.get_by_test_id("changed-accounts-link").click()
    expect(page.get_by_test_id("run-chip")).to_have_text(f"Changed by run #{half_done} ×")
    expect(page.get_by_test_id("account-row")).to_have_count(done)
    page.get_by_test_id("run-chip").click()
    expect(page.get_by_test_id("run-chip")).to_have_count(0)
    expect(page.get_by_test_id("account-row")).to_have_count(14)  # every account again (the world's two too)
