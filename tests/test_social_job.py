"""The social monitor's poll: imports once, survives bad feeds, keeps importing while suspended with alerts
held, and sends one summary after reactivation; the job on a real RQ worker."""
import threading
from datetime import datetime, timedelta

import pytest
from redis import Redis
from sqlalchemy import func, select, update

from portal.domain import suspension
from portal.domain.features import social, social_alerts, social_posts, social_profiles, ticks
from portal.domain.gate import may
from portal.extensions import db
from portal.models import Account, OutboxEmail, SocialPost, SocialProfile, User
from tests.social_feeds import feeds, json_feed, rss  # noqa: F401 - the fixture

NOW = datetime(2026, 3, 2, 9, 0)


@pytest.fixture
def app_config():
    return {"SOCIAL_FEED_ALLOW_PRIVATE": True, "SOCIAL_FETCH_TIMEOUT": 1.0}


def _user(user_id):
    return db.session.get(User, user_id)


def _connect(world, url, handle="@bistro"):
    return social_profiles.connect_profile(_user(world.manager.id), "reviews", handle, url, now=NOW).id


def _posts(account_id):
    return list(db.session.scalars(select(SocialPost).where(SocialPost.account_id == account_id)
                                   .order_by(SocialPost.id)))


def _emails(kind):
    return list(db.session.scalars(select(OutboxEmail).where(OutboxEmail.kind == kind).order_by(OutboxEmail.id)))


def _profile(profile_id):
    return db.session.get(SocialProfile, profile_id, populate_existing=True)


def _item(n, text=None):
    return {"id": f"post-{n}", "content_text": text or f"Post number {n}", "url": f"https://social.test/p/{n}",
            "date_published": f"2026-03-01T1{n % 10}:00:00Z", "author": {"name": f"Guest {n}"}}


# ---------------------------------------------------------------- importing once

def test_a_json_feed_is_imported_once_however_often_it_is_polled(ctx, world, feeds):
    url = feeds.set("/feed.json", json_feed(_item(1), {"id": "post-2", "content_html": "<p>Great <b>wine</b> &amp; food</p>",
                                                        "authors": [{"name": "Ana"}]}))
    profile_id = _connect(world, url)

    first = social.poll_due(NOW)
    assert first["imported"] == 2 and first["profiles"][0]["alerts"] == "sent"
    posts = _posts(world.account)
    assert [(p.external_id, p.content, p.author) for p in posts] == [
        ("post-1", "Post number 1", "Guest 1"), ("post-2", "Great wine & food", "Ana")]
    assert posts[0].url == "https://social.test/p/1" and posts[0].posted_at == datetime(2026, 3, 1, 11, 0)
    assert {p.alert_state for p in posts} == {"sent"}
    profile = _profile(profile_id)
    assert (profile.last_success_at, profile.failures, profile.last_error) == (NOW, 0, None)
    assert profile.next_poll_at == NOW + timedelta(minutes=15)

    # Not due yet: nothing is fetched.
    assert social.poll_due(NOW + timedelta(minutes=14))["polled"] == 0
    assert feeds.hits["/feed.json"] == 1

    # The same feed again: the database skips what is already there, and the poll is a success.
    again = social.poll_due(NOW + timedelta(minutes=15))
    assert again["polled"] == 1 and again["imported"] == 0
    profile = _profile(profile_id)
    assert (profile.failures, profile.last_error) == (0, None)
    assert len(_posts(world.account)) == 2

    feeds.set("/feed.json", json_feed(_item(3), _item(1)))
    assert social.poll_due(NOW + timedelta(minutes=30))["imported"] == 1
    assert [p.external_id for p in _posts(world.account)] == ["post-1", "post-2", "post-3"]
    alerts = _emails("social_alert")
    assert len(alerts) == 2  # one per poll with new posts (one manager)
    assert "2 new posts" in alerts[0].body and "Great wine & food" in alerts[0].body
    assert alerts[1].to_addr == world.manager.email and "Post number 3" in alerts[1].body


def test_a_poll_stores_its_posts_oldest_first_so_the_list_reads_newest_first(ctx, world, feeds):
    """Feeds list the newest first; the page lists posts by id, newest first, so ids must follow time."""
    url = feeds.set("/feed.json", json_feed(_item(3), {"id": "undated", "content_text": "No date"}, _item(1),
                                            _item(2)))
    _connect(world, url)
    social.poll_due(NOW)
    assert [p.external_id for p in _posts(world.account)] == ["post-1", "post-2", "post-3", "undated"]
    listed, _more = social_posts.list_posts(world.account)
    assert [p.external_id for p in listed] == ["undated", "post-3", "post-2", "post-1"]


