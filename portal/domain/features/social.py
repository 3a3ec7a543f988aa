"""The social monitor: connected feeds, the poll that imports their posts, and the job that runs it.

Importing asks the gate as "system" for import_posts, which a suspension allows (only a cancelled account's
feeds stop), so posts keep arriving while an account is suspended; their alerts ask for send_alert, which a
suspension refuses, so they are held and summarised once after reactivation (social_alerts). Managers'
actions on posts are in social_posts.

A poll of one profile: claim it (compare-and-set on next_poll_at, so two workers never poll it at once; the
claim is a lease, so a worker killed mid-poll leaves it to be polled again after CLAIM_LEASE), fetch and read
the feed outside any transaction (social_fetch, social_items), then in one transaction: record the success
(only if the claim is still ours), insert the new posts (unique per profile and external id: a post already
there is skipped by the database, ON CONFLICT DO NOTHING), alert or hold, commit. A feed that is down, slow
or garbage records last_error, failures + 1 and a later next poll (doubling, up to BACKOFF_MAX_MINUTES); no
error of one profile stops the others, and none escapes the job (the next tick's job polls again).
"""
import logging
import os
import time
from datetime import timedelta

from flask import current_app
from sqlalchemy import or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from portal.domain import notify
from portal.domain.features import social_alerts, social_fetch, social_items
from portal.domain.gate import may
from portal.extensions import QUEUE_DEFAULT, db, get_queue
from portal.models import Account, SocialPost, SocialProfile
from portal.timeutil import utcnow

log = logging.getLogger(__name__)

CLAIM_LEASE = timedelta(minutes=5)  # longer than any one fetch (SOCIAL_FETCH_TIMEOUT) and its commit
UNEXPECTED = "The feed could not be imported because of an error on our side; it will be tried again."
DEFAULTS = {
    "SOCIAL_POLL_MINUTES": (15, int),  # how often a working feed is polled
    "SOCIAL_BACKOFF_MAX_MINUTES": (360, int),  # the longest wait after failures
    "SOCIAL_FETCH_TIMEOUT": (10.0, float),  # seconds for one whole fetch
    "SOCIAL_FEED_MAX_BYTES": (2 * 1024 * 1024, int),
    "SOCIAL_MAX_ITEMS": (100, int),  # items read per poll
    "SOCIAL_POLL_BATCH": (100, int),  # profiles read from the database at a time
    "SOCIAL_POLL_BUDGET_SECONDS": (240, int),  # one run starts no new profile after this long
    "SOCIAL_FEED_ALLOW_PRIVATE": (False, lambda v: v if isinstance(v, bool) else str(v).lower() in
                                  {"1", "true", "yes", "on"}),
}


def setting(name):
    """Return a social monitor setting: the app's config, else the PORTAL_<name> variable, else its default."""
    default, cast = DEFAULTS[name]
    value = current_app.config.get(name)
    if value is None:
        value = os.environ.get(f"PORTAL_{name}")
    return default if value is None else cast(value)


# ---------------------------------------------------------------- the job

def enqueue_polls(now):
    """Queue the poll job if a feed is due or held alerts wait (one job id per minute); return its id.

    Called by the scheduler on every tick. Redis down: logged, None (the next tick tries again).
    """
    due = db.session.scalar(select(SocialProfile.id).where(or_(SocialProfile.next_poll_at.is_(None),
                                                                SocialProfile.next_poll_at <= now)).limit(1))
    held = db.session.scalar(select(SocialPost.id).where(SocialPost.alert_state == "held").limit(1))
    if due is None and held is None:
        return None
    from rq.exceptions import DuplicateJobError

    job_id = f"social-poll-{now:%Y%m%d%H%M}"
    try:
        get_queue(QUEUE_DEFAULT).enqueue("portal.jobs.poll_social_feeds", now, job_id=job_id, unique=True,
                                         job_timeout=900, result_ttl=3600, failure_ttl=86400,
                                         description=f"social feeds due at {now:%Y-%m-%d %H:%M} UTC")
    except DuplicateJobError:
        return job_id  # this minute's job is already queued or running
    except Exception as exc:  # noqa: BLE001 - the next tick tries again
        log.warning("could not queue the social feed poll: %s", exc)
        return None
    return job_id


