"""The security scan's quick parts: reading sqlmap's, wapiti's and the portal's output, and judging a scan.

The samples in samples/ are real outputs, kept as they came (wapiti's reports without their list of crawled
pages, bodies cut at 3,000 characters):
- sqlmap-vulnserver-*, wapiti-vulnserver-*: `scan.py --self-check`, both scanners against sqlmap's bundled,
  deliberately injectable server;
- sqlmap-portal-counts-*, wapiti-portal-report.json: a scan of the portal (nothing injectable; wapiti's
  findings all low);
- sqlmap-time-limit-console.txt: sqlmap on the list with `--time-limit 8` (stopped during its first parameter);
- sqlmap-signed-out-console.txt: sqlmap on the list with a cookie that is no session (redirected to /login);
- sqlmap-throttled-console.txt: sqlmap on the sign-in form while the portal's per-email limit was on (a 429);
- web-log-500.txt: the web server's log around a 500 (a rule deleted while another request enabled it);
- flask-routes.txt: `flask routes` of the portal.
"""
import json
import os
import time

from portal.domain.account_search.filters import RAW_FIELDS
from tests.security import reports, scan, summary, targets, tools
from tests.security.client import Session, list_values

SAMPLES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "samples")
VALUES = {"class": "2", "cursor": None, "id": "128", "q": "blu"}


def sample(name):
    with open(os.path.join(SAMPLES, name), encoding="utf-8") as f:
        return f.read()


def judged(console_sample, params, report_sample=None):
    console = reports.parse_sqlmap_console(sample(console_sample))
    injections = reports.parse_sqlmap_report(json.loads(sample(report_sample))) if report_sample else []
    return reports.judge_sqlmap(params, console, injections), console, injections


def test_sqlmap_injection_is_read_from_the_console_and_the_json_report():
    verdict, console, injections = judged("sqlmap-vulnserver-console.txt", ["GET id"],
                                          "sqlmap-vulnserver-report.json")
    assert verdict["status"] == "injectable"
    assert console["identified"] and console["tested"] == ["GET id"]
    assert [(p["place"], p["parameter"]) for p in injections] == [("GET", "id")]
    assert {"boolean-based blind", "UNION query"} <= {t["technique"] for t in injections[0]["techniques"]}


def test_sqlmap_clean_run_lists_every_parameter_as_not_injectable():
    params = [f"GET {p}" for p in targets.LIST_FILTERS]
    verdict, console, injections = judged("sqlmap-portal-counts-console.txt", params,
                                          "sqlmap-portal-counts-report.json")
    assert verdict == {"status": "clean", "why": "every parameter tested; none injectable", "untested": [],
                       "unfinished": []}
    assert console["not_injectable"] == params and injections == []


def test_sqlmap_stopped_by_its_time_limit_is_partial_and_says_what_was_left():
    verdict, console, _ = judged("sqlmap-time-limit-console.txt", ["GET q", "GET status"])
    assert not console["finished"]
    assert verdict["status"] == "partial"
    assert verdict["untested"] == ["GET status"] and verdict["unfinished"] == ["GET q"]


def test_sqlmap_answered_by_the_sign_in_page_is_inconclusive_not_clean():
    verdict, console, _ = judged("sqlmap-signed-out-console.txt", ["GET q"])
    assert console["not_injectable"] == ["GET q"]  # sqlmap itself would call it clean
    assert verdict["status"] == "inconclusive" and "session ended" in verdict["why"]


def test_sqlmap_throttled_by_the_portal_is_inconclusive():
    verdict, console, _ = judged("sqlmap-throttled-console.txt", ["POST email", "POST password", "GET next"])
    assert console["http_errors"] == {"422": 475, "429": 1}
    assert verdict["status"] == "inconclusive" and "429" in verdict["why"]


