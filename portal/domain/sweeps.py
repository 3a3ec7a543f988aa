"""Sweeps: the suspension rules, the dry run, the one-time clean-up, undo, and the run history.

Rules are conjunctions of conditions; an account matches if any enabled rule matches. A clean-up
and the recurring sweep both run the enabled rules through the run engine (portal.domain.runs),
which is set-based, chunked and resumable. Exempt accounts are never swept (see exemptions.py).
"""
from flask import current_app
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.exc import StaleDataError

from portal.domain import audit, runs
from portal.domain.errors import DomainError, InvalidTransition, PermissionDenied, ValidationFailed
from portal.domain.gate import may
from portal.domain.parsing import InvalidValue, clean_text, money_cents, record_id, whole_number
from portal.domain.preview import preview as _preview
from portal.domain.rules import RULE_FIELDS, describe, name_taken_error, refuse_taken_name, snapshot
from portal.domain.runs.chunk import BY_RULE, rule_reason
from portal.extensions import db
from portal.models import SuspensionRule, SweepRun, User
from portal.timeutil import utcnow

NAME_MAX = 100
LIMITS = {"inactivity_months": (1, 600), "overdue_days": (0, 3650)}
MAX_BALANCE_CENTS = 10**11
DEFAULT_RULES = (
    {"name": "Inactive 12+ months", "inactivity_months": 12, "min_balance_cents": None, "overdue_days": None},
    {"name": "Balance over $5 unpaid 30+ days", "inactivity_months": None, "min_balance_cents": 500,
     "overdue_days": 30},
)


class RuleNotFound(DomainError):
    """No such rule."""

    status_code = 404

    def __init__(self, message="Rule not found."):
        super().__init__(message)


def _require(actor, action):
    decision = may(actor, action, None)
    if not decision:
        raise PermissionDenied(decision.message)


# ---------------------------------------------------------------- rules

def list_rules():
    """Return every rule, oldest first."""
    return list(db.session.scalars(select(SuspensionRule).order_by(SuspensionRule.id)))


def get_rule(rule_id):
    """Return the rule or raise RuleNotFound."""
    rule_id = record_id(rule_id)
    rule = db.session.get(SuspensionRule, rule_id) if rule_id is not None else None
    if rule is None:
        raise RuleNotFound()
    return rule


def enabled_rules():
    """Return snapshots of the enabled rules: what a sweep started now would apply."""
    return [snapshot(rule) for rule in list_rules() if rule.enabled]


def parse_rule(form):
    """Validate a rule form; return its clean values.

    Args:
        form: a mapping with name, enabled, inactivity_months, min_balance (dollars), overdue_days.
            A blank condition is off; at least one must be set.

    Raises:
        ValidationFailed: field_errors per field ("conditions" when none is set).
    """
    errors, values = {}, {}
    values["name"] = _name(form.get("name"), errors)
    values["enabled"] = str(form.get("enabled", "")).lower() in ("1", "on", "true", "yes", "y")
    for field, (low, high) in LIMITS.items():
        values[field] = _whole_number(form.get(field), low, high, field, errors)
    values["min_balance_cents"] = _money(form.get("min_balance"), errors)
    if not errors and all(values[f] is None for f in RULE_FIELDS):
        errors["conditions"] = "Set at least one condition: inactivity, balance, or days past due."
    if errors:
        raise ValidationFailed(errors)
    return values


def _name(raw, errors):
    try:
        name = clean_text(raw, "The name")
    except InvalidValue as exc:
        errors["name"] = exc.message
        return ""
    if not name:
        errors["name"] = "Give the rule a name."
    elif len(name) > NAME_MAX:
        errors["name"] = f"Keep the name to {NAME_MAX} characters."
    return name


def _whole_number(raw, low, high, field, errors):
    raw = str(raw if raw is not None else "").strip()
    if not raw:
        return None
    unit = "months" if field == "inactivity_months" else "days"
    try:
        value = whole_number(raw, message=f"Enter a whole number of {unit}, like "
                                          f"{max(low, 1) * 12 if unit == 'months' else 30}.")
        return whole_number(value, low, high, message=f"Enter a number of {unit} from {low} to {high:,}.")
    except InvalidValue as exc:
        errors[field] = exc.message
        return None


