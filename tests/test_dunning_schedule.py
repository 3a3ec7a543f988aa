"""The daily run's time, Run now, the lift's business days, bulk class changes and payment references (domain)."""
from datetime import date, datetime, timedelta

import pytest
from sqlalchemy import select

from portal import create_app
from portal.config import ConfigError
from portal.domain.billing import ledger
from portal.domain.dunning import business_days, class_bulk, schedule
from portal.domain.dunning.daily import start_daily_run
from portal.domain.dunning.classes import ClassNotFound
from portal.domain.dunning.status import record
from portal.domain.errors import PermissionDenied, ValidationFailed
from portal.domain.runs import RunInProgress
from portal.extensions import db
from portal.models import Account, AuditEvent, DunningSchedule, Payment, User


@pytest.fixture
def admin(ctx, make):
    return db.session.get(User, make.user("super_admin").id)


@pytest.fixture
def support(ctx, make):
    return db.session.get(User, make.user("support").id)


def test_no_saved_time_reads_as_the_default_and_saving_is_audited(admin):
    default = schedule.get_dunning_schedule()
    assert (default.enabled, default.time_of_day) == (True, "02:00") and default.id is None
    saved = schedule.save_dunning_schedule(admin, {"enabled": "1", "time_of_day": "7:05"})
    assert (saved.time_of_day, saved.enabled) == ("07:05", True)
    schedule.save_dunning_schedule(admin, {"time_of_day": "23:59"})  # unticked: paused
    assert db.session.scalars(select(DunningSchedule)).all() == [schedule.get_dunning_schedule()]
    assert schedule.get_dunning_schedule().enabled is False
    events = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "dunning_schedule_updated")
                                .order_by(AuditEvent.id)).all()
    assert [e.data["after"] for e in events] == ["Daily at 07:05 UTC", "Daily at 23:59 UTC — paused"]
    assert events[0].data["before"] is None and events[1].data["before"] == "Daily at 07:05 UTC"


@pytest.mark.parametrize("typed", ["", "24:00", "12:60", "noon", "١٢:٠٠", "12:5"])
def test_a_time_that_is_not_hh_mm_is_refused_at_the_field(admin, typed):
    with pytest.raises(ValidationFailed) as refused:
        schedule.save_dunning_schedule(admin, {"enabled": "1", "time_of_day": typed})
    assert "HH:MM" in refused.value.field_errors["time_of_day"]
    assert db.session.scalar(select(DunningSchedule)) is None


def test_only_a_super_admin_changes_the_time_or_runs_now(support):
    with pytest.raises(PermissionDenied):
        schedule.save_dunning_schedule(support, {"enabled": "1", "time_of_day": "03:00"})
    with pytest.raises(PermissionDenied):
        schedule.run_now(support, date(2026, 9, 1))
    assert db.session.scalar(select(DunningSchedule)) is None


def test_the_next_run_is_todays_slot_until_today_has_run_then_tomorrows(admin):
    saved = schedule.save_dunning_schedule(admin, {"enabled": "1", "time_of_day": "02:00"})
    morning, noon = datetime(2026, 9, 1, 1, 0), datetime(2026, 9, 1, 12, 0, 30)
    assert schedule.next_run_time(saved, morning) == datetime(2026, 9, 1, 2, 0)
    assert schedule.next_run_time(saved, noon) == datetime(2026, 9, 1, 12, 0)  # missed: due now
    start_daily_run(None, date(2026, 9, 1), enqueue=False)
    assert schedule.next_run_time(saved, noon) == datetime(2026, 9, 2, 2, 0)
    saved = schedule.save_dunning_schedule(admin, {"time_of_day": "02:00"})
    assert schedule.next_run_time(saved, noon) is None


def test_run_now_starts_the_day_once_and_names_the_run_that_did(admin, redis_server):
    run = schedule.run_now(admin, date(2026, 9, 1))
    assert run.kind == "dunning" and run.trigger == "user" and run.triggered_by_id == admin.id
    with pytest.raises(schedule.DayAlreadyRun) as again:
        schedule.run_now(admin, date(2026, 9, 1))
    with pytest.raises(RunInProgress):  # still queued: another day's run may not start meanwhile
        schedule.run_now(admin, date(2026, 9, 2))
    assert again.value.run_id == run.id and f"run #{run.id}" in again.value.message
    assert schedule.run_of_day(date(2026, 9, 1)).id == run.id


