"""The dry run of a sweep: what the rules would do now, without changing anything.

One scan of accounts evaluates every rule once per account and groups by (status, exempt, which
rules matched); the counts per rule, the accounts that would change and the ones left alone (and
why) all come from that small result. A second, indexed query fetches a sample with the reasons.
"""
from sqlalchemy import and_, case, func, literal, select, text

from portal.domain import rules as rules_domain
from portal.extensions import db
from portal.models import Account, Invoice
from portal.timeutil import utcnow

CHANGEABLE = ("active", "limited")  # the states a sweep suspends from (as the run engine)


def preview(rules, as_of=None, sample_size=20):
    """Count and sample what a sweep by `rules` would do as of a time.

    Args:
        rules: rule snapshots (rules.snapshot); disabled ones are ignored.
        as_of: the time rules are evaluated at (default now).
        sample_size: how many would-be-suspended accounts to list with their reasons.

    Returns:
        dict(as_of, rules (enabled, with "description"), total_accounts, matched, would_change,
        per_rule {rule id: accounts it would suspend}, skipped {reason: count}, sample [dict]).
    """
    as_of = as_of or utcnow()
    rules = [dict(r, description=rules_domain.describe(r)) for r in rules if r.get("enabled", True)]
    n = len(rules)
    if db.engine.dialect.name == "postgresql":
        db.session.execute(text("SET LOCAL jit = off"))  # compiling costs more than the scan saves
    counts = db.session.execute(_count_query(rules, as_of)).one()
    total, matched, would_change, exempt, *rest = (int(c or 0) for c in counts)
    per_rule = {rule["id"]: count for rule, count in zip(rules, rest[:n])}
    skipped = {"exempt": exempt}
    for status, count in zip(("suspended", "cancelled", "in another state"), rest[n:]):
        skipped[f"already {status}" if status != "in another state" else status] = count
    return {"as_of": as_of, "rules": rules, "total_accounts": total, "matched": matched,
            "would_change": would_change, "per_rule": per_rule,
            "skipped": {k: v for k, v in sorted(skipped.items(), key=lambda kv: -kv[1]) if v},
            "sample": sample(rules, as_of, sample_size) if rules and would_change and sample_size else []}


def _count_query(rules, as_of):
    """One scan: each account's rules, exemption and state packed into one number k, then summed.

    Bits 0..n-1: rule i matched; bit n: exempt; bits n+1..: 0 changeable, 1 suspended, 2 cancelled,
    3 other. The subquery is kept apart (OFFSET 0; SQLite also needs a LIMIT) so every rule is
    evaluated once per account, not once per sum.
    """
    n = len(rules)
    state = case((Account.status.in_(CHANGEABLE), 0), (Account.status == "suspended", 1),
                 (Account.status == "cancelled", 2), else_=3)
    k = case((Account.exempt.is_(True), 1 << n), else_=0) + state * (1 << (n + 1))
    for i, rule in enumerate(rules):
        k = k + case((rules_domain.rule_clause(rule, as_of), 1 << i), else_=0)
    inner = select(k.label("k")).select_from(Account)
    inner = inner.limit(-1).offset(0) if db.engine.dialect.name == "sqlite" else inner.offset(0)
    k = inner.subquery("flags").c.k
    hit = k.op("&")((1 << n) - 1) > 0 if n else literal(False)

    def count(*conditions):
        return func.sum(case((and_(*conditions), 1), else_=0))

    return select(func.count(), count(hit), count(hit, k < (1 << n)), count(hit, k.op(">>")(n) == 1),
                  *(count(k.op("&")(1 << i) > 0, k < (1 << n)) for i in range(n)),
                  *(count(hit, k.op(">>")(n + 1) == code) for code in (1, 2, 3)))


def sample(rules, as_of, size=20):
    """Return up to `size` accounts the rules would suspend, lowest ids first, each with why it matched."""
    flags = [rules_domain.rule_clause(r, as_of).label(f"r{i}") for i, r in enumerate(rules)]
    oldest_due = (select(func.min(Invoice.due_date))
                  .where(Invoice.account_id == Account.id, Invoice.paid_at.is_(None),
                         Invoice.written_off_at.is_(None)).scalar_subquery())
    eligible = and_(Account.status.in_(CHANGEABLE), Account.exempt.is_(False),
                    rules_domain.match_clause(rules, as_of))
    query = (select(Account.id, Account.number, Account.name, Account.status, Account.created_at,
                    Account.last_activity_at, Account.balance_cents, oldest_due.label("oldest_due"), *flags)
             .where(eligible).order_by(Account.id).limit(size))
    rows = []
    for row in db.session.execute(query):
        hits = [rule for i, rule in enumerate(rules) if getattr(row, f"r{i}")]
        rows.append({"id": row.id, "number": row.number, "name": row.name, "status": row.status,
                     "rules": [r["name"] for r in hits], "why": [explain(r, row, as_of) for r in hits]})
    return rows


def explain(rule, account, as_of):
    """Say why one account matches one rule, with its own figures."""
    parts = []
    if rule.get("inactivity_months") is not None:
        if account.last_activity_at is None:
            parts.append(f"never made a reservation (created {account.created_at:%Y-%m-%d})")
        else:
            months = _months_between(account.last_activity_at, as_of)
            parts.append(f"last reservation {account.last_activity_at:%Y-%m-%d} ({months} months ago)")
    if rule.get("min_balance_cents") is not None:
        parts.append(f"balance ${account.balance_cents / 100:,.2f}")
    if rule.get("overdue_days") is not None and account.oldest_due is not None:
        due = account.oldest_due
        days = (as_of.date() - due).days
        parts.append(f"oldest unpaid invoice due {due:%Y-%m-%d} ({days} days past due)")
    return f"{rule['name']}: " + ", ".join(parts)


def _months_between(earlier, later):
    months = (later.year - earlier.year) * 12 + later.month - earlier.month
    if (later.day, later.time()) < (earlier.day, earlier.time()):
        months -= 1
    return max(months, 0)

