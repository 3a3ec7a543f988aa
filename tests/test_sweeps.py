"""Sweeps through the domain: preview, clean-up with confirmation and one-at-a-time, report, undo, exemptions."""
from datetime import date, datetime

import pytest
from sqlalchemy import delete, func, insert, select
from sqlalchemy.exc import IntegrityError

from portal.domain import exemptions, runs, suspension, sweeps
from portal.domain.runs import processing as run_processing
from portal.domain.errors import InvalidTransition, PermissionDenied, ValidationFailed
from portal.domain.gate import may
from portal.extensions import db
from portal.models import Account, AuditEvent, OutboxEmail, SuspensionRule, SweepRun, User

AS_OF = datetime(2026, 11, 1, 12, 0)
OLD, RECENT = datetime(2023, 1, 1), datetime(2026, 10, 1)


@pytest.fixture
def town(app, make):
    """Default rules; four inactive accounts (one exempt, one suspended), one owing, two fine; staff."""
    ids = {}
    for i in range(2):
        ids[f"inactive{i}"] = make.account(name=f"Dormant {i}", created_at=OLD, last_activity_at=OLD)
    ids["exempt"] = make.account(name="Partner", created_at=OLD, last_activity_at=OLD, exempt=True,
                                 exempt_reason="Key partner")
    ids["suspended"] = make.account(name="Already off", status="suspended", created_at=OLD, last_activity_at=OLD)
    ids["owing"] = make.account(name="Owing Bistro", created_at=OLD, last_activity_at=RECENT)
    make.invoice(ids["owing"], amount_cents=4900, due_date=date(2026, 8, 1))
    ids["small_debt"] = make.account(name="Small debt", created_at=OLD, last_activity_at=RECENT)
    make.invoice(ids["small_debt"], amount_cents=400, due_date=date(2026, 8, 1))
    ids["fine"] = make.account(name="Busy Cafe", created_at=OLD, last_activity_at=RECENT)
    ids["dormant_manager"] = make.user("account_manager", ids["inactive0"], name="Dora Manager")
    ids["owing_manager"] = make.user("account_manager", ids["owing"], name="Owen Manager")
    ids["admin"] = make.user("super_admin")
    ids["support"] = make.user("support")
    with app.app_context():
        db.session.execute(delete(SuspensionRule))
        for rule in sweeps.DEFAULT_RULES:
            db.session.add(SuspensionRule(enabled=True, **rule))
        db.session.commit()
    return ids


def _user(ids, key):
    return db.session.get(User, ids[key].id)


def _cleanup(ids, **kw):
    return sweeps.start_cleanup(_user(ids, "admin"), kw.pop("reason", sweeps.BY_RULE),
                                kw.pop("note", "Yearly clean-up"), as_of=AS_OF, **kw)


def _count(model, *where):
    return db.session.scalar(select(func.count()).select_from(model).where(*where))


# ---------------------------------------------------------------- preview

def test_preview_counts_per_rule_skips_and_samples_without_changing_anything(ctx, town):
    events_before = _count(AuditEvent)
    result = sweeps.preview(as_of=AS_OF)
    assert result["would_change"] == 3
    assert result["matched"] == 5 and result["total_accounts"] == 7
    by_name = {r["name"]: result["per_rule"][r["id"]] for r in result["rules"]}
    assert by_name == {"Inactive 12+ months": 2, "Balance over $5 unpaid 30+ days": 1}
    assert result["skipped"] == {"exempt": 1, "already suspended": 1}
    sample = {row["id"]: row for row in result["sample"]}
    assert set(sample) == {town["inactive0"], town["inactive1"], town["owing"]}
    assert sample[town["owing"]]["why"] == [
        "Balance over $5 unpaid 30+ days: balance $49.00, oldest unpaid invoice due 2026-08-01 (92 days past due)"]
    assert sample[town["inactive0"]]["why"] == ["Inactive 12+ months: last reservation 2023-01-01 (46 months ago)"]
    assert _count(AuditEvent) == events_before and _count(SweepRun) == 0
    assert db.session.get(Account, town["inactive0"]).status == "active"