def test_two_business_days_skip_weekends_and_the_configured_countrys_holidays(app):
    friday = date(2026, 9, 4)  # Monday Sep 7 is Labor Day in the US, not in Germany
    with app.app_context():
        assert business_days.business_days_after(friday, 2) == date(2026, 9, 9)
        assert business_days.business_days_after(friday, 2, "DE") == date(2026, 9, 8)
        choices = business_days.lift_choices(friday)
        assert choices == [("2bd", "2 business days", date(2026, 9, 9)), ("1w", "1 week", date(2026, 9, 11))]
        assert business_days.until_date("date", "2026-09-20", friday) == date(2026, 9, 20)
        with pytest.raises(ValidationFailed) as bad:
            business_days.until_date("date", "20/09/2026", friday)
        assert "YYYY-MM-DD" in bad.value.field_errors["until"]
        with pytest.raises(ValidationFailed):
            business_days.until_date("forever", "", friday)


def test_the_holiday_calendar_comes_from_configuration_and_an_unknown_country_is_refused(database_url):
    base = {"ENV_NAME": "testing", "SECRET_KEY": "x", "SQLALCHEMY_DATABASE_URI": database_url}
    germany = create_app(dict(base, HOLIDAY_COUNTRY="de"))
    with germany.app_context():
        assert business_days.holiday_country() == "DE"
        assert business_days.business_days_after(date(2026, 9, 4), 2) == date(2026, 9, 8)
    with pytest.raises(ConfigError, match="PORTAL_HOLIDAY_COUNTRY"):
        create_app(dict(base, HOLIDAY_COUNTRY="XX"))


def test_bulk_set_class_moves_only_what_differs_plans_each_look_and_applies_due_steps(admin, make):
    slow = make.customer_class("Slow", limit_after_days=60, suspend_after_days=90)
    fast = make.customer_class("Fast", limit_after_days=5, suspend_after_days=10)
    today = date.today()
    overdue_id, pending_id, paid_id, already_id = (make.account(customer_class_id=slow) for _ in range(4))
    db.session.get(Account, already_id).customer_class_id = fast
    db.session.commit()
    ledger.add_invoice(admin, overdue_id, "30.00", today - timedelta(days=7))
    ledger.add_invoice(admin, pending_id, "30.00", today - timedelta(days=1))
    version = db.session.get(Account, pending_id).version
    outcome = class_bulk.set_class_bulk(admin, [str(overdue_id), pending_id, paid_id, already_id, overdue_id], fast)
    assert sorted(outcome.changed_ids) == sorted([overdue_id, pending_id, paid_id])
    assert outcome.unchanged == 1 and outcome.applied == 1
    assert outcome.summary == (f"Put 3 accounts in the class {outcome.class_name!r}; 1 was already there; the new "
                               "schedule applied a due step to 1 at once.")
    db.session.expire_all()
    assert db.session.get(Account, overdue_id).status == "limited"  # 7 days overdue, limits after 5
    pending = db.session.get(Account, pending_id)
    assert pending.version == version + 1 and pending.dunning_next_on == today - timedelta(days=1) + timedelta(days=5)
    assert record(pending)["pending_date"] == (today + timedelta(days=4)).isoformat()
    assert db.session.get(Account, paid_id).dunning_next_on is None
    moved = db.session.execute(select(AuditEvent.account_id, AuditEvent.data).where(AuditEvent.action == "class_set")
                               .order_by(AuditEvent.account_id)).all()
    assert [aid for aid, _data in moved] == sorted(outcome.changed_ids)  # one event per account moved
    assert all(data["before"].startswith("Slow") and data["after"] == outcome.class_name for _aid, data in moved)


def test_bulk_set_class_refuses_a_bad_selection_or_class_and_changes_nothing(admin, make, support):
    account_id = make.account()
    for ids in ([], ["x"], [str(i) for i in range(1, 1003)]):
        with pytest.raises(ValidationFailed):
            class_bulk.set_class_bulk(admin, ids, "")
    with pytest.raises(ClassNotFound) as unknown:
        class_bulk.set_class_bulk(admin, [account_id], "No such class")
    assert "No customer class named" in str(unknown.value)
    with pytest.raises(PermissionDenied):
        class_bulk.set_class_bulk(support, [account_id], "")
    assert db.session.scalar(select(AuditEvent.id)) is None


def test_a_payment_reference_is_text_of_at_most_100_characters(admin, make):
    account_id = make.account()
    for bad in ("x" * 101, "ref\ufffe"):
        with pytest.raises(ValidationFailed) as refused:
            ledger.record_payment(admin, account_id, "10.00", reference=bad)
        assert "reference" in refused.value.field_errors
    assert db.session.scalar(select(Payment.id)) is None
    ledger.record_payment(admin, account_id, "10.00", reference="  CHK-7  ")
    assert db.session.scalar(select(Payment.reference)) == "CHK-7"
