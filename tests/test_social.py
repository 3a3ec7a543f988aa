"""The social monitor's page and rules: connecting feeds (and refusing unsafe ones), reading feeds, the post
list, and reply/flag/hide refused while the account is suspended."""
import socket
from datetime import datetime

import pytest
from markupsafe import escape
from sqlalchemy import select

from portal.domain import suspension
from portal.domain.features import social_fetch, social_items, social_profiles
from portal.domain.gate import MANAGER_READ_ONLY
from portal.extensions import db
from portal.models import Account, AuditEvent, SocialPost, SocialProfile, User
from tests.social_feeds import feeds, json_feed  # noqa: F401 - the fixture

NOW = datetime(2026, 3, 2, 9, 0)
READ_ONLY = str(escape(MANAGER_READ_ONLY.format(billing_contact="billing@portal.test")))  # as the page shows it


@pytest.fixture
def app_config():
    return {"SOCIAL_FEED_ALLOW_PRIVATE": True, "SOCIAL_FETCH_TIMEOUT": 1.0}


def _profiles(account_id):
    return list(db.session.scalars(select(SocialProfile).where(SocialProfile.account_id == account_id)
                                   .order_by(SocialProfile.id)))


def _add_posts(app, account_id, count, profile_id=None, **fields):
    with app.app_context():
        posts = [SocialPost(account_id=account_id, social_profile_id=profile_id, network="reviews",
                            external_id=f"p{account_id}-{n}-{fields.get('content', '')[:5]}", author=f"Guest {n}",
                            content=fields.get("content", f"Post {n}"), imported_at=NOW) for n in range(count)]
        db.session.add_all(posts)
        db.session.commit()
        return [p.id for p in posts]


def _suspend(app, world):
    with app.app_context():
        suspension.suspend(db.session.get(User, world.admin.id), world.account, "non_payment", "Dues unpaid")


def _post(app, post_id):
    with app.app_context():
        post = db.session.get(SocialPost, post_id)
        return (post.action_taken, post.action_note, post.acted_by_id)


# ---------------------------------------------------------------- reading feeds

def test_json_feed_and_plain_list_items_become_posts():
    feed = json_feed({"id": 5, "content_html": "<p>Nice &amp; <em>warm</em></p>", "url": "javascript:alert(1)",
                      "date_published": "2026-03-01T10:00:00+02:00", "authors": [{"name": "Ana"}]},
                     {"content_text": "   "}, {"id": "x" * 300, "content_text": "Long id"})
    posts, skipped = social_items.read_posts(feed.encode(), "application/feed+json")
    assert skipped == 1
    assert posts[0] == {"external_id": "5", "content": "Nice & warm", "url": None, "author": "Ana",
                        "posted_at": datetime(2026, 3, 1, 8, 0)}
    assert posts[1]["external_id"].startswith("sha256:") and len(posts[1]["external_id"]) == 71


def test_a_post_without_an_id_keeps_the_same_digest_and_differs_from_another():
    body = b'[{"content": "Same text", "posted_at": "2026-03-01T10:00:00Z"}, {"content": "Same text"}]'
    first, _ = social_items.read_posts(body)
    again, _ = social_items.read_posts(body)
    assert [p["external_id"] for p in first] == [p["external_id"] for p in again]
    assert first[0]["external_id"] != first[1]["external_id"]


def test_atom_is_read_and_items_are_capped_per_poll():
    entries = "".join(f"<entry><id>urn:e{n}</id><title>T{n}</title><content type='html'>&lt;p&gt;Entry {n}&lt;/p&gt;"
                      f"</content><updated>2026-03-01T10:0{n}:00Z</updated><author><name>A{n}</name></author>"
                      f"<link href='https://social.test/e{n}'/></entry>" for n in range(5))
    body = f"<?xml version='1.0'?><feed xmlns='http://www.w3.org/2005/Atom'><title>F</title>{entries}</feed>"
    posts, _ = social_items.read_posts(body.encode(), "application/atom+xml", max_items=3)
    assert [(p["external_id"], p["content"], p["author"]) for p in posts] == [
        ("urn:e0", "Entry 0", "A0"), ("urn:e1", "Entry 1", "A1"), ("urn:e2", "Entry 2", "A2")]
    assert posts[0]["url"] == "https://social.test/e0" and posts[0]["posted_at"] == datetime(2026, 3, 1, 10, 0)


