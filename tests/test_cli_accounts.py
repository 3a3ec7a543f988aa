"""`flask account suspend|reactivate`: the same domain functions from the command line."""
import pytest
from sqlalchemy import select

from portal.extensions import db
from portal.models import Account, AuditEvent


def status_of(app, account_id):
    with app.app_context():
        account = db.session.get(Account, account_id)
        events = db.session.scalars(select(AuditEvent).where(AuditEvent.account_id == account_id)
                                    .order_by(AuditEvent.id)).all()
        result = account.status, account.version, [(e.action, e.actor_user_id, e.reason_category, e.reason_note)
                                                    for e in events]
        db.session.remove()
        return result


def number_of(app, account_id):
    with app.app_context():
        number = db.session.get(Account, account_id).number
        db.session.remove()
        return number


def test_suspend_by_number_and_reactivate_by_id(app, runner, world):
    number = number_of(app, world.account)
    result = runner.invoke(args=["account", "suspend", number.lower(), "--reason", "non_payment",
                                 "--note", "Three invoices overdue", "--as", world.admin.email.upper()])
    assert result.exit_code == 0, result.output
    assert f"Account {number} (Blue Harbor Bistro): Active -> Suspended." in result.output
    result = runner.invoke(args=["account", "reactivate", str(world.account), "--reason", "other",
                                 "--note", "Paid by phone", "--as", world.admin2.email])
    assert result.exit_code == 0, result.output
    assert "Suspended -> Active." in result.output
    assert status_of(app, world.account) == ("active", 3, [
        ("suspended", world.admin.id, "non_payment", "Three invoices overdue"),
        ("reactivated", world.admin2.id, "other", "Paid by phone"),
    ])


@pytest.mark.parametrize("args, message", [
    (["suspend", "NOPE", "--reason", "other", "--note", "n"], "No account with number or id 'NOPE'."),
    (["suspend", "{account}", "--reason", "bankruptcy", "--note", "n"], "Choose one of the listed reasons."),
    (["suspend", "{account}", "--reason", "other", "--note", " "], "Write a short note explaining the reason."),
    (["suspend", "{account}", "--reason", "other", "--note", "x" * 501], "Keep the note to 500 characters"),
    (["reactivate", "{account}", "--reason", "other", "--note", "n"], "only a suspended or limited account"),
])
def test_bad_input_is_refused_with_a_clear_message_and_changes_nothing(app, runner, world, args, message):
    before = status_of(app, world.account)
    args = [a.format(account=world.account) for a in args]
    result = runner.invoke(args=["account", *args, "--as", world.admin.email])
    assert result.exit_code == 1 and message in result.output
    assert status_of(app, world.account) == before


@pytest.mark.parametrize("who, message", [("support", "Only a super admin can do this."),
                                          ("manager", "Only a super admin can do this.")])
def test_only_a_super_admin_may_act(app, runner, world, who, message):
    before = status_of(app, world.account)
    result = runner.invoke(args=["account", "suspend", str(world.account), "--reason", "other", "--note", "n",
                                 "--as", getattr(world, who).email])
    assert result.exit_code == 1 and message in result.output
    assert status_of(app, world.account) == before


def test_an_unknown_actor_is_refused(app, runner, world):
    result = runner.invoke(args=["account", "suspend", str(world.account), "--reason", "other", "--note", "n",
                                 "--as", "ghost@example.test"])
    assert result.exit_code == 1 and "No user with email 'ghost@example.test'." in result.output


def test_reason_note_and_actor_are_required(runner, world):
    result = runner.invoke(args=["account", "suspend", str(world.account), "--reason", "other"])
    assert result.exit_code == 2 and "--note" in result.output
