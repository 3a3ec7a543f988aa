"""Safety that is consistent (issue 16, item 4): a bulk change above the clean-up's threshold asks for the count to be
typed; a schedule more often than daily is refused with why; two rules never share a name; reactivation and undo
give their own reasons; only destructive changes ask for a confirmation tick."""
import re

import pytest
from sqlalchemy import delete, func, select

from portal.domain import bulk, rules, schedule, suspension, sweeps
from portal.domain.errors import ValidationFailed
from portal.extensions import db
from portal.models import Account, AuditEvent, SuspensionRule, SweepRun, User

THRESHOLD = 2


@pytest.fixture
def app_config():
    return {"CLEANUP_CONFIRM_THRESHOLD": THRESHOLD, "BULK_ASYNC_THRESHOLD": 3}


def _html(response):
    return response.get_data(as_text=True)


def _statuses(app, ids):
    with app.app_context():
        found = dict(db.session.execute(select(Account.id, Account.status).where(Account.id.in_(ids))).all())
        db.session.remove()
        return [found[i] for i in ids]


def _runs(app):
    with app.app_context():
        count = db.session.scalar(select(func.count()).select_from(SweepRun))
        db.session.remove()
        return count


# ---------------------------------------------------------------- bulk: the typed count

def _bulk_data(ids, action="suspend", **extra):
    return {"action": action, "scope": "selected", "ids": [str(i) for i in ids], "reason_category": "inactivity",
            "reason_note": "Dormant for two years", **extra}


@pytest.mark.parametrize("htmx", [False, True])
def test_a_bulk_change_above_the_threshold_asks_for_the_count_to_be_typed(app, auth, make, world, htmx):
    ids = [make.account(name=f"Quiet Shop {i}") for i in range(3)]
    auth.login(world.admin.email)
    confirm = auth.post("/accounts/bulk/confirm", {"action": "suspend", "scope": "selected", "ids": ids}, htmx=htmx)
    html = _html(confirm)
    assert confirm.status_code == 200 and 'data-testid="typed-count"' in html
    assert 'for="bulk-confirm_count">Type 3 to confirm' in html

    missing = auth.post("/accounts/bulk", _bulk_data(ids), htmx=htmx)
    wrong = auth.post("/accounts/bulk", _bulk_data(ids, confirm_count="2"), htmx=htmx)
    for refused, words in ((missing, "3 accounts would be suspended. Type 3 to confirm."),
                           (wrong, "That doesn&#39;t match: 3 accounts would be suspended now.")):
        html = _html(refused)
        assert refused.status_code == 422, html
        error = re.search(r'<p id="bulk-confirm_count-error" class="field-error">([^<]*)</p>', html)
        assert error and words in error.group(1)
        assert 'aria-invalid="true"' in html[html.index('id="bulk-confirm_count"'):][:600]
        assert "Dormant for two years" in html  # what was typed comes back
    assert _statuses(app, ids) == ["active"] * 3 and _runs(app) == 0  # nothing changed, nothing queued

    done = auth.post("/accounts/bulk", _bulk_data(ids, confirm_count="3"), htmx=htmx)
    assert done.status_code in (200, 303), _html(done)
    assert _statuses(app, ids) == ["suspended"] * 3


def test_at_or_below_the_threshold_no_count_is_asked(app, auth, make, world):
    ids = [make.account() for _ in range(THRESHOLD)]
    auth.login(world.admin.email)
    confirm = auth.post("/accounts/bulk/confirm", {"action": "suspend", "scope": "selected", "ids": ids})
    assert 'data-testid="typed-count"' not in _html(confirm)
    assert auth.post("/accounts/bulk", _bulk_data(ids)).status_code == 303
    assert _statuses(app, ids) == ["suspended"] * THRESHOLD


