"""What an action will do, shown before it is confirmed: the suspend dialog's messages and emails, the bulk reach."""
import re
from html import unescape

import pytest
from sqlalchemy import func, select

from portal.domain import notify
from portal.domain.gate import MEMBER_SUSPENDED, SUSPENSION_BANNERS
from portal.extensions import db
from portal.models import Account, AuditEvent, OutboxEmail, User

HX = {"HX-Request": "true"}


@pytest.fixture
def app_config():
    return {"LOGIN_RATE_LIMIT": "1000 per minute"}


@pytest.fixture
def people(app, world, make):
    """The world's account with a second manager (named with markup), one who opted out, and a waiting member email."""
    second = make.user("account_manager", world.account, name="<b>Bo</b> Second", email="bo@example.test")
    make.user("account_manager", world.account, name="Quiet Manager", email="quiet@example.test",
              email_notifications=False)
    with app.app_context():
        member = db.session.get(User, world.member.id)
        notify.queue_email(member, "survey_reminder", "Your week", "account_reactivated.txt", note="x")
        db.session.commit()
    return second


def _preview(html):
    match = re.search(r'<section id="status-preview-\d+".*?</section>', html, re.S)
    assert match, "no preview in the dialog"
    return match.group(0)


def _roles(section):
    """{role: the inside of its <dd>} for each role of the preview."""
    return dict(re.findall(r'data-role="([a-z_]+)">.*?<dd>(.*?)</dd>', section, re.S))


def _messages(section):
    return {role: unescape(re.sub(r"\s+", " ", text)).strip() for role, text in _roles(section).items()}


def _quoted(section):
    found = {role: re.search(r'<q data-testid="preview-message">(.*?)</q>', text, re.S)
             for role, text in _roles(section).items()}
    return {role: unescape(q.group(1)) for role, q in found.items() if q}


def _banner(reason, billing="billing@portal.test"):
    return f"{SUSPENSION_BANNERS[reason]} To reactivate your account, please contact {billing}."


def _unchanged(app, account_id):
    with app.app_context():
        account = db.session.get(Account, account_id)
        events = db.session.scalar(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.account_id == account_id, AuditEvent.action == "suspended"))
        return account.status == "active" and account.version == 1 and events == 0


@pytest.mark.parametrize("headers", [HX, {}], ids=["htmx", "no-js"])
def test_the_suspend_dialog_shows_each_roles_message_and_who_is_emailed(app, world, people, auth, client, headers):
    auth.login(world.admin.email)
    html = client.get(f"/accounts/{world.account}/status-dialog", headers=headers).get_data(as_text=True)
    section = _preview(html)
    quoted = _quoted(section)
    assert quoted["tier_manager"] == quoted["user"] == MEMBER_SUSPENDED
    assert "account_manager" not in quoted and "choose a reason to see it" in _messages(section)["account_manager"]
    assert f"Mia Manager &lt;{world.manager.email}&gt;" in section
    assert "&lt;b&gt;Bo&lt;/b&gt; Second &lt;bo@example.test&gt;" in section and "<b>Bo</b>" not in section
    assert "quiet@example.test" not in section  # opted out of email
    assert re.search(r'data-testid="preview-held">\s*1 email waiting for its tier managers and users is held', section)
    assert re.search(r'Account managers <span class="muted">\(3\)</span>', section)


@pytest.mark.parametrize("reason", ["non_payment", "inactivity", "policy_violation"])
def test_the_preview_follows_the_reason_chosen_as_an_htmx_fragment(app, world, people, auth, client, reason):
    auth.login(world.admin.email)
    response = client.get(f"/accounts/{world.account}/status-preview", query_string={"reason_category": reason},
                          headers=HX)
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and html.lstrip().startswith(f'<section id="status-preview-{world.account}"')
    assert "<html" not in html and "HX-Request" in response.headers["Vary"]
    quoted = _quoted(html)
    assert quoted["account_manager"] == _banner(reason)
    assert quoted["tier_manager"] == MEMBER_SUSPENDED and world.manager.email in html
    assert 'hx-trigger="change from:#reason_category"' in html  # it keeps following the reason
    assert _unchanged(app, world.account)


