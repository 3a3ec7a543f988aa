"""Suspension rules: validation, audit, the shipped defaults, and what each condition matches (as SQL)."""
from datetime import date, datetime

import pytest
from sqlalchemy import create_engine, delete, func, select, text

from portal.domain import rules as rules_domain, sweeps
from portal.domain.errors import PermissionDenied, ValidationFailed
from portal.extensions import db
from portal.models import Account, AuditEvent, SuspensionRule, User

AS_OF = datetime(2026, 11, 1, 12, 0)
VALID = {"name": "Quiet and owing", "enabled": "1", "inactivity_months": "6", "min_balance": "12.50",
         "overdue_days": "45"}


@pytest.fixture
def admin(ctx, make):
    return db.session.get(User, make.user("super_admin").id)


@pytest.fixture
def no_rules(ctx):
    db.session.execute(delete(SuspensionRule))
    db.session.commit()


def _rule_count():
    return db.session.scalar(select(func.count()).select_from(SuspensionRule))


def _audit(action):
    return db.session.scalars(select(AuditEvent).where(AuditEvent.action == action)).all()


# ---------------------------------------------------------------- the shipped defaults

def _default_rows(url):
    engine = create_engine(url)
    with engine.connect() as conn:
        rules = conn.execute(text("SELECT name, enabled, inactivity_months, min_balance_cents, overdue_days "
                                  "FROM suspension_rules ORDER BY id")).all()
        schedules = conn.execute(text("SELECT enabled, mode, day_of_month, time_of_day FROM sweep_schedules")).all()
    engine.dispose()
    return rules, schedules


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_fresh_install_gets_the_default_rules_and_monthly_schedule(request, tmp_path, backend):
    from tests.conftest import _migrate

    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'fresh.sqlite3'}"
    else:
        url = request.getfixturevalue("pg_cluster").create_database("fresh_install")
    _migrate(url)
    rules, schedules = _default_rows(url)
    expected = [(r["name"], True, r["inactivity_months"], r["min_balance_cents"], r["overdue_days"])
                for r in sweeps.DEFAULT_RULES]
    assert [tuple(row) for row in rules] == expected
    assert [tuple(row) for row in schedules] == [(True, "monthly", 1, "03:00")]
    assert [r[0] for r in rules] == ["Inactive 12+ months", "Balance over $5 unpaid 30+ days"]


# ---------------------------------------------------------------- validation

def test_a_valid_rule_is_saved_and_audited(admin, no_rules):
    rule = sweeps.create_rule(admin, VALID)
    assert (rule.name, rule.enabled, rule.inactivity_months, rule.min_balance_cents, rule.overdue_days) == (
        "Quiet and owing", True, 6, 1250, 45)
    [event] = _audit("rule_created")
    assert event.actor_user_id == admin.id and event.data["rule"]["min_balance_cents"] == 1250


@pytest.mark.parametrize("changes, field", [
    ({"inactivity_months": "-3"}, "inactivity_months"),
    ({"inactivity_months": "twelve"}, "inactivity_months"),
    ({"inactivity_months": "1.5"}, "inactivity_months"),
    ({"inactivity_months": "0"}, "inactivity_months"),
    ({"min_balance": "-5"}, "min_balance"),
    ({"min_balance": "five"}, "min_balance"),
    ({"min_balance": "5.001"}, "min_balance"),
    ({"min_balance": "NaN"}, "min_balance"),
    ({"min_balance": "1e30"}, "min_balance"),
    ({"overdue_days": "-1"}, "overdue_days"),
    ({"overdue_days": "30 days"}, "overdue_days"),
    ({"name": "  "}, "name"),
    ({"name": "x" * 101}, "name"),
    ({"inactivity_months": "", "min_balance": "", "overdue_days": ""}, "conditions"),
])
def test_bad_rule_input_is_refused_with_a_message_and_nothing_changes(admin, no_rules, changes, field):
    with pytest.raises(ValidationFailed) as refused:
        sweeps.create_rule(admin, dict(VALID, **changes))
    assert field in refused.value.field_errors and refused.value.field_errors[field]
    db.session.rollback()
    assert _rule_count() == 0 and _audit("rule_created") == []


