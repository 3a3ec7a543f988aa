"""On a phone (390×844) the account list folds into cards: one card a row, each value under a visible label,
nothing past the screen's edge and nothing to scroll sideways; the tick, the sort links and the row's action
still work, and the row's own refresh after a change draws a card again. Screen readers still get a table (the
markup's roles; Chromium's own accessibility tree is read). At 1280 px the table is a table.

SQLite only: the layout does not depend on the database (tests/browser/test_account_list.py runs on both).
"""
import re
from datetime import datetime

import pytest

from tests.browser import page_checks
from tests.conftest import browser_login

pytestmark = [pytest.mark.browser, pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)]

LABELS = ["Select", "Number", "Name", "Email", "Status", "Class", "Balance", "Last activity"]
LONG_NAME = "Harbourside Refrigeration and Catering Equipment Wholesale"
LONG_EMAIL = "accounts.receivable.department.harbourside-refrigeration@example-wholesale.test"

# Where the list's parts sit: what reaches past the viewport (whatever box holds it), the list's scroll boxes,
# each row's cells (visible ones), their labels (data-label and the ::before drawn from it) and where each
# value's first text starts.
LAYOUT = """() => {
  const width = document.documentElement.clientWidth;
  const table = document.querySelector('table.accounts-table');
  const name = (el) => el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') +
    (el.classList.length ? '.' + [...el.classList].join('.') : '');
  const beyond = [];
  for (const el of [table, ...table.querySelectorAll('*')]) {
    const r = el.getBoundingClientRect();
    if (r.width <= 1 || r.height <= 1 || !el.checkVisibility()) continue;
    if (r.right > width + 1 || r.left < -1) beyond.push(`${name(el)} ${Math.round(r.left)}..${Math.round(r.right)}`);
  }
  const boxes = [table, table.closest('.table-scroll')].filter(Boolean)
    .map((b) => ({box: name(b), scroll: b.scrollWidth, client: b.clientWidth}));
  const cells = (tr) => [...tr.children].filter((c) => c.checkVisibility()).map((c) => {
    const r = c.getBoundingClientRect();
    const before = getComputedStyle(c, '::before');
    const text = [...c.childNodes].find((n) => n.nodeType === Node.TEXT_NODE && n.textContent.trim()) ||
      c.querySelector('*');
    let start = null;
    if (text && text.nodeType === Node.TEXT_NODE) {
      const range = document.createRange();
      range.selectNodeContents(text);
      start = range.getBoundingClientRect().left - r.left;
    } else if (text) {
      start = text.getBoundingClientRect().left - r.left;
    }
    return {label: c.getAttribute('data-label'), before: before.content, beforeDisplay: before.display,
            left: r.left, right: r.right, top: r.top, bottom: r.bottom, start};
  });
  const rows = [...table.tBodies[0].rows].map((tr) => ({
    display: getComputedStyle(tr).display, cells: cells(tr), right: tr.getBoundingClientRect().right}));
  const head = cells(table.tHead.rows[0]);
  return {beyond, boxes, rows, head, display: getComputedStyle(table).display, width};
}"""


@pytest.fixture
def accounts(app, world, make):
    from portal.extensions import db
    from portal.models import Account

    wholesale = make.customer_class("Wholesale")
    long_one = make.account(name=LONG_NAME, exempt=True, customer_class_id=wholesale, balance_cents=1234567,
                            last_activity_at=datetime(2025, 3, 4, 9, 30))
    with app.app_context():
        db.session.get(Account, long_one).email = LONG_EMAIL
        db.session.commit()
    make.account(name="Amber Bakery", status="suspended", balance_cents=4200)
    make.account(name="Birch Books", status="cancelled")
    make.account(name="Cedar Cycles", status="limited")
    return {"long": long_one}


def layout(page):
    return page.evaluate(LAYOUT)


