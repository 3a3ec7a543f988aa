"""`flask demo seed`: realistic demo data, in bulk, only into an empty database, and the logins to try it."""
from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select

from portal.extensions import db
from portal.models import (Account, Campaign, CampaignEvent, CustomerClass, IngestionKey, IngestionRecord, Invoice,
                           Listing, ListingConnection, Profile, Reservation, SocialPost, SocialProfile, Survey,
                           SurveyRequest, User)
from portal.seed import DEMO_LOGINS, DEMO_PASSWORD, seed_demo
from tests.conftest import AuthActions

AS_OF = datetime(2026, 11, 22, 12, 0)
ACCOUNTS = 400


@pytest.fixture
def seeded(runner):
    result = runner.invoke(args=["demo", "seed", "--accounts", str(ACCOUNTS), "--as-of", AS_OF.isoformat()])
    assert result.exit_code == 0, result.output
    return result


def _count(stmt):
    return db.session.scalar(select(func.count()).select_from(stmt.subquery()))


def test_seed_reports_progress_counts_and_the_demo_logins(seeded):
    out = seeded.output
    assert "Seeding accounts" in out
    assert f"Created {ACCOUNTS} accounts in" in out and "accounts/s" in out
    assert f"password for all: {DEMO_PASSWORD}" in out
    for email, _name, role, _account in DEMO_LOGINS:
        assert email in out and role in out


def test_seed_creates_the_accounts_and_every_role(seeded, ctx):
    assert db.session.scalar(select(func.count()).select_from(Account)) == ACCOUNTS
    roles = set(db.session.scalars(select(User.role).distinct()))
    assert roles == {"super_admin", "support", "account_manager", "tier_manager", "user"}
    staff = db.session.scalars(select(User).where(User.role.in_(["super_admin", "support"]))).all()
    assert staff and all(u.account_id is None for u in staff)
    customers = db.session.scalars(select(User).where(User.account_id.is_(None), ~User.role.in_(
        ["super_admin", "support"]))).all()
    assert customers == []  # every customer person belongs to an account


def test_seed_creates_customer_classes_with_dunning_schedules(seeded, ctx):
    classes = db.session.scalars(select(CustomerClass)).all()
    assert len(classes) >= 3
    assert all(c.limit_after_days and c.suspend_after_days > c.limit_after_days for c in classes)
    used = set(db.session.scalars(select(Account.customer_class_id).distinct()))
    assert used == {c.id for c in classes}


def test_seed_creates_paid_and_overdue_invoices_that_match_balances(seeded, ctx):
    paid = _count(select(Invoice.id).where(Invoice.paid_at.is_not(None)))
    overdue = _count(select(Invoice.id).where(Invoice.paid_at.is_(None), Invoice.due_date < AS_OF.date()))
    overdue_accounts = _count(select(Invoice.account_id).where(
        Invoice.paid_at.is_(None), Invoice.due_date < AS_OF.date()).distinct())
    assert paid > overdue > 0
    assert 0.05 * ACCOUNTS < overdue_accounts < 0.4 * ACCOUNTS
    open_sum = (select(func.coalesce(func.sum(Invoice.amount_cents), 0)).where(
        Invoice.account_id == Account.id, Invoice.paid_at.is_(None)).scalar_subquery())
    assert _count(select(Account.id).where(Account.balance_cents != open_sum)) == 0
    # Sequence numbers run 1..n within each account.
    assert _count(select(Invoice.account_id).group_by(Invoice.account_id).having(
        func.max(Invoice.seq) != func.count())) == 0


def test_seed_spreads_reservations_over_two_years(seeded, ctx):
    two_years_ago = AS_OF - timedelta(days=730)
    for quarter in range(8):
        start = two_years_ago + timedelta(days=quarter * 91)
        in_quarter = _count(select(Reservation.id).where(Reservation.created_at >= start,
                                                         Reservation.created_at < start + timedelta(days=91)))
        assert in_quarter > 0, f"no reservations in the quarter starting {start:%Y-%m-%d}"
    assert db.session.scalar(select(func.max(Reservation.created_at))) <= AS_OF


