"""Bulk suspend or reactivate from the account list, and its CSV export.

A selection is either the ticked accounts ("selected") or every account matching the list's filter
("filter"). Up to BULK_ASYNC_THRESHOLD accounts are changed here and now, one at a time through
portal.domain.suspension (each its own transaction, audit event and emails, exactly as from the
account's dialog), recorded as a "bulk" run made at once (runs.inline), whose id every one of those
audit events carries. More become a "bulk" run of the set-based run engine (portal.domain.runs), which
selects with the same WHERE as the list (account_search.filter_clause) and reports progress. Either
way the change has a run: the finished dialog names it, and the list's "changed by run #N" shows its
accounts.
Both paths leave the same accounts alone for the same reasons: not in a state the action changes
("already suspended"), exempt from suspension, or changed by someone else meanwhile.
"""
from dataclasses import dataclass, field

from flask import current_app
from sqlalchemy import select

from portal.domain import account_search, runs, suspension
from portal.domain.errors import (AccountNotFound, Conflict, InvalidTransition, PermissionDenied, UnpaidInvoices,
                                  ValidationFailed)
from portal.domain.gate import require
from portal.domain.parsing import record_id
from portal.extensions import db
from portal.models import Account, SweepRun

ACTIONS = ("suspend", "reactivate")
FILTER_FIELDS = ("q", "run", "status", "class", "balance_min", "balance_max", "active_after", "active_before",
                 "exempt")
MAX_TICKED = 1_000
SAMPLE_SIZE = 10


@dataclass
class Preview:
    """What a bulk change would touch: the exact count, a sample, and whether it runs in the background."""

    action: str
    scope: str
    count: int
    sample: list
    asynchronous: bool
    selection: dict
    filters: object = None

    @property
    def needs_typed_count(self):
        """More accounts than the clean-up's threshold: the count must be typed to confirm, as for a clean-up."""
        return needs_typed_count(self.count)


@dataclass
class Outcome:
    """What an inline bulk change did (and the run that records it), or the run it queued."""

    action: str
    changed_ids: list = field(default_factory=list)
    skip_reasons: dict = field(default_factory=dict)
    run_id: int | None = None
    queued: bool = False  # a run on the sweeps queue: follow its progress

    @property
    def changed(self):
        return len(self.changed_ids)

    @property
    def skipped(self):
        return sum(self.skip_reasons.values())

    @property
    def summary(self):
        past = "Suspended" if self.action == "suspend" else "Reactivated"
        text = f"{past} {self.changed:,} account{'s' if self.changed != 1 else ''}"
        if self.skip_reasons:
            reasons = ", ".join(f"{count:,} {reason}" for reason, count in self.skip_reasons.items())
            text += f"; left {self.skipped:,} alone ({reasons})"
        return text + "."


def typed_count_threshold():
    """Above this many accounts a bulk change, like a clean-up, is confirmed by typing the count."""
    return int(current_app.config["CLEANUP_CONFIRM_THRESHOLD"])


def needs_typed_count(count):
    """True when a change of `count` accounts must be confirmed by typing the count."""
    return count > typed_count_threshold()


def check_typed_count(count, typed, action):
    """Refuse a change of more than the threshold's accounts unless `typed` is exactly its count (commas allowed).

    Args:
        count: how many accounts the change applies to now.
        typed: what the admin typed (None or "" when the form had no such field).
        action: suspend | reactivate (for the message).

    Raises:
        ValidationFailed: field_errors["confirm_count"] says what to type.
    """
    if not needs_typed_count(count):
        return
    raw = str(typed if typed is not None else "").strip().replace(",", "")
    verb = "suspended" if action == "suspend" else "reactivated"
    if not raw:
        raise ValidationFailed({"confirm_count": f"{count:,} accounts would be {verb}. Type {count} to confirm."})
    if raw != str(count):
        raise ValidationFailed({"confirm_count": f"That doesn't match: {count:,} accounts would be {verb} now. "
                                                 f"Type {count} to confirm."})


def _check(actor, action):
    if action not in ACTIONS:
        raise ValidationFailed({"action": "Choose suspend or reactivate."})
    require(actor, action, None)


def _ticked_ids(ids):
    parsed = [record_id(i) for i in ids]
    if None in parsed:
        raise ValidationFailed({"selection": "The selection holds a value that is not an account id. Nothing was "
                                             "changed; tick the accounts again."})
    clean = sorted(set(parsed))
    if not clean:
        raise ValidationFailed({"selection": "Tick at least one account, or choose every account matching "
                                             "the filter."})
    if len(clean) > MAX_TICKED:
        raise ValidationFailed({"selection": f"Tick at most {MAX_TICKED:,} accounts, or choose every account "
                                             "matching the filter."})
    return clean


