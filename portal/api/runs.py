"""Sweep runs: preview the enabled rules (a dry run), start the one-time clean-up with the confirmation count,
list runs, read a run's progress and report, and undo a run. The sweeps pages call the same functions.
"""
from flask_smorest import Blueprint
from marshmallow import RAISE, Schema, fields, validate

from portal.api.auth import SUPER_ADMIN, current_actor, rate_limited, token_required
from portal.api.schemas import Strict, UtcDateTime, text
from portal.domain import sweeps
from portal.domain.gate import REASONS
from portal.domain.parsing import ID_MAX
from portal.domain.runs import BY_RULE
from portal.domain.suspension import REACTIVATION_REASONS

blp = rate_limited(Blueprint("api_runs", __name__, url_prefix="/api/v1/runs",
                             description="Sweep runs: the rules' dry run, clean-ups, progress and reports, undo."))
REASON_CHOICES = ", ".join((BY_RULE, *REASONS))


class PreviewQuerySchema(Strict):
    sample_size = fields.Integer(strict=False, load_default=20, validate=validate.Range(0, 100))


class RuleSchema(Schema):
    id = fields.Integer(allow_none=True)
    enabled = fields.Boolean()
    reason = fields.String(metadata={"description": "The reason it writes on each account (non_payment, ...)"})
    name = fields.String(required=True)
    description = fields.String(required=True)
    inactivity_months = fields.Integer(allow_none=True)
    min_balance_cents = fields.Integer(allow_none=True)
    overdue_days = fields.Integer(allow_none=True)


class SampleSchema(Schema):
    number = fields.String(required=True)
    name = fields.String(required=True)
    status = fields.String(required=True)
    rules = fields.List(fields.String(), required=True, metadata={"description": "The rules it matched"})
    why = fields.List(fields.String(), required=True, metadata={"description": "Why, with its own figures"})


class PreviewSchema(Schema):
    as_of = UtcDateTime(required=True)
    rules = fields.List(fields.Nested(RuleSchema), required=True)
    total_accounts = fields.Integer(required=True)
    matched = fields.Integer(required=True)
    would_change = fields.Integer(required=True, metadata={"description": "Accounts a clean-up would suspend now"})
    per_rule = fields.Dict(keys=fields.String(), values=fields.Integer(), required=True)
    skipped = fields.Dict(keys=fields.String(), values=fields.Integer(), required=True)
    sample = fields.List(fields.Nested(SampleSchema), required=True)
    confirm_threshold = fields.Integer(required=True)
    needs_confirmation = fields.Boolean(required=True, metadata={
        "description": "Above confirm_threshold, a clean-up needs confirm_count equal to would_change"})
    running_run_id = fields.Integer(allow_none=True, required=True)


class CleanupInSchema(Strict):
    reason_category = fields.String(load_default=BY_RULE, validate=validate.Length(max=30),
                                    metadata={"description": "One of: " + REASON_CHOICES})
    reason_note = text(required=True, max_length=2000)
    confirm_count = fields.Integer(strict=True, allow_none=True, validate=validate.Range(0, 2**31 - 1),
                                   metadata={"description": "would_change as previewed (needed above the threshold)"})


class UndoInSchema(Strict):
    reason_category = fields.String(required=True, validate=validate.Length(max=30),
                                    metadata={"description": "One of: " + ", ".join(REACTIVATION_REASONS)})
    reason_note = text(required=True, max_length=2000)


class ProgressSchema(Schema):
    status = fields.String(required=True, validate=validate.OneOf(("queued", "running", "paused", "cancelled", "done",
                                                                   "failed")))
    processed = fields.Integer(required=True, metadata={"description": "accounts looked at so far"})
    total = fields.Integer(allow_none=True, required=True, metadata={"description": "accounts the run will look at"})
    rate = fields.Float(allow_none=True, required=True, metadata={"description": "accounts per second while active"})
    eta_s = fields.Float(allow_none=True, required=True, metadata={"description": "seconds left at that rate"})
    summary = fields.String(required=True, metadata={"description": "where the run stands, in one sentence"})
    matched = fields.Integer(required=True)
    changed = fields.Integer(required=True)
    skipped = fields.Integer(required=True)
    skip_reasons = fields.Dict(keys=fields.String(), values=fields.Integer(), required=True)
    chunks = fields.Integer(required=True)
    chunks_done = fields.Integer(required=True)
    done_fraction = fields.Float(required=True)
    finished = fields.Boolean(required=True)
    error = fields.String(allow_none=True, required=True)
    duration_s = fields.Float(allow_none=True, required=True)


