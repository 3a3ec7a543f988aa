"""Connecting and disconnecting an account's social profiles (the feeds the social monitor polls).

Both are the account's settings: the gate's edit_settings, refused while the account is suspended.
"""
from sqlalchemy import func, select, update

from portal.domain import audit
from portal.domain.errors import DomainError, ValidationFailed
from portal.domain.features import social_fetch
from portal.domain.features.social import setting
from portal.domain.gate import require
from portal.domain.parsing import InvalidValue, clean_text
from portal.extensions import db
from portal.models import Account, SocialPost, SocialProfile
from portal.timeutil import utcnow

NETWORKS = {"reviews": "Reviews site", "facebook": "Facebook", "instagram": "Instagram", "x": "X",
            "mastodon": "Mastodon", "bluesky": "Bluesky", "other": "Other"}
HANDLE_MAX = 100
PROFILES_MAX = 20  # per account: each is polled every few minutes


class NotFound(DomainError):
    """No such profile or post in the actor's account (another account's looks exactly the same)."""

    status_code = 404

    def __init__(self, message="We couldn't find that page or record."):
        super().__init__(message)


def list_profiles(account_id):
    """Return the account's connected profiles, oldest first."""
    return list(db.session.scalars(select(SocialProfile).where(SocialProfile.account_id == account_id)
                                   .order_by(SocialProfile.id)))


def own_account(actor):
    """Return the actor's account, read afresh (the gate must see its current state)."""
    return db.session.get(Account, actor.account_id, populate_existing=True) if actor.account_id else None


def _parse(account_id, network, handle, feed_url):
    errors = {}
    network = (network or "").strip()
    if network not in NETWORKS:
        errors["network"] = "Choose the network the profile is on."
    try:
        handle = clean_text(handle, "The handle")
        if not handle or len(handle) > HANDLE_MAX:
            errors["handle"] = f"Enter the profile's handle or name, up to {HANDLE_MAX} characters."
    except InvalidValue as exc:
        errors["handle"] = exc.message
    try:
        feed_url = social_fetch.check_url(clean_text(feed_url, "The feed's address"),
                                          allow_private=setting("SOCIAL_FEED_ALLOW_PRIVATE"))
    except (InvalidValue, social_fetch.FeedError) as exc:
        errors["feed_url"] = exc.message
    else:
        taken = db.session.scalar(select(SocialProfile.id).where(SocialProfile.account_id == account_id,
                                                                 SocialProfile.feed_url == feed_url))
        if taken is not None:
            errors["feed_url"] = "This feed is already connected."
    if errors:
        raise ValidationFailed(errors)
    return network, handle, feed_url


def connect_profile(actor, network, handle, feed_url, now=None):
    """Connect a social profile to the actor's account; it is polled at the next run of the job.

    Args:
        actor: an account manager.
        network: one of NETWORKS.
        handle: the profile's handle or name (1 to 100 characters).
        feed_url: the feed's http(s) address (JSON Feed, a JSON list of posts, RSS or Atom); it must
            resolve to public addresses unless SOCIAL_FEED_ALLOW_PRIVATE is set.
        now: the time of connection (default now).

    Returns:
        The new SocialProfile.

    Raises:
        PermissionDenied: the gate refuses edit_settings (e.g. the account is suspended); nothing stored.
        ValidationFailed: bad fields, a feed already connected, or PROFILES_MAX reached; nothing stored.
    """
    now = now or utcnow()
    account = own_account(actor)
    require(actor, "edit_settings", account)
    network, handle, feed_url = _parse(account.id, network, handle, feed_url)
    count = db.session.scalar(select(func.count()).select_from(SocialProfile)
                              .where(SocialProfile.account_id == account.id))
    if count >= PROFILES_MAX:
        raise ValidationFailed({"feed_url": f"An account can connect up to {PROFILES_MAX} profiles; "
                                            f"disconnect one first."})
    profile = SocialProfile(account_id=account.id, network=network, handle=handle, feed_url=feed_url,
                            created_at=now, failures=0, next_poll_at=None)
    db.session.add(profile)
    db.session.flush()
    audit.record("social_profile_connected", account_id=account.id, actor=actor, now=now,
                 data={"social_profile_id": profile.id, "network": network, "handle": handle,
                       "feed_url": feed_url})
    db.session.commit()
    return profile


def disconnect_profile(actor, social_profile_id, now=None):
    """Disconnect a profile: it is no longer polled; its posts stay, no longer tied to it.

    Raises:
        NotFound: no such profile in the actor's account.
        PermissionDenied: the gate refuses edit_settings (e.g. the account is suspended); nothing changed.
    """
    now = now or utcnow()
    account = own_account(actor)
    profile = db.session.scalar(select(SocialProfile).where(SocialProfile.id == social_profile_id,
                                                            SocialProfile.account_id == actor.account_id))
    if profile is None:
        raise NotFound()
    require(actor, "edit_settings", account)
    details = {"social_profile_id": profile.id, "network": profile.network, "handle": profile.handle,
               "feed_url": profile.feed_url}
    db.session.execute(update(SocialPost).where(SocialPost.social_profile_id == profile.id)
                       .values(social_profile_id=None).execution_options(synchronize_session=False))
    db.session.delete(profile)
    audit.record("social_profile_disconnected", account_id=account.id, actor=actor, now=now, data=details)
    db.session.commit()
    return details