def test_seed_makes_some_accounts_inactive_for_years_and_some_never_active(seeded, ctx):
    inactive_years = _count(select(Account.id).where(Account.last_activity_at < AS_OF - timedelta(days=730)))
    assert inactive_years > 0
    never = db.session.scalars(select(Account).where(Account.last_activity_at.is_(None))).all()
    assert never
    assert _count(select(Reservation.id).where(Reservation.account_id.in_([a.id for a in never]))) == 0
    recent = _count(select(Account.id).where(Account.last_activity_at >= AS_OF - timedelta(days=90)))
    assert recent > ACCOUNTS / 2  # most accounts are busy
    # last_activity_at is the time of the account's newest reservation.
    newest = (select(func.max(Reservation.created_at)).where(Reservation.account_id == Account.id)
              .scalar_subquery())
    assert _count(select(Account.id).where(Account.last_activity_at.is_not(None),
                                           Account.last_activity_at != newest)) == 0


DEMO_ACCOUNTS = (1, 2)  # the accounts of the demo logins


@pytest.mark.parametrize("account_id", DEMO_ACCOUNTS)
def test_seed_gives_each_demo_account_a_few_of_each_feature(seeded, ctx, account_id):
    def rows(model, *where):
        return db.session.scalars(select(model).where(model.account_id == account_id, *where)).all()

    surveys = rows(Survey)
    assert sorted(s.kind for s in surveys) == ["reminder", "survey"]
    campaigns = {c.state: c for c in rows(Campaign)}
    assert set(campaigns) == {"active", "paused"}
    running = campaigns["active"]
    assert running.survey_id in {s.id for s in surveys} and running.delay_hours > 0 and running.daily_limit > 0
    for campaign in campaigns.values():
        kinds = db.session.scalars(select(CampaignEvent.kind).where(CampaignEvent.campaign_id == campaign.id)).all()
        assert "created" in kinds
    assert "paused" in db.session.scalars(select(CampaignEvent.kind).where(
        CampaignEvent.campaign_id == campaigns["paused"].id)).all()
    records = rows(IngestionRecord)
    assert len(records) >= 3 and {r.source for r in records} == {"upload", "api"}
    assert all(r.visited_at <= AS_OF and r.customer_email for r in records)
    requests = rows(SurveyRequest, SurveyRequest.campaign_id == running.id)
    assert {r.ingestion_record_id for r in requests} == {r.id for r in records}
    sent = [r for r in requests if r.status == "sent"]
    pending = [r for r in requests if r.status == "pending"]
    assert sent and pending and all(r.sent_at <= AS_OF for r in sent) and all(r.due_at > AS_OF for r in pending)
    assert rows(SurveyRequest, SurveyRequest.manual.is_(True))  # and one sent by hand
    listings = rows(Listing)
    assert 1 <= len(listings) <= 2 and any(listing.published for listing in listings)
    for listing in listings:
        connections = _count(select(ListingConnection.id).where(ListingConnection.listing_id == listing.id))
        assert 1 <= connections <= 2
    assert len(rows(Profile)) == 1
    feeds = rows(SocialProfile)
    assert len(feeds) == 1 and feeds[0].feed_url.startswith("https://feeds.example.invalid/")
    assert feeds[0].next_poll_at > AS_OF + timedelta(days=3000)
    posts = rows(SocialPost)
    assert len(posts) >= 2 and {p.alert_state for p in posts} == {"sent"}
    assert {p.social_profile_id for p in posts} == {feeds[0].id}
    assert len(rows(IngestionKey, IngestionKey.revoked_at.is_(None))) == 1


def test_only_the_demo_accounts_get_features(seeded, ctx):
    for model in (Survey, Campaign, IngestionRecord, SurveyRequest, Listing, Profile, SocialProfile, SocialPost):
        owners = set(db.session.scalars(select(model.account_id).distinct()))
        assert owners == set(DEMO_ACCOUNTS), model.__name__


