"""The one-account page and the suspend/reactivate dialog, with and without htmx."""
import json
import re

import pytest
from sqlalchemy import func, select

from portal.domain import suspension
from portal.extensions import db
from portal.models import Account, AuditEvent, OutboxEmail, User

NOTE = "Card declined three times."


@pytest.fixture
def app_config():
    return {"LOGIN_RATE_LIMIT": "1000 per minute"}


def account_state(app, account_id):
    with app.app_context():
        account = db.session.get(Account, account_id)
        events = db.session.scalar(select(func.count()).select_from(AuditEvent))
        emails = db.session.scalar(select(func.count()).select_from(OutboxEmail))
        result = (account.status, account.version, account.status_note, events, emails)
        db.session.remove()
        return result


def set_status(app, world, action, account_id=None):
    with app.app_context():
        admin = db.session.get(User, world.admin.id)
        getattr(suspension, action)(admin, account_id or world.account, "other", "set up by the test")
        db.session.remove()


def form(version=1, **fields):
    data = {"reason_category": "non_payment", "reason_note": NOTE, "version": str(version), "confirm": "1"}
    data.update(fields)
    return {k: v for k, v in data.items() if v is not None}


# ---------------------------------------------------------------- the account page

def test_the_account_page_shows_status_people_invoices_and_timeline(app, world, make, auth, client):
    make.invoice(world.account, amount_cents=4900, seq=1)
    set_status(app, world, "suspend")
    set_status(app, world, "reactivate")
    auth.login(world.support.email)
    page = client.get(f"/accounts/{world.account}").get_data(as_text=True)
    assert 'data-testid="status-badge">Active<' in page
    for name in ("Mia Manager", "Theo Tier", "Uma User"):
        assert name in page
    assert "$49.00" in page
    assert page.index('data-action="reactivated"') < page.index('data-action="suspended"')  # newest first
    assert "status-action-" not in page  # support cannot change the status


def test_a_super_admin_gets_the_action_that_fits_the_state(app, world, make, auth, client):
    auth.login(world.admin.email)
    assert "Suspend account…" in client.get(f"/accounts/{world.account}").get_data(as_text=True)
    set_status(app, world, "suspend")
    page = client.get(f"/accounts/{world.account}").get_data(as_text=True)
    assert "Reactivate account…" in page and "Refused while suspended" in page
    assert "Suspend or reactivate…" in client.get(f"/accounts/{make.account(status='limited')}").get_data(as_text=True)
    assert "status-action-" not in client.get(f"/accounts/{make.account(status='cancelled')}").get_data(as_text=True)


def test_the_people_list_says_why_the_gate_refuses_a_sign_in(world, make, auth, client):
    make.user("user", world.account, name="Dora Disabled", disabled=True)
    auth.login(world.support.email)
    page = client.get(f"/accounts/{world.account}").get_data(as_text=True)
    row = page[page.index("Dora Disabled"):].split("</tr>")[0]
    assert "Refused: sign-in disabled" in row and "Refused while" not in page  # the account itself is active
    assert page[page.index("Uma User"):].split("</tr>")[0].count("Allowed") == 1


@pytest.mark.parametrize("part, marker", [("status-card", "account-status-"), ("people", "account-people-"),
                                          ("timeline", "account-timeline-")])
def test_each_part_refetches_itself_when_the_account_status_changes(world, auth, client, part, marker):
    auth.login(world.admin.email)
    fragment = client.get(f"/accounts/{world.account}/{part}", headers={"HX-Request": "true"})
    body = fragment.get_data(as_text=True)
    assert fragment.status_code == 200 and "<html" not in body and "HX-Request" in fragment.headers["Vary"]
    assert body.lstrip().startswith(f'<section class="card" id="{marker}{world.account}"')
    assert f'hx-trigger="account-status-changed-{world.account} from:body"' in body  # relayed by portal.js


# ---------------------------------------------------------------- the dialog

def test_the_dialog_fragment_holds_the_suspend_form_with_version_and_next(world, auth, client):
    auth.login(world.admin.email)
    response = client.get(f"/accounts/{world.account}/status-dialog?next=/accounts%3Fq%3Dblue",
                          headers={"HX-Request": "true"})
    body = response.get_data(as_text=True)
    assert response.status_code == 200 and "<html" not in body
    assert body.lstrip().startswith('<dialog id="status-dialog"') and "data-autoopen" in body
    assert 'name="version" value="1"' in body and 'name="next" value="/accounts?q=blue"' in body
    assert f'hx-post="/accounts/{world.account}/suspend"' in body and "/reactivate" not in body
    assert 'name="reason_category"' in body and 'name="reason_note"' in body and 'name="confirm"' in body


