"""Test data built through the models (small numbers of rows; bulk data comes from portal.seed)."""
import itertools
from datetime import date, datetime, timedelta
from types import SimpleNamespace

from werkzeug.security import generate_password_hash

from portal.domain.auth import new_session_token
from portal.extensions import db
from portal.models import (Account, Campaign, CampaignEvent, CustomerClass, IngestionKey, IngestionRecord, Invoice,
                           Listing, ListingConnection, Profile, Reservation, SocialPost, SocialProfile, Survey,
                           SurveyRequest, User)
from tests.conftest import PASSWORD

_counter = itertools.count(1)
# One hash for every test user: scrypt is slow on purpose, and tests create many users and sign them in thousands
# of times. Its work factor is low (N=1024: 2 ms a check instead of 90 at the default 32768); sign-in checks it as
# any scrypt hash, reading N from the hash. The portal's own hash_password keeps the default (test_auth checks it).
_HASH = generate_password_hash(PASSWORD, method="scrypt:1024:8:1")


class Factory:
    """Create accounts, users, invoices and reservations inside the app's database."""

    def __init__(self, app):
        self.app = app

    def account(self, name=None, status="active", created_at=None, last_activity_at=None, **fields):
        with self.app.app_context():
            n = next(_counter)
            account = Account(number=f"T{n:07d}", name=name or f"Test Account {n}", email=f"acct{n}@example.test",
                              status=status, created_at=created_at or datetime(2024, 1, 1),
                              last_activity_at=last_activity_at, settings={"timezone": "UTC"}, **fields)
            db.session.add(account)
            db.session.commit()
            return account.id

    def user(self, role, account_id=None, email=None, name=None, **fields):
        with self.app.app_context():
            n = next(_counter)
            user = User(email=email or f"{role.replace('_', '-')}{n}@example.test", name=name or f"{role} {n}",
                        role=role, account_id=account_id, password_hash=_HASH,
                        session_token=new_session_token(), **fields)
            db.session.add(user)
            db.session.commit()
            return SimpleNamespace(id=user.id, email=user.email, role=role, account_id=account_id)

    def customer_class(self, name="Standard", limit_after_days=15, suspend_after_days=20):
        with self.app.app_context():
            cls = CustomerClass(name=f"{name} {next(_counter)}", limit_after_days=limit_after_days,
                                suspend_after_days=suspend_after_days)
            db.session.add(cls)
            db.session.commit()
            return cls.id

    def invoice(self, account_id, amount_cents=2500, due_date=None, paid=False, seq=None):
        with self.app.app_context():
            if seq is None:
                seq = 1 + db.session.query(Invoice).filter_by(account_id=account_id).count()
            due = due_date or date(2026, 1, 1)
            inv = Invoice(account_id=account_id, seq=seq, amount_cents=amount_cents, due_date=due,
                          issued_at=datetime.combine(due, datetime.min.time()) - timedelta(days=14),
                          paid_at=datetime.combine(due, datetime.min.time()) if paid else None)
            db.session.add(inv)
            if not paid:
                account = db.session.get(Account, account_id)
                account.balance_cents += amount_cents
            db.session.commit()
            return inv.id

    def reservation(self, account_id, created_at, user_id=None):
        with self.app.app_context():
            res = Reservation(account_id=account_id, user_id=user_id, created_at=created_at,
                              starts_at=created_at + timedelta(days=3), party_size=2)
            db.session.add(res)
            account = db.session.get(Account, account_id)
            if account.last_activity_at is None or account.last_activity_at < created_at:
                account.last_activity_at = created_at
            db.session.commit()
            return res.id

    def features(self, account_id, at=None):
        """One of each feature row in the account (a survey, campaign, request, listing, profile, feed, post, key).

        Returns a namespace of their ids (campaign, survey, request, listing, connection, profile,
        social_profile, post, key, record) and the account's number.
        """
        at = at or datetime(2026, 1, 5, 12, 0)
        with self.app.app_context():
            account = db.session.get(Account, account_id)
            survey = Survey(account_id=account_id, kind="survey", subject="How was your visit?",
                            body="Tell us in one minute.", created_at=at)
            db.session.add(survey)
            db.session.flush()
            campaign = Campaign(account_id=account_id, name="After-visit survey", automated=True, state="active",
                                survey_id=survey.id, delay_hours=24, daily_limit=50, created_at=at)
            key = IngestionKey(account_id=account_id, name="Till", prefix="ik_test", digest=f"{account_id:064x}",
                               created_at=at)
            listing = Listing(account_id=account_id, name="Main street", address="1 Main St", published=True,
                              published_at=at, updated_at=at)
            profile = Profile(account_id=account_id, public=True, headline="Fresh food daily", body="Since 1999",
                              updated_at=at)
            feed = SocialProfile(account_id=account_id, network="reviews", handle=f"@acct{account_id}",
                                 feed_url="http://127.0.0.1:9/feed.json", created_at=at)
            db.session.add_all([campaign, key, listing, profile, feed])
            db.session.flush()
            record = IngestionRecord(account_id=account_id, source="api", external_id="visit-1",
                                     customer_name="Rita Guest", customer_email="rita@example.test",
                                     visited_at=at, key_id=key.id, payload="{}", created_at=at)
            connection = ListingConnection(listing_id=listing.id, directory="Maps directory", status="connected",
                                           external_ref="maps:123", connected_at=at)
            post = SocialPost(account_id=account_id, social_profile_id=feed.id, external_id="post-1",
                              network="reviews", author="A guest", content="Lovely dinner!", posted_at=at,
                              imported_at=at, alert_state="sent", alert_sent_at=at)
            db.session.add_all([record, connection, post,
                                CampaignEvent(campaign_id=campaign.id, at=at, kind="created",
                                              message="Campaign created.")])
            db.session.flush()
            request = SurveyRequest(account_id=account_id, survey_id=survey.id, campaign_id=campaign.id,
                                    ingestion_record_id=record.id, kind="survey", recipient_name="Rita Guest",
                                    recipient_email="rita@example.test", due_at=at + timedelta(hours=24),
                                    status="pending", created_at=at)
            db.session.add(request)
            db.session.commit()
            return SimpleNamespace(number=account.number, campaign=campaign.id, survey=survey.id, request=request.id,
                                   listing=listing.id, connection=connection.id, profile=profile.id,
                                   social_profile=feed.id, post=post.id, key=key.id, record=record.id)

    def world(self):
        """Staff plus two customer accounts with one person of each customer role."""
        w = SimpleNamespace()
        w.admin = self.user("super_admin", name="Ada Admin")
        w.admin2 = self.user("super_admin", name="Alan Admin")
        w.support = self.user("support", name="Sam Support")
        w.account = self.account(name="Blue Harbor Bistro")
        w.other_account = self.account(name="Copper Fox Cafe")
        w.manager = self.user("account_manager", w.account, name="Mia Manager")
        w.tier = self.user("tier_manager", w.account, name="Theo Tier")
        w.member = self.user("user", w.account, name="Uma User")
        w.other_manager = self.user("account_manager", w.other_account, name="Otto Other")
        w.other_member = self.user("user", w.other_account, name="Olga Other")
        return w