def test_the_sample_is_at_most_twenty(ctx, make, town):
    for i in range(25):
        make.account(name=f"Sleepy {i}", created_at=OLD, last_activity_at=OLD)
    result = sweeps.preview(as_of=AS_OF)
    assert result["would_change"] == 28 and len(result["sample"]) == 20


def test_preview_with_no_enabled_rule_matches_nothing(ctx, town):
    for rule in sweeps.list_rules():
        sweeps.set_rule_enabled(_user(town, "admin"), rule.id, False)
    result = sweeps.preview(as_of=AS_OF)
    assert (result["would_change"], result["matched"], result["sample"]) == (0, 0, [])


# ---------------------------------------------------------------- starting a clean-up

@pytest.mark.parametrize("app_config", [{"CLEANUP_CONFIRM_THRESHOLD": 2}])
@pytest.mark.parametrize("typed, message", [(None, "Type 3 to confirm"), ("", "Type 3 to confirm"),
                                            ("4", "doesn't match"), ("three", "doesn't match")])
def test_above_the_threshold_the_count_must_be_typed(ctx, town, typed, message):
    with pytest.raises(ValidationFailed) as refused:
        _cleanup(town, confirm_count=typed)
    assert message in refused.value.field_errors["confirm_count"]
    db.session.rollback()
    assert _count(SweepRun) == 0


@pytest.mark.parametrize("app_config", [{"CLEANUP_CONFIRM_THRESHOLD": 2}])
def test_the_right_count_starts_the_run(ctx, town):
    run = _cleanup(town, confirm_count="3")
    assert (run.kind, run.status, run.trigger, run.triggered_by_id) == ("cleanup", "queued", "user", town["admin"].id)
    assert [r["name"] for r in run.rules_snapshot] == ["Inactive 12+ months", "Balance over $5 unpaid 30+ days"]


def test_below_the_threshold_no_confirmation_is_needed(ctx, town):
    assert sweeps.preview(as_of=AS_OF)["needs_confirmation"] is False
    assert _cleanup(town).status == "queued"


@pytest.mark.parametrize("changes, field", [({"reason": "because"}, "reason_category"), ({"note": " "}, "reason_note")])
def test_a_clean_up_needs_a_reason(ctx, town, changes, field):
    with pytest.raises(ValidationFailed) as refused:
        _cleanup(town, **changes)
    assert field in refused.value.field_errors
    db.session.rollback()
    assert _count(SweepRun) == 0


def test_a_clean_up_needs_an_enabled_rule(ctx, town):
    db.session.execute(delete(SuspensionRule))
    db.session.commit()
    with pytest.raises(ValidationFailed) as refused:
        _cleanup(town)
    assert "rules" in refused.value.field_errors
    assert _count(SweepRun) == 0


def test_only_a_super_admin_starts_a_clean_up(ctx, town):
    with pytest.raises(PermissionDenied):
        sweeps.start_cleanup(_user(town, "support"), sweeps.BY_RULE, "No", as_of=AS_OF)
    assert _count(SweepRun) == 0


def test_a_second_clean_up_is_refused_while_one_runs(ctx, town):
    first = _cleanup(town)
    with pytest.raises(runs.RunInProgress) as refused:
        _cleanup(town)
    assert f"#{first.id}" in refused.value.message
    db.session.rollback()
    assert _count(SweepRun) == 1
    runs.process_run(first.id, worker_name="test", poll=0)
    assert _cleanup(town).id != first.id  # allowed again once the first has finished


def test_the_database_refuses_a_second_exclusive_run(ctx, town):
    """Even if two admins pass the check at the same moment, the unique lock_key lets one in."""
    _cleanup(town)
    with pytest.raises(IntegrityError):
        db.session.execute(insert(SweepRun).values(kind="cleanup", action="suspend", status="queued",
                                                   lock_key=runs.LOCK, created_at=AS_OF, as_of=AS_OF,
                                                   trigger="user", chunk_size=10, matched=0, changed=0, skipped=0,
                                                   dry_run=False))
    db.session.rollback()


# ---------------------------------------------------------------- the run and its report

