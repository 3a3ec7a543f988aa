"""Every page and dialog of the portal, as each role sees them, and the browser-wide checks run on each (phone width,
axe-core, touch targets).

The pages come from `app.url_map` (the GET routes a role is allowed, as declared with @roles_required), so a page
added later is visited without a test entry; a URL parameter the walk has no value for fails the walk with its
name, to be added to `ids()`. Fragments (no `<main>`) are skipped: their pages load them. Dialogs are opened
from the pages that offer them (htmx into #dialog-slot, opened as a modal), and the bulk confirmations from a
ticked list.

Each page state is visited once and every check runs on that visit (tests/browser/page_checks.py `check_state`):
the page as loaded (its folded parts opened), the header's menu opened (once per walk: it is the same on every
page), and each dialog open over the page, checked on its own (the page under it was checked a moment before and
does not change). Failures are collected, never raised one by one, so a walk reports every page that fails, with
its URL and what failed. The walk waits for htmx to settle after each load and click, never for a fixed time.
"""
import hashlib
import re
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from sqlalchemy import select, update

from portal.extensions import db
from portal.models import (Account, ApiToken, AuditEvent, CancellationRequest, OutboxEmail, SuspensionRule, User,
                           WebhookDelivery)
from portal.timeutil import utcnow
from tests.browser.page_checks import check_state
from tests.conftest import PASSWORD, wait_for_path

# GET routes that are not pages a person reads in the portal's own layout.
NOT_PAGES = ("/healthz", "/api/", "/login")
NOT_PAGE_SUFFIXES = (".csv", ".json")
# One person per role; the customers belong to world.account (active) and, suspended, world.other_account.
PEOPLE = {"super_admin": "admin", "support": "support", "account_manager": "manager", "tier_manager": "tier",
          "user": "member", "suspended_manager": "other_manager"}
ROLE_OF = {"suspended_manager": "account_manager"}
# The app settings the walk needs: its webhook endpoint is on loopback; the browser keeps the static files for
# the walk instead of asking for each again on every page.
APP_CONFIG = {"WEBHOOK_ALLOW_PRIVATE": True, "SEND_FILE_MAX_AGE_DEFAULT": 3600}
DIALOG_LINKS = '[hx-target="#dialog-slot"]'
DIALOG = "#dialog-slot dialog[open]"
MENU = "header.topbar"  # the header, with the menu a phone folds away
MENU_BUTTON = ".nav-menu > summary"


