"""`flask campaign list|send-due|pause|resume|end`: the same domain functions as the pages and the job."""
from datetime import datetime

import pytest

from portal.extensions import db
from portal.models import Account, Campaign
from tests.campaign_helpers import add_campaign, add_survey, events, ingest, set_status, statuses

VISIT = datetime(2026, 11, 2, 8, 0)


@pytest.fixture
def campaign_id(app, world):
    with app.app_context():
        campaign = add_campaign(world.account, add_survey(world.account, subject="How was it?").id, delay_hours=1,
                                daily_limit=2, name="After visit")
        found = campaign.id
        ingest(world.account, VISIT, count=3)
        db.session.remove()
        return found


def number(app, world):
    with app.app_context():
        found = db.session.get(Account, world.account).number
        db.session.remove()
        return found


def state_of(app, campaign_id):
    with app.app_context():
        found = db.session.get(Campaign, campaign_id).state
        db.session.remove()
        return found


def test_list_shows_each_campaign_with_its_counts(app, runner, world, campaign_id):
    result = runner.invoke(args=["campaign", "list", number(app, world)])
    assert result.exit_code == 0, result.output
    assert f"#{campaign_id}  After visit  Running" in result.output
    assert "'How was it?' 1 h after a visit, at most 2 a day" in result.output and "waiting 3" in result.output
    empty = runner.invoke(args=["campaign", "list", str(world.other_account)])
    assert empty.exit_code == 0 and "No campaign in" in empty.output
    unknown = runner.invoke(args=["campaign", "list", "NOPE"])
    assert unknown.exit_code == 1 and "No account with number or id 'NOPE'" in unknown.output


def test_send_due_sends_within_the_daily_limit_and_prints_the_counts(app, runner, campaign_id):
    result = runner.invoke(args=["campaign", "send-due", "--as-of", "2026-11-02T10:00"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "Sent 2 survey requests for 1 campaign; 0 held by the account's state."
    again = runner.invoke(args=["campaign", "send-due", "--as-of", "2026-11-02T11:00"])
    assert "Sent 0 survey requests" in again.output
    with app.app_context():
        assert statuses(campaign_id) == {"sent": 2, "pending": 1}
        db.session.remove()
    bad = runner.invoke(args=["campaign", "send-due", "--as-of", "tomorrow"])
    assert bad.exit_code == 2 and "ISO date" in bad.output


def test_send_due_while_suspended_holds_and_says_so(app, runner, world, campaign_id):
    with app.app_context():
        set_status(world.account, "suspended")
        db.session.remove()
    result = runner.invoke(args=["campaign", "send-due", "--as-of", "2026-11-02T10:00"])
    assert "Sent 0 survey requests for 1 campaign; 1 held" in result.output
    with app.app_context():
        assert events(campaign_id) == [("held", "paused: account suspended")]
        db.session.remove()


def test_pause_resume_and_end_as_the_account_manager(app, runner, world, campaign_id):
    me = world.manager.email
    paused = runner.invoke(args=["campaign", "pause", str(campaign_id), "--as", me])
    assert paused.exit_code == 0 and f"Campaign #{campaign_id} 'After visit' is now paused." in paused.output
    assert state_of(app, campaign_id) == "paused"
    twice = runner.invoke(args=["campaign", "pause", str(campaign_id), "--as", me])
    assert twice.exit_code == 1 and "Only a running campaign can be paused." in twice.output
    assert "is now running" in runner.invoke(args=["campaign", "resume", str(campaign_id), "--as", me]).output
    ended = runner.invoke(args=["campaign", "end", str(campaign_id), "--as", me])
    assert ended.exit_code == 0 and "is now ended" in ended.output
    with app.app_context():
        assert statuses(campaign_id) == {"cancelled": 3}
        assert [kind for kind, _ in events(campaign_id)] == ["paused", "resumed", "ended"]
        db.session.remove()


def test_changes_are_refused_for_the_wrong_person_or_a_suspended_account(app, runner, world, campaign_id):
    other = runner.invoke(args=["campaign", "pause", str(campaign_id), "--as", world.other_manager.email])
    assert other.exit_code == 1 and "We couldn't find that campaign." in other.output
    nobody = runner.invoke(args=["campaign", "pause", str(campaign_id), "--as", "nobody@example.test"])
    assert nobody.exit_code == 1 and "No user with email" in nobody.output
    bad_id = runner.invoke(args=["campaign", "pause", "x1", "--as", world.manager.email])
    assert bad_id.exit_code == 2 and "campaign id" in bad_id.output
    with app.app_context():
        set_status(world.account, "suspended")
        db.session.remove()
    refused = runner.invoke(args=["campaign", "end", str(campaign_id), "--as", world.manager.email])
    assert refused.exit_code == 1 and "Your account is suspended" in refused.output
    assert state_of(app, campaign_id) == "active"