@pytest.mark.parametrize("body", [b"", b"hello", b"\x00\xff\xfe", b'{"items": 3}', b"42", b"<html></html>",
                                  b"[" * 100_000])
def test_garbage_is_not_a_feed(body):
    with pytest.raises(social_fetch.FeedError):
        social_items.read_posts(body)


# ---------------------------------------------------------------- the address checks (SSRF)

@pytest.mark.parametrize("url, message", [
    ("ftp://example.com/feed", "must start with http:// or https://"),
    ("file:///etc/passwd", "must start with http:// or https://"),
    ("https://", "needs a host name"),
    ("http://user:secret@example.com/feed", "Leave user names and passwords out"),
    ("http://[::1", "not a web address"),
    ("http://127.0.0.1/feed", "private network"),
    ("http://localhost:8000/feed", "private network"),
    ("http://10.1.2.3/feed", "private network"),
    ("http://169.254.169.254/latest/meta-data", "private network"),
    ("http://[::ffff:127.0.0.1]/feed", "private network"),
    ("http://0.0.0.0/feed", "private network"),
    ("http://no-such-host.invalid/feed", "could not be found"),
])
def test_unsafe_feed_addresses_are_refused(url, message):
    with pytest.raises(social_fetch.FeedError) as refused:
        social_fetch.check_url(url, allow_private=False)
    assert message in refused.value.message


def _resolving(monkeypatch, answers):
    """Make getaddrinfo answer from answers (host -> list of addresses, or a callable), as DNS would."""
    real = socket.getaddrinfo

    def fake(host, port, *args, **kwargs):
        if host not in answers:
            return real(host, port, *args, **kwargs)
        found = answers[host]() if callable(answers[host]) else answers[host]
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port)) for address in found]

    monkeypatch.setattr(social_fetch.socket, "getaddrinfo", fake)


def test_a_name_that_turns_private_after_the_check_is_refused_at_fetch(monkeypatch, feeds):
    feeds.set("/feed.json", json_feed())
    answers = iter([["93.184.216.34"], ["127.0.0.1"]])  # public when saved, loopback when fetched
    _resolving(monkeypatch, {"feeds.example.test": lambda: next(answers)})
    url = f"http://feeds.example.test:{feeds.port}/feed.json"
    assert social_fetch.check_url(url) == url
    with pytest.raises(social_fetch.FeedError, match="private network"):
        social_fetch.fetch(url)
    assert feeds.hits["/feed.json"] == 0


def test_a_name_with_one_private_address_among_public_ones_is_refused(monkeypatch):
    _resolving(monkeypatch, {"mixed.example.test": ["93.184.216.34", "10.0.0.5"]})
    with pytest.raises(social_fetch.FeedError, match="private network"):
        social_fetch.check_url("https://mixed.example.test/feed")


def test_the_fetch_goes_to_the_address_checked_with_the_original_host_name(monkeypatch, feeds):
    feeds.set("/feed.json", json_feed({"id": 1, "content_text": "hi"}))
    _resolving(monkeypatch, {"feeds.example.test": ["127.0.0.1"]})  # a name no real DNS has
    body, _ = social_fetch.fetch(f"http://feeds.example.test:{feeds.port}/feed.json", allow_private=True)
    assert b'"hi"' in body
    assert feeds.hosts == [f"feeds.example.test:{feeds.port}"]


def test_redirects_are_followed_a_few_times_and_checked_at_each_hop(monkeypatch, feeds):
    feeds.set("/no-location", "", status=302, content_type="text/plain")
    with pytest.raises(social_fetch.FeedError, match="HTTP 302"):
        social_fetch.fetch(feeds.url("/no-location"), allow_private=True)
    # Here only 127.0.0.2 counts as private, so the local server stands for a public one.
    monkeypatch.setattr(social_fetch, "_refused", lambda address: address == "127.0.0.2")
    feeds.set("/final", json_feed())
    feeds.redirect("/r1", "/r2")
    feeds.redirect("/r2", feeds.url("/final"))
    assert social_fetch.fetch(feeds.url("/r1"))[0].startswith(b"{")
    feeds.redirect("/inside", f"http://127.0.0.2:{feeds.port}/final")
    with pytest.raises(social_fetch.FeedError, match="private network"):
        social_fetch.fetch(feeds.url("/inside"))
    for n in range(5):
        feeds.redirect(f"/loop{n}", f"/loop{n + 1}")
    with pytest.raises(social_fetch.FeedError, match="redirected more than 3 times"):
        social_fetch.fetch(feeds.url("/loop0"))
    assert feeds.hits["/loop3"] == 1 and feeds.hits["/loop4"] == 0