def poll_due(now=None, limit=None):
    """Send the summaries now allowed, then poll the profiles due (next_poll_at unset or at/before now).

    Args:
        now: the time of the poll (default now).
        limit: poll at most this many profiles. By default the due profiles are polled a batch
            (SOCIAL_POLL_BATCH) at a time until none is left or SOCIAL_POLL_BUDGET_SECONDS have passed;
            the next minute's job, on any worker, takes the rest.

    Returns:
        {"polled", "imported", "profiles": [one result per profile polled], "summaries": [...]}; a
        profile's result is {"id", "account_id", "handle", "status", "new", "skipped", "alerts", "error"}
        with status imported | failed | refused | taken (another worker had it).
    """
    now = now or utcnow()
    summaries = _summaries(now)
    batch = limit or setting("SOCIAL_POLL_BATCH")
    deadline = time.monotonic() + setting("SOCIAL_POLL_BUDGET_SECONDS")
    results, seen_ids = [], set()
    while True:
        due = [(profile_id, seen) for profile_id, seen in db.session.execute(
            select(SocialProfile.id, SocialProfile.next_poll_at)
            .where(or_(SocialProfile.next_poll_at.is_(None), SocialProfile.next_poll_at <= now))
            .order_by(SocialProfile.next_poll_at.asc().nulls_first(), SocialProfile.id).limit(batch))
            if profile_id not in seen_ids]  # each profile once per run, whatever happened to it
        db.session.rollback()
        for profile_id, seen in due:
            if limit is None and results and time.monotonic() > deadline:
                break  # the rest stay due for the next job (one profile at least is polled per run)
            seen_ids.add(profile_id)
            result = _poll_safely(profile_id, seen, now)
            if result is not None:
                results.append(result)
        if limit is not None or not due or time.monotonic() > deadline:
            break
    return {"polled": sum(r["status"] != "taken" for r in results),
            "imported": sum(r["new"] for r in results), "profiles": results, "summaries": summaries}


def _summaries(now):
    try:
        summaries = social_alerts.send_summaries(now)
    except Exception:  # noqa: BLE001 - logged; the feeds are still polled, the next poll summarises
        db.session.rollback()
        log.exception("held social alerts could not be summarised")
        return []
    if summaries:
        notify.kick_delivery()
    return summaries


def _poll_safely(profile_id, seen, now):
    """Poll one profile; an unexpected error is logged and recorded as its failure, never raised."""
    try:
        return poll_profile(profile_id, seen, now)
    except Exception:  # noqa: BLE001 - one profile's error never stops the others
        db.session.rollback()
        log.exception("social profile %s could not be polled", profile_id)
        try:
            return _failed(profile_id, now + CLAIM_LEASE, None, UNEXPECTED, now)
        except Exception:  # noqa: BLE001 - the claim's lease runs out and the profile is polled again
            db.session.rollback()
            return None


def _claim(profile_id, seen, until, now):
    """Take the profile for this poll if next_poll_at is still what we read (compare-and-set); commit."""
    unchanged = SocialProfile.next_poll_at.is_(None) if seen is None else SocialProfile.next_poll_at == seen
    result = db.session.execute(update(SocialProfile).where(SocialProfile.id == profile_id, unchanged)
                                .values(next_poll_at=until, last_polled_at=now)
                                .execution_options(synchronize_session=False))
    db.session.commit()
    return result.rowcount == 1


def poll_profile(profile_id, seen, now):
    """Claim, fetch and import one profile (see the module's docstring); return its result, or None if gone."""
    until = now + CLAIM_LEASE
    if not _claim(profile_id, seen, until, now):
        return {"id": profile_id, "account_id": None, "handle": None, "status": "taken", "new": 0, "skipped": 0,
                "alerts": "none", "error": None}
    profile = db.session.get(SocialProfile, profile_id, populate_existing=True)
    if profile is None:  # disconnected just now
        db.session.rollback()
        return None
    account = db.session.get(Account, profile.account_id, populate_existing=True)
    decision = may("system", "import_posts", account)
    url, failures = profile.feed_url, profile.failures
    db.session.rollback()  # no transaction stays open during the fetch
    if not decision:
        return _refused(profile_id, until, decision.message, now)
    try:
        body, content_type = social_fetch.fetch(url, allow_private=setting("SOCIAL_FEED_ALLOW_PRIVATE"),
                                                timeout=setting("SOCIAL_FETCH_TIMEOUT"),
                                                max_bytes=setting("SOCIAL_FEED_MAX_BYTES"))
        posts, skipped = social_items.read_posts(body, content_type, setting("SOCIAL_MAX_ITEMS"))
    except social_fetch.FeedError as exc:
        return _failed(profile_id, until, failures, exc.message, now)
    return _store(profile_id, until, posts, skipped, now)


