"""Suspension rules as SQL: each rule is a conjunction of conditions over indexed columns.

An account matches if any enabled rule matches. Rules are evaluated "as of" a given time, so a
sweep can be previewed, replayed and tested on any date.
"""
from datetime import timedelta

from sqlalchemy import and_, exists, false, func, or_, select

from portal.domain.errors import ValidationFailed
from portal.extensions import db
from portal.models import Account, Invoice, SuspensionRule
from portal.timeutil import add_months

RULE_FIELDS = ("inactivity_months", "min_balance_cents", "overdue_days")


def snapshot(rule):
    """Return a JSON-able copy of a SuspensionRule, as stored in a run."""
    return {"id": rule.id, "name": rule.name, "enabled": rule.enabled,
            **{field: getattr(rule, field) for field in RULE_FIELDS}}


def inactivity_clause(months, as_of):
    """No reservation for `months` months; an account that never had one counts from its creation."""
    cutoff = add_months(as_of, -int(months))
    return func.coalesce(Account.last_activity_at, Account.created_at) < cutoff


def balance_clause(min_balance_cents):
    """Outstanding balance over the amount."""
    return Account.balance_cents > int(min_balance_cents)


def overdue_clause(days, as_of):
    """The oldest unpaid invoice is more than `days` days past its due date."""
    cutoff = as_of.date() - timedelta(days=int(days))
    return exists().where(Invoice.account_id == Account.id, Invoice.paid_at.is_(None),
                          Invoice.written_off_at.is_(None), Invoice.due_date < cutoff)


def rule_clause(rule, as_of):
    """Return the SQL condition of one rule snapshot (all its conditions must hold)."""
    parts = []
    if rule.get("inactivity_months") is not None:
        parts.append(inactivity_clause(rule["inactivity_months"], as_of))
    if rule.get("min_balance_cents") is not None:
        parts.append(balance_clause(rule["min_balance_cents"]))
    if rule.get("overdue_days") is not None:
        parts.append(overdue_clause(rule["overdue_days"], as_of))
    if not parts:
        return false()  # a rule with no condition matches nothing (validation refuses to save one)
    return and_(*parts)


def match_clause(rules, as_of):
    """Return the SQL condition "any enabled rule matches" for a list of rule snapshots."""
    clauses = [rule_clause(rule, as_of) for rule in rules if rule.get("enabled", True)]
    return or_(*clauses) if clauses else false()


def describe(rule):
    """Say in words what a rule snapshot matches."""
    parts = []
    if rule.get("inactivity_months") is not None:
        parts.append(f"no reservation for {rule['inactivity_months']}+ months")
    if rule.get("min_balance_cents") is not None:
        parts.append(f"balance over ${rule['min_balance_cents'] / 100:,.2f}")
    if rule.get("overdue_days") is not None:
        parts.append(f"oldest unpaid invoice {rule['overdue_days']}+ days past due")
    return " and ".join(parts) or "no conditions"


def name_taken_error(name):
    """The field error of a rule name another rule has (any case)."""
    return ValidationFailed({"name": f"A rule called “{name}” already exists (names are compared without regard "
                                     "to case). Give this rule another name, or edit that one."})


def refuse_taken_name(name, rule_id=None):
    """Refuse a name another rule already has, compared as the unique index does (lower(name); stored trimmed).

    The unique index ux_suspension_rules_name_lower decides when two admins save at once; this check
    answers the common case at the field before anything is written.

    Raises:
        ValidationFailed: field_errors["name"].
    """
    query = select(SuspensionRule.id).where(func.lower(SuspensionRule.name) == func.lower(name))
    if rule_id is not None:
        query = query.where(SuspensionRule.id != rule_id)
    if db.session.scalar(query.limit(1)) is not None:
        raise name_taken_error(name)
