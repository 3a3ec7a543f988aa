"""Accessibility checked, not assumed: axe-core on every page and dialog for each role, touch targets, the banner.

axe-core 4.14.1 is vendored in tests/browser/vendor/ (from `npm pack axe-core@4`, with its licences) and added to
every document of the walk's browser context as an init script, which DevTools runs outside the page's
Content-Security-Policy (an injected <script> would be refused, and the browser fixture fails a test on any CSP
violation). A serious or critical violation fails the test with its rule, impact, the elements' selectors and the
rule's help page. It runs the WCAG 2.0/2.1 A and AA rules, the best practices and WCAG 2.2's target size, for
violations only and without iframes (tests/browser/page_checks.py AXE_RUN).

The walk over every page and dialog of each role is in tests/browser/test_phone_width.py: one visit per page
state at the phone's width runs the width check and axe together (that module's docstring says why axe at
390 px is enough). The tests here prove the checks bite: on a page, and in a dialog, where axe is given the
dialog alone.
"""
import pytest

from tests.browser import page_checks, page_walk

pytestmark = [pytest.mark.browser, pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)]
UNLABELLED = ("(where) => { const i = document.createElement('input'); i.type = 'text'; i.className = 'planted';"
              " document.querySelector(where).append(i); }")


@pytest.fixture
def app_config():
    return dict(page_walk.APP_CONFIG)


def test_axe_finds_a_serious_violation(app, make, page):
    """The checks can fail: a field without a label is caught on a page and inside an open dialog, and so are
    faint text (axe's colour contrast, at the phone's width) and a button smaller than 24x24 px."""
    world = page_walk.build_world(app, make)
    page_checks.on_a_phone(page)
    page_walk.sign_in(page, world.admin.email)
    page.goto("/rules")
    page.evaluate(UNLABELLED, "main")
    page.evaluate("() => { const b = document.createElement('button'); b.className = 'tiny'; b.textContent = 'x';"
                  " b.style.width = '10px'; b.style.height = '10px'; b.style.padding = '0';"
                  " const p = document.createElement('p'); p.className = 'faint'; p.textContent = 'Hardly seen';"
                  " p.style.color = '#d4d4d4'; document.querySelector('main').append(b, p); }")
    problems = []
    page_checks.check_state(page, "/rules", problems)
    assert any(p.startswith("/rules: label (critical)") and ".planted" in p for p in problems), problems
    assert any(p.startswith("/rules: color-contrast (serious)") and ".faint" in p for p in problems), problems
    assert any("targets under 24x24px: button.tiny" in p for p in problems), problems

    limited = world.ids["limited_account"]
    page.goto(f"/accounts/{limited}")
    page_walk.settle(page)
    page.locator(f"#dunning-cancel-dates-{limited}").click()
    page.locator(page_walk.DIALOG).wait_for()
    page_walk.settle(page)
    clean = []
    page_checks.check_state(page, "dialog", clean, page_walk.DIALOG)
    page.evaluate(UNLABELLED, page_walk.DIALOG + " form")
    planted = []
    page_checks.check_state(page, "dialog", planted, page_walk.DIALOG)
    assert not clean and any(p.startswith("dialog: label (critical)") and ".planted" in p for p in planted), \
        (clean, planted)


def test_the_suspension_banner_is_announced_once(app, make, page):
    """A suspended account's manager hears the banner on the first page after the change, then only sees it."""
    world = page_walk.build_world(app, make)  # world.other_account is suspended
    page_walk.sign_in(page, world.other_manager.email)
    banner = page.get_by_test_id("suspension-banner")
    assert banner.get_attribute("role") == "alert"
    page.goto("/my-account")
    assert banner.is_visible() and banner.get_attribute("role") is None
    page.goto("/reservations")
    assert banner.is_visible() and banner.get_attribute("role") is None