def test_without_javascript_preview_shows_the_dialog_again_keeping_what_was_typed(app, world, people, auth, client):
    auth.login(world.admin.email)
    dialog = client.get(f"/accounts/{world.account}/status-dialog").get_data(as_text=True)
    assert re.search(rf'formaction="/accounts/{world.account}/status-preview"[^>]*>Preview</button>'
                     r'|formaction="/accounts/\d+/status-preview" formnovalidate', dialog)
    response = auth.post(f"/accounts/{world.account}/status-preview",
                         {"reason_category": "inactivity", "reason_note": "Dormant since 2023", "version": "1",
                          "next": "/accounts"}, page=f"/accounts/{world.account}")
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and "<html" in html and re.search(r'<dialog id="status-dialog"[^>]* open', html)
    assert _quoted(_preview(html))["account_manager"] == _banner("inactivity")
    assert ">Dormant since 2023</textarea>" in html and '<option value="inactivity" selected>' in html
    assert 'name="version" value="1"' in html and 'name="next" value="/accounts"' in html
    assert _unchanged(app, world.account)


def test_with_htmx_the_preview_button_swaps_the_form_with_the_preview(app, world, people, auth):
    auth.login(world.admin.email)
    response = auth.post(f"/accounts/{world.account}/status-preview",
                         {"reason_category": "customer_request", "reason_note": "Asked to pause", "version": "1"},
                         htmx=True, page=f"/accounts/{world.account}")
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and html.lstrip().startswith('<form id="status-form"')
    assert _quoted(_preview(html))["account_manager"] == _banner("customer_request")
    assert _unchanged(app, world.account)


def test_a_refused_confirmation_keeps_the_preview_for_the_reason(app, world, people, auth):
    auth.login(world.admin.email)
    response = auth.post(f"/accounts/{world.account}/suspend", {"reason_category": "non_payment", "reason_note": "",
                                                                "version": "1"}, htmx=True)
    assert response.status_code == 422
    assert _quoted(_preview(response.get_data(as_text=True)))["account_manager"] == _banner("non_payment")


def test_what_the_preview_promised_is_what_people_see_after_the_suspension(app, world, people, auth, client):
    auth.login(world.admin.email)
    promised = _quoted(client.get(f"/accounts/{world.account}/status-preview?reason_category=non_payment",
                                  headers=HX).get_data(as_text=True))
    emailed = {"bo@example.test", world.manager.email}
    done = auth.post(f"/accounts/{world.account}/suspend", {"reason_category": "non_payment",
                                                             "reason_note": "Unpaid", "version": "1",
                                                             "confirm": "1"})
    assert done.status_code == 303
    auth.logout()
    auth.login(world.manager.email)
    page = client.get("/my-account", follow_redirects=True).get_data(as_text=True)
    banner = re.search(r'data-testid="suspension-banner">([^<]+)<', page).group(1)
    assert unescape(banner) == promised["account_manager"]
    auth.logout()
    refused = auth.login(world.tier.email).get_data(as_text=True)
    assert promised["tier_manager"] in unescape(refused)
    with app.app_context():
        sent_to = set(db.session.scalars(select(OutboxEmail.to_addr).where(OutboxEmail.kind == "account_suspended")))
        held = db.session.scalars(select(OutboxEmail.status).where(OutboxEmail.kind == "survey_reminder")).one()
    assert sent_to == emailed and held == "held"


def test_the_reactivate_dialog_says_who_is_emailed_and_that_held_mail_goes_out(app, world, people, auth, client):
    auth.login(world.admin.email)
    auth.post(f"/accounts/{world.account}/suspend", {"reason_category": "other", "reason_note": "Check",
                                                      "version": "1", "confirm": "1"})
    html = client.get(f"/accounts/{world.account}/status-dialog", headers=HX).get_data(as_text=True)
    section = _preview(html)
    assert "What reactivating does" in section and world.manager.email in section
    assert set(_messages(section).values()) == {"Sign in and use every page as before."}
    assert re.search(r'data-testid="preview-held">\s*1 email held during the suspension is sent', section)