# ---------------------------------------------------------------- connecting and disconnecting

def test_an_account_manager_connects_a_feed_without_and_with_htmx(app, client, auth, world, feeds):
    auth.login(world.manager.email)
    url = feeds.set("/feed.json", json_feed())
    plain = auth.post("/social/profiles", {"network": "reviews", "handle": "@bistro", "feed_url": url})
    assert plain.status_code == 303 and plain.headers["Location"] == "/social"
    htmx = auth.post("/social/profiles", {"network": "mastodon", "handle": "@bistro@social.test",
                                          "feed_url": feeds.url("/other.json")}, htmx=True)
    assert htmx.status_code == 204 and htmx.headers["HX-Redirect"] == "/social"
    with app.app_context():
        profiles = _profiles(world.account)
        assert [(p.network, p.handle, p.next_poll_at) for p in profiles] == [
            ("reviews", "@bistro", None), ("mastodon", "@bistro@social.test", None)]
        events = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "social_profile_connected")).all()
        assert len(events) == 2 and events[0].data["feed_url"] == url and events[0].actor_user_id == world.manager.id
    page = client.get("/social").get_data(as_text=True)
    assert "@bistro" in page and url in page and "At the next run" in page


def test_connect_errors_are_shown_at_the_field_and_nothing_is_stored(app, auth, world, feeds):
    auth.login(world.manager.email)
    bad = auth.post("/social/profiles", {"network": "myspace", "handle": "", "feed_url": "ftp://x.test/f"},
                    htmx=True)
    assert bad.status_code == 422
    text = bad.get_data(as_text=True)
    assert "<html" not in text and 'id="social-connect"' in text
    assert "Choose the network" in text and "Enter the profile&#39;s handle" in text
    assert "must start with http:// or https://" in text and 'aria-invalid="true"' in text
    app.config["SOCIAL_FEED_ALLOW_PRIVATE"] = False
    private = auth.post("/social/profiles", {"network": "reviews", "handle": "@b", "feed_url": feeds.url("/f")})
    assert private.status_code == 422 and "private network" in private.get_data(as_text=True)
    assert "<html" in private.get_data(as_text=True)  # without htmx: the whole page, with the form in place
    app.config["SOCIAL_FEED_ALLOW_PRIVATE"] = True
    assert auth.post("/social/profiles", {"network": "reviews", "handle": "@b", "feed_url": feeds.url("/f")}
                     ).status_code == 303
    again = auth.post("/social/profiles", {"network": "x", "handle": "@c", "feed_url": feeds.url("/f")})
    assert again.status_code == 422 and "already connected" in again.get_data(as_text=True)
    with app.app_context():
        assert len(_profiles(world.account)) == 1


def test_only_account_managers_connect_and_tier_managers_see_the_page_without_the_form(client, auth, world):
    auth.login(world.tier.email)
    page = client.get("/social")
    assert page.status_code == 200 and "Connect a profile" not in page.get_data(as_text=True)
    assert auth.post("/social/profiles", {"network": "x", "handle": "@t", "feed_url": "https://x.test/"}
                     ).status_code == 403
    auth.logout()
    auth.login(world.member.email)
    assert client.get("/social").status_code == 403


def test_connecting_and_disconnecting_are_refused_while_suspended(app, client, auth, world, make, feeds):
    features = make.features(world.account)
    _suspend(app, world)
    auth.login(world.manager.email)
    page = client.get("/social").get_data(as_text=True)
    assert READ_ONLY in page and 'action="/social/profiles"' not in page and "Disconnect" not in page
    connect = auth.post("/social/profiles", {"network": "reviews", "handle": "@b", "feed_url": feeds.url("/f")})
    assert connect.status_code == 422 and READ_ONLY in connect.get_data(as_text=True)
    gone = auth.post(f"/social/profiles/{features.social_profile}/disconnect", htmx=True)
    assert gone.status_code == 422 and READ_ONLY in gone.get_data(as_text=True)
    with app.app_context():
        assert [p.id for p in _profiles(world.account)] == [features.social_profile]