def test_the_demo_feeds_are_not_polled_by_the_demo_worker(seeded, ctx):
    from portal.domain.features import social

    result = social.poll_due(now=AS_OF + timedelta(days=30))
    assert result["polled"] == 0 and result["profiles"] == []


def test_demo_logins_sign_in_to_their_home_pages(seeded, client):
    homes = {"super_admin": "/overview", "support": "/overview", "account_manager": "/my-account",
             "tier_manager": "/reservations", "user": "/reservations"}
    auth = AuthActions(client)
    for email, _name, role, _account in DEMO_LOGINS[:5]:
        response = auth.login(email, password=DEMO_PASSWORD)
        assert response.status_code == 303, email
        assert response.headers["Location"] == homes[role]
        auth.logout()


def test_new_rows_get_fresh_ids_after_seeding(seeded, make):
    # PostgreSQL sequences moved past the explicitly inserted ids.
    assert make.account() == ACCOUNTS + 1


def test_seed_refuses_a_database_that_has_accounts(seeded, runner, ctx):
    users_before = db.session.scalar(select(func.count()).select_from(User))
    result = runner.invoke(args=["demo", "seed", "--accounts", "5"])
    assert result.exit_code == 1
    assert "already has accounts" in result.output
    assert db.session.scalar(select(func.count()).select_from(Account)) == ACCOUNTS
    assert db.session.scalar(select(func.count()).select_from(User)) == users_before


def test_same_seed_builds_the_same_data(ctx):

    seed_demo(30, now=AS_OF, seed=7)
    first = db.session.execute(select(Account.name, Account.created_at, Account.balance_cents)
                               .order_by(Account.id)).all()
    _wipe()
    seed_demo(30, now=AS_OF, seed=7)
    again = db.session.execute(select(Account.name, Account.created_at, Account.balance_cents)
                               .order_by(Account.id)).all()
    assert first == again


def _wipe():
    for table in reversed(db.metadata.sorted_tables):
        db.session.execute(table.delete())
    db.session.commit()


@pytest.mark.parametrize("args, message", [
    (["--accounts", "0"], "0 is not in the range"),
    (["--accounts", "many"], "'many' is not a valid integer"),
    (["--as-of", "next tuesday"], "use an ISO date"),
])
def test_bad_options_are_refused_with_a_message(runner, ctx, args, message):
    result = runner.invoke(args=["demo", "seed", *args])
    assert result.exit_code == 2
    assert message in result.output
    assert db.session.scalar(select(func.count()).select_from(Account)) == 0


def test_if_empty_seeds_an_empty_database(runner, ctx):
    result = runner.invoke(args=["demo", "seed", "--if-empty", "--accounts", "20"])
    assert result.exit_code == 0, result.output
    assert db.session.scalar(select(func.count()).select_from(Account)) == 20


def test_if_empty_leaves_a_database_with_accounts_alone_and_succeeds(seeded, runner, ctx):
    result = runner.invoke(args=["demo", "seed", "--if-empty", "--accounts", "20"])
    assert result.exit_code == 0
    assert "already has accounts; no demo data added" in result.output
    assert db.session.scalar(select(func.count()).select_from(Account)) == ACCOUNTS


def test_seeded_accounts_are_searchable_and_later_ones_too(seeded, ctx):
    """The seed indexes its accounts for search in one pass at the end (SQLite drops the row trigger meanwhile):
    every seeded account is found by a part of its name, and the trigger is back for accounts added later."""
    from werkzeug.datastructures import MultiDict

    from portal.domain import account_search as search

    def numbers(q):
        return {row.number for row in search.list_page(search.parse_filters(MultiDict({"q": q}))).rows}

    sample = db.session.get(Account, ACCOUNTS // 2)
    word = sample.name.split()[1][1:]  # inside a word, not its start
    assert sample.number in numbers(f"{word} {sample.number[-4:]}")
    db.session.add(Account(number="A9999999", name="Zephyrine Kiosk", email="late@kiosk.example", status="active"))
    db.session.commit()
    assert numbers("phyrine") == {"A9999999"}