def test_wapiti_findings_of_medium_severity_or_above_fail_and_low_ones_do_not():
    found = reports.parse_wapiti_report(json.loads(sample("wapiti-vulnserver-report.json")))
    failing = {(f["category"], f["severity"]) for f in reports.failing_wapiti(found["findings"])}
    assert ("SQL Injection", "critical") in failing
    assert ("Cross Site Request Forgery", "medium") in failing
    assert all(f["level"] >= 2 for f in reports.failing_wapiti(found["findings"]))
    portal = reports.parse_wapiti_report(json.loads(sample("wapiti-portal-report.json")))
    assert portal["findings"] and reports.failing_wapiti(portal["findings"]) == []
    assert {f["severity"] for f in portal["findings"]} == {"low"}


def test_wapiti_console_tells_each_module_and_whether_its_time_ran_out():
    console = reports.parse_wapiti_console(sample("wapiti-vulnserver-console.txt"))
    assert set(console["modules"]) <= set(tools.WAPITI_MODULES)
    assert console["modules"]["sql"]["attacked"] >= 1
    assert not console["crawl_time_ran_out"]


def test_server_log_pairs_each_500_with_its_exception_and_portal_frame():
    log = reports.parse_server_log(sample("web-log-500.txt"))
    assert [e["target"] for e in log["errors"]] == ["/rules/1/enabled"]
    error = log["errors"][0]
    assert error["exception"].startswith("sqlalchemy.orm.exc.ObjectDeletedError")
    assert error["where"] == 'File "portal/web/rules.py", line 81, in set_enabled'
    counts = reports.status_counts(log["requests"])
    assert counts["500"] == 1 and sum(counts.values()) == len(log["requests"]) > 10
    assert all("\x1b" not in target for _, target, _ in log["requests"])  # werkzeug's colours are gone


def _target(status, **extra):
    return {"name": "t", "status": status, "why": "because", "injections": [], "console": {"injectable": []},
            "server": {"requests": 1, "statuses": {"200": 1}, "errors": []}, **extra}


def test_verdict_fails_on_injection_medium_wapiti_finding_or_500_and_is_incomplete_when_unsure():
    clean = {"sqlmap": [_target("clean"), _target("partial")], "wapiti": {"findings": [], "server": {"errors": []}}}
    assert summary.verdict(clean)["exit_code"] == summary.EXIT_CLEAN
    assert summary.verdict({"sqlmap": [_target("inconclusive")]})["exit_code"] == summary.EXIT_INCOMPLETE
    assert summary.verdict({"error": "InstanceFailed: x"})["exit_code"] == summary.EXIT_INCOMPLETE
    injected = {"sqlmap": [_target("injectable", injections=[{"place": "GET", "parameter": "q"}])]}
    assert summary.verdict(injected)["findings"] == ["sqlmap: t: injection in GET q"]
    vuln = dict(clean, wapiti={"findings": reports.parse_wapiti_report(json.loads(
        sample("wapiti-vulnserver-report.json")))["findings"], "server": {"errors": []}})
    assert summary.verdict(vuln)["exit_code"] == summary.EXIT_FINDINGS
    errors = reports.parse_server_log(sample("web-log-500.txt"))["errors"]
    crashed = {"sqlmap": [_target("clean", server={"requests": 1, "statuses": {"500": 1}, "errors": errors})]}
    result = summary.verdict(crashed)
    assert result["exit_code"] == summary.EXIT_FINDINGS and "ObjectDeletedError" in result["findings"][0]


def test_markdown_summary_names_every_target_and_finding():
    errors = reports.parse_server_log(sample("web-log-500.txt"))["errors"]
    result = {"started": "2026-12-01T00:00:00+00:00", "commit": "abc", "command": "scan", "duration_s": 1.0,
              "sqlmap": [dict(_target("clean", server={"requests": 3, "statuses": {"500": 1}, "errors": errors}),
                              method="GET", path="/accounts?q=a", params=["GET q"], dbms=None, time_limit=9,
                              elapsed_s=2.0, untested=[], unfinished=[])]}
    result["verdict"] = summary.verdict(result)
    text = summary.markdown(result)
    assert "| t | GET /accounts | GET q | all DBMS" in text
    assert "POST /rules/1/enabled" in text and "**findings** (exit 1)" in text


