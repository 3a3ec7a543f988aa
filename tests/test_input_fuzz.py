"""Arbitrary text at every route's parameters, as the staff who may use it: never a 500, and a refusal changes nothing.

Routes come from `app.url_map` (as in test_access), so a route added later is fuzzed too. For each route a
super admin may use (and each a support person may use), Hypothesis sends requests whose path ids, query
arguments and form fields are each left out, a valid value, a known troublemaker or arbitrary text (surrogates
and noncharacters included, sent as the bytes a browser would send), with or without `HX-Request`, with the
session's CSRF token. Each answer must be below 500 and, for GET and for every 4xx, leave every row of every
table as it was. The nine inputs the probe found answering 500 are explicit examples, thrown at every route.

The parameter names come from the views' own source (every `args.get("…")`, `form.get("…")` and form-field
tuple in portal/web), plus the list's filters and the rule form, so a new field is fuzzed without a change here.
`PORTAL_FUZZ_EXAMPLES` sets the arbitrary examples per route and role (default 14 on SQLite),
`PORTAL_FUZZ_PG_EXAMPLES` on PostgreSQL (default 6; the explicit examples run on both). Each arbitrary
example costs about 45 ms (20 ms of it Hypothesis drawing its two dozen parameters), and this file was the
suite's largest; every CI run draws afresh (no example database under CI=true), so the routes see new inputs
run after run.
"""
import os
import re
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, select

from portal import create_app
from portal.domain import account_search, runs, schedule, sweeps
from portal.extensions import db
from portal.models import SuspensionRule, SweepSchedule, User
from portal.web import rules as rules_web
from tests.conftest import ROOT, SNAPSHOTS, session_client

EXAMPLES = int(os.environ.get("PORTAL_FUZZ_EXAMPLES", "14"))
# Parsing happens before the database is asked, so most of what the fuzz finds is found on either; PostgreSQL
# answers differently only where a value reaches it (integer ranges, text encodings), which the explicit
# troublemakers below reach on every route. So fewer arbitrary examples there (PORTAL_FUZZ_PG_EXAMPLES).
PG_EXAMPLES = int(os.environ.get("PORTAL_FUZZ_PG_EXAMPLES", "6"))
ROLES = {"super_admin": "admin", "support": "support"}
SKIPPED = {("/logout", "POST")}  # it ends the session the walk signs in with: every later request would be anonymous
ID_RE = re.compile(r"<int:([a-z_]+)>")

# Values that make a form go through, so the fuzz also reaches the code behind validation.
GOOD = {
    "q": "blue", "status": "active", "sort": "-balance", "per_page": "25", "balance_min": "10", "exempt": "no",
    "active_after": "2024-01-01", "active_before": "2030-01-01", "action": "suspend", "scope": "selected",
    "reason_category": "other", "reason_note": "Checked by hand", "version": "1", "confirm": "1",
    "name": "Fuzzed rule", "enabled": "1", "inactivity_months": "12", "min_balance": "5", "overdue_days": "30",
    "mode": "monthly", "day_of_month": "1", "time_of_day": "03:00", "cron": "0 3 1 * *", "exempt_reason": "Partner",
    "next": "/accounts", "before": "1", "ids": "1", "confirm_count": "1",
}
# The inputs the probe found answering 500, and their relatives.
TROUBLE = ["²", "٣", "１", "3²", "1e1000000", "-1e1000000", "NaN", "-1", "0", "2147483648", "9223372036854775808",
           "9" * 5000, "\U0010ffff", "blue\U0010ffff", "blue\ud7ff", "\ud800", "\udcff", "\ufffe", "\ufdd0", "", " ",
           "2026-02-30", "9999-12-31", "0 0 30 2 *", "/\\evil.example", "%00"]
PATH_TROUBLE = ["0", "2147483648", "9223372036854775808", "9" * 40, "²", "٣", "１", "-1", "1.5", "abc"]