def test_a_large_background_change_is_not_queued_without_the_count(app, ctx, make, world):
    ids = [make.account() for _ in range(5)]  # above BULK_ASYNC_THRESHOLD: it would be a run on the sweeps queue
    admin = db.session.get(User, world.admin.id)
    with pytest.raises(ValidationFailed) as refused:
        bulk.apply(admin, "suspend", "selected", ids, {}, "inactivity", "Dormant", confirm_count="4")
    assert "Type 5 to confirm" in refused.value.field_errors["confirm_count"]
    assert db.session.scalar(select(func.count()).select_from(SweepRun)) == 0
    outcome = bulk.apply(admin, "suspend", "selected", ids, {}, "inactivity", "Dormant", confirm_count="5")
    assert outcome.queued and db.session.scalar(select(func.count()).select_from(SweepRun)) == 1


def test_bulk_typed_count_accepts_thousands_separators(ctx):
    bulk.check_typed_count(1234, "1,234", "reactivate")
    with pytest.raises(ValidationFailed) as refused:
        bulk.check_typed_count(1234, "1,235", "reactivate")
    assert "1,234 accounts would be reactivated now" in refused.value.field_errors["confirm_count"]


# ---------------------------------------------------------------- schedule: at most daily

@pytest.mark.parametrize("cron, why", [
    ("*/15 * * * *", "would run every 15 minutes"),
    ("0 */6 * * *", "would run every 6 hours"),
    ("* * * * *", "would run every 1 minute"),
    ("0 3,15 * * 1", "would run every 12 hours"),
    ("0 3,4 1 * *", "would run 2 times a day, as little as 1 hour apart"),
])
def test_a_schedule_more_often_than_daily_is_refused_with_why(ctx, make, cron, why):
    admin = db.session.get(User, make.user("super_admin").id)
    before = schedule.describe(schedule.get_schedule())
    with pytest.raises(ValidationFailed) as refused:
        schedule.save_schedule(admin, {"enabled": "1", "mode": "cron", "cron": cron})
    message = refused.value.field_errors["cron"]
    assert why in message and "sweeps run at most once a day" in message
    db.session.rollback()
    assert schedule.describe(schedule.get_schedule()) == before


@pytest.mark.parametrize("cron", ["0 3 * * *", "30 2 * * 1", "0 3 1,2 * *", "15 4 1-7 * 1"])
def test_daily_or_rarer_schedules_are_accepted(ctx, make, cron):
    admin = db.session.get(User, make.user("super_admin").id)
    assert schedule.save_schedule(admin, {"enabled": "1", "mode": "cron", "cron": cron}).cron == cron


@pytest.mark.parametrize("htmx", [False, True])
def test_the_schedule_form_says_why_at_the_field(auth, world, htmx):
    auth.login(world.admin.email)
    response = auth.post("/sweeps/schedule", {"enabled": "1", "mode": "cron", "cron": "*/30 * * * *"}, htmx=htmx)
    html = _html(response)
    assert response.status_code == 422
    assert re.search(r'<p id="cron-error" class="field-error">[^<]*would run every 30 minutes; sweeps run at most '
                     r'once a day', html)


# ---------------------------------------------------------------- rules: one name each

def _rule(name, months="12"):
    return {"name": name, "enabled": "1", "inactivity_months": months}


@pytest.fixture
def no_rules(ctx):
    db.session.execute(delete(SuspensionRule))  # the demo's default rules
    db.session.commit()


def test_two_rules_never_share_a_name_whatever_the_case(ctx, make, no_rules):
    admin = db.session.get(User, make.user("super_admin").id)
    first = sweeps.create_rule(admin, _rule("Dormant shops"))
    for name in ("Dormant shops", "  DORMANT SHOPS  ", "dormant shops"):
        with pytest.raises(ValidationFailed) as refused:
            sweeps.create_rule(admin, _rule(name, "24"))
        assert "already exists" in refused.value.field_errors["name"]
    other = sweeps.create_rule(admin, _rule("Unpaid", "6"))
    with pytest.raises(ValidationFailed) as renamed:
        sweeps.update_rule(admin, other.id, _rule("dormant Shops"))
    assert "already exists" in renamed.value.field_errors["name"]
    assert sweeps.update_rule(admin, first.id, _rule("Dormant Shops", "18")).name == "Dormant Shops"  # itself
    names = sorted(db.session.scalars(select(SuspensionRule.name)))
    assert names == ["Dormant Shops", "Unpaid"]
    assert db.session.scalar(select(func.count()).select_from(AuditEvent)
                             .where(AuditEvent.action == "rule_created")) == 2