@pytest.mark.parametrize("who", ["support", "manager"])
def test_only_a_super_admin_previews(world, people, auth, client, who):
    auth.login(getattr(world, who).email)
    assert client.get(f"/accounts/{world.account}/status-preview?reason_category=other").status_code == 403
    assert auth.post(f"/accounts/{world.account}/status-preview", {"reason_category": "other"},
                     page="/login").status_code == 403


# ---------------------------------------------------------------- the bulk dialog

@pytest.fixture
def shops(app, world, make):
    """Six "Blue Shop" accounts: 0 already suspended, 1 exempt, the rest active."""
    return [make.account(name=f"Blue Shop {i}", status="suspended" if i == 0 else "active", exempt=(i == 1))
            for i in range(6)]


@pytest.mark.parametrize("htmx", [True, False], ids=["htmx", "no-js"])
def test_the_bulk_dialog_says_how_many_it_changes_and_marks_its_sample(app, world, shops, auth, htmx):
    auth.login(world.admin.email)
    response = auth.post("/accounts/bulk/confirm", {"action": "suspend", "scope": "filter", "q": "blue shop",
                                                    "next": "/accounts?q=blue+shop"}, htmx=htmx, page="/accounts")
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and ("<html" in html) is not htmx
    assert re.search(r"exactly <strong>6</strong>", html)
    reach = unescape(re.sub(r"<[^>]+>|\s+", " ", re.search(r'data-testid="bulk-reach">(.*?)</p>', html, re.S)
                            .group(1)))
    assert re.sub(r"\s+", " ", reach).strip() == "It will suspend 4 and leave 2 alone (1 already suspended, 1 exempt)."
    fates = dict(re.findall(r"<li>(Blue Shop \d).*?data-testid=\"bulk-fate\">([^<]+)<", html, re.S))
    assert fates == {"Blue Shop 0": "left alone: already suspended", "Blue Shop 1": "left alone: exempt",
                     **{f"Blue Shop {i}": "will be suspended" for i in range(2, 6)}}


def test_the_bulk_dialog_counts_ticked_accounts_for_a_reactivation(app, world, shops, auth):
    auth.login(world.admin.email)
    response = auth.post("/accounts/bulk/confirm", {"action": "reactivate", "scope": "selected",
                                                    "ids": [shops[0], shops[2]]}, htmx=True, page="/accounts")
    html = response.get_data(as_text=True)
    assert 'data-testid="bulk-will-change">1<' in html and "1 already active" in html
    with app.app_context():
        assert [a.status for a in db.session.scalars(select(Account).where(Account.id.in_(shops[:3]))
                                                     .order_by(Account.id))] == ["suspended", "active", "active"]



# ---------------------------------------------------------------- in a real browser

@pytest.mark.browser
def test_in_a_browser_the_preview_follows_the_reason_chosen(app, page, world, people):
    from playwright.sync_api import expect

    from tests.conftest import browser_login

    browser_login(page, world.admin.email)
    page.goto(f"/accounts/{world.account}")
    page.locator("[id^=status-action-]").click()
    dialog = page.get_by_role("dialog")
    preview = dialog.get_by_test_id("status-preview")
    expect(preview).to_contain_text(MEMBER_SUSPENDED)
    expect(preview).to_contain_text("bo@example.test")
    dialog.get_by_label("Reason").select_option(label="Inactivity")
    expect(preview).to_contain_text(_banner("inactivity"))
    dialog.get_by_label("Reason").select_option(label="Non-payment")
    expect(preview).to_contain_text(_banner("non_payment"))
    dialog.get_by_label("Note").fill("Two invoices overdue")
    dialog.get_by_role("button", name="Preview").click()  # the button swaps the form, keeping what was typed
    expect(dialog.get_by_label("Note")).to_have_value("Two invoices overdue")
    expect(dialog.get_by_test_id("status-preview")).to_contain_text(_banner("non_payment"))
    assert _unchanged(app, world.account)