class RunSchema(Schema):
    id = fields.Integer(required=True)
    kind = fields.String(required=True)
    action = fields.String(required=True)
    label = fields.String(required=True)
    trigger = fields.String(required=True)
    triggered_by = fields.String(required=True)
    reason_category = fields.String(allow_none=True, required=True)
    reason_note = fields.String(allow_none=True, required=True)
    as_of = UtcDateTime(allow_none=True, required=True)
    created_at = UtcDateTime(required=True)
    started_at = UtcDateTime(allow_none=True, required=True)
    finished_at = UtcDateTime(allow_none=True, required=True)
    undo_of_run_id = fields.Integer(allow_none=True, required=True)
    undone_by_run_id = fields.Integer(allow_none=True)
    can_undo = fields.Boolean()
    stalled = fields.Boolean()
    rules = fields.List(fields.Nested(RuleSchema))
    progress = fields.Nested(ProgressSchema, required=True)


class RunListSchema(Schema):
    items = fields.List(fields.Nested(RunSchema), required=True)
    next_before = fields.Integer(allow_none=True, required=True)


class RunListQuerySchema(Strict):
    before = fields.Integer(strict=False, validate=validate.Range(1, ID_MAX))
    limit = fields.Integer(strict=False, load_default=25, validate=validate.Range(1, 100))


def _run(run_id):
    """A run with its live progress and report (sweeps.run_details, as the run page reads it)."""
    details = sweeps.run_details(run_id)
    run, progress = details["run"], details["progress"]
    return {"id": run.id, "kind": run.kind, "action": run.action, "label": progress["label"], "trigger": run.trigger,
            "triggered_by": details["trigger_label"], "reason_category": run.reason_category,
            "reason_note": run.reason_note, "as_of": run.as_of, "created_at": run.created_at,
            "started_at": run.started_at, "finished_at": run.finished_at, "undo_of_run_id": run.undo_of_run_id,
            "undone_by_run_id": details["undo"].id if details["undo"] else None, "can_undo": details["can_undo"],
            "stalled": details["stalled"], "rules": details["rules"], "progress": progress}


@blp.route("/preview")
@token_required("runs:read", SUPER_ADMIN)
@blp.arguments(PreviewQuerySchema, location="query", unknown=RAISE)
@blp.response(200, PreviewSchema)
def preview(args):
    """Dry run of the enabled rules: what a clean-up would suspend now, per rule, skipped by reason, a sample."""
    summary = sweeps.preview(sample_size=args["sample_size"])
    summary["per_rule"] = {str(k): v for k, v in summary["per_rule"].items()}
    return summary


@blp.route("")
@token_required("runs:read", SUPER_ADMIN)
@blp.arguments(RunListQuerySchema, location="query", unknown=RAISE)
@blp.response(200, RunListSchema)
def list_runs(args):
    """List runs newest first (follow `next_before`)."""
    rows = sweeps.list_runs(limit=args["limit"] + 1, before_id=args.get("before"))
    more = len(rows) > args["limit"]
    items = [_run(row["run"].id) for row in rows[:args["limit"]]]
    return {"items": items, "next_before": items[-1]["id"] if more else None}


@blp.route("/cleanup", methods=["POST"])
@token_required("runs:write", SUPER_ADMIN)
@blp.arguments(CleanupInSchema)
@blp.response(202, RunSchema)
def start_cleanup(body):
    """Start the one-time clean-up by the enabled rules; above the threshold, confirm_count must match."""
    run = sweeps.start_cleanup(current_actor(), body["reason_category"], body["reason_note"],
                               confirm_count=body.get("confirm_count"))
    return _run(run.id)


@blp.route("/<int:run_id>")
@token_required("runs:read", SUPER_ADMIN)
@blp.response(200, RunSchema)
def get_one(run_id):
    """Read a run: its progress while it works, then its report (counts, skipped by reason, rules)."""
    return _run(run_id)


@blp.route("/<int:run_id>/undo", methods=["POST"])
@token_required("runs:write", SUPER_ADMIN)
@blp.arguments(UndoInSchema)
@blp.response(202, RunSchema)
def undo(body, run_id):
    """Undo a finished run: reactivate what it suspended and still holds (itself a run)."""
    undo_run = sweeps.start_undo(current_actor(), run_id, body["reason_category"], body["reason_note"])
    return _run(undo_run.id)