def test_the_database_refuses_a_name_saved_meanwhile(ctx, make, monkeypatch, no_rules):
    """Two admins adding the same name at once: the unique index decides (the check before it sees neither)."""
    admin = db.session.get(User, make.user("super_admin").id)
    sweeps.create_rule(admin, _rule("Dormant"))
    monkeypatch.setattr(sweeps, "refuse_taken_name", lambda *args: None)  # as if the other save came just after
    with pytest.raises(ValidationFailed) as refused:
        sweeps.create_rule(admin, _rule("DORMANT", "24"))
    assert "already exists" in refused.value.field_errors["name"]
    assert db.session.scalar(select(func.count()).select_from(SuspensionRule)) == 1
    assert rules.refuse_taken_name("other") is None


@pytest.mark.parametrize("htmx", [False, True])
def test_the_rule_form_refuses_a_taken_name_at_the_field(app, auth, world, htmx):
    auth.login(world.admin.email)
    assert auth.post("/rules", _rule("Dormant")).status_code == 303
    response = auth.post("/rules", _rule(" dormant "), htmx=htmx)
    html = _html(response)
    assert response.status_code == 422
    assert re.search(r'<p id="name-error" class="field-error">A rule called “dormant” already exists', html)


# ---------------------------------------------------------------- reasons of their own

@pytest.fixture
def admin(ctx, world):
    return db.session.get(User, world.admin.id)


def test_reactivation_has_its_own_reasons(admin, world):
    suspension.suspend(admin, world.account, "non_payment", "Unpaid since May.")
    for wrong in ("inactivity", "non_payment", "policy_violation"):
        with pytest.raises(ValidationFailed) as refused:
            suspension.reactivate(admin, world.account, wrong, "Back.")
        assert "reasons for a reactivation: paid, resolved, suspended in error" in \
            refused.value.field_errors["reason_category"]
    with pytest.raises(ValidationFailed):
        suspension.suspend(admin, world.other_account, "paid", "Not a suspension reason.")
    for reason in suspension.REACTIVATION_REASONS:
        assert len(reason) <= AuditEvent.__table__.c.reason_category.type.length
    suspension.reactivate(admin, world.account, "suspended_in_error", "Wrong account was suspended.")
    event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "reactivated"))
    assert event.reason_category == "suspended_in_error"


def test_an_undo_and_a_bulk_reactivation_take_reactivation_reasons(admin, world, make):
    ids = [make.account(status="suspended")]
    with pytest.raises(ValidationFailed) as refused:
        bulk.apply(admin, "reactivate", "selected", ids, {}, "inactivity", "Back")
    assert "reactivation" in refused.value.field_errors["reason_category"]
    assert bulk.apply(admin, "reactivate", "selected", ids, {}, "paid", "Paid by phone").changed == 1
    with pytest.raises(ValidationFailed):
        bulk.apply(admin, "suspend", "selected", ids, {}, "resolved", "Not a suspension reason")
    db.session.add(SuspensionRule(name="Inactive", inactivity_months=1, enabled=True))
    db.session.commit()
    run = sweeps.runs.start_run(admin, "cleanup", "suspend", {"type": "ids", "ids": ids}, "inactivity", "Dormant",
                                enqueue=False)
    sweeps.runs.process_run(run.id, worker_name="test", poll=0)
    with pytest.raises(ValidationFailed) as undo_refused:
        sweeps.start_undo(admin, run.id, "non_payment", "Undo")
    assert "reactivation" in undo_refused.value.field_errors["reason_category"]


