"""Two admins acting on one rule at once: a rule deleted meanwhile refuses the change cleanly (never a 500)."""
import pytest
from sqlalchemy import delete, func, select

from portal.domain import sweeps
from portal.extensions import db
from portal.models import AuditEvent, SuspensionRule, User

VALID = {"name": "Dormant", "enabled": "1", "inactivity_months": "12", "min_balance": "", "overdue_days": ""}


@pytest.fixture
def app_config():
    return {"LOGIN_RATE_LIMIT": "1000 per minute"}


def delete_elsewhere(rule_id):
    """Delete the rule on a connection of its own, as another admin's request would."""
    with db.engine.begin() as other:
        other.execute(delete(SuspensionRule).where(SuspensionRule.id == rule_id))


def audit_count():
    return db.session.scalar(select(func.count()).select_from(AuditEvent))


@pytest.mark.parametrize("change", ["enable", "update", "delete"])
def test_a_rule_deleted_by_another_admin_first_refuses_the_change(ctx, make, change):
    admin = db.session.get(User, make.user("super_admin").id)
    rule_id = sweeps.create_rule(admin, VALID).id
    db.session.commit()
    delete_elsewhere(rule_id)  # the other admin's delete commits first; this admin's page still shows the rule
    events = audit_count()
    with pytest.raises(sweeps.RuleNotFound) as refused:
        if change == "enable":
            sweeps.set_rule_enabled(admin, rule_id, False)
        elif change == "update":
            sweeps.update_rule(admin, rule_id, dict(VALID, name="Renamed"))
        else:
            sweeps.delete_rule(admin, rule_id)
    assert "someone deleted it" in refused.value.message
    assert audit_count() == events  # nothing half-written


def test_the_saved_rule_is_readable_after_its_commit_even_if_deleted_right_after(ctx, make):
    admin = db.session.get(User, make.user("super_admin").id)
    rule = sweeps.create_rule(admin, VALID)
    saved = sweeps.set_rule_enabled(admin, rule.id, False)
    delete_elsewhere(saved.id)
    assert (saved.name, saved.enabled) == ("Dormant", False)  # what the view's flash message reads
    renamed = sweeps.create_rule(admin, dict(VALID, name="Second"))
    updated = sweeps.update_rule(admin, renamed.id, dict(VALID, name="Second, renamed"))
    delete_elsewhere(updated.id)
    assert updated.name == "Second, renamed"


def test_enabling_a_deleted_rule_over_http_is_a_404_not_a_500(app, client, auth, make):
    with app.app_context():
        admin = db.session.get(User, make.user("super_admin").id)
        email, rule_id = admin.email, sweeps.create_rule(admin, VALID).id
    auth.login(email)
    page = "/rules"
    with app.app_context():
        delete_elsewhere(rule_id)
    response = auth.post(f"/rules/{rule_id}/enabled", {"enabled": "1"}, page=page)
    assert response.status_code == 404 and "someone deleted it" in response.get_data(as_text=True)