@pytest.mark.parametrize("next_url", ["https://evil.example/", "//evil.example/", "javascript:alert(1)"])
def test_only_local_next_urls_are_kept(world, auth, client, next_url):
    auth.login(world.admin.email)
    body = client.get(f"/accounts/{world.account}/status-dialog", query_string={"next": next_url},
                      headers={"HX-Request": "true"}).get_data(as_text=True)
    assert 'name="next"' not in body


def test_the_dialog_offers_reactivation_for_suspended_both_for_limited_none_for_cancelled(app, world, make, auth,
                                                                                         client):
    auth.login(world.admin.email)
    set_status(app, world, "suspend")

    def dialog(account_id):
        return client.get(f"/accounts/{account_id}/status-dialog", headers={"HX-Request": "true"}).get_data(as_text=True)

    suspended = dialog(world.account)
    assert "/reactivate" in suspended and "/suspend\"" not in suspended and 'name="version" value="2"' in suspended
    limited = dialog(make.account(status="limited"))
    assert "Suspend account</button>" in limited and "Reactivate account</button>" in limited
    cancelled = dialog(make.account(status="cancelled"))
    assert "can't be suspended or reactivated" in cancelled and "<button" not in cancelled


def test_without_htmx_the_dialog_is_a_full_page_with_a_plain_form(world, auth, client):
    auth.login(world.admin.email)
    body = client.get(f"/accounts/{world.account}/status-dialog").get_data(as_text=True)
    assert "<html" in body and 'id="status-dialog"' in body and " open" in body
    assert "hx-post" not in body and f'action="/accounts/{world.account}/suspend"' in body


@pytest.mark.parametrize("who", ["support", "manager", "member"])
def test_only_a_super_admin_opens_the_dialog(world, auth, client, who):
    auth.login(getattr(world, who).email)
    assert client.get(f"/accounts/{world.account}/status-dialog").status_code == 403


# ---------------------------------------------------------------- posting it

def test_suspending_with_htmx_closes_the_dialog_and_announces_the_change(app, world, auth):
    auth.login(world.admin.email)
    response = auth.post(f"/accounts/{world.account}/suspend", form(), htmx=True)
    assert response.status_code == 200
    assert json.loads(response.headers["HX-Trigger"]) == {
        "account-status-changed": {"id": world.account, "status": "suspended"},
        "account-suspended": {"id": world.account},
    }
    assert response.headers["HX-Retarget"] == "#status-dialog" and response.headers["HX-Reswap"] == "outerHTML"
    body = response.get_data(as_text=True)
    assert 'hx-swap-oob="true"' in body and "is now suspended" in body
    assert account_state(app, world.account)[:3] == ("suspended", 2, NOTE)


def test_reactivating_with_htmx_announces_account_reactivated(app, world, auth):
    set_status(app, world, "suspend")
    auth.login(world.admin.email)
    response = auth.post(f"/accounts/{world.account}/reactivate", form(version=2, reason_category="other"), htmx=True)
    trigger = json.loads(response.headers["HX-Trigger"])
    assert trigger["account-status-changed"] == {"id": world.account, "status": "active"}
    assert trigger["account-reactivated"] == {"id": world.account}
    assert account_state(app, world.account)[0] == "active"


def test_without_htmx_a_post_flashes_and_redirects_to_next_or_the_account(app, world, auth, client):
    auth.login(world.admin.email)
    response = auth.post(f"/accounts/{world.account}/suspend", form(next="/accounts"))
    assert response.status_code == 303 and response.headers["Location"] == "/accounts"
    assert "is now suspended" in client.get("/accounts").get_data(as_text=True)
    response = auth.post(f"/accounts/{world.account}/reactivate", form(version=2, next="https://evil.example/",
                                                                       reason_category="paid"))
    assert response.status_code == 303 and response.headers["Location"] == f"/accounts/{world.account}"
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "is now active" in page and 'data-action="reactivated"' in page