def _parameter_names():
    """Every query argument and form field the views read, found in their source."""
    names = set(account_search.filters.RAW_FIELDS) | set(rules_web.FIELDS) | {"cursor", "next", "version"}
    for filename in os.listdir(os.path.join(ROOT, "portal", "web")):
        if filename.endswith(".py"):
            with open(os.path.join(ROOT, "portal", "web", filename), encoding="utf-8") as source:
                text = source.read()
            names |= set(re.findall(r"(?:args|form)\.get(?:list)?\(\s*\"([a-z_]+)\"", text))
            for fields in re.findall(r"for key in \(([^)]*)\)", text):
                names |= set(re.findall(r"\"([a-z_]+)\"", fields))
    return sorted(names)


NAMES = _parameter_names()
ANY_TEXT = st.text(st.characters(codec=None, exclude_categories=()), max_size=30)  # surrogates included


def _value(name):
    good = [GOOD[name]] if name in GOOD else []
    return st.lists(st.one_of(st.sampled_from(good + TROUBLE), ANY_TEXT), min_size=1, max_size=3)


PARAMS = st.fixed_dictionaries({}, optional={name: _value(name) for name in NAMES})
SEGMENT = st.one_of(st.none(), st.sampled_from(PATH_TROUBLE), st.integers(0, 2**70).map(str),
                    st.text(st.characters(codec="utf-8"), min_size=1, max_size=8))


def _routes():
    """(rule, method, role) for every route each fuzzed role may use."""
    app = create_app({"ENV_NAME": "testing", "SECRET_KEY": "collect", "SQLALCHEMY_DATABASE_URI": "sqlite://",
                      "REDIS_URL": "redis://127.0.0.1:1/0"})
    found = []
    for rule in app.url_map.iter_rules():
        allowed = getattr(app.view_functions[rule.endpoint], "allowed_roles", None)
        if rule.endpoint == "static" or allowed is None:
            continue
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            if (rule.rule, method) in SKIPPED:
                continue
            found.extend((rule.rule, method, role) for role in ROLES if allowed == "public" or role in allowed)
    return found


ROUTES = _routes()


@pytest.fixture
def app_config():
    return {"LOGIN_RATE_LIMIT": "100000 per minute", "CLEANUP_CONFIRM_THRESHOLD": 100000}


@pytest.fixture
def site(app, world, make):
    """The world, a few accounts, the default rules, a schedule, a clean-up run and a bulk run: real ids for paths
    (built once per kind of database, then written back: tests.conftest.Snapshots)."""
    return SNAPSHOTS.get("fuzz_site", app, lambda: _site(app, world, make))


def _site(app, world, make):
    for i in range(4):
        make.account(name=f"Blue Shop {i}", balance_cents=i * 1500)
    make.customer_class()
    with app.app_context():
        db.session.execute(delete(SuspensionRule))
        db.session.execute(delete(SweepSchedule))
        for rule in sweeps.DEFAULT_RULES:
            db.session.add(SuspensionRule(enabled=True, **rule))
        db.session.commit()
        admin = db.session.get(User, world.admin.id)
        schedule.save_schedule(admin, {"enabled": "1", "mode": "monthly", "day_of_month": "1",
                                       "time_of_day": "03:00"})
        cleanup = sweeps.start_cleanup(admin, sweeps.BY_RULE, "Fuzz")
        bulk = runs.start_run(admin, "bulk", "suspend", {"type": "ids", "ids": [world.other_account]}, "other",
                              "Fuzz")
        world.ids = {"account_id": world.account, "run_id": cleanup.id, "rule_id": db.session.scalar(
            select(SuspensionRule.id).order_by(SuspensionRule.id).limit(1)), "bulk_run_id": bulk.id}
        db.session.remove()
    return world


