"""The gate: one (state x role x action) table, one function, a message for every refusal."""
from types import SimpleNamespace

import pytest
from flask import Flask

from portal.domain import gate
from portal.domain.errors import PermissionDenied

CONTACT = "accounts-desk@acme.test"


@pytest.fixture(autouse=True)
def config_context():
    """An app context whose configuration names the billing contact (the gate reads it from there)."""
    app = Flask(__name__)
    app.config["BILLING_CONTACT"] = CONTACT
    with app.app_context():
        yield


def account(status="active", reason=None, id=1):
    return SimpleNamespace(id=id, status=status, status_reason=reason)


def person(role, account_id=1, disabled=False):
    return SimpleNamespace(role=role, account_id=account_id, disabled=disabled)


def test_the_table_has_an_answer_for_every_state_role_and_action():
    expected = {(s, r, a) for s in gate.STATES for r in gate.ROLES for a in gate.ACTIONS}
    assert set(gate.TABLE) == expected


def test_every_refusal_in_the_table_carries_a_message_to_show():
    for key, message in gate.TABLE.items():
        assert message is None or message.strip(), key


@pytest.mark.parametrize("status", gate.STATES)
@pytest.mark.parametrize("role", ["account_manager", "tier_manager", "user"])
def test_refusal_messages_are_ready_to_show(status, role):
    for action in gate.ACTIONS:
        decision = gate.may(person(role), action, account(status))
        if not decision:
            assert decision.message and "{" not in decision.message, (status, role, action)


def test_an_active_account_lets_every_customer_role_work():
    for role in ("account_manager", "tier_manager", "user"):
        for action in ("login", "use_portal", "book_reservation", "receive_email"):
            assert gate.may(person(role), action, account("active")), (role, action)


def test_suspended_account_manager_signs_in_sees_invoices_gets_email_but_changes_nothing():
    manager, suspended = person("account_manager"), account("suspended", "non_payment")
    for action in ("login", "use_portal", "view_account", "view_invoices", "receive_email"):
        assert gate.may(manager, action, suspended), action
    for action in ("edit_settings", "edit_profile", "edit_listing", "publish_listing", "send_survey",
                   "send_reminder", "act_on_post", "manage_campaigns"):
        decision = gate.may(manager, action, suspended)
        assert not decision and CONTACT in decision.message, action


@pytest.mark.parametrize("role", ["tier_manager", "user"])
def test_suspended_members_are_refused_sign_in_with_the_members_message(role):
    for action in ("login", "use_portal", "book_reservation", "receive_email"):
        decision = gate.may(person(role), action, account("suspended"))
        assert not decision
        assert decision.message == ("Your account has been temporarily suspended. "
                                    "Please contact your account administrator for details.")


def test_booking_on_a_suspended_account_says_it_is_suspended_and_what_to_do():
    decision = gate.may(person("account_manager"), "book_reservation", account("suspended"))
    assert not decision
    assert "suspended" in decision.message and f"please contact {CONTACT}" in decision.message


def test_a_limited_account_still_signs_in_but_cannot_book():
    for role in ("account_manager", "tier_manager", "user"):
        assert gate.may(person(role), "login", account("limited"))
        refused = gate.may(person(role), "book_reservation", account("limited"))
        assert not refused and "limited" in refused.message


def test_a_cancelled_account_refuses_every_customer_action_and_hides_the_public_profile():
    for role in ("account_manager", "tier_manager", "user"):
        for action in gate.ROLE_ACTIONS[role]:
            assert not gate.may(person(role), action, account("cancelled")), (role, action)
    assert not gate.may(None, "view_public_profile", account("cancelled"))


def test_the_public_profile_stays_visible_while_suspended():
    assert gate.may(None, "view_public_profile", account("suspended"))


def test_automation_pauses_while_suspended_but_posts_keep_importing():
    suspended = account("suspended")
    assert gate.may("system", "import_posts", suspended)
    for action in ("run_campaign", "ingest_data", "send_alert", "send_notification"):
        assert not gate.may("system", action, suspended), action
        assert gate.may("system", action, account("active")), action


def test_only_a_super_admin_suspends_or_reactivates_in_any_state():
    for status in gate.STATES:
        for action in ("suspend", "reactivate"):
            assert gate.may(person("super_admin", None), action, account(status))
            refused = gate.may(person("support", None), action, account(status))
            assert not refused and refused.message == gate.STAFF_ONLY_MESSAGE
            assert not gate.may(person("account_manager"), action, account(status))


def test_staff_keep_working_on_a_suspended_account():
    assert gate.may(person("support", None), "view_account", account("suspended"))
    assert gate.may(person("support", None), "login", None)


def test_customers_cannot_act_on_another_account():
    assert not gate.may(person("account_manager", account_id=2), "view_invoices", account(id=1))
    assert not gate.may(person("user", account_id=None), "book_reservation", None)


def test_a_disabled_sign_in_is_refused():
    assert not gate.may(person("account_manager", disabled=True), "login", account())


def test_an_unknown_state_refuses_instead_of_crashing():
    assert not gate.may(person("user"), "login", account("frozen"))


def test_an_unknown_action_is_a_programming_error():
    with pytest.raises(ValueError):
        gate.may(person("user"), "fly", account())


def test_require_raises_the_refusal_message():
    with pytest.raises(PermissionDenied) as refused:
        gate.require(person("user"), "book_reservation", account("suspended"))
    assert refused.value.message == gate.MEMBER_SUSPENDED
    assert gate.require(person("user"), "book_reservation", account("active"))


@pytest.mark.parametrize("reason, lead", [
    ("non_payment", "Your account has been suspended for non-payment of dues."),
    ("inactivity", "Your account has been suspended because it has been inactive."),
    ("customer_request", "Your account has been suspended at your request."),
    ("policy_violation", "Your account has been suspended for a violation of our terms of service."),
    ("other", "Your account has been suspended."),
    (None, "Your account has been suspended."),
])
def test_the_account_managers_banner_follows_the_reason_and_names_the_configured_contact(reason, lead):
    banner = gate.banner_for(person("account_manager"), account("suspended", reason))
    assert banner == f"{lead} To reactivate your account, please contact {CONTACT}."


def test_no_banner_for_members_staff_or_an_active_account():
    assert gate.banner_for(person("account_manager"), account("active")) is None
    assert gate.banner_for(person("user"), account("suspended", "non_payment")) is None
    assert gate.banner_for(person("super_admin", None), account("suspended", "non_payment")) is None
