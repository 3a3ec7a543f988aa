"""Every page and dialog works on a phone: at 390×844 nothing scrolls sideways and axe-core finds nothing serious.

One walk per role (tests/browser/page_walk.py): each page the role may open, from the route table, so a new page is
checked without a test entry, and each dialog it offers, is visited once, in one signed-in browser context, and
every check runs on that visit:
- the document is no wider than the viewport, and no element reaches past the viewport's right edge unless it
  sits inside its own scroll box (a wide table in a `.table-scroll` region), named by a CSS selector;
- axe-core (tests/browser/test_axe.py says how it is run and proves it bites) reports no serious or critical violation,
  with its rule, the elements' selectors and the rule's help page;
- ticks, buttons and links in tables and forms are at least 24×24 px.
A walk collects every failure of every page and reports them all at the end.

axe runs at 390 px only. Its layout-dependent rules (colour contrast, target size, scrollable regions) hold at
any width, and the phone is the harder case for them: tables become scroll boxes (which must be reachable by
keyboard), targets sit closer together, long words wrap. What only the desktop layout shows is the header's menu
unfolded, the one part of every page that the phone folds away; the walk opens the menu on a phone instead (once
per role, as it is the same on every page) and checks it there, with the same rules and the same colours.

SQLite only: the markup does not depend on the database (the route walk and the feature tests run on both).
"""
import pytest

from tests.browser import page_checks, page_walk

pytestmark = [pytest.mark.browser, pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)]


@pytest.fixture
def app_config():
    return dict(page_walk.APP_CONFIG)


@pytest.mark.parametrize("who", list(page_walk.PEOPLE))
def test_every_page_and_dialog_works_on_a_phone(app, make, page, who):
    world = page_walk.build_world(app, make)
    page_checks.on_a_phone(page)
    page_walk.sign_in(page, getattr(world, page_walk.PEOPLE[who]).email)
    problems = []
    urls = page_walk.page_urls(app, page_walk.who_sees(who), world.ids)
    checked = page_walk.visit_pages(page, urls, problems)
    if who == "super_admin":
        checked += page_walk.open_bulk_dialogs(page, problems)
        limited = world.ids["limited_account"]
        for dialog in ("reschedule", "change-status", "cancel-dates"):
            assert f"/accounts/{limited} → dialog /accounts/{limited}/{dialog}" in checked, checked
    print(f"{who}: checked", *checked, sep="\n  ")
    assert len(checked) >= 2, f"only {checked} were pages"  # a user has the reservations
    assert any("the header's menu" in label for label in checked), checked
    assert not problems, f"{len(problems)} problems on {len(checked)} pages and dialogs at 390px:\n" + \
        "\n".join(problems)


def test_the_width_check_names_what_is_too_wide(app, make, page):
    """The check can fail: an element wider than the phone, outside any scroll box, is named."""
    world = page_walk.build_world(app, make)
    page_checks.on_a_phone(page)
    page_walk.sign_in(page, world.admin.email)
    page.goto("/rules")
    page.evaluate("() => { const d = document.createElement('div'); d.className = 'too-wide';"
                  " d.textContent = 'x'.repeat(80); d.style.whiteSpace = 'nowrap';"
                  " document.querySelector('main').append(d); }")
    problems = []
    page_checks.check_state(page, "/rules", problems)
    assert problems and "div.too-wide reaches" in problems[0] and "the page is" in problems[0], problems
    assert problems[0].startswith("/rules: scrolls sideways at 390px"), problems


def test_the_sign_in_and_public_pages_work_on_a_phone(app, make, page):
    world = page_walk.build_world(app, make)
    page_checks.on_a_phone(page)
    problems = []
    checked = page_walk.visit_pages(page, ["/login", f"/p/{world.ids['number']}"], problems)
    assert len([label for label in checked if "→" not in label]) == 2 and not problems, (checked, problems)