def _result(profile, status, new=0, skipped=0, alerts="none", error=None):
    return {"id": profile.id, "account_id": profile.account_id, "handle": profile.handle, "status": status,
            "new": new, "skipped": skipped, "alerts": alerts, "error": error}


def _record(profile_id, until, **values):
    """Write the poll's outcome if the claim is still ours; return the profile (None: lost or deleted)."""
    result = db.session.execute(update(SocialProfile)
                                .where(SocialProfile.id == profile_id, SocialProfile.next_poll_at == until)
                                .values(**values).execution_options(synchronize_session=False))
    if result.rowcount != 1:
        db.session.rollback()
        return None
    return db.session.get(SocialProfile, profile_id, populate_existing=True)


def _failed(profile_id, until, failures, message, now):
    if failures is None:
        failures = db.session.scalar(select(SocialProfile.failures).where(SocialProfile.id == profile_id)) or 0
    wait = min(setting("SOCIAL_POLL_MINUTES") * 2 ** min(failures + 1, 16), setting("SOCIAL_BACKOFF_MAX_MINUTES"))
    profile = _record(profile_id, until, last_error=message[:500], failures=failures + 1,
                      next_poll_at=now + timedelta(minutes=wait))
    if profile is None:
        return None
    db.session.commit()
    return _result(profile, "failed", error=message)


def _refused(profile_id, until, message, now):
    """The gate refuses importing (a cancelled account): nothing fetched; look again after the longest wait."""
    profile = _record(profile_id, until, last_error=f"Not imported: {message}"[:500],
                      next_poll_at=now + timedelta(minutes=setting("SOCIAL_BACKOFF_MAX_MINUTES")))
    if profile is None:
        return None
    db.session.commit()
    return _result(profile, "refused", error=message)


def _in_time_order(posts):
    """Oldest first: feeds list the newest first, and the page lists posts by id, newest first.

    Posts without a date count as the newest (they arrive now); among them the feed's first comes last.
    """
    dated = sorted((p for p in reversed(posts) if p["posted_at"] is not None), key=lambda p: p["posted_at"])
    return dated + [p for p in posts if p["posted_at"] is None][::-1]


def _insert_posts(profile, posts, now, chunk=200):
    """Insert the posts not already there (the unique key decides, in the database); return the new ids."""
    insert = pg_insert if db.session.get_bind().dialect.name == "postgresql" else sqlite_insert
    new_ids = []
    posts = _in_time_order(posts)
    for start in range(0, len(posts), chunk):  # a bounded number of parameters per statement
        rows = [dict(post, account_id=profile.account_id, social_profile_id=profile.id, network=profile.network,
                     imported_at=now, alert_state="none") for post in posts[start:start + chunk]]
        stmt = (insert(SocialPost).values(rows)
                .on_conflict_do_nothing(index_elements=["social_profile_id", "external_id"])
                .returning(SocialPost.id))
        new_ids.extend(db.session.scalars(stmt))
    return new_ids


def _store(profile_id, until, posts, skipped, now):
    """Record the success, insert the new posts and alert (or hold) in one transaction; commit."""
    profile = _record(profile_id, until, last_success_at=now, last_error=None, failures=0,
                      next_poll_at=now + timedelta(minutes=setting("SOCIAL_POLL_MINUTES")))
    if profile is None:
        return None
    new_ids = _insert_posts(profile, posts, now)
    account = social_alerts.lock_account(profile.account_id)
    decision = may("system", "import_posts", account)
    if not decision:  # cancelled since the claim: keep nothing
        db.session.rollback()
        return _refused(profile_id, until, decision.message, now)
    alerts = social_alerts.alert_new_posts(account, new_ids, now)
    result = _result(profile, "imported", new=len(new_ids), skipped=skipped, alerts=alerts)
    db.session.commit()
    if alerts == "sent":
        notify.kick_delivery()
    return result