def _money(raw, errors):
    raw = str(raw if raw is not None else "").strip()
    if not raw:
        return None
    try:
        return money_cents(raw, MAX_BALANCE_CENTS, message="Enter an amount in dollars of zero or more, with at "
                                                           "most two decimals, like 5 or 12.50.")
    except InvalidValue as exc:
        errors["min_balance"] = exc.message
        return None


def create_rule(actor, form, now=None):
    """Create a rule from a form; audited.

    Raises:
        PermissionDenied, ValidationFailed (a field, or the name another rule has, in any case).
    """
    _require(actor, "manage_rules")
    values = parse_rule(form)
    refuse_taken_name(values["name"])
    now = now or utcnow()
    rule = SuspensionRule(created_at=now, updated_at=now, **values)
    db.session.add(rule)
    _flush_name(values["name"])
    audit.record("rule_created", None, actor, data={"rule": snapshot(rule)}, now=now)
    db.session.commit()
    return rule


def update_rule(actor, rule_id, form, now=None):
    """Change a rule from a form; audited with the rule before and after.

    Raises:
        PermissionDenied, RuleNotFound, ValidationFailed.
    """
    _require(actor, "manage_rules")
    values = parse_rule(form)
    rule = _lock_rule(rule_id)
    refuse_taken_name(values["name"], rule.id)
    before = snapshot(rule)
    for key, value in values.items():
        setattr(rule, key, value)
    rule.updated_at = now or utcnow()
    audit.record("rule_updated", None, actor, data={"before": before, "after": snapshot(rule)}, now=now)
    return _commit_rule(rule)


def set_rule_enabled(actor, rule_id, enabled, now=None):
    """Turn a rule on or off; audited.

    Raises:
        PermissionDenied, RuleNotFound.
    """
    _require(actor, "manage_rules")
    rule = _lock_rule(rule_id)
    rule.enabled, rule.updated_at = bool(enabled), now or utcnow()
    audit.record("rule_enabled" if enabled else "rule_disabled", None, actor, data={"rule": snapshot(rule)},
                 now=now)
    return _commit_rule(rule)


def delete_rule(actor, rule_id, now=None):
    """Delete a rule (runs keep their own snapshot of it); audited.

    Raises:
        PermissionDenied, RuleNotFound.
    """
    _require(actor, "manage_rules")
    rule = _lock_rule(rule_id)
    audit.record("rule_deleted", None, actor, data={"rule": snapshot(rule)}, now=now)
    db.session.delete(rule)
    _commit_rule(rule, deleting=True)


def _lock_rule(rule_id):
    """Take the rule's row lock for this transaction and return it read fresh (RuleNotFound if it is gone).

    Another admin's change or deletion of the same rule waits for this transaction (or, if it came first,
    this one finds the rule gone), so a change is never written over a deleted rule.
    """
    rule_id = record_id(rule_id)
    locked = db.session.execute(update(SuspensionRule).where(SuspensionRule.id == rule_id)
                                .values(updated_at=SuspensionRule.updated_at)
                                .execution_options(synchronize_session=False)).rowcount if rule_id else 0
    if locked != 1:
        db.session.rollback()
        raise RuleNotFound("This rule no longer exists (someone deleted it); nothing was changed.")
    return db.session.get(SuspensionRule, rule_id, populate_existing=True)


def _flush_name(name):
    """Flush a new or renamed rule; the unique index on lower(name) refuses a name saved meanwhile by another admin."""
    try:
        db.session.flush()
    except IntegrityError:
        db.session.rollback()
        raise name_taken_error(name) from None


def _commit_rule(rule, deleting=False):
    """Commit a change to a rule and return the rule as it was saved (detached: readable after the commit).

    Two admins may act on one rule at once: if it was deleted meanwhile, the change is refused, nothing
    is written (RuleNotFound), and a view reading the saved rule after the commit never meets a deleted row.

    Raises:
        RuleNotFound: the rule was deleted before this change was written.
    """
    try:
        _flush_name(rule.name)
    except StaleDataError:
        db.session.rollback()
        raise RuleNotFound("This rule no longer exists (someone deleted it); nothing was changed.") from None
    if not deleting:
        db.session.expunge(rule)
    db.session.commit()
    return rule


