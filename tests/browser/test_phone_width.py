"""Every page and dialog works on a phone: at 390×844 the page never scrolls sideways.

Each role's pages come from the route table (tests/browser/page_walk.py), so a new page is checked without a
test entry. On each page and each dialog it offers: the document is no wider than the viewport, and no element
reaches past the viewport's right edge unless it sits inside its own scroll box (a wide table in a
`.table-scroll` region) — the failure names the offending elements by a CSS selector.

SQLite only: the markup does not depend on the database (the route walk and the feature tests run on both), and
the walk of every page for six people is about a minute of browser time per database.
"""
import pytest

from tests.browser import page_walk
from tests.conftest import browser_login

pytestmark = [pytest.mark.browser, pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)]
PHONE = {"width": 390, "height": 844}

# The elements that reach past the right edge of the viewport, outside any box that scrolls or clips them;
# only the outermost of a nest is named.
OVERFLOW = """() => {
  const width = document.documentElement.clientWidth;
  const name = (el) => {
    const parts = [];
    for (let e = el; e && e !== document.body && parts.length < 4; e = e.parentElement) {
      let part = e.tagName.toLowerCase();
      if (e.id) { parts.unshift(part + '#' + e.id); break; }
      if (e.classList.length) part += '.' + [...e.classList].join('.');
      parts.unshift(part);
    }
    return parts.join(' > ');
  };
  const contained = (el) => {  // inside a box that scrolls or clips it (an absolute box escapes static ones)
    let escaping = getComputedStyle(el).position === 'absolute';
    for (let p = el.parentElement; p && p !== document.documentElement; p = p.parentElement) {
      const style = getComputedStyle(p);
      if (escaping) {
        if (style.position === 'static') continue;
        escaping = false;
      }
      if (style.overflowX !== 'visible' && p.getBoundingClientRect().right <= width + 1) return true;
    }
    return false;
  };
  const found = [];
  const page = document.documentElement.scrollWidth;
  if (page > window.innerWidth) found.push(`the page is ${page}px wide`);
  for (const el of document.querySelectorAll('body *')) {
    const box = el.getBoundingClientRect();
    // its box, or its own text running out of a box that does not clip it (a long unbroken word)
    const ownText = [...el.childNodes].some((n) => n.nodeType === Node.TEXT_NODE && n.textContent.trim());
    const spills = ownText && !el.matches('select, input, textarea, button') &&
      getComputedStyle(el).overflowX === 'visible';
    const right = spills ? Math.max(box.right, box.left + el.scrollWidth) : box.right;
    if (box.width === 0 || box.height === 0 || right <= width + 1 || !el.checkVisibility()) continue;
    if (found.some((f) => f.el && f.el.contains(el)) || contained(el)) continue;
    found.push({el, text: `${name(el)} reaches ${Math.round(right)}px`});
  }
  return found.map((f) => f.text || f);
}"""


@pytest.fixture
def app_config():
    return dict(page_walk.APP_CONFIG)


def check_width(page, label, problems):
    found = page.evaluate(OVERFLOW)
    if found:
        problems.append(f"{label}: " + "; ".join(found[:6]))


@pytest.mark.parametrize("who", list(page_walk.PEOPLE))
def test_every_page_and_dialog_fits_a_phone(app, make, page, who):
    world = page_walk.build_world(app, make)
    page.set_viewport_size(PHONE)
    browser_login(page, getattr(world, page_walk.PEOPLE[who]).email)
    problems = []
    check = lambda p, label: check_width(p, label, problems)  # noqa: E731
    urls = page_walk.page_urls(app, page_walk.who_sees(who), world.ids)
    checked = page_walk.visit_pages(page, urls, check)
    if who == "super_admin":
        checked += page_walk.open_bulk_dialogs(page, check)
    print(f"{who}: checked", *checked, sep="\n  ")
    assert len(checked) >= 2, f"only {checked} were pages"  # a user has the reservations
    assert not problems, f"{len(problems)} of {len(checked)} pages or dialogs scroll sideways at 390px:\n" + \
        "\n".join(problems)


def test_the_width_check_names_what_is_too_wide(app, make, page):
    """The check can fail: an element wider than the phone, outside any scroll box, is named."""
    world = page_walk.build_world(app, make)
    page.set_viewport_size(PHONE)
    browser_login(page, world.admin.email)
    page.goto("/rules")
    page.evaluate("() => { const d = document.createElement('div'); d.className = 'too-wide';"
                  " d.textContent = 'x'.repeat(80); d.style.whiteSpace = 'nowrap';"
                  " document.querySelector('main').append(d); }")
    problems = []
    check_width(page, "/rules", problems)
    assert problems and "div.too-wide reaches" in problems[0] and "the page is" in problems[0], problems


def test_the_sign_in_and_public_pages_fit_a_phone(app, make, page):
    world = page_walk.build_world(app, make)
    page.set_viewport_size(PHONE)
    problems = []
    checked = page_walk.visit_pages(page, ["/login", f"/p/{world.ids['number']}"],
                                    lambda p, label: check_width(p, label, problems))
    assert len(checked) == 2 and not problems, problems
