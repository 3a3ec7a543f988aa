"""Accessibility checked, not assumed: axe-core on every page and dialog for each role, touch targets, the banner.

axe-core 4.14.1 is vendored in tests/browser/vendor/ (from `npm pack axe-core@4`, with its licences) and run in
each page through Playwright's evaluate, which DevTools runs outside the page's Content-Security-Policy (an
injected <script> would be refused, and the browser fixture fails a test on any CSP violation). A serious or
critical violation fails the test with its rule, impact, the elements' selectors and the rule's help page.

The pages come from the route table (tests/browser/page_walk.py), so a page added later is checked too. SQLite
only: the markup does not depend on the database (the route walk and the feature tests run on both), and axe on
every page for six people is about a minute and a half of browser time per database.
"""
import os

import pytest

from tests.browser import page_walk
from tests.conftest import browser_login

pytestmark = [pytest.mark.browser, pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)]
AXE = os.path.join(os.path.dirname(__file__), "vendor", "axe-core-4.14.1", "axe.min.js")
FAILING = ("serious", "critical")
# Every rule axe runs by default (WCAG 2.0-2.2 A and AA, best practices), and the WCAG 2.2 target size.
AXE_RUN = """async () => {
  const result = await axe.run(document, {rules: {'target-size': {enabled: true}}, resultTypes: ['violations']});
  return result.violations.map((v) => ({id: v.id, impact: v.impact, help: v.help, url: v.helpUrl,
    targets: v.nodes.filter((n) => ['serious', 'critical'].includes(n.impact)).map((n) => n.target.join(' ')).slice(0, 5)}));
}"""
# Ticks and buttons, and links in tables and forms, must be at least 24 by 24 px (WCAG 2.5.8), wherever shown.
SMALL_TARGETS = """() => {
  const found = [];
  const targets = document.querySelectorAll('input[type=checkbox], input[type=radio], button, ' +
    'table a, form a, .button, summary');
  for (const el of targets) {
    if (!el.checkVisibility({opacityProperty: true, visibilityProperty: true})) continue;
    const box = el.getBoundingClientRect();
    if (box.width === 0 || (box.width >= 23.5 && box.height >= 23.5)) continue;
    const name = el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') +
      (el.className ? '.' + String(el.className).trim().split(/\\s+/).join('.') : '');
    found.push(`${name} "${(el.textContent || el.value || '').trim().slice(0, 30)}" ` +
               `${Math.round(box.width)}x${Math.round(box.height)}`);
  }
  return found;
}"""


@pytest.fixture
def app_config():
    return dict(page_walk.APP_CONFIG)


@pytest.fixture(scope="module")
def axe_source():
    with open(AXE, encoding="utf-8") as f:
        return f.read()


def check_page(page, label, axe_source, problems):
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.evaluate(axe_source)
    for v in page.evaluate(AXE_RUN):
        if v["impact"] in FAILING:
            problems.append(f"{label}: {v['id']} ({v['impact']}) {v['help']} at {v['targets']} — {v['url']}")
    small = page.evaluate(SMALL_TARGETS)
    if small:
        problems.append(f"{label}: targets under 24x24px: " + "; ".join(small[:8]))


@pytest.mark.parametrize("who", list(page_walk.PEOPLE))
def test_every_page_and_dialog_passes_axe(app, make, page, axe_source, who):
    world = page_walk.build_world(app, make)
    browser_login(page, getattr(world, page_walk.PEOPLE[who]).email)
    problems = []
    check = lambda p, label: check_page(p, label, axe_source, problems)  # noqa: E731
    urls = page_walk.page_urls(app, page_walk.who_sees(who), world.ids)
    checked = page_walk.visit_pages(page, urls, check)
    if who == "super_admin":
        checked += page_walk.open_bulk_dialogs(page, check)
    print(f"{who}: checked", *checked, sep="\n  ")
    assert len(checked) >= 2, f"only {checked} were pages"  # a user has the reservations
    assert not problems, f"{len(problems)} accessibility problems on {len(checked)} pages and dialogs:\n" + \
        "\n".join(problems)


def test_axe_finds_a_serious_violation(app, make, page, axe_source):
    """The check can fail: a page with an image without a name and a field without a label is caught."""
    world = page_walk.build_world(app, make)
    browser_login(page, world.admin.email)
    page.goto("/rules")
    page.evaluate("() => { const i = document.createElement('input'); i.type = 'text';"
                  " document.querySelector('main').append(i); }")
    problems = []
    check_page(page, "/rules", axe_source, problems)
    assert any(" label (critical)" in p for p in problems), problems


def test_the_suspension_banner_is_announced_once(app, make, page):
    """A suspended account's manager hears the banner on the first page after the change, then only sees it."""
    world = page_walk.build_world(app, make)  # world.other_account is suspended
    browser_login(page, world.other_manager.email)
    banner = page.get_by_test_id("suspension-banner")
    assert banner.get_attribute("role") == "alert"
    page.goto("/my-account")
    assert banner.is_visible() and banner.get_attribute("role") is None
    page.goto("/reservations")
    assert banner.is_visible() and banner.get_attribute("role") is None


def test_the_sign_in_and_public_pages_pass_axe(app, make, page, axe_source):
    world = page_walk.build_world(app, make)
    problems = []
    checked = page_walk.visit_pages(page, ["/login", f"/p/{world.ids['number']}"],
                                    lambda p, label: check_page(p, label, axe_source, problems))
    assert len(checked) == 2 and not problems, problems
