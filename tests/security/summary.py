"""Judge a whole scan and write it down: summary.json for machines, summary.md for people.

A finding fails the scan (exit 1): an injection sqlmap identified, a wapiti vulnerability of medium severity or
above, or a 500 the portal answered during the scan (the issue asks for a clear 4xx for every input). A scan
that could not be completed (a step failed, a session ended under sqlmap, no wapiti report) exits 2.
"""
import json
import os
import re

from tests.security import reports

EXIT_CLEAN, EXIT_FINDINGS, EXIT_INCOMPLETE = 0, 1, 2


def verdict(result):
    """Return {"exit_code", "findings", "incomplete"} for a scan result (the dict scan.py builds)."""
    findings, incomplete = [], []
    if result.get("error"):
        incomplete.append(result["error"])
    for target in result.get("sqlmap") or []:
        if target["status"] == "injectable":
            findings.append(f"sqlmap: {target['name']}: injection in {', '.join(_points(target)) or '?'}")
        elif target["status"] == "inconclusive":
            incomplete.append(f"sqlmap: {target['name']}: {target['why']}")
    wapiti = result.get("wapiti")
    if wapiti is not None:
        if wapiti.get("report_missing"):
            incomplete.append("wapiti: no report (it stopped before writing one)")
        for f in reports.failing_wapiti(wapiti.get("findings") or []):
            findings.append(f"wapiti: {f['severity']}: {f['category']}: {f['method']} {f['path']} "
                            f"parameter {f['parameter'] or '-'}: {f['info']}")
    for group in grouped_errors(result):
        findings.append(f"{group['count']} answer(s) 500 during {', '.join(group['phases'])}: {group['exception']} "
                        f"({group['where']}); e.g. {'; '.join(group['examples'])}")
    code = EXIT_FINDINGS if findings else EXIT_INCOMPLETE if incomplete else EXIT_CLEAN
    return {"exit_code": code, "findings": findings, "incomplete": incomplete}


def server_errors(result):
    """Yield (phase, error) for every 500 in the portal's log, phase by phase."""
    for target in result.get("sqlmap") or []:
        for error in target.get("server", {}).get("errors", []):
            yield f"sqlmap {target['name']}", error
    if result.get("wapiti"):
        for error in result["wapiti"].get("server", {}).get("errors", []):
            yield "wapiti", error


def grouped_errors(result):
    """Return the 500s grouped by cause (exception and innermost portal frame), with a count and examples."""
    groups = {}
    for phase, error in server_errors(result):
        key = (re.sub(r"0x[0-9a-f]+", "0x…", error["exception"] or ""), error["where"])  # object addresses vary
        group = groups.setdefault(key, {
            "exception": error["exception"], "where": error["where"], "count": 0, "phases": [], "examples": []})
        group["count"] += 1
        example = f"{error['method']} {error['target'][:200]}"
        if phase not in group["phases"]:
            group["phases"].append(phase)
        if len(group["examples"]) < 3 and example not in group["examples"]:
            group["examples"].append(example)
    return list(groups.values())


def _points(target):
    points = [f"{p['place']} {p['parameter']}" for p in target.get("injections") or []]
    return points or [p.split(":")[0] for p in target.get("console", {}).get("injectable", [])]


def write(result, out_dir):
    """Write summary.json and summary.md into out_dir; return the Markdown text."""
    with open(os.path.join(out_dir, "summary.json"), "w", encoding="utf-8") as f:
        json.dump(result, f, indent=2, ensure_ascii=False)
    text = markdown(result)
    with open(os.path.join(out_dir, "summary.md"), "w", encoding="utf-8") as f:
        f.write(text)
    return text


def markdown(result):
    """Return the human summary of a scan result."""
    v = result["verdict"]
    lines = [f"# Security scan, {result['started']}", "",
             f"- commit `{result.get('commit')}`; command `{result.get('command')}`; "
             f"{result.get('duration_s', 0):.0f} s",
             f"- tools: {', '.join(f'{k} {val}' for k, val in (result.get('tools') or {}).items()) or '-'}",
             f"- portal: {result.get('source', '-')}; {result.get('portal', '-')}",
             f"- verdict: **{['clean', 'findings', 'incomplete'][v['exit_code']]}** (exit {v['exit_code']})", ""]
    lines += [f"  - finding: {f}" for f in v["findings"]] + [f"  - incomplete: {i}" for i in v["incomplete"]]
    lines += _sqlmap_section(result.get("sqlmap"))
    lines += _wapiti_section(result.get("wapiti"))
    lines += _errors_section(result)
    return "\n".join(lines) + "\n"


def _sqlmap_section(targets):
    if targets is None:
        return []
    lines = ["", "## sqlmap (level 3, risk 2)", "",
             "| target | request | parameters | payloads | time | requests (answers) | result |",
             "|---|---|---|---|---|---|---|"]
    for t in targets:
        statuses = ", ".join(f"{k}: {n}" for k, n in t["server"]["statuses"].items())
        lines.append(f"| {t['name']} | {t['method']} {t['path'].split('?')[0]} | {', '.join(t['params'])} | "
                     f"{t['dbms'] or 'all DBMS'}, {t.get('technique') or 'all techniques'} | "
                     f"{t['elapsed_s']:.0f}/{t['time_limit']} s | "
                     f"{t['server']['requests']} ({statuses}) | {t['status']}: {t['why']} |")
    for t in targets:
        extra = [f"untested: {', '.join(t['untested'])}" if t["untested"] else "",
                 f"not finished: {', '.join(t['unfinished'])}" if t["unfinished"] else "",
                 f"injection: {json.dumps(t['injections'])}" if t["injections"] else ""]
        extra = [e for e in extra if e]
        if extra:
            lines.append(f"- {t['name']}: " + "; ".join(extra))
    return lines


def _wapiti_section(w):
    if w is None:
        return []
    statuses = ", ".join(f"{k}: {n}" for k, n in w["server"]["statuses"].items())
    lines = ["", "## wapiti (signed in as the super admin, /logout excluded)", "",
             f"- {w['elapsed_s']:.0f} s; crawl limit {w['scan_time']} s (reached: {w['crawl_time_ran_out']}), "
             f"{w['attack_time']} s per module; {w.get('crawled_pages')} pages crawled; "
             f"{w['server']['requests']} requests ({statuses}); still signed in at the end: {w['signed_in_at_end']}",
             "- modules (resources attacked, time ran out): " + ", ".join(
                 f"{name} {m['attacked']}{' (time)' if m['time_ran_out'] else ''}"
                 for name, m in w["modules"].items()), ""]
    if w.get("findings"):
        lines += ["| severity | kind | category | request | parameter | info |", "|---|---|---|---|---|---|"]
        for f in sorted(w["findings"], key=lambda f: -f["level"]):
            lines.append(f"| {f['severity']} | {f['kind']} | {f['category']} | {f['method']} {f['path']} | "
                         f"{f['parameter'] or '-'} | {f['info']} |")
    else:
        lines.append("No vulnerabilities and no anomalies reported.")
    return lines


def _errors_section(result):
    groups = grouped_errors(result)
    lines = ["", "## 500 answers in the portal's log", ""]
    if not groups:
        return lines + ["None."]
    lines += ["| count | during | exception | innermost portal frame | requests (up to 3) |", "|---|---|---|---|---|"]
    for g in groups:
        lines.append(f"| {g['count']} | {', '.join(g['phases'])} | {_cell(g['exception'] or '?')} | "
                     f"{_cell(g['where'] or '?')} | {_cell('; '.join(g['examples']))} |")
    return lines


def _cell(text):
    return text.replace("|", "\\|").replace("\n", " ")
