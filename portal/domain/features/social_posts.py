"""The imported posts: the list managers read, and their actions on a post (reply, flag, hide).

Acting asks the gate for act_on_post, which a suspension refuses: the post is left exactly as it was.
A reply is recorded in the portal (with its text) for the team to post; the portal has no network API.
"""
from sqlalchemy import select

from portal.domain import audit
from portal.domain.errors import ValidationFailed
from portal.domain.features.social_profiles import NotFound, own_account
from portal.domain.gate import require
from portal.domain.parsing import InvalidValue, clean_text
from portal.extensions import db
from portal.models import SocialPost
from portal.timeutil import utcnow

ACTIONS = {"reply": "replied", "flag": "flagged", "hide": "hidden"}
REPLY_MAX = 2000
PAGE_SIZE = 25
# The list's filters: what each shows (None: every post not hidden).
FILTERS = {"all": "All", "new": "No action yet", "replied": "Replied", "flagged": "Flagged", "hidden": "Hidden",
           "held": "Alert held"}


def _filtered(stmt, state):
    if state == "new":
        return stmt.where(SocialPost.action_taken.is_(None))
    if state in ("replied", "flagged", "hidden"):
        return stmt.where(SocialPost.action_taken == state)
    if state == "held":
        return stmt.where(SocialPost.alert_state == "held")
    return stmt.where(SocialPost.action_taken.is_(None) | (SocialPost.action_taken != "hidden"))


def list_posts(account_id, state="all", before=None, limit=PAGE_SIZE):
    """Return (posts, next_before): the account's posts newest first, a page at a time (keyset on id).

    Args:
        account_id: the account.
        state: one of FILTERS (anything else reads as "all": every post not hidden).
        before: show posts older than this post id (the previous page's next_before).
        limit: posts per page.

    Returns:
        The posts of this page, and the id to pass as `before` for the next page (None on the last page).
    """
    stmt = select(SocialPost).where(SocialPost.account_id == account_id)
    stmt = _filtered(stmt, state if state in FILTERS else "all")
    if before is not None:
        stmt = stmt.where(SocialPost.id < before)
    posts = list(db.session.scalars(stmt.order_by(SocialPost.id.desc()).limit(limit + 1)))
    if len(posts) > limit:
        return posts[:limit], posts[limit - 1].id
    return posts, None


def get_post(actor, post_id):
    """Return the post if it belongs to the actor's account.

    Raises:
        NotFound: no such post in the actor's account.
    """
    post = db.session.scalar(select(SocialPost).where(SocialPost.id == post_id,
                                                      SocialPost.account_id == actor.account_id))
    if post is None:
        raise NotFound()
    return post


def act_on_post(actor, post_id, action, note=None, now=None):
    """Reply to, flag or hide one of the account's posts, if the gate allows it.

    Args:
        actor: an account or tier manager.
        post_id: the post.
        action: "reply", "flag" or "hide".
        note: the reply's text (required for "reply", up to 2,000 characters; ignored otherwise).
        now: the time of the action (default now).

    Returns:
        The SocialPost, changed.

    Raises:
        NotFound: no such post in the actor's account.
        PermissionDenied: the gate refuses act_on_post (e.g. the account is suspended); nothing changed.
        ValidationFailed: an unknown action or a missing or overlong reply; nothing changed.
    """
    now = now or utcnow()
    post = get_post(actor, post_id)
    require(actor, "act_on_post", own_account(actor))
    if action not in ACTIONS:
        raise ValidationFailed({"action": "Choose reply, flag or hide."})
    if action == "reply":
        try:
            note = clean_text(note, "The reply")
        except InvalidValue as exc:
            raise ValidationFailed({"note": exc.message}) from None
        if not note or len(note) > REPLY_MAX:
            raise ValidationFailed({"note": f"Write the reply, up to {REPLY_MAX:,} characters."})
        post.action_note = note
    before = post.action_taken
    post.action_taken, post.acted_by_id, post.acted_at = ACTIONS[action], actor.id, now
    audit.record(f"social_post_{ACTIONS[action]}", account_id=post.account_id, actor=actor, now=now,
                 data={"post_id": post.id, "before": before, "note": note if action == "reply" else None})
    db.session.commit()
    return post