def test_plain_lists_and_rss_are_read_and_posts_without_an_id_keep_one_digest(ctx, world, feeds):
    listed = feeds.set("/list.json", '[{"id": 7, "content": "Plain list post", "author": "Bo", '
                                     '"posted_at": "2026-02-28T08:30:00+01:00"}, {"content": "No id here"}, '
                                     '{"content": ""}, "junk"]')
    channel = feeds.set("/rss.xml", rss(("g-1", "Lovely &lt;b&gt;terrace&lt;/b&gt;", "https://social.test/r/1",
                                         "Sun, 01 Mar 2026 10:00:00 GMT")), content_type="application/rss+xml")
    _connect(world, listed, "@list")
    _connect(world, channel, "@rss")

    result = social.poll_due(NOW)
    by_handle = {r["handle"]: r for r in result["profiles"]}
    assert by_handle["@list"]["new"] == 2 and by_handle["@list"]["skipped"] == 2
    assert by_handle["@rss"]["new"] == 1
    posts = {p.content: p for p in _posts(world.account)}
    assert posts["Plain list post"].external_id == "7"
    assert posts["Plain list post"].posted_at == datetime(2026, 2, 28, 7, 30)
    assert posts["No id here"].external_id.startswith("sha256:")
    assert posts["Lovely terrace"].external_id == "g-1"
    assert posts["Lovely terrace"].posted_at == datetime(2026, 3, 1, 10, 0)

    assert social.poll_due(NOW + timedelta(minutes=15))["imported"] == 0  # the digest is the same next time
    assert len(_posts(world.account)) == 3