def test_the_status_dialog_offers_the_actions_reasons_and_a_tick_only_to_suspend(app, auth, world, make):
    suspended = make.account(status="suspended", name="Paused Bakery")
    auth.login(world.admin.email)
    reactivate = _html(auth.client.get(f"/accounts/{suspended}/status-dialog"))
    options = re.findall(r'<option value="([a-z_]+)"', reactivate)
    assert options == list(suspension.REACTIVATION_REASONS)
    assert 'name="confirm"' not in reactivate
    suspend = _html(auth.client.get(f"/accounts/{world.account}/status-dialog"))
    assert re.findall(r'<option value="([a-z_]+)"', suspend) == list(suspension.REASONS)
    assert 'name="confirm"' in suspend

    data = {"reason_category": "paid", "reason_note": "Paid in full.", "version": "1"}
    assert auth.post(f"/accounts/{suspended}/reactivate", data).status_code == 303  # no tick needed
    assert _statuses(app, [suspended]) == ["active"]
    refused = auth.post(f"/accounts/{world.account}/suspend",
                        {"reason_category": "non_payment", "reason_note": "Unpaid.", "version": "1"}, htmx=True)
    assert refused.status_code == 422 and 'id="confirm-error"' in _html(refused)
    assert _statuses(app, [world.account]) == ["active"]


def test_a_limited_account_offers_both_sets_and_checks_the_one_of_the_button(app, auth, world, make):
    limited = make.account(status="limited", name="Limited Deli")
    auth.login(world.admin.email)
    html = _html(auth.client.get(f"/accounts/{limited}/status-dialog"))
    assert '<optgroup label="To suspend">' in html and '<optgroup label="To reactivate">' in html
    wrong = auth.post(f"/accounts/{limited}/reactivate",
                      {"reason_category": "inactivity", "reason_note": "Back.", "version": "1"}, htmx=True)
    assert wrong.status_code == 422 and 'id="reason_category-error"' in _html(wrong)
    assert auth.post(f"/accounts/{limited}/reactivate",
                     {"reason_category": "resolved", "reason_note": "Back.", "version": "1"}).status_code == 303


def test_the_undo_form_offers_reactivation_reasons(app, auth, world, make):
    with app.app_context():
        admin = db.session.get(User, world.admin.id)
        run = sweeps.runs.start_run(admin, "cleanup", "suspend", {"type": "ids", "ids": [make.account()]},
                                    "inactivity", "Dormant", enqueue=False)
        sweeps.runs.process_run(run.id, worker_name="test", poll=0)
        run_id = run.id
        db.session.remove()
    auth.login(world.admin.email)
    html = _html(auth.client.get(f"/sweeps/runs/{run_id}"))
    form = html[html.index('id="undo-reason_category"'):]
    assert re.findall(r'<option value="([a-z_]+)"', form[:form.index("</select>")]) == \
        list(suspension.REACTIVATION_REASONS)


def test_the_api_and_the_command_line_take_reactivation_reasons(app, client, runner, world):
    from tests.api_support import Api, make_token, number_of, problem

    api = Api(client, make_token(app, world.admin.id))
    number = number_of(app, world.account)
    assert api.post(f"/api/v1/accounts/{number}/suspend",
                    {"reason_category": "non_payment", "reason_note": "Unpaid."}).status_code == 200
    refused = problem(api.post(f"/api/v1/accounts/{number}/reactivate",
                               {"reason_category": "non_payment", "reason_note": "Back."}), 422, "validation")
    assert "reactivation" in refused["errors"]["reason_category"]
    assert api.post(f"/api/v1/accounts/{number}/reactivate",
                    {"reason_category": "paid", "reason_note": "Paid."}).status_code == 200

    suspend = runner.invoke(args=["account", "suspend", number, "--reason", "inactivity", "--note", "Dormant",
                                  "--as", world.admin.email])
    assert suspend.exit_code == 0, suspend.output
    wrong = runner.invoke(args=["account", "reactivate", number, "--reason", "inactivity", "--note", "Back",
                                "--as", world.admin.email])
    assert wrong.exit_code != 0 and "reasons for a reactivation" in wrong.output
    right = runner.invoke(args=["account", "reactivate", number, "--reason", "resolved", "--note", "Back",
                                "--as", world.admin.email])
    assert right.exit_code == 0, right.output
    assert "paid, resolved, suspended_in_error" in runner.invoke(args=["account", "reactivate", "--help"]).output
    assert "paid|resolved|suspended_in_error" in runner.invoke(args=["sweep", "undo", "--help"]).output
