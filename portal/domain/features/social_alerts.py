"""Alerts about imported posts: one email per poll while the gate allows them, held while it refuses,
and one summary of the held posts once it allows them again (never a flood of late alerts).

A post's alert_state: `none` (no alert: nobody to tell) -> `sent`, or `held` (the gate refused send_alert,
e.g. the account is suspended) -> `summarised` (listed in the one summary after reactivation). Both moves
are compare-and-set on alert_state, so two pollers never send the same alert or summary twice.

The caller's transaction is used and not committed; the caller kicks email delivery after its commit.
"""
from sqlalchemy import select, update

from portal import plurals
from portal.domain import notify
from portal.domain.gate import may
from portal.extensions import db
from portal.models import Account, SocialPost

LISTED_MAX = 20  # posts listed in one email; the rest are counted


def lock_account(account_id):
    """Read the account afresh, holding its row against a change of state until the commit (PostgreSQL).

    On SQLite the caller has already written in this transaction, so it holds the database's write lock
    and no suspension can commit in between either.
    """
    db.session.execute(select(Account.id).where(Account.id == account_id).with_for_update(read=True))
    return db.session.get(Account, account_id, populate_existing=True)


def _listed(post_ids):
    return list(db.session.scalars(select(SocialPost).where(SocialPost.id.in_(post_ids))
                                   .order_by(SocialPost.posted_at.desc(), SocialPost.id.desc()).limit(LISTED_MAX)))


def _email_managers(account, kind, subject, template, post_ids, now, **context):
    managers = notify.account_managers(account.id)
    posts = _listed(post_ids) if managers else []
    for manager in managers:
        notify.queue_email(manager, kind, subject, template, account=account, now=now, posts=posts,
                           total=len(post_ids), more=max(0, len(post_ids) - len(posts)), **context)
    return len(managers)


def alert_new_posts(account, post_ids, now):
    """Alert the account managers about posts just imported, or hold the alert if the gate refuses it.

    Args:
        account: the Account, read in this transaction (lock_account).
        post_ids: ids of the posts this poll inserted (alert_state 'none').
        now: the time of the poll.

    Returns:
        "sent" (one email per manager queued), "held" (refused: no email), or "none" (no posts or no one to tell).
    """
    if not post_ids:
        return "none"
    if not may("system", "send_alert", account):
        db.session.execute(update(SocialPost).where(SocialPost.id.in_(post_ids), SocialPost.alert_state == "none")
                           .values(alert_state="held").execution_options(synchronize_session=False))
        return "held"
    count = len(post_ids)
    subject = (f"{plurals.count(count, 'new social post')} about {account.name}")
    if not _email_managers(account, "social_alert", subject, "social_alert.txt", post_ids, now):
        return "none"
    db.session.execute(update(SocialPost).where(SocialPost.id.in_(post_ids), SocialPost.alert_state == "none")
                       .values(alert_state="sent", alert_sent_at=now).execution_options(synchronize_session=False))
    return "sent"


def summarise_held(account_id, now):
    """Send the one summary of an account's held posts, if the gate allows alerts again; commit.

    The held posts are taken by compare-and-set (held -> summarised), so a second poller running at the
    same moment takes none and sends nothing.

    Returns:
        {"account_id", "posts", "emails"} when a summary was queued, else None (refused, or nothing held).
    """
    taken = list(db.session.scalars(update(SocialPost)
                                    .where(SocialPost.account_id == account_id, SocialPost.alert_state == "held")
                                    .values(alert_state="summarised", alert_sent_at=now)
                                    .returning(SocialPost.id).execution_options(synchronize_session=False)))
    account = lock_account(account_id)
    if not taken or account is None or not may("system", "send_alert", account):
        db.session.rollback()
        return None
    count = len(taken)
    subject = (f"{plurals.count(count, 'social post')} arrived while your account "
               f"{account.number} was suspended")
    emails = _email_managers(account, "social_summary", subject, "social_summary.txt", taken, now)
    db.session.commit()
    return {"account_id": account_id, "posts": count, "emails": emails}


def send_summaries(now, batch=200):
    """Summarise the held posts of every account whose alerts the gate allows again; return the summaries.

    Walks the accounts with held posts in id order (index on alert_state, account_id), a batch at a time,
    asking the gate for each; accounts still refused keep their posts held for a later poll.
    """
    summaries, after = [], 0
    while True:
        account_ids = list(db.session.scalars(select(SocialPost.account_id).distinct()
                                              .where(SocialPost.alert_state == "held",
                                                     SocialPost.account_id > after)
                                              .order_by(SocialPost.account_id).limit(batch)))
        if not account_ids:
            return summaries
        accounts = db.session.scalars(select(Account).where(Account.id.in_(account_ids))).all()
        allowed = [a.id for a in accounts if may("system", "send_alert", a)]
        db.session.rollback()  # end the read before the writes below
        for account_id in allowed:
            summary = summarise_held(account_id, now)
            if summary is not None:
                summaries.append(summary)
        after = account_ids[-1]