def test_two_workers_polling_one_profile_at_once_fetch_and_import_it_once(app, ctx, world, feeds):
    url = feeds.set("/feed.json", json_feed(_item(1), _item(2)), delay=0.5)
    profile_id = _connect(world, url)
    db.session.remove()
    barrier = threading.Barrier(2)
    results = []

    def poll():
        with app.app_context():
            barrier.wait()
            # both read the profile as due with the same next_poll_at, as two jobs starting together do
            results.append(social.poll_profile(profile_id, None, NOW))
            db.session.remove()

    threads = [threading.Thread(target=poll) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert sorted(r["status"] for r in results) == ["imported", "taken"]
    assert feeds.hits["/feed.json"] == 1
    assert len(_posts(world.account)) == 2
    assert len(_emails("social_alert")) == 1


def test_two_polls_at_once_summarise_held_posts_once(app, ctx, world, make):
    second = make.user("account_manager", world.account)
    for n in range(3):
        db.session.add(SocialPost(account_id=world.account, network="reviews", external_id=f"h{n}",
                                  content=f"Held {n}", imported_at=NOW, alert_state="held"))
    db.session.commit()
    db.session.remove()
    barrier = threading.Barrier(2)
    results = []

    def summarise():
        with app.app_context():
            barrier.wait()
            results.append(social_alerts.summarise_held(world.account, NOW))
            db.session.remove()

    threads = [threading.Thread(target=summarise) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert sorted(r is None for r in results) == [False, True]
    summaries = _emails("social_summary")
    assert sorted(e.to_addr for e in summaries) == sorted([world.manager.email, second.email])
    assert {p.alert_state for p in _posts(world.account)} == {"summarised"}


def test_one_run_polls_every_due_profile_a_batch_at_a_time_within_its_budget(app, ctx, world, feeds):
    ids = [_connect(world, feeds.set(f"/feed{n}.json", json_feed(_item(n))), f"@p{n}") for n in range(5)]
    app.config["SOCIAL_POLL_BATCH"] = 2
    assert social.poll_due(NOW, limit=2)["polled"] == 2
    result = social.poll_due(NOW)
    assert sorted(r["id"] for r in result["profiles"]) == ids[2:]
    assert all(_profile(i).next_poll_at == NOW + timedelta(minutes=15) for i in ids)
    app.config["SOCIAL_POLL_BUDGET_SECONDS"] = 0
    assert social.poll_due(NOW + timedelta(minutes=15))["polled"] == 1  # out of time after the first


def test_a_large_feed_is_read_up_to_the_items_cap_in_bounded_statements(app, ctx, world, feeds):
    app.config["SOCIAL_MAX_ITEMS"] = 450
    url = feeds.set("/big.json", json_feed(*[_item(n) for n in range(500)]))
    _connect(world, url)
    assert social.poll_due(NOW)["imported"] == 450
    assert social.poll_due(NOW + timedelta(minutes=15))["imported"] == 0
    assert len(_emails("social_alert")) == 1 and "...and 430 more." in _emails("social_alert")[0].body


# ---------------------------------------------------------------- bad feeds

BAD_FEEDS = {
    "/hang": dict(body="[]", delay=3),
    "/drip": dict(body="[" + " " * 200 + "]", drip=0.02),
    "/error": dict(body="oops", status=500, content_type="text/plain"),
    "/garbage": dict(body="<html><body>Not a feed at all</body></html>", content_type="text/html"),
    "/bad-json": dict(body='{"items": [', content_type="application/json"),
    "/wrong-shape": dict(body='{"posts": []}', content_type="application/json"),
    "/huge": dict(body=b"[" + b" " * (3 * 1024 * 1024) + b"]"),
    "/huge-unsized": dict(body=b"[" + b" " * (3 * 1024 * 1024) + b"]", sized=False),
}
EXPECTED_ERRORS = {
    "/hang": "took too long", "/drip": "took too long", "/error": "HTTP 500", "/garbage": "not JSON Feed",
    "/bad-json": "JSON could not be read", "/wrong-shape": "not JSON Feed", "/huge": "larger than 2,048 KiB",
    "/huge-unsized": "larger than 2,048 KiB",
}


def test_bad_feeds_record_their_failure_and_back_off_while_the_others_are_polled(ctx, world, feeds):
    ids = {path: _connect(world, feeds.set(path, **spec), path) for path, spec in BAD_FEEDS.items()}
    good = _connect(world, feeds.set("/good.json", json_feed(_item(1))), "@good")

    result = social.poll_due(NOW)
    statuses = {r["handle"]: r["status"] for r in result["profiles"]}
    assert statuses == dict({path: "failed" for path in BAD_FEEDS}, **{"@good": "imported"})
    assert len(_posts(world.account)) == 1
    for path, profile_id in ids.items():
        profile = _profile(profile_id)
        assert EXPECTED_ERRORS[path] in profile.last_error, (path, profile.last_error)
        assert profile.failures == 1
        assert profile.next_poll_at == NOW + timedelta(minutes=30), path  # twice the usual 15 minutes

    # Due again after 30 minutes: each failure doubles the wait.
    later = NOW + timedelta(minutes=30)
    social.poll_due(later)
    error = _profile(ids["/error"])
    assert (error.failures, error.next_poll_at) == (2, later + timedelta(minutes=60))
    assert _profile(good).failures == 0

    # A feed that works again is back to the usual interval, its error cleared.
    feeds.set("/error", json_feed(_item(2)))
    back = later + timedelta(minutes=60)
    social.poll_due(back)
    error = _profile(ids["/error"])
    assert (error.failures, error.last_error, error.next_poll_at) == (0, None, back + timedelta(minutes=15))


def test_the_back_off_stops_growing_at_its_maximum(ctx, world, feeds):
    profile_id = _connect(world, feeds.set("/error", "down", status=503, content_type="text/plain"))
    db.session.execute(update(SocialProfile).where(SocialProfile.id == profile_id).values(failures=9))
    db.session.commit()
    social.poll_due(NOW)
    profile = _profile(profile_id)
    assert (profile.failures, profile.next_poll_at) == (10, NOW + timedelta(hours=6))


def test_a_private_address_is_refused_at_fetch_time_too(app, ctx, world, feeds):
    profile_id = _connect(world, feeds.set("/feed.json", json_feed(_item(1))))
    app.config["SOCIAL_FEED_ALLOW_PRIVATE"] = False  # e.g. the name now resolves to a loopback address
    result = social.poll_due(NOW)
    assert result["profiles"][0]["status"] == "failed"
    assert "private network" in _profile(profile_id).last_error
    assert feeds.hits["/feed.json"] == 0 and _posts(world.account) == []


# ---------------------------------------------------------------- suspension: import goes on, alerts wait

def _suspend(world, at):
    suspension.suspend(_user(world.admin.id), world.account, "non_payment", "Dues unpaid", now=at)


def _reactivate(world, at):
    suspension.reactivate(_user(world.admin.id), world.account, "paid", "Dues paid", now=at)


def test_posts_keep_arriving_while_suspended_and_one_summary_follows_reactivation(ctx, world, feeds, make):
    second = make.user("account_manager", world.account)
    quiet = make.user("account_manager", world.account, email_notifications=False)
    url = feeds.set("/feed.json", json_feed(_item(1)))
    profile_id = _connect(world, url)
    social.poll_due(NOW)
    assert len(_emails("social_alert")) == 2  # one for each manager who receives email

    _suspend(world, NOW + timedelta(minutes=5))
    feeds.set("/feed.json", json_feed(_item(3), _item(2), _item(1)))
    during = social.poll_due(NOW + timedelta(minutes=15))
    assert during["profiles"][0]["status"] == "imported" and during["profiles"][0]["alerts"] == "held"
    feeds.set("/feed.json", json_feed(_item(4), _item(3), _item(2), _item(1)))
    social.poll_due(NOW + timedelta(minutes=30))
    posts = _posts(world.account)
    assert [p.alert_state for p in posts] == ["sent", "held", "held", "held"]
    assert len(_emails("social_alert")) == 2 and _emails("social_summary") == []  # nothing while suspended
    assert social.poll_due(NOW + timedelta(minutes=31))["summaries"] == []  # still suspended: still held

    _reactivate(world, NOW + timedelta(minutes=40))
    # The profile is not due (next poll at +45): the summary goes out anyway, and nothing is fetched.
    hits = feeds.hits["/feed.json"]
    after = social.poll_due(NOW + timedelta(minutes=41))
    assert after["polled"] == 0 and feeds.hits["/feed.json"] == hits
    assert after["summaries"] == [{"account_id": world.account, "posts": 3, "emails": 2}]
    summaries = _emails("social_summary")
    assert sorted(e.to_addr for e in summaries) == sorted([world.manager.email, second.email])
    assert quiet.email not in {e.to_addr for e in summaries}
    number = db.session.get(Account, world.account).number
    assert summaries[0].subject == f"3 social posts arrived while your account {number} was suspended"
    assert "3 posts arrived while your account" in summaries[0].body
    assert all(f"Post number {n}" in summaries[0].body for n in (2, 3, 4))
    assert [p.alert_state for p in _posts(world.account)] == ["sent", "summarised", "summarised", "summarised"]

    # Never twice, and no late per-post alerts: the next polls find nothing new to tell.
    social.poll_due(NOW + timedelta(minutes=45))
    social.poll_due(NOW + timedelta(minutes=61))
    assert len(_emails("social_summary")) == 2 and len(_emails("social_alert")) == 2
    assert _profile(profile_id).failures == 0


def test_a_cancelled_account_imports_nothing(ctx, world, feeds):
    profile_id = _connect(world, feeds.set("/feed.json", json_feed(_item(1))))
    db.session.execute(update(Account).where(Account.id == world.account).values(status="cancelled"))
    db.session.commit()
    result = social.poll_due(NOW)
    assert result["profiles"][0]["status"] == "refused"
    assert feeds.hits["/feed.json"] == 0 and _posts(world.account) == []
    profile = _profile(profile_id)
    gate = may("system", "import_posts", db.session.get(Account, world.account))
    assert not gate and profile.last_error == f"Not imported: {gate.message}"
    assert profile.failures == 0 and profile.next_poll_at == NOW + timedelta(hours=6)


# ---------------------------------------------------------------- the job

def _queued(app):
    from rq import Queue

    return Queue("default", connection=Redis.from_url(app.config["REDIS_URL"])).job_ids


def test_the_poll_is_queued_once_a_minute_only_when_there_is_work(app, ctx, world, feeds):
    assert social.enqueue_polls(NOW) is None and _queued(app) == []
    profile_id = _connect(world, feeds.set("/feed.json", json_feed(_item(1))))
    assert social.enqueue_polls(NOW) == "social-poll-202603020900"
    assert social.enqueue_polls(NOW + timedelta(seconds=30)) == "social-poll-202603020900"
    assert _queued(app) == ["social-poll-202603020900"]
    db.session.execute(update(SocialProfile).where(SocialProfile.id == profile_id)
                       .values(next_poll_at=NOW + timedelta(minutes=10)))
    db.session.commit()
    assert social.enqueue_polls(NOW + timedelta(minutes=1)) is None


def test_redis_down_is_logged_and_the_tick_goes_on(ctx, world, feeds, monkeypatch, caplog):
    _connect(world, feeds.set("/feed.json", json_feed(_item(1))))

    def down(*args, **kwargs):
        raise ConnectionError("Redis is down")

    monkeypatch.setattr(social, "get_queue", down)
    assert social.enqueue_polls(NOW) is None
    assert "could not queue the social feed poll" in caplog.text
    assert ticks.tick(NOW)["social"] is None


@pytest.mark.slow
def test_the_scheduler_tick_queues_the_poll_and_a_real_worker_imports(app, ctx, world, feeds, run_worker):
    _connect(world, feeds.set("/feed.json", json_feed(_item(1), _item(2))))
    assert ticks.tick(NOW)["social"] == "social-poll-202603020900"
    db.session.remove()
    done = run_worker("default", extra_env={"PORTAL_SOCIAL_FEED_ALLOW_PRIVATE": "1"})
    assert done.returncode == 0, done.stderr[-2000:]
    assert feeds.hits["/feed.json"] == 1
    assert db.session.scalar(select(func.count()).select_from(SocialPost)) == 2
    assert len(_emails("social_alert")) == 1