def build_world(app, make):
    """The world, one row of every kind a page shows (features, invoice, rule, run, email, webhook, token,
    cancellation request), world.other_account suspended, and an account limited by its class with a shifted
    suspension date (so its page offers Reschedule, Change status and Cancel dates); returns the world with `ids`."""
    from portal.domain import api_tokens, runs, suspension
    from portal.domain.billing import ledger
    from portal.domain.cancellations import requests
    from portal.domain.dunning import overrides
    from portal.domain.webhooks import create_endpoint
    from portal.domain.webhooks.relay import relay

    w = make.world()
    w.invoice = make.invoice(w.account, seq=1)
    make.invoice(w.other_account, seq=1)
    w.customer_class = make.customer_class()
    w.features = make.features(w.account)
    make.features(w.other_account)
    for i in range(3):  # dormant shops for a clean-up run, with long names and emails that must wrap
        shop = make.account(name=f"Sleepy Neighbourhood Bakery and Coffee Roastery {i}",
                            created_at=datetime(2022, 1, 1), last_activity_at=datetime(2022, 1, 1))
        make.user("account_manager", shop, email=f"a.very.long.manager.address.{i}@sleepy-bakery-roastery.example")
    with app.app_context():
        db.session.execute(update(Account).where(Account.id.in_([w.account, w.other_account]))
                           .values(last_activity_at=datetime.now()))
        db.session.add(SuspensionRule(name="Long dormant shops (page walk)", inactivity_months=36))
        db.session.commit()
        admin = db.session.get(User, w.admin.id)
        create_endpoint(admin, "http://127.0.0.1:9/portal/events/from-the-account-suspension-portal", ["account.suspended"], "Billing system")
        api_tokens.create_token(admin, "billing-sync", "accounts:read")
        requests.log_request(db.session.get(User, w.support.id), w.account, {
            "channel": "call", "contact_name": "Dana Diaz", "phone": "(201) 555-0123", "request_date": "2026-11-28",
            "collected": "1,200.00", "months": "10", "reason_code": "too_expensive", "reason": "Budget cut."})
        suspension.suspend(admin, w.other_account, "non_payment", "Unpaid since May")
        limited = make.account(name="Limited Lantern Laundry", last_activity_at=datetime.now())  # limited by its class: the dunning dialogs
        db.session.get(Account, limited).customer_class_id = w.customer_class
        db.session.commit()
        ledger.add_invoice(admin, limited, "49.00", utcnow().date() - timedelta(days=16))
        # manual dates saved on it (its suspension, due in 4 days by the class, shifted): Cancel dates is offered
        overrides.shift(admin, limited, suspension_date=utcnow().date() + timedelta(days=10),
                        reason_category="promise_to_pay", reason_note="Promised to pay by the 10th")
        selection = {"type": "rules", "rules": [{"id": 1, "name": "Inactive 12+ months", "enabled": True,
                                                 "inactivity_months": 12, "min_balance_cents": None,
                                                 "overdue_days": None}]}
        run = runs.start_run(admin, "cleanup", "suspend", selection, "inactivity", "Yearly clean-up",
                             enqueue=False).id
        runs.process_run(run, connections=1)
        relay()
        first = lambda model: db.session.scalar(select(model.id).order_by(model.id))  # noqa: E731
        delivery = db.session.scalars(select(WebhookDelivery).order_by(WebhookDelivery.id)).first()
        w.ids = {
            "number": w.features.number, "account_id": w.account, "campaign_id": w.features.campaign,
            "survey_id": w.features.survey, "listing_id": w.features.listing,
            "connection_id": w.features.connection, "social_profile_id": w.features.social_profile,
            "post_id": w.features.post, "key_id": w.features.key, "invoice_id": w.invoice,
            "class_id": w.customer_class, "customer_class_id": w.customer_class,
            "request_id": first(CancellationRequest), "rule_id": first(SuspensionRule), "run_id": run,
            "email_id": first(OutboxEmail), "event_id": first(AuditEvent),
            "token_id": first(ApiToken),
            "endpoint_id": delivery.endpoint_id if delivery else None,
            "delivery_id": delivery.id if delivery else None,
            "suspended_account": w.other_account, "limited_account": limited,
        }
        db.session.remove()
    missing = [name for name, value in w.ids.items() if value is None]
    assert not missing, f"the walk's world has no row for {missing}"
    return w


def page_urls(app, role, ids):
    """The GET URLs of every page `role` may open, filled with the world's ids (fragments are told apart later)."""
    urls = []
    adapter = app.url_map.bind("localhost")
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        if rule.endpoint == "static" or "GET" not in rule.methods:
            continue
        if rule.rule.startswith(NOT_PAGES) or rule.rule.endswith(NOT_PAGE_SUFFIXES):
            continue
        allowed = getattr(app.view_functions[rule.endpoint], "allowed_roles", None)
        if allowed in (None, "bearer") or (allowed != "public" and role not in allowed):
            continue
        unknown = [name for name in rule.arguments if name not in ids]
        assert not unknown, (f"{rule.rule}: the page walk has no value for {unknown}; add one to "
                             f"tests/browser/page_walk.py build_world() ids")
        urls.append(adapter.build(rule.endpoint, {name: ids[name] for name in rule.arguments}))
    if role in ("super_admin", "support") and "suspended_account" in ids:  # the same pages, reactivating
        suspended = ids["suspended_account"]
        urls += [f"/accounts/{suspended}", f"/accounts/{suspended}/status-dialog", f"/accounts/{ids['limited_account']}"]
    return urls


# ---------------------------------------------------------------- the walk