def assert_cards(found, rows):
    """Every row is a card: its cells one under another, at one left edge, each with its label in front."""
    assert found["beyond"] == [], found["beyond"]
    for box in found["boxes"]:
        assert box["scroll"] <= box["client"], box
    assert len(found["rows"]) == rows
    for row in found["rows"]:
        cells = row["cells"]
        assert row["display"] == "block" and row["right"] <= found["width"], row
        assert len({round(c["left"]) for c in cells}) == 1, cells  # one column, not side by side
        assert all(below["top"] >= above["bottom"] - 1 for above, below in zip(cells, cells[1:])), cells
        labelled = [c for c in cells if c["label"]]
        assert [c["label"] for c in labelled] == LABELS, cells
        for cell in labelled:  # the label is drawn, in front of the value (which starts past it)
            assert cell["before"].startswith(f'"{cell["label"]}"') and cell["beforeDisplay"] != "none", cell
            assert cell["start"] is not None and cell["start"] >= 6 * 16, cell


def test_the_account_list_is_cards_on_a_phone_and_a_table_on_a_desktop(page, world, accounts):
    page_checks.on_a_phone(page)
    browser_login(page, world.admin.email)
    page.goto("/accounts")
    rows = page.get_by_test_id("account-row")
    count = rows.count()
    assert count == 6  # the world's two and the four above
    assert_cards(layout(page), count)
    long_card = page.locator(f"#account-row-{accounts['long']}")
    assert LONG_EMAIL in long_card.locator("td.email").inner_text()
    assert long_card.locator(".badge", has_text="Exempt").is_visible()
    assert "$12,345.67" in long_card.inner_text() and "2025-03-04" in long_card.inner_text()

    # Still a table to a screen reader: Chromium's own accessibility tree, as a screen reader gets it.
    roles = accessibility_roles(page)
    assert roles["table"] == ["Accounts, sorted by name, a to z"], roles["table"]
    assert len(roles["row"]) == count + 1 and len(roles["columnheader"]) == 9, roles
    assert len(roles["cell"]) == 9 * count - 1, roles["cell"]  # the cancelled account has no action to offer
    assert "Email" in roles["columnheader"] and "Last activity" in roles["columnheader"], roles["columnheader"]
    problems = page_checks.accessibility_problems(page, "#account-results")
    assert not problems, problems

    # The tick: a big enough target, and ticking one says so.
    tick = long_card.locator("input.row-select")
    box = tick.bounding_box()
    assert box["width"] >= 24 and box["height"] >= 24, box
    tick.check()
    page.get_by_test_id("selected-count").filter(has_text="1 selected").wait_for()
    page.get_by_label("Select every account on this page").check()
    page.get_by_test_id("selected-count").filter(has_text=f"{count} selected").wait_for()

    # The sort links stay on the screen (a strip over the cards) and sort.
    sort = page.get_by_test_id("sort-balance")
    box = sort.bounding_box()
    assert sort.is_visible() and box["x"] >= 0 and box["x"] + box["width"] <= 390 and box["height"] >= 24, box
    sort.click()
    page.wait_for_function("() => new URLSearchParams(location.search).get('sort') === '-balance'")
    page.wait_for_load_state("networkidle")
    assert page.locator("th[aria-sort=descending]").inner_text().startswith("Balance")
    assert rows.first.get_attribute("id") == f"account-row-{accounts['long']}"  # the largest balance first
    assert_cards(layout(page), count)

    # The row's action opens its dialog; the change redraws the row, as a card.
    long_card.get_by_test_id("row-status-action").click()
    dialog = page.locator("dialog#status-dialog[open]")
    dialog.wait_for()
    box = dialog.bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= 390, box
    dialog.get_by_label("Reason").select_option("non_payment")
    dialog.get_by_label("Note").fill("Three invoices unpaid")
    dialog.get_by_label(re.compile("I confirm")).check()
    dialog.get_by_role("button", name="Suspend account").click()
    page.locator("dialog#status-dialog").wait_for(state="detached")
    long_card.get_by_test_id("status-badge").filter(has_text="Suspended").wait_for()
    assert long_card.get_by_test_id("row-status-action").inner_text() == "Reactivate…"
    assert long_card.get_attribute("role") == "row"
    assert_cards(layout(page), count)

    # The list's box is a focusable "scrolls sideways" region only at a width where the table does scroll in it.
    box_state = ("() => { const b = document.querySelector('table.accounts-table').closest('.table-scroll');"
                 " return [b.getAttribute('tabindex'), b.getAttribute('role'), b.scrollWidth > b.clientWidth + 1]; }")
    assert page.evaluate(box_state) == [None, None, False]  # the cards: nothing to scroll, no tab stop
    page.set_viewport_size({"width": 700, "height": 800})  # between the cards and the desktop: the table scrolls
    page.wait_for_function("() => document.querySelector('.accounts-table').closest('.table-scroll')"
                           ".getAttribute('tabindex') === '0'")
    assert page.evaluate(box_state) == ["0", "region", True]

    # On a desktop: a table, each row's values side by side under the headings.
    page.set_viewport_size({"width": 1280, "height": 800})
    page.wait_for_function("() => !document.querySelector('.accounts-table').closest('.table-scroll')"
                           ".hasAttribute('tabindex')")
    wide = layout(page)
    assert wide["display"] == "table" and wide["beyond"] == [], wide
    assert len({round(c["top"]) for c in wide["head"]}) == 1, wide["head"]
    for row in wide["rows"]:
        cells = row["cells"]
        assert row["display"] == "table-row" and len(cells) == 9, row
        assert len({round(c["top"]) for c in cells}) == 1, cells
        assert all(right["left"] >= left["right"] - 1 for left, right in zip(cells, cells[1:])), cells
        assert all(c["before"] in ("none", "normal") for c in cells), cells  # no labels drawn