def test_clean_up_suspends_by_rule_with_audit_email_and_report(ctx, town):
    run = _cleanup(town)
    report = runs.process_run(run.id, worker_name="test", poll=0)
    assert report["status"] == "done"
    assert (report["matched"], report["changed"], report["skipped"]) == (5, 3, 2)
    assert report["skip_reasons"] == {"exempt": 1, "already suspended": 1}
    assert report["duration_s"] is not None and report["done_fraction"] == 1.0
    status = {k: db.session.get(Account, town[k]) for k in ("inactive0", "inactive1", "owing", "exempt", "fine",
                                                           "small_debt", "suspended")}
    assert {k: a.status for k, a in status.items()} == {
        "inactive0": "suspended", "inactive1": "suspended", "owing": "suspended", "exempt": "active",
        "fine": "active", "small_debt": "active", "suspended": "suspended"}
    assert status["owing"].status_reason == "non_payment" and status["inactive0"].status_reason == "inactivity"
    assert status["owing"].suspended_by_run_id == run.id and status["suspended"].suspended_by_run_id is None
    events = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "suspended")).all()
    assert sorted(e.account_id for e in events) == sorted([town["inactive0"], town["inactive1"], town["owing"]])
    assert {(e.actor_run_id, e.actor_label, e.actor_user_id) for e in events} == {
        (run.id, f"Clean-up run #{run.id}", town["admin"].id)}
    emails = {e.to_addr: e for e in db.session.scalars(select(OutboxEmail))}
    assert set(emails) == {town["dormant_manager"].email, town["owing_manager"].email}
    assert "non-payment" in emails[town["owing_manager"].email].body
    assert "inactive" in emails[town["dormant_manager"].email].body
    assert "Dora Manager" in emails[town["dormant_manager"].email].body
    assert _count(AuditEvent, AuditEvent.action == "run_cleanup_finished") == 1


def test_staff_are_never_swept(ctx, town):
    before = {key: (_user(town, key).session_token, _user(town, key).disabled) for key in ("admin", "support")}
    runs.process_run(_cleanup(town).id, worker_name="test", poll=0)
    db.session.expire_all()
    for key in ("admin", "support"):
        staff = _user(town, key)
        assert (staff.session_token, staff.disabled) == before[key]
        assert may(staff, "login", None)


def test_an_account_exempted_before_its_chunk_is_left_alone(ctx, town):
    run = _cleanup(town)
    exemptions.set_exempt(_user(town, "admin"), town["inactive1"], "Talking to them")
    report = runs.process_run(run.id, worker_name="test", poll=0)
    assert db.session.get(Account, town["inactive1"]).status == "active"
    assert report["skip_reasons"]["exempt"] == 2


def test_history_names_who_or_what_started_each_run(ctx, town):
    cleanup = _cleanup(town)
    runs.process_run(cleanup.id, worker_name="test", poll=0)
    recurring = sweeps.start_recurring(None, "monthly:2026-12", now=datetime(2026, 12, 1, 3, 0))
    rows = sweeps.list_runs()
    assert [row["run"].id for row in rows] == [recurring.id, cleanup.id]
    assert [row["trigger_label"] for row in rows] == ["Schedule (2026-12)", _user(town, "admin").name]
    details = sweeps.run_details(cleanup.id)
    assert details["progress"]["changed"] == 3 and details["can_undo"] is True
    assert [r["description"] for r in details["rules"]] == [
        "no reservation for 12+ months", "balance over $5.00 and oldest unpaid invoice 30+ days past due"]


# ---------------------------------------------------------------- undo

def test_undo_reactivates_what_the_run_still_holds(ctx, town):
    admin = _user(town, "admin")
    run = _cleanup(town)
    runs.process_run(run.id, worker_name="test", poll=0)
    suspension.reactivate(admin, town["owing"], "paid", "Paid by phone")
    undo = sweeps.start_undo(admin, run.id, "other", "Rules were too strict")
    report = runs.process_run(undo.id, worker_name="test", poll=0)
    assert (report["changed"], report["kind"]) == (2, "undo")
    assert {db.session.get(Account, town[k]).status for k in ("inactive0", "inactive1", "owing")} == {"active"}
    assert db.session.get(Account, town["suspended"]).status == "suspended"
    events = db.session.scalars(select(AuditEvent).where(AuditEvent.actor_run_id == undo.id,
                                                         AuditEvent.action == "reactivated")).all()
    assert sorted(e.account_id for e in events) == sorted([town["inactive0"], town["inactive1"]])
    assert {e.reason_note for e in events} == {"Rules were too strict"}
    with pytest.raises(InvalidTransition, match="already been undone"):
        sweeps.start_undo(admin, run.id, "other", "Again")


