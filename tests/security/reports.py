"""Read what sqlmap, wapiti and the portal's own log say about a scan, and judge it.

sqlmap (1.10): its console output and its `--report-json` file. wapiti (3.2): its JSON report and its console
output. The portal: the web server's log (one access line per request; a traceback for every 500).
"""
import json
import re

# wapiti's severity levels (wapitiCore.language.vulnerability): a vulnerability at MEDIUM or above fails the scan.
LEVELS = {0: "info", 1: "low", 2: "medium", 3: "high", 4: "critical"}
FAILING_LEVEL = 2

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][A-Z0-9]|\x1b[=>]")
SQLMAP_TESTING = re.compile(r"testing for SQL injection on (\w+) parameter '([^']+)'")
SQLMAP_NOT_INJECTABLE = re.compile(r"(\w+) parameter '([^']+)' does not seem to be injectable")
SQLMAP_INJECTABLE = re.compile(r"(\w+) parameter '([^']+)' is '([^']+)' injectable")
SQLMAP_MAYBE = re.compile(r"(\w+) parameter '([^']+)' appears to be '([^']+)' injectable")
SQLMAP_REDIRECT = re.compile(r"got a (\d{3}) redirect to '([^']+)'")
SQLMAP_HTTP_ERROR = re.compile(r"\b(\d{3}) \(([^)]*)\) - (\d+) times")  # "422 (Unprocessable Entity) - 9 times, …"
SQLMAP_NONE_FOUND = "all tested parameters do not appear to be injectable"
SQLMAP_FOUND = "sqlmap identified the following injection point(s)"
SQLMAP_CONNECTION = re.compile(r"\[CRITICAL\] (.*(?:connection|unable to connect|timed out).*)", re.I)

WAPITI_MODULE = re.compile(r"^\[\*\] Launching module (\w+)", re.M)
WAPITI_ATTACKED = re.compile(r"^\[\+\] (GET|POST|PUT|DELETE|PATCH) (\S+)", re.M)
WAPITI_MODULE_TIMEOUT = re.compile(r"^Max attack time was reached for module (\w+)", re.M)
WAPITI_SCAN_TIMEOUT = "Max scan time was reached"

ACCESS = re.compile(r'"(?P<method>[A-Z]+) (?P<target>\S*) HTTP/[\d.]+" (?P<status>\d{3}) ')
ERROR_START = re.compile(r"^ERROR:[\w.]+:(?:unhandled error on (?P<m1>[A-Z]+) (?P<p1>\S+)"
                         r"|Exception on (?P<p2>\S+) \[(?P<m2>[A-Z]+)\])")
LOG_RECORD = re.compile(r"^(?:INFO|WARNING|ERROR|DEBUG|CRITICAL):")


def strip_ansi(text):
    """Remove terminal colour and cursor sequences (werkzeug colours its log; sqlmap moves the cursor)."""
    return ANSI.sub("", text)


# ---------------------------------------------------------------- sqlmap

def parse_sqlmap_console(text):
    """Return what sqlmap's console output says: parameters tested and their outcome, redirects, HTTP errors."""
    text = strip_ansi(text)
    return {
        "tested": _unique(f"{place} {name}" for place, name in SQLMAP_TESTING.findall(text)),
        "not_injectable": _unique(f"{place} {name}" for place, name in SQLMAP_NOT_INJECTABLE.findall(text)),
        "injectable": _unique(f"{place} {name}: {title}" for place, name, title in SQLMAP_INJECTABLE.findall(text)),
        "suspected": _unique(f"{place} {name}: {title}" for place, name, title in SQLMAP_MAYBE.findall(text)),
        "redirects": _unique(f"{code} {url}" for code, url in SQLMAP_REDIRECT.findall(text)),
        "http_errors": {code: int(times) for code, _, times in SQLMAP_HTTP_ERROR.findall(text)},
        "connection_errors": _unique(SQLMAP_CONNECTION.findall(text)),
        "finished": SQLMAP_NONE_FOUND in text or SQLMAP_FOUND in text,
        "identified": SQLMAP_FOUND in text,
    }


def parse_sqlmap_report(report):
    """Return the injection points in a `--report-json` document (a dict), one per place and parameter."""
    found = []
    for item in (report or {}).get("data", []):
        if item.get("type_name") != "TECHNIQUES":
            continue
        for point in item.get("value") or []:
            found.append({"place": point.get("place"), "parameter": point.get("parameter"),
                          "dbms": point.get("dbms"),
                          "techniques": [{"technique": t.get("technique"), "title": t.get("title"),
                                          "payload": t.get("payload")} for t in point.get("data") or []]})
    return found


def judge_sqlmap(params, console, injections, signed_in_path="/login"):
    """Judge one sqlmap run: "injectable", "clean", "partial" (time limit) or "inconclusive", and why.

    Args:
        params: the parameters sqlmap was told to test, as "PLACE name" (e.g. "GET q").
        console: parse_sqlmap_console's result.
        injections: parse_sqlmap_report's result.
        signed_in_path: a redirect there means the session ended and the answers were the sign-in page's.

    A 429 makes the run inconclusive too: sqlmap compared the throttle's answers, not the portal's.
    """
    untested = [p for p in params if p not in console["tested"]]
    unfinished = [p for p in console["tested"] if p not in console["not_injectable"]]
    lost = [r for r in console["redirects"] if re.search(rf"https?://[^/]+{re.escape(signed_in_path)}\b", r)]
    if injections or console["injectable"] or console["identified"]:
        status, why = "injectable", "sqlmap identified an injection point"
    elif lost:
        status, why = "inconclusive", f"redirected to sign-in ({lost[0]}): the session ended"
    elif "429" in console["http_errors"]:
        status, why = "inconclusive", f"throttled: {console['http_errors']['429']} answers were 429"
    elif console["connection_errors"] or not console["tested"]:
        status, why = "inconclusive", "; ".join(console["connection_errors"]) or "no parameter was tested"
    elif not console["finished"] or untested or unfinished:
        status, why = "partial", "time limit reached before every parameter was tested"
    else:
        status, why = "clean", "every parameter tested; none injectable"
    return {"status": status, "why": why, "untested": untested,
            "unfinished": [p for p in unfinished if p not in untested]}