def visit_pages(page, urls, problems, check=check_state):
    """Open each URL and check it when it is a full page, then each dialog it offers (a link that loads into
    #dialog-slot; one per kind of dialog, by its URL with numbers taken out), and the header's menu opened on
    the first page that has one. Returns the labels of what was checked; the problems go into `problems`."""
    checked, dialogs_seen, pages_seen = [], set(), set()
    menu_checked = False
    for url in urls:
        if not _open(page, url):
            continue
        state = page.evaluate(PAGE_STATE, DIALOG_LINKS)
        content = hashlib.sha256(state["content"].encode()).hexdigest()
        if content in pages_seen:
            continue  # a fragment's URL answering a plain request with its whole page (/accounts/1/row)
        pages_seen.add(content)
        check(page, url, problems)
        checked.append(url)
        if not menu_checked and page.locator(MENU_BUTTON).is_visible():
            menu_checked = True
            page.locator(MENU_BUTTON).click()
            label = f"{url} → the header's menu opened"
            check(page, label, problems, MENU)
            checked.append(label)
            page.locator(MENU_BUTTON).click()
        hrefs = []
        for href in state["dialogs"]:
            kind = href and re.sub(r"\d+", "N", urlsplit(href).path)
            if kind and kind not in dialogs_seen:
                dialogs_seen.add(kind)
                hrefs.append(href)
        for href in hrefs:
            page.locator(f'{DIALOG_LINKS}[hx-get="{href}"]').first.click()
            checked.append(_check_dialog(page, f"{url} → dialog {href}", problems, check))
    return checked


def open_bulk_dialogs(page, problems, check=check_state):
    """Tick two accounts in the list and check each bulk confirmation (suspend, set class)."""
    checked = []
    _open(page, "/accounts")
    boxes = page.locator("tbody input.row-select")
    boxes.nth(0).check()
    boxes.nth(1).check()
    for button in ("#bulk-suspend", "#bulk-set-class"):
        page.locator(button).click()
        checked.append(_check_dialog(page, f"/accounts → bulk dialog {button}", problems, check))
    return checked


def _check_dialog(page, label, problems, check):
    """Check the dialog being opened, then close it with Escape (portal.js removes it): the page is as it was."""
    page.locator(DIALOG).wait_for()
    settle(page)
    open_details(page)
    check(page, label, problems, DIALOG)
    page.keyboard.press("Escape")
    page.locator("dialog[open]").wait_for(state="detached")
    return label


# The page's folded parts opened (an exemption form, "Undo this run…", "More filters": what they hold is checked
# too; the header's menu stays as it is), then what tells two pages apart (the title and main content, without
# the CSRF tokens, which are signed with the second) and the dialogs the page offers.
PAGE_STATE = """(links) => {
  document.querySelectorAll('main details, dialog details').forEach((d) => { d.open = true; });
  const content = document.title + document.querySelector('main').innerHTML
    .replace(/name="csrf_token" value="[^"]*"/g, '').replace(/"X-CSRFToken": "[^"]*"/g, '');
  return {content, dialogs: [...document.querySelectorAll(links)].map((e) => e.getAttribute('hx-get'))};
}"""


def sign_in(page, email):
    """Sign in through the real form (as tests.conftest.browser_login) and wait for htmx on the page it leads to
    to settle, not for the network to be idle for half a second."""
    page.goto("/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    with page.expect_response(lambda r: r.request.method == "POST" and urlsplit(r.url).path == "/login") as sent:
        page.get_by_role("button", name="Sign in").click()
    target = sent.value.headers.get("hx-redirect") or sent.value.headers.get("location")
    assert target, f"signing in as {email} led nowhere ({sent.value.status})"
    wait_for_path(page, urlsplit(target).path)
    settle(page)


def open_details(page):
    """Open every folded part of the page's content and its dialog, so what it holds is checked too."""
    page.evaluate("() => document.querySelectorAll('main details, dialog details').forEach((d) => { d.open = true; })")


def settle(page):
    """Wait until the page has loaded and htmx has no request or swap under way (the panels a page loads)."""
    page.wait_for_load_state("load")
    page.wait_for_function("() => !document.querySelector('.htmx-request, .htmx-swapping, .htmx-settling')")


def _open(page, url):
    """Go to url; return whether it is a full page of the portal (not a fragment, a file or a refusal)."""
    response = page.goto(url)
    settle(page)
    if response is None or response.status >= 400 or "text/html" not in response.headers.get("content-type", ""):
        return False
    sent_to_sign_in = urlsplit(page.url).path == "/login" and urlsplit(url).path != "/login"
    return not sent_to_sign_in and page.locator("main#main").count() == 1


def who_sees(who):
    """The role of a PEOPLE key (the suspended account's manager is an account manager)."""
    return ROLE_OF.get(who, who)