def test_a_rule_cannot_be_edited_into_having_no_condition(admin, no_rules):
    rule = sweeps.create_rule(admin, VALID)
    with pytest.raises(ValidationFailed) as refused:
        sweeps.update_rule(admin, rule.id, {"name": "Empty", "enabled": "1"})
    assert "conditions" in refused.value.field_errors
    db.session.rollback()
    assert db.session.get(SuspensionRule, rule.id).inactivity_months == 6


def test_changes_are_audited_with_before_and_after(admin, no_rules):
    rule = sweeps.create_rule(admin, VALID)
    sweeps.update_rule(admin, rule.id, dict(VALID, min_balance="", overdue_days=""))
    [updated] = _audit("rule_updated")
    assert updated.data["before"]["min_balance_cents"] == 1250 and updated.data["after"]["min_balance_cents"] is None
    sweeps.set_rule_enabled(admin, rule.id, False)
    assert db.session.get(SuspensionRule, rule.id).enabled is False
    assert len(_audit("rule_disabled")) == 1
    sweeps.delete_rule(admin, rule.id)
    assert _rule_count() == 0
    assert _audit("rule_deleted")[0].data["rule"]["name"] == "Quiet and owing"


def test_only_a_super_admin_manages_rules(ctx, make, no_rules):
    support = db.session.get(User, make.user("support").id)
    with pytest.raises(PermissionDenied):
        sweeps.create_rule(support, VALID)
    assert _rule_count() == 0


# ---------------------------------------------------------------- what the conditions match

def _matching(rule, as_of=AS_OF):
    return set(db.session.scalars(select(Account.id).where(rules_domain.rule_clause(rule, as_of))))


def test_inactivity_counts_from_the_last_reservation_or_else_from_creation(ctx, make):
    old_booking = make.account(created_at=datetime(2020, 1, 1), last_activity_at=datetime(2025, 10, 31))
    recent_booking = make.account(created_at=datetime(2020, 1, 1), last_activity_at=datetime(2025, 11, 2))
    never_old = make.account(created_at=datetime(2025, 10, 1), last_activity_at=None)
    never_new = make.account(created_at=datetime(2026, 2, 1), last_activity_at=None)
    found = _matching({"inactivity_months": 12})
    assert old_booking in found and never_old in found
    assert recent_booking not in found and never_new not in found


def test_balance_must_be_over_the_amount_and_overdue_more_than_the_days(ctx, make):
    at_limit = make.account()
    make.invoice(at_limit, amount_cents=500, due_date=date(2026, 9, 1))
    over = make.account()
    make.invoice(over, amount_cents=501, due_date=date(2026, 9, 1))
    recent = make.account()
    make.invoice(recent, amount_cents=900, due_date=date(2026, 10, 15))
    paid = make.account()
    make.invoice(paid, amount_cents=900, due_date=date(2026, 1, 1), paid=True)
    assert _matching({"min_balance_cents": 500}) == {over, recent}
    assert _matching({"overdue_days": 30}) == {at_limit, over}  # due 2026-10-15 is 17 days past due
    assert _matching({"min_balance_cents": 500, "overdue_days": 30}) == {over}  # all conditions must hold


def test_an_account_matches_if_any_enabled_rule_matches(ctx, make):
    inactive = make.account(created_at=datetime(2020, 1, 1), last_activity_at=datetime(2024, 1, 1))
    owing = make.account(last_activity_at=datetime(2026, 10, 1))
    make.invoice(owing, amount_cents=5000, due_date=date(2026, 8, 1))
    fine = make.account(last_activity_at=datetime(2026, 10, 1))
    rules = [{"enabled": True, "inactivity_months": 12},
             {"enabled": True, "min_balance_cents": 500, "overdue_days": 30}]
    clause = rules_domain.match_clause(rules, AS_OF)
    assert set(db.session.scalars(select(Account.id).where(clause))) == {inactive, owing}
    rules[0]["enabled"] = False
    clause = rules_domain.match_clause(rules, AS_OF)
    assert set(db.session.scalars(select(Account.id).where(clause))) == {owing}
    assert fine not in _matching(rules[1])