@pytest.mark.parametrize("fields, field, message", [
    ({"reason_category": ""}, "reason_category", "Choose a reason."),
    ({"reason_category": "bankruptcy"}, "reason_category", "Choose one of the listed reasons."),
    ({"reason_note": "   "}, "reason_note", "Write a short note explaining the reason."),
    ({"reason_note": "x" * 501}, "reason_note", "Keep the note to 500 characters (it has 501)."),
    ({"confirm": None}, "confirm", "Tick the box to confirm this change."),
])
@pytest.mark.parametrize("htmx", [True, False])
def test_bad_input_re_renders_the_form_with_the_message_next_to_the_field(app, world, auth, fields, field, message,
                                                                         htmx):
    auth.login(world.admin.email)
    before = account_state(app, world.account)
    response = auth.post(f"/accounts/{world.account}/suspend", form(**fields), htmx=htmx)
    body = response.get_data(as_text=True)
    assert response.status_code == 422
    assert ("<html" in body) is not htmx
    if htmx:
        assert body.lstrip().startswith('<form id="status-form"')
    assert f'<p id="{field}-error" class="field-error">{message}</p>' in body
    assert re.search(rf'id="{field}"[^>]*aria-invalid="true"', body)  # [^>] spans the attribute lines
    assert re.search(rf'id="{field}"[^>]*aria-describedby="[^"]*{field}-error', body)
    if field != "reason_note":
        assert NOTE in body  # what was typed is kept
    assert account_state(app, world.account) == before


@pytest.mark.parametrize("htmx", [True, False])
def test_a_stale_form_is_refused_in_the_dialog_keeping_the_note(app, world, auth, htmx):
    auth.login(world.admin.email)
    with app.app_context():  # someone else changes the account after the dialog opened at version 1
        db.session.get(Account, world.account).version = 5
        db.session.commit()
    response = auth.post(f"/accounts/{world.account}/suspend", form(version=1), htmx=htmx)
    body = response.get_data(as_text=True)
    assert response.status_code == 409
    assert "changed since you opened this form" in body and NOTE in body
    assert 'name="version" value="5"' in body  # the fresh form can be sent again after review
    assert account_state(app, world.account)[:2] == ("active", 5)


def test_an_impossible_transition_is_refused_in_the_dialog(app, world, auth):
    auth.login(world.admin.email)
    response = auth.post(f"/accounts/{world.account}/reactivate", form(reason_category="paid"), htmx=True)
    body = response.get_data(as_text=True)
    assert response.status_code == 409 and "only a suspended or limited account can be reactivated" in body
    assert account_state(app, world.account)[0] == "active"


def test_two_admins_sending_the_same_dialog_one_wins_the_other_is_told(app, world, auth, client):
    auth.login(world.admin.email)
    other = app.test_client()
    from tests.conftest import AuthActions

    other_auth = AuthActions(other)
    other_auth.login(world.admin2.email)
    first = auth.post(f"/accounts/{world.account}/suspend", form(), htmx=True)
    second = other_auth.post(f"/accounts/{world.account}/suspend", form(reason_note="Second opinion"), htmx=True)
    assert first.status_code == 200 and second.status_code == 409
    assert "it is now Suspended" in second.get_data(as_text=True)
    assert account_state(app, world.account)[:3] == ("suspended", 2, NOTE)


@pytest.mark.parametrize("who, action", [
    ("support", "suspend"), ("support", "reactivate"), ("manager", "suspend"), ("manager", "reactivate"),
    ("tier", "suspend"), ("member", "suspend"),  # (suspended members cannot sign in at all: see below)
])
@pytest.mark.parametrize("htmx", [True, False])
def test_a_non_admin_posting_directly_is_refused_and_nothing_changes(app, world, auth, who, action, htmx):
    if action == "reactivate":
        set_status(app, world, "suspend")
    before = account_state(app, world.account)
    auth.login(getattr(world, who).email)
    response = auth.post(f"/accounts/{world.account}/{action}", form(version=before[1]), htmx=htmx)
    assert response.status_code == 403
    assert "permission" in response.get_data(as_text=True)
    assert account_state(app, world.account) == before


def test_signed_out_posts_are_sent_to_sign_in_and_change_nothing(app, world, client):
    before = account_state(app, world.account)
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").get_data(as_text=True)).group(1)
    response = client.post(f"/accounts/{world.account}/suspend", data=form(csrf_token=token))
    assert response.status_code in (302, 303) and response.headers["Location"].startswith("/login")
    assert account_state(app, world.account) == before