# ---------------------------------------------------------------- dry run and clean-up

def preview(as_of=None, sample_size=20):
    """Dry run of the enabled rules: counts, per-rule counts, skipped by reason, a sample with reasons."""
    result = _preview(enabled_rules(), as_of=as_of, sample_size=sample_size)
    result["confirm_threshold"] = confirm_threshold()
    result["needs_confirmation"] = result["would_change"] > result["confirm_threshold"]
    result["running_run_id"] = runs.running_exclusive_run()
    return result


def confirm_threshold():
    """Above this many accounts, a clean-up must be confirmed by typing the count."""
    return int(current_app.config["CLEANUP_CONFIRM_THRESHOLD"])


def start_cleanup(actor, reason_category=BY_RULE, reason_note=None, confirm_count=None, as_of=None,
                  trigger="user", now=None):
    """Start the one-time clean-up by the enabled rules, on the sweeps queue.

    Args:
        actor: the super admin (None from the command line, with trigger="cli").
        reason_category: BY_RULE (non-payment or inactivity per account, the default) or one of gate.REASONS.
        reason_note: why, written on every account and audit event.
        confirm_count: the count the admin typed; required when more than CLEANUP_CONFIRM_THRESHOLD
            accounts would be suspended, and it must equal that number as of now.
        as_of: the time rules are evaluated at (default now).
        trigger: user | cli.

    Returns:
        The queued SweepRun.

    Raises:
        PermissionDenied, ValidationFailed (reason, no enabled rule, confirmation missing or wrong),
        RunInProgress (another clean-up, sweep or undo is queued or running).
    """
    if actor is not None:
        _require(actor, "run_sweep")
    now = now or utcnow()
    rules = enabled_rules()
    selection = {"type": "rules", "rules": rules}
    runs.validate_run_reason(reason_category, reason_note, selection)  # bad input fails before the count
    if not rules:
        raise ValidationFailed({"rules": "No rule is enabled: enable or add a rule first."})
    busy = runs.running_exclusive_run()
    if busy is not None:
        raise runs.RunInProgress(busy)
    counted = _preview(rules, as_of=as_of or now, sample_size=0)
    _check_confirmation(counted["would_change"], confirm_count)
    return runs.start_run(actor, "cleanup", "suspend", selection, reason_category, reason_note,
                          as_of=as_of or now, trigger=trigger, now=now, total=counted["matched"])


def _check_confirmation(would_change, confirm_count):
    if would_change <= confirm_threshold():
        return
    raw = str(confirm_count if confirm_count is not None else "").strip().replace(",", "")
    if not raw:
        raise ValidationFailed({"confirm_count": f"{would_change:,} accounts would be suspended. "
                                                 f"Type {would_change} to confirm."})
    if raw != str(would_change):
        raise ValidationFailed({"confirm_count": f"That doesn't match: {would_change:,} accounts would be "
                                                 f"suspended now. Type {would_change} to confirm."})


def start_recurring(schedule_id, period_key, now=None):
    """Start the recurring sweep of one period (called by the scheduler; unique per period).

    Returns:
        The queued SweepRun, or None when no rule is enabled.

    Raises:
        PeriodAlreadyRun, RunInProgress.
    """
    rules = enabled_rules()
    if not rules:
        return None
    return runs.start_run(None, "recurring", "suspend", {"type": "rules", "rules": rules}, BY_RULE,
                          f"Scheduled sweep for {period_key.split(':', 1)[-1]}", trigger="schedule",
                          schedule_id=schedule_id, period_key=period_key, now=now)


