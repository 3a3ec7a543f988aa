"""The checks run on every state of a page in the browser walks (tests/browser/page_walk.py): nothing reaches
past a phone's right edge, axe-core finds nothing serious, touch targets are at least 24x24 px.

Each takes the state's root: None for the whole page, or a selector (an open dialog, the header with its menu
opened), and returns what it found as sentences naming the elements by CSS selectors.
"""
import os

PHONE = {"width": 390, "height": 844}
AXE = os.path.join(os.path.dirname(__file__), "vendor", "axe-core-4.14.1", "axe.min.js")
FAILING = ("serious", "critical")
# The elements of the state's root (the body, or the open dialog) that reach past the right edge of the viewport,
# outside any box that scrolls or clips them; only the outermost of a nest is named. The document's own width is
# checked whatever the root.
OVERFLOW = """(scope) => {
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
  const root = scope ? document.querySelector(scope) : document.body;
  for (const el of root.querySelectorAll('*')) {
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
# axe-core on the state's root: the WCAG 2.0 and 2.1 A and AA rules, best practices, and the WCAG 2.2 target size
# (axe's default set, named here so that a rule of another standard or an experimental one is not run by the way),
# less the 26 rules whose every finding is moderate or minor (a rule's own impact decides, else its checks'): the
# walk fails on serious and critical findings only, so their results would be thrown away (region, the landmark
# rules, heading-order). Violations only (passes and incomplete results are not built), no iframes (the portal has
# none). Given an element (an open dialog), axe checks what is inside it: the rules about the document as a whole
# (its title and language, the skip link) were run on the page's own state. Most of axe's time is colour contrast,
# which is kept (on /effects, 4,200 elements, axe takes 3 s and colour contrast alone 2.9 s).
AXE_RUN = """async (scope) => {
  const severe = ['serious', 'critical'];
  if (!window.walkAxeRules) {
    const checks = (axe._audit.data && axe._audit.data.checks) || {};
    const canFail = (rule) => rule.impact ? severe.includes(rule.impact) : [...rule.any, ...rule.all, ...rule.none]
      .some((c) => !checks[c.id || c] || severe.includes(checks[c.id || c].impact));
    window.walkAxeRules = {'target-size': {enabled: true}};
    for (const rule of axe._audit.rules) if (!canFail(rule)) window.walkAxeRules[rule.id] = {enabled: false};
  }
  const result = await axe.run(scope ? document.querySelector(scope) : document, {
    runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice']},
    rules: window.walkAxeRules, resultTypes: ['violations'], iframes: false});
  return result.violations.map((v) => ({id: v.id, impact: v.impact, help: v.help, url: v.helpUrl,
    targets: v.nodes.filter((n) => severe.includes(n.impact)).map((n) => n.target.join(' ')).slice(0, 5)}));
}"""
# Ticks and buttons, and links in tables and forms, must be at least 24 by 24 px (WCAG 2.5.8), wherever shown.
SMALL_TARGETS = """(scope) => {
  const found = [];
  const root = scope ? document.querySelector(scope) : document;
  const targets = root.querySelectorAll('input[type=checkbox], input[type=radio], button, ' +
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


def on_a_phone(page):
    """Set the page (a fresh browser context of its own) to the phone's viewport, with axe-core in every document
    it opens: added by DevTools like Playwright's evaluate, outside the page's Content-Security-Policy (an injected
    <script> would be refused, and the browser fixture fails a test on any CSP violation), and read from disk
    once for the context instead of sent with every page."""
    page.set_viewport_size(PHONE)
    page.context.add_init_script(path=AXE)
    return page


def width_problems(page, scope=None):
    """What reaches past the phone's right edge in the state's root (None: the whole page; or a selector)."""
    found = page.evaluate(OVERFLOW, scope)
    return ["scrolls sideways at 390px: " + "; ".join(found[:6])] if found else []


def accessibility_problems(page, scope=None):
    """axe-core's serious and critical violations in the state's root, with the rule, the elements' selectors and
    the rule's help page, and the touch targets under 24x24 px."""
    problems = [f"{v['id']} ({v['impact']}) {v['help']} at {v['targets']} — {v['url']}"
                for v in page.evaluate(AXE_RUN, scope) if v["impact"] in FAILING]
    small = page.evaluate(SMALL_TARGETS, scope)
    if small:
        problems.append("targets under 24x24px: " + "; ".join(small[:8]))
    return problems


def check_state(page, label, problems, scope=None):
    """Run every check on the page as it is now, adding '<label>: <problem>' to problems."""
    problems += [f"{label}: {problem}" for problem in width_problems(page, scope) + accessibility_problems(page, scope)]