def _encode(params):
    """The query string or form body a browser would send (a lone surrogate as the bytes it stands for)."""
    return "&".join(f"{quote(name)}={quote(value, safe='', errors='surrogatepass')}"
                    for name, values in params.items() for value in values)


def _path(rule, ids, segment):
    def fill(match):
        name = match.group(1)
        real = ids["bulk_run_id"] if name == "run_id" and rule.startswith("/accounts/bulk") else ids.get(name, 1)
        return quote(str(real) if segment is None else segment, safe="", errors="surrogatepass")

    return ID_RE.sub(fill, rule)


@pytest.mark.parametrize("rule, method, role", ROUTES, ids=[f"{m} {r} as {role}" for r, m, role in ROUTES])
def test_no_input_is_a_500_and_a_refusal_changes_nothing(app, site, rows_watch, rule, method, role):
    client, token = session_client(app, getattr(site, ROLES[role]).id)
    state = {"rows": rows_watch.rows(), "reached": 0, "sent": 0}

    postgres = app.config["SQLALCHEMY_DATABASE_URI"].startswith("postgresql")

    @settings(max_examples=PG_EXAMPLES if postgres else EXAMPLES, deadline=None, database=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                     HealthCheck.data_too_large])
    @given(segment=SEGMENT, params=PARAMS, htmx=st.booleans())
    @example(segment=None, params={"q": ["\U0010ffff"]}, htmx=False)
    @example(segment=None, params={"q": ["blue\ud7ff"], "class": ["\ud800"]}, htmx=True)
    @example(segment=None, params={"class": ["²"], "per_page": ["²"], "action": ["suspend"], "scope": ["selected"],
                                   "ids": ["²"]}, htmx=False)
    @example(segment=None, params={"mode": ["monthly"], "day_of_month": ["²"], "time_of_day": ["03:00"]}, htmx=True)
    @example(segment=None, params={"min_balance": ["1e1000000"], "name": ["x"], "balance_min": ["1e1000000"],
                                   "balance_max": ["-1e1000000"]}, htmx=False)
    @example(segment="9223372036854775808", params={"before": ["9223372036854775808"],
                                                    "ids": ["9223372036854775808"]}, htmx=False)
    @example(segment="2147483648", params={"action": ["suspend"], "scope": ["selected"], "ids": ["2147483648"]},
             htmx=True)
    @example(segment=None, params={"q": ["\U0010ffff"], "sort": ["²"]}, htmx=False)  # the export, before its stream
    @example(segment="²", params={"version": ["²"], "confirm": ["1"], "reason_category": ["other"],
                                  "reason_note": ["n"]}, htmx=False)
    def check(segment, params, htmx):
        path = _path(rule, site.ids, segment)
        headers = {"HX-Request": "true"} if htmx else {}
        if method == "GET":
            response = client.get(path, query_string=_encode(params), headers=headers)
        else:
            headers["X-CSRFToken"] = token
            response = client.open(path, method=method, data=_encode(params), headers=headers,
                                   content_type="application/x-www-form-urlencoded")
        response.get_data()  # a streamed body fails here, if anywhere
        where = f"{method} {path} {params!r} as {role}: {response.status_code}"
        assert response.status_code < 500, where
        state["sent"] += 1
        to_sign_in = response.status_code in (302, 303, 401) and "/login" in response.headers.get(
            "Location", response.headers.get("HX-Redirect", ""))
        refused_token = response.status_code == 400 and "form expired" in response.get_data(as_text=True)
        if not (to_sign_in or refused_token):
            state["reached"] += 1
        after = rows_watch.rows()  # read again only if a statement that could write ran
        if method == "GET" or response.status_code >= 400:
            assert after == state["rows"], f"{where} changed the database"
        state["rows"] = after

    check()
    # the requests reached the view as the signed-in role, not the sign-in page (which a stale way of signing in
    # the test client once made of every request here)
    assert state["reached"] >= state["sent"] // 2, f"{state['reached']} of {state['sent']} got past sign-in"
