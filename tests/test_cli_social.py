"""`flask social poll` and `flask social list`."""
from datetime import datetime

import pytest
from sqlalchemy import func, select

from portal.domain.features import social_profiles
from portal.extensions import db
from portal.models import Account, SocialPost, User
from tests.social_feeds import feeds, json_feed  # noqa: F401 - the fixture


@pytest.fixture
def app_config():
    return {"SOCIAL_FEED_ALLOW_PRIVATE": True, "SOCIAL_FETCH_TIMEOUT": 1.0}


def _connect(app, world, url, handle):
    with app.app_context():
        manager = db.session.get(User, world.manager.id)
        return social_profiles.connect_profile(manager, "reviews", handle, url, now=datetime(2026, 3, 1)).id


def _number(app, account_id):
    with app.app_context():
        return db.session.get(Account, account_id).number


def test_poll_imports_what_is_due_as_of_a_date_and_says_so_per_profile(app, runner, world, feeds):
    good = _connect(app, world, feeds.set("/feed.json", json_feed({"id": "a", "content_text": "Hello"},
                                                                  {"id": "b", "content_text": "Again"})), "@good")
    bad = _connect(app, world, feeds.set("/down", "no", status=500, content_type="text/plain"), "@down")
    result = runner.invoke(args=["social", "poll", "--as-of", "2026-03-02T09:00"])
    assert result.exit_code == 0, result.output
    assert f"profile #{good} @good: 2 new posts; alerts sent" in result.output
    assert f"profile #{bad} @down: failed: The feed answered HTTP 500 instead of the feed." in result.output
    assert "Polled 2 profiles; 2 new posts." in result.output
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(SocialPost)) == 2
        assert db.session.scalar(select(SocialPost.imported_at).limit(1)) == datetime(2026, 3, 2, 9, 0)

    again = runner.invoke(args=["social", "poll", "--as-of", "2026-03-02T09:05"])
    assert again.exit_code == 0 and "Polled 0 profiles; 0 new posts." in again.output


def test_poll_refuses_a_bad_date(runner):
    result = runner.invoke(args=["social", "poll", "--as-of", "next tuesday"])
    assert result.exit_code == 2 and "use an ISO date" in result.output


def test_list_shows_the_profiles_with_their_polls(app, runner, world, feeds):
    number = _number(app, world.account)
    empty = runner.invoke(args=["social", "list", number])
    assert empty.exit_code == 0 and f"No social profile connected in {number}." in empty.output
    url = feeds.set("/down", "no", status=500, content_type="text/plain")
    profile_id = _connect(app, world, url, "@down")
    assert "next poll now" in runner.invoke(args=["social", "list", number]).output
    runner.invoke(args=["social", "poll", "--as-of", "2026-03-02T09:00"])
    listed = runner.invoke(args=["social", "list", number.lower()])
    assert listed.exit_code == 0
    assert (f"#{profile_id}  reviews  @down  {url}  last poll 2026-03-02 09:00  next poll 2026-03-02 09:30  "
            f"last error (1 in a row): The feed answered HTTP 500") in listed.output


def test_list_of_an_unknown_account_fails(runner, world):
    result = runner.invoke(args=["social", "list", "NOPE-404"])
    assert result.exit_code == 1 and "NOPE-404" in result.output