# ---------------------------------------------------------------- wapiti

def parse_wapiti_report(report, excerpt=600):
    """Return the findings of a wapiti JSON report (a dict): vulnerabilities and anomalies, each a flat dict."""
    def flat(kind, category, item):
        detail = (item.get("detail") or {}).get("response") or {}
        return {"kind": kind, "category": category, "level": item.get("level", 0),
                "severity": LEVELS.get(item.get("level", 0), str(item.get("level"))),
                "module": item.get("module"), "method": item.get("method"), "path": item.get("path"),
                "parameter": item.get("parameter"), "info": item.get("info"),
                "request": (item.get("http_request") or "")[:excerpt],
                "response_status": detail.get("status_code"),
                "response_excerpt": _visible_text(detail.get("body") or "")[:excerpt]}

    findings = []
    for kind, section in (("vulnerability", "vulnerabilities"), ("anomaly", "anomalies")):
        for category, items in (report.get(section) or {}).items():
            findings.extend(flat(kind, category, item) for item in items)
    infos = report.get("infos") or {}
    return {"findings": findings, "crawled_pages": infos.get("crawled_pages_nbr"), "version": infos.get("version")}


def parse_wapiti_console(text):
    """Return per attack module how many requests it attacked and whether its time ran out; and the crawl's."""
    text = strip_ansi(text)
    modules = {}
    starts = [(m.start(), m.group(1)) for m in WAPITI_MODULE.finditer(text)] + [(len(text), None)]
    for (start, name), (end, _) in zip(starts, starts[1:]):
        chunk = text[start:end]
        modules[name] = {"attacked": len(WAPITI_ATTACKED.findall(chunk)),
                         "time_ran_out": bool(WAPITI_MODULE_TIMEOUT.search(chunk))}
    return {"modules": modules, "crawl_time_ran_out": WAPITI_SCAN_TIMEOUT in text}


def failing_wapiti(findings):
    """Return the vulnerabilities at medium severity or above."""
    return [f for f in findings if f["kind"] == "vulnerability" and f["level"] >= FAILING_LEVEL]


# ---------------------------------------------------------------- the portal's log

def parse_server_log(text):
    """Return the requests the web server answered (method, target, status) and every 500 with its exception."""
    text = strip_ansi(text)
    requests, errors, pending = [], [], []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        start = ERROR_START.match(lines[i])
        if start:
            method, path = start.group("m1") or start.group("m2"), start.group("p1") or start.group("p2")
            block = [lines[i]]
            i += 1
            while i < len(lines) and not LOG_RECORD.match(lines[i]) and not ACCESS.search(lines[i]):
                block.append(lines[i])
                i += 1
            pending.append({"method": method, "path": path, "exception": _exception_line(block),
                            "where": _innermost_portal_frame(block)})
            continue
        access = ACCESS.search(lines[i])
        if access:
            requests.append((access["method"], access["target"], int(access["status"])))
            if access["status"] == "500":
                errors.append(_pair_error(access["method"], access["target"], pending))
        i += 1
    return {"requests": requests, "errors": errors}


def status_counts(requests):
    """Return {status: count} of parse_server_log's requests."""
    counts = {}
    for _, _, status in requests:
        counts[str(status)] = counts.get(str(status), 0) + 1
    return dict(sorted(counts.items()))


def _pair_error(method, target, pending):
    """Match a 500 access line with the traceback logged for the same method and path before it."""
    path = target.split("?", 1)[0]
    match = next((n for n, error in enumerate(pending) if (error["method"], error["path"]) == (method, path)), None)
    error = pending.pop(match) if match is not None else {"exception": None, "where": None}
    return {"method": method, "target": target, "exception": error["exception"], "where": error["where"]}


def _exception_line(block):
    candidates = [line for line in block[1:] if line and not line[0].isspace() and not line.startswith(
        ("Traceback", "During handling", "The above exception"))]
    return candidates[-1] if candidates else None


def _innermost_portal_frame(block):
    """Return the last traceback frame in the portal's code, its path from the repository root."""
    frames = [line.strip() for line in block if line.strip().startswith("File ") and "/portal/" in line]
    return re.sub(r'^File "[^"]*?/(portal/[^"]+)"', r'File "\1"', frames[-1]) if frames else None


# ---------------------------------------------------------------- helpers

def _unique(items):
    seen = []
    for item in items:
        if item not in seen:
            seen.append(item)
    return seen


def _visible_text(html_text):
    """Return the text of an HTML page's <main> (or the whole page), tags dropped and spaces collapsed."""
    main = re.search(r"<main\b.*?</main>", html_text, re.S)
    body = re.sub(r"<(script|style)\b.*?</\1>", " ", main.group(0) if main else html_text, flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", body)).strip()


def load_json(path):
    """Return the JSON document at path, or None if it is missing or not JSON (a scanner stopped early)."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None