def test_the_cards_fit_a_phone_without_javascript(browser, live_server, world, accounts):
    """Without script no .table-scroll box is put around the table: the cards must fit all the same."""
    context = browser.new_context(base_url=live_server.url, java_script_enabled=False, viewport=page_checks.PHONE)
    context.set_default_timeout(10_000)
    page = context.new_page()
    try:
        browser_login(page, world.admin.email)
        page.goto("/accounts")
        assert page.locator(".table-scroll").count() == 0
        assert_cards(layout(page), page.get_by_test_id("account-row").count())
    finally:
        context.close()


def accessibility_roles(page):
    """The names of the account list's table, rows, column headings and cells in Chromium's accessibility tree."""
    cdp = page.context.new_cdp_session(page)
    try:
        found = cdp.send("Runtime.evaluate", {"expression": "document.querySelector('table.accounts-table')"})
        table = cdp.send("DOM.describeNode", {"objectId": found["result"]["objectId"]})["node"]["backendNodeId"]
        nodes = cdp.send("Accessibility.getFullAXTree")["nodes"]
    finally:
        cdp.detach()
    tree = {n["nodeId"]: n for n in nodes}
    roles = {"table": [], "row": [], "columnheader": [], "cell": []}
    todo = [n for n in nodes if n.get("backendDOMNodeId") == table]
    assert todo, "the table is not in the accessibility tree"
    while todo:
        node = todo.pop()
        role = node.get("role", {}).get("value")
        if not node.get("ignored") and role in roles:
            roles[role].append(node.get("name", {}).get("value", ""))
        todo += [tree[child] for child in node.get("childIds", []) if child in tree]
    return roles


def test_a_scroll_box_folded_in_details_becomes_focusable_when_opened_on_a_phone(page, world, accounts):
    """The overview's activity table sits in a closed <details> (where a browser may measure it 0 wide: each box is
    measured again when its size changes); opened on a phone it scrolls sideways in its box, which is then a
    focusable, named region."""
    page_checks.on_a_phone(page)
    browser_login(page, world.admin.email)
    page.goto("/overview")
    table = page.get_by_test_id("activity-table")
    table.wait_for(state="attached")
    box_state = ("() => { const b = document.querySelector('[data-testid=activity-table]').closest('.table-scroll');"
                 " return [b.getAttribute('tabindex'), b.scrollWidth > b.clientWidth + 1,"
                 " b.getAttribute('aria-label')]; }")
    page.get_by_text("The figures as a table").click()
    page.wait_for_function("() => document.querySelector('[data-testid=activity-table]').closest('.table-scroll')"
                           ".getAttribute('tabindex') === '0'")
    tabindex, scrolls, label = page.evaluate(box_state)
    assert scrolls and tabindex == "0" and "scrolls sideways" in label, (tabindex, scrolls, label)