def test_disconnecting_keeps_the_posts_and_another_accounts_profile_is_not_found(app, client, auth, world, make):
    mine = make.features(world.account)
    theirs = make.features(world.other_account)
    auth.login(world.manager.email)
    assert auth.post(f"/social/profiles/{theirs.social_profile}/disconnect").status_code == 404
    done = auth.post(f"/social/profiles/{mine.social_profile}/disconnect")
    assert done.status_code == 303
    with app.app_context():
        assert _profiles(world.account) == [] and len(_profiles(world.other_account)) == 1
        post = db.session.get(SocialPost, mine.post)
        assert post.social_profile_id is None and post.content == "Lovely dinner!"
        assert db.session.scalar(select(AuditEvent.data).where(
            AuditEvent.action == "social_profile_disconnected"))["handle"] == f"@acct{world.account}"
    assert "Lovely dinner!" in client.get("/social").get_data(as_text=True)


# ---------------------------------------------------------------- the page and the posts

def test_the_page_lists_posts_newest_first_a_page_at_a_time_with_and_without_htmx(app, client, auth, world):
    ids = _add_posts(app, world.account, 30)
    _add_posts(app, world.other_account, 1, content="Someone else's post")
    auth.login(world.manager.email)
    full = client.get("/social")
    text = full.get_data(as_text=True)
    assert full.status_code == 200 and "<html" in text and "Connected profiles" in text
    assert "HX-Request" in full.headers["Vary"]
    assert text.index(f'id="social-post-{ids[-1]}"') < text.index(f'id="social-post-{ids[-2]}"')
    assert f'id="social-post-{ids[5]}"' in text and f'id="social-post-{ids[4]}"' not in text
    assert "Someone else" not in text
    older = client.get(f"/social?state=all&before={ids[5]}", headers={"HX-Request": "true"})
    fragment = older.get_data(as_text=True)
    assert "<html" not in fragment and fragment.lstrip().startswith('<div id="social-posts">')
    assert [f'id="social-post-{i}"' in fragment for i in ids[:6]] == [True] * 5 + [False]
    assert "Older posts" not in fragment
    assert client.get("/social?before=abc&state=nonsense").status_code == 200


def test_post_content_is_escaped(app, client, auth, world):
    _add_posts(app, world.account, 1, content="<script>alert('x')</script>")
    auth.login(world.manager.email)
    text = client.get("/social").get_data(as_text=True)
    assert "<script>alert" not in text and "&lt;script&gt;alert" in text


def test_managers_reply_flag_and_hide_posts(app, client, auth, world):
    first, second = _add_posts(app, world.account, 2)
    auth.login(world.tier.email)
    reply = auth.post(f"/social/posts/{first}/reply", {"note": "Thank you for coming!"})
    assert reply.status_code == 303
    assert _post(app, first) == ("replied", "Thank you for coming!", world.tier.id)
    flagged = auth.post(f"/social/posts/{second}/flag", htmx=True)
    text = flagged.get_data(as_text=True)
    assert flagged.status_code == 200 and text.lstrip().startswith(f'<li id="social-post-{second}"')
    assert "Flagged" in text and flagged.headers["HX-Trigger"] == "social-post-updated"
    assert client.get("/social?state=flagged").get_data(as_text=True).count('class="social-post ') == 1

    hidden = auth.post(f"/social/posts/{second}/hide")
    assert hidden.status_code == 303 and _post(app, second)[0] == "hidden"
    listing = client.get("/social").get_data(as_text=True)
    assert f'id="social-post-{second}"' not in listing and f'id="social-post-{first}"' in listing
    assert f'id="social-post-{second}"' in client.get("/social?state=hidden").get_data(as_text=True)
    with app.app_context():
        actions = db.session.scalars(select(AuditEvent.action).where(AuditEvent.account_id == world.account)
                                     .order_by(AuditEvent.id)).all()
        assert actions == ["social_post_replied", "social_post_flagged", "social_post_hidden"]