def preview(actor, action, scope, ids=(), filter_args=None):
    """Describe a bulk change before it is made.

    Args:
        actor: the super admin.
        action: suspend | reactivate.
        scope: "selected" (the ticked ids) or "filter" (every account matching filter_args).
        ids: the ticked account ids (strings or ints, read by parsing.record_id).
        filter_args: the list's query arguments (for scope "filter").

    Returns:
        Preview with the exact count, the first accounts in list order, and the run engine's selection.

    Raises:
        PermissionDenied: the actor may not change account status.
        ValidationFailed: unknown action, nothing ticked, too many ticked, a ticked value that is not an id, or a
            filter that does not parse.
    """
    _check(actor, action)
    threshold = current_app.config["BULK_ASYNC_THRESHOLD"]
    if scope == "filter":
        f = account_search.parse_filters(filter_args or {})
        if f.problems:
            raise ValidationFailed({"selection": "The filter has values that are not valid; fix them on the list "
                                                 "first."})
        count = account_search.count_matching(f)
        return Preview(action, scope, count, account_search.sample(f, SAMPLE_SIZE), count > threshold,
                       {"type": "filter", "filter": f.selection_filter()}, f)
    clean = _ticked_ids(ids)
    found = db.session.execute(select(*account_search.LIST_COLUMNS).where(Account.id.in_(clean))
                               .order_by(Account.name, Account.id)).all()
    return Preview(action, "selected", len(found), found[:SAMPLE_SIZE], len(found) > threshold,
                   {"type": "ids", "ids": [r.id for r in found]})


def _skip_reason(action, status, exempt):
    """Why the run engine would leave this account alone (same words), or None if it would change it."""
    sources = suspension.TRANSITIONS[action][0]
    if status not in sources:
        return f"already {status}"
    if action == "suspend" and exempt:
        return "exempt"
    return None


def apply(actor, action, scope, ids, filter_args, reason_category, reason_note, now=None, confirm_count=None):
    """Suspend or reactivate the selected accounts with one reason.

    Args:
        actor: the super admin.
        action, scope, ids, filter_args: as for preview().
        reason_category: one of suspension.reasons_for(action).
        reason_note: why, up to suspension.NOTE_MAX characters.
        now: the time of the changes (default now).
        confirm_count: the count the admin typed; required when the selection holds more than the clean-up's
            threshold (CLEANUP_CONFIRM_THRESHOLD) accounts, and it must equal their number now.

    Returns:
        Outcome: the accounts changed and the others by reason, with the run that records them; or, for a large
        selection, the run queued (queued=True).

    Raises:
        PermissionDenied, ValidationFailed: as for preview(), a missing/invalid reason, or the typed count
            missing or not the selection's count (nothing is changed or queued).
    """
    _check(actor, action)
    category, note = suspension.validate_reason(reason_category, reason_note, action)
    plan = preview(actor, action, scope, ids, filter_args)
    check_typed_count(plan.count, confirm_count, action)
    if plan.asynchronous:
        run = runs.start_run(actor, "bulk", action, plan.selection, category, note, now=now, total=plan.count)
        return Outcome(action, run_id=run.id, queued=True)
    clause = account_search.selection_clause(plan.selection)
    targets = db.session.execute(select(Account.id, Account.status, Account.exempt).where(clause)
                                 .order_by(Account.id)).all()
    run = runs.start_inline_run(actor, "bulk", action, plan.selection, category, note, len(targets), now=now)
    outcome = Outcome(action, run_id=run.id)
    beat = runs.inline.Heartbeat(run.id)
    try:
        with runs.events_of(run.id):
            for account_id, status, exempt in targets:
                _change_one(actor, action, account_id, status, exempt, category, note, now, outcome)
                beat()
    except Exception as exc:
        db.session.rollback()
        runs.finish_inline_run(run.id, outcome.changed + outcome.skipped, outcome.changed, outcome.skip_reasons,
                               now=now, error=f"Stopped by {type(exc).__name__} after {outcome.changed:,} changes")
        raise
    runs.finish_inline_run(run.id, len(targets), outcome.changed, outcome.skip_reasons, now=now)
    return outcome


def _change_one(actor, action, account_id, status, exempt, category, note, now, outcome):
    """Change one account through the suspension domain (its own transaction), or count why it is left alone."""
    reason = _skip_reason(action, status, exempt)
    if reason is None:
        change = suspension.suspend if action == "suspend" else suspension.reactivate
        try:
            change(actor, account_id, category, note, now=now)
            outcome.changed_ids.append(account_id)
            return
        except (Conflict, InvalidTransition):
            reason = "changed by someone else meanwhile"
        except AccountNotFound:
            reason = "no longer exists"
        except UnpaidInvoices:
            reason = "unpaid invoices (a suspension at the customer's request waits for them)"
        except PermissionDenied as exc:
            reason = exc.message
    outcome.skip_reasons[reason] = outcome.skip_reasons.get(reason, 0) + 1


def progress(actor, run_id):
    """Return a bulk run's progress (see runs.progress).

    Raises:
        PermissionDenied: the actor may not change account status.
        runs.RunNotFound: no such run, or it is not a bulk run.
    """
    require(actor, "suspend", None)
    run_id = record_id(run_id)
    run = db.session.get(SweepRun, run_id) if run_id is not None else None
    if run is None or run.kind != "bulk":
        raise runs.RunNotFound()
    return runs.progress(run_id)


def export(actor, filters):
    """Return the CSV rows (header first) of the accounts matching the filters, read lazily.

    Raises:
        PermissionDenied: the actor may not export accounts.
    """
    require(actor, "export_accounts", None)
    return account_search.export_rows(filters)