def start_undo(actor, run_id, reason_category, reason_note, trigger="user", now=None):
    """Reactivate the accounts a run suspended that are still suspended by it (itself a run).

    A cancelled run can be undone (its undo reverses what its finished chunks did) once the chunk a worker
    had in hand is done; an undo that failed or was cancelled leaves the run to be undone again (the rest).

    Raises:
        PermissionDenied, RunNotFound, ValidationFailed,
        InvalidTransition (not a suspending run, still running or paused, finishing the chunk in hand,
        or already undone), RunInProgress.
    """
    if actor is not None:
        _require(actor, "run_sweep")
    run = runs.get_run(run_id)
    if run.action != "suspend":
        raise InvalidTransition(f"Run #{run.id} did not suspend anything, so there is nothing to undo.")
    if run.status == "paused":
        raise InvalidTransition(f"Run #{run.id} is paused: cancel it first to undo what it did so far, or resume "
                                "it and undo it once it has finished.")
    if run.status in runs.ACTIVE_STATUSES:
        raise InvalidTransition(f"Run #{run.id} is still in progress; undo it once it has finished.")
    if run.status == "cancelled" and runs.progress(run.id, now=now)["in_hand"]:
        raise InvalidTransition(f"Run #{run.id} was cancelled and a worker is finishing the chunk it had in hand; "
                                "undo it in a few seconds, once that is done.")
    undone = active_undo(run.id)
    if undone is not None:
        raise InvalidTransition(f"Run #{run.id} has already been undone by run #{undone.id}.")
    return runs.start_run(actor, "undo", "reactivate", {"type": "undo", "run_id": run.id}, reason_category,
                          reason_note, undo_of_run_id=run.id, trigger=trigger, now=now)


# ---------------------------------------------------------------- history

def list_runs(limit=50, before_id=None, kinds=None):
    """Return runs newest first (keyset pages: before_id, a run id as parsing.record_id reads it), each with who
    or what triggered it."""
    query = select(SweepRun, User).outerjoin(User, User.id == SweepRun.triggered_by_id).order_by(SweepRun.id.desc())
    if before_id:
        query = query.where(SweepRun.id < int(before_id))
    if kinds:
        query = query.where(SweepRun.kind.in_(kinds))
    return [{"run": run, "by": user, "trigger_label": trigger_label(run, user)}
            for run, user in db.session.execute(query.limit(limit))]


def trigger_label(run, user=None):
    """Say who or what started a run."""
    if run.trigger == "schedule":
        return f"Schedule ({run.period_key.split(':', 1)[-1]})" if run.period_key else "Schedule"
    if run.trigger == "cli":
        return "Command line"
    return user.name if user is not None else "System"


UNDO_LEFT_OPEN = ("failed", "cancelled")  # an undo in these states leaves its run to be undone again


def active_undo(run_id):
    """The undo of a run that is queued, running, paused or done (None if none, or only failed or cancelled ones)."""
    return db.session.scalar(select(SweepRun).where(SweepRun.undo_of_run_id == run_id,
                                                    SweepRun.status.not_in(UNDO_LEFT_OPEN))
                             .order_by(SweepRun.id.desc()).limit(1))


def run_details(run_id, now=None):
    """Return a run, its live progress, its rules described, its undo (if any) and what can be done to it now.

    Returns:
        dict: run, progress (runs.progress), rules, trigger_label, undo (the latest undo of it, any status) and
        undo_progress, undo_of (the run it undoes), stalled, can_undo, can_pause, can_resume, can_cancel.

    Raises:
        RunNotFound.
    """
    now = now or utcnow()
    run = runs.get_run(run_id)
    user = db.session.get(User, run.triggered_by_id) if run.triggered_by_id else None
    undo = db.session.scalar(select(SweepRun).where(SweepRun.undo_of_run_id == run.id)
                             .order_by(SweepRun.id.desc()).limit(1))
    rules = [dict(r, description=describe(r), reason=rule_reason(r)) for r in (run.rules_snapshot or [])]
    state = runs.progress(run.id, now=now)
    stalled = runs.is_stalled(run, now)
    inline = runs.is_inline(run)
    return {"run": run, "progress": state, "rules": rules, "trigger_label": trigger_label(run, user), "undo": undo,
            "undo_progress": runs.progress(undo.id, now=now) if undo else None,
            "undo_of": db.session.get(SweepRun, run.undo_of_run_id) if run.undo_of_run_id else None,
            "stalled": stalled, "inline": inline,
            "can_undo": (run.action == "suspend" and state["finished"] and not state["in_hand"]
                         and run.status != "queued" and (undo is None or undo.status in UNDO_LEFT_OPEN)),
            "can_pause": run.status in runs.PAUSABLE and not inline,
            "can_resume": (run.status in runs.RESUMABLE or stalled) and not inline,
            "can_cancel": run.status in runs.CANCELLABLE and not inline}