def test_a_reply_needs_its_text(app, auth, world):
    (post,) = _add_posts(app, world.account, 1)
    auth.login(world.manager.email)
    empty = auth.post(f"/social/posts/{post}/reply", {"note": "  "}, htmx=True)
    assert empty.status_code == 422 and "Write the reply" in empty.get_data(as_text=True)
    long = auth.post(f"/social/posts/{post}/reply", {"note": "x" * 2001})
    assert long.status_code == 422 and "<html" in long.get_data(as_text=True)
    assert _post(app, post) == (None, None, None)


def test_actions_on_posts_are_refused_while_suspended_and_nothing_changes(app, client, auth, world):
    (post,) = _add_posts(app, world.account, 1)
    _suspend(app, world)
    auth.login(world.manager.email)
    page = client.get("/social").get_data(as_text=True)
    assert READ_ONLY in page and f'action="/social/posts/{post}/reply"' not in page
    for action, data in (("reply", {"note": "Thanks"}), ("flag", {}), ("hide", {})):
        for htmx in (False, True):
            refused = auth.post(f"/social/posts/{post}/{action}", data, htmx=htmx)
            assert refused.status_code == 422, (action, htmx)
            assert READ_ONLY in refused.get_data(as_text=True)
    assert _post(app, post) == (None, None, None)
    with app.app_context():
        assert db.session.scalar(select(AuditEvent.id).where(AuditEvent.action.like("social_post_%"))) is None


def test_another_accounts_post_is_not_found(app, auth, world):
    (theirs,) = _add_posts(app, world.other_account, 1)
    auth.login(world.manager.email)
    for action in ("reply", "flag", "hide"):
        assert auth.post(f"/social/posts/{theirs}/{action}", {"note": "x"}).status_code == 404
    assert _post(app, theirs) == (None, None, None)


def test_the_profiles_table_shows_the_last_poll_error_and_next_poll(app, client, auth, world):
    with app.app_context():
        db.session.add(SocialProfile(account_id=world.account, network="reviews", handle="@down",
                                     feed_url="https://down.test/feed", last_polled_at=NOW,
                                     last_error="The feed answered HTTP 500 instead of the feed.", failures=2,
                                     next_poll_at=datetime(2026, 3, 2, 10, 0)))
        db.session.commit()
        assert db.session.get(Account, world.account).status == "active"
    auth.login(world.manager.email)
    text = client.get("/social").get_data(as_text=True)
    assert "HTTP 500 instead of the feed" in text and "2 failed polls in a row" in text
    assert "2026-03-02 09:00" in text and "2026-03-02 10:00" in text
    assert social_profiles.NETWORKS["reviews"] in text


@pytest.mark.browser
def test_a_manager_replies_and_hides_in_the_browser(app, page, world):
    from tests.conftest import browser_login

    first, second = _add_posts(app, world.account, 2)
    browser_login(page, world.manager.email)
    page.goto("/social")
    row = page.locator(f"#social-post-{second}")
    row.get_by_role("button", name="Reply").click()
    row.locator(".field-error").wait_for()
    assert "Write the reply" in row.inner_text()
    page.get_by_label("Reply to Guest 1").fill("Thank you for coming!")
    page.locator(f"#social-post-{second}").get_by_role("button", name="Reply").click()
    page.locator(f"#social-post-{second} .social-reply").wait_for()
    page.locator(f"#social-post-{first}").get_by_role("button", name="Hide").click()
    page.locator(f"#social-post-{first} [data-testid=social-post-state]").wait_for()
    assert _post(app, second)[:2] == ("replied", "Thank you for coming!") and _post(app, first)[0] == "hidden"
    page.get_by_role("link", name="Replied").click()
    page.wait_for_url("**state=replied")
    assert page.locator(".social-post").count() == 1
    page.get_by_label("Handle or name").fill("@x")
    page.get_by_label("Feed address").fill("ftp://nope")
    page.get_by_role("button", name="Connect", exact=True).click()
    assert "must start with http:// or https://" in page.locator("#social-feed-url-error").inner_text()
