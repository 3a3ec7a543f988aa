"""What the scan attacks: the sqlmap targets (list, counts, export, bulk confirm, sign-in) and wapiti's start pages.

Each sqlmap target keeps the other parameters at values that select rows, so that a condition an injection
made true or false would change the answer. The list's `cursor` is not among them: it is an HMAC-signed token
that is dropped unless it verifies, so sqlmap's changes never reach a query.

The sign-in answers slowly on purpose (every failed attempt hashes a password, so unknown emails take as long
as known ones): it gets the instance's own payloads and no UNION tests, which only extract data once an
injection is found; boolean, error, stacked and time-based tests would find one in the account lookup.
"""
import re
import urllib.parse

from tests.security.tools import SqlmapTarget

LIST_FILTERS = ("q", "status", "class", "balance_min", "balance_max", "active_after", "active_before", "exempt")
ROUTE_LINE = re.compile(r"^\S+\s+(?P<methods>[A-Z, ]+?)\s+(?P<rule>/\S*)\s*$")


def _filters(values):
    """Return filter values that keep a good share of the demo accounts in the answer."""
    return {"q": values["q"], "status": "active", "class": values["class"], "balance_min": "0",
            "balance_max": "100000", "active_after": "2000-01-01", "active_before": "2100-01-01", "exempt": "no"}


def sqlmap_targets(values):
    """Return the sqlmap targets, given values read from the account list (a class, a row's id and name).

    Their time limits add up to 10 minutes, about twice what they take on 2 busy cores.
    """
    f = _filters(values)
    list_query = urllib.parse.urlencode({"q": f["q"], "status": f["status"], "class": f["class"], "sort": "name",
                                         "per_page": "50"})
    full_query = urllib.parse.urlencode({**f, "sort": "name"})
    bulk = urllib.parse.urlencode({"action": "suspend", "scope": "selected", "ids": values["id"], **f,
                                   "next": "/accounts"})
    return [
        SqlmapTarget("account-list", "GET", f"/accounts?{list_query}", ("q", "status", "class", "sort", "per_page"),
                     time_limit=270, what="the account list: search, status, class, sort, page size"),
        SqlmapTarget("account-counts", "GET", f"/accounts/counts?{urllib.parse.urlencode(f)}", LIST_FILTERS,
                     fragment=True, time_limit=60, dbms="SQLite",
                     what="the status counts fragment (htmx), every filter"),
        SqlmapTarget("account-export", "GET", f"/accounts/export.csv?{full_query}", LIST_FILTERS + ("sort",),
                     time_limit=60, dbms="SQLite", what="the CSV export, every filter and the sort"),
        SqlmapTarget("bulk-confirm", "POST", "/accounts/bulk/confirm", ("action", "scope", "ids") + LIST_FILTERS
                     + ("next",), data=f"csrf_token={{csrf_token}}&{bulk}", fragment=True, time_limit=60,
                     dbms="SQLite", what="the bulk change confirmation (POST, htmx): action, scope, ids, filters"),
        SqlmapTarget("sign-in", "POST", "/login?next=%2Faccounts", ("email", "password", "next"),
                     data="csrf_token={csrf_token}&email=nobody%40example.com&password=not-the-password",
                     signed_in=False, time_limit=150, dbms="SQLite", technique="BEST",
                     what="the sign-in form (POST) and its next parameter, signed out; no UNION tests"),
    ]


def wapiti_start_paths(routes_text, values):
    """Return a start page for every GET route of `flask routes` (ids filled in), /logout and static left out.

    htmx fragments are reached only through hx-get attributes, which wapiti's crawler does not follow.
    """
    ids = {"account_id": values["id"], "rule_id": "1", "run_id": "1"}
    paths = []
    for line in routes_text.splitlines():
        route = ROUTE_LINE.match(line.strip())
        if not route or "GET" not in route["methods"] or route["rule"].startswith(("/static", "/logout")):
            continue
        path = re.sub(r"<int:(\w+)>", lambda m: ids.get(m.group(1), "1"), route["rule"])
        if "<" not in path and path not in paths:
            paths.append(path)
    return paths
