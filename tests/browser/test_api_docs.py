"""In a real browser under the portal's Content-Security-Policy (a violation fails the test): the API docs page
(vendored Swagger UI) shows every resource of the document, and a super admin makes a token on the API tokens
page, sees it once, and the API answers it."""
import json
import urllib.request

import pytest
from playwright.sync_api import expect

from tests.conftest import browser_login

# SQLite only: what the browser does here does not depend on the database
# (the HTTP tests of the same views run on both)
pytestmark = [pytest.mark.browser, pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)]


def test_the_docs_page_renders_the_document_with_no_cdn(page, live_server):
    outside = []
    page.on("request", lambda r: outside.append(r.url) if not r.url.startswith(live_server.url) else None)
    page.goto("/api/v1/docs")
    expect(page.get_by_text("Account Suspension Portal API").first).to_be_visible()
    for path in ("/api/v1/accounts/{number}/payments", "/api/v1/cancellation-requests", "/api/v1/runs/cleanup"):
        expect(page.locator(f"[data-path='{path}']").first).to_be_visible()
    page.locator("[data-path='/api/v1/accounts/{number}/payments']").first.click()
    expect(page.get_by_text("Idempotency-Key").first).to_be_visible()
    assert [url for url in outside if not url.startswith("data:")] == []


def test_a_super_admin_makes_a_token_and_sees_it_once(page, live_server, world):
    browser_login(page, world.admin.email)
    page.get_by_role("link", name="API tokens").click()
    page.get_by_label("Name").fill("phone-system")
    page.get_by_label("cancellations:write").check()
    page.get_by_role("button", name="Create token").click()
    shown = page.get_by_test_id("new-token-text")
    expect(shown).to_be_visible()
    text = shown.input_value()
    assert text.startswith("ak_")
    expect(page.get_by_test_id("token-row")).to_have_count(1)
    request = urllib.request.Request(f"{live_server.url}/api/v1/cancellation-requests",
                                     headers={"Authorization": f"Bearer {text}"})
    try:
        urllib.request.urlopen(request)
    except urllib.error.HTTPError as refused:  # the token lacks accounts:read: 403, as a problem document
        assert refused.code == 403 and json.loads(refused.read())["required_scope"] == "accounts:read"
    else:
        raise AssertionError("a token without accounts:read read the log")
    page.reload()
    expect(page.get_by_test_id("new-token-text")).to_have_count(0)
    page.get_by_role("link", name="phone-system").click()
    expect(page.get_by_test_id("token-event")).to_have_count(1)
    page.get_by_label("will be refused from now on").check()
    page.get_by_role("button", name="Revoke token").click()
    expect(page.get_by_test_id("token-state")).to_have_text("Revoked")