def test_sqlmap_targets_use_the_portals_real_parameter_names_in_their_requests():
    assert set(targets.LIST_FILTERS) <= set(RAW_FIELDS)
    names = {t.name for t in targets.sqlmap_targets(VALUES)}
    assert names == {"account-list", "account-counts", "account-export", "bulk-confirm", "sign-in"}
    for target in targets.sqlmap_targets(VALUES):
        query = target.path.split("?", 1)[1] if "?" in target.path else ""
        sent = {pair.split("=")[0] for pair in f"{query}&{target.data or ''}".split("&") if pair}
        assert set(target.params) <= sent, target.name
        assert target.data is None or "csrf_token={csrf_token}" in target.data


def test_scanner_commands_stay_on_loopback_signed_in_and_bounded():
    installed = tools.Tools("py", "sqlmap", "wapiti")
    session = Session("session=abc", "tok")
    bulk = next(t for t in targets.sqlmap_targets(VALUES) if t.name == "bulk-confirm")
    cmd = tools.sqlmap_command(installed, "http://127.0.0.1:5", bulk, session, "/tmp/o")
    flags = dict(zip(cmd, cmd[1:]))
    assert flags["-u"] == "http://127.0.0.1:5/accounts/bulk/confirm"
    assert (flags["--level"], flags["--risk"], flags["--time-limit"]) == ("3", "2", str(bulk.time_limit))
    assert "--batch" in cmd and flags["--cookie"] == "session=abc" and "csrf_token=tok&" in flags["--data"]
    assert flags["--headers"].splitlines() == ["X-CSRFToken: tok", "HX-Request: true"]
    w = tools.wapiti_command(installed, "http://127.0.0.1:5", session, "/tmp/o", ["/accounts"], 60, 30, 9)
    wflags = dict(zip(w, w[1:]))
    assert wflags["-x"] == "http://127.0.0.1:5/logout" and wflags["--endpoint"] == "http://127.0.0.1:9/"
    assert (wflags["--max-scan-time"], wflags["--max-attack-time"]) == ("60", "30")
    assert wflags["-C"] == "session=abc" and "-H" not in w and "--no-bugreport" in w
    assert all(v.startswith("http://127.0.0.1:") for k, v in zip(w, w[1:]) if k in ("-u", "-s", "-x"))


def test_wapiti_starts_from_every_get_route_with_ids_filled_in_and_never_logout():
    paths = targets.wapiti_start_paths(sample("flask-routes.txt"), VALUES)
    assert "/accounts/128/status-dialog" in paths and "/accounts/counts" in paths and "/rules/1/edit" in paths
    assert not any(p.startswith(("/logout", "/static")) or "<" in p for p in paths)
    assert "/accounts/bulk/confirm" not in paths  # POST only


def test_list_values_reads_a_class_a_row_and_a_cursor_from_the_list_page():
    page = ('<select id="class" name="class" ><option value="">Any class</option>\n<option value="2" >Premium'
            '</option></select><td><a href="/accounts/128">A0000128</a></td>\n  <td>Blue Anchor Grill</td>'
            '<a href="/accounts?cursor=abc.def&amp;q=x">Next</a>')
    assert list_values(page) == {"class": "2", "cursor": "abc.def", "id": "128", "q": "blu"}


def test_wapiti_attack_time_shrinks_to_keep_the_whole_scan_within_its_budget():
    now = time.monotonic()
    assert scan.wapiti_attack_time(now + scan.BUDGET) == scan.WAPITI_ATTACK_TIME
    assert scan.wapiti_attack_time(now + scan.WAPITI_SCAN_TIME + 30 + 155) == 15
    assert scan.wapiti_attack_time(now) == 10  # sqlmap used it all: wapiti still gets a short look
    limits = sum(t.time_limit for t in targets.sqlmap_targets(VALUES))
    assert limits + scan.WAPITI_SCAN_TIME + 30 + scan.WAPITI_BUSY_MODULES * 10 <= scan.BUDGET