def test_undo_is_refused_while_the_run_is_in_progress_and_needs_a_reason(ctx, town):
    admin = _user(town, "admin")
    run = _cleanup(town)
    with pytest.raises(InvalidTransition, match="still in progress"):
        sweeps.start_undo(admin, run.id, "other", "Too early")
    runs.process_run(run.id, worker_name="test", poll=0)
    with pytest.raises(ValidationFailed):
        sweeps.start_undo(admin, run.id, "", "")
    db.session.rollback()
    assert _count(SweepRun, SweepRun.kind == "undo") == 0


# ---------------------------------------------------------------- a failed run

def test_a_failed_run_shows_why_releases_the_lock_and_resumes(ctx, town, monkeypatch):
    run = _cleanup(town)
    calls = []

    def broken(*args):
        calls.append(args)
        raise RuntimeError("disk full")

    monkeypatch.setattr(run_processing, "_process_chunk", broken)
    with pytest.raises(RuntimeError):
        runs.process_run(run.id, worker_name="test", poll=0)
    failed = runs.progress(run.id)
    assert failed["status"] == "failed" and "disk full" in failed["error"]
    assert runs.running_exclusive_run() is None
    monkeypatch.undo()
    runs.resume_run(_user(town, "admin"), run.id)
    assert runs.running_exclusive_run() == run.id
    report = runs.process_run(run.id, worker_name="test", poll=0)
    assert (report["status"], report["changed"], report["error"]) == ("done", 3, None)
    assert _count(AuditEvent, AuditEvent.action == "run_resumed") == 1


def test_resume_is_refused_while_another_run_holds_the_lock(ctx, town):
    run = _cleanup(town)
    run_processing._mark_failed(run.id, RuntimeError("worker lost"))
    other = _cleanup(town)
    with pytest.raises(runs.RunInProgress):
        runs.resume_run(_user(town, "admin"), run.id)
    db.session.rollback()
    assert runs.progress(run.id)["status"] == "failed" and runs.running_exclusive_run() == other.id


# ---------------------------------------------------------------- exemptions

def test_exempt_and_clear_with_a_reason_are_audited(ctx, town):
    admin = _user(town, "admin")
    account = exemptions.set_exempt(admin, town["fine"], "Strategic customer")
    assert (account.exempt, account.exempt_reason) == (True, "Strategic customer")
    with pytest.raises(InvalidTransition):
        exemptions.set_exempt(admin, town["fine"], "Again")
    account = exemptions.clear_exempt(admin, town["fine"], "Contract ended")
    assert (account.exempt, account.exempt_reason) == (False, None)
    events = db.session.scalars(select(AuditEvent).where(AuditEvent.account_id == town["fine"])
                                .order_by(AuditEvent.id)).all()
    assert [(e.action, e.reason_note, e.actor_user_id) for e in events] == [
        ("exempted", "Strategic customer", admin.id), ("exemption_cleared", "Contract ended", admin.id)]


@pytest.mark.parametrize("reason", ["", "   ", "x" * 501])
def test_exempting_needs_a_reason(ctx, town, reason):
    with pytest.raises(ValidationFailed) as refused:
        exemptions.set_exempt(_user(town, "admin"), town["fine"], reason)
    assert "exempt_reason" in refused.value.field_errors
    db.session.rollback()
    assert db.session.get(Account, town["fine"]).exempt is False


def test_support_cannot_exempt(ctx, town):
    with pytest.raises(PermissionDenied):
        exemptions.set_exempt(_user(town, "support"), town["fine"], "Please")
    assert db.session.get(Account, town["fine"]).exempt is False
