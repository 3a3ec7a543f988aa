#!/usr/bin/env python3
"""Scan a throwaway local portal with sqlmap and wapiti, and say whether anything was found.

    python3 tests/security/scan.py [--worktree] [--only sqlmap|wapiti] [--target NAME ...] [--accounts N]
                                   [--output DIR]
    python3 tests/security/scan.py --self-check

Installs sqlmap and wapiti into .venv-scan/ (tests/security/requirements.txt), starts the portal of the last
commit (a clean export of HEAD; --worktree: the working tree as it is) on 127.0.0.1 (SQLite in a temporary
folder, a private Redis on a free port, N demo accounts), signs in as the demo super admin, runs sqlmap
(level 3, risk 2, a time limit per target) on the list, counts, export, bulk-confirm and sign-in parameters,
then wapiti signed in (bounded crawl and attack times), stops every process it started by its PID and writes
summary.json and summary.md (default folder var/security-scan/<time>/).

Exit status: 0 nothing found; 1 a finding (an injection, a wapiti vulnerability of medium severity or above,
or a 500 answer from the portal); 2 the scan could not be completed. --self-check instead points both
scanners at sqlmap's bundled, deliberately vulnerable server and exits 0 only if both find its injection.
"""
import argparse
import datetime
import io
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time

if not __package__:  # run as a script: make the repository's packages importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from tests.security import client, reports, summary, targets, tools  # noqa: E402
from tests.security.instance import ROOT, Instance, InstanceFailed, free_port, stop_process, wait_for_port  # noqa: E402

BUDGET = 900              # seconds for both scanners; wapiti's attack time shrinks when sqlmap took long
WAPITI_SCAN_TIME = 60     # seconds of crawling
WAPITI_ATTACK_TIME = 30   # seconds per attack module, at most
WAPITI_BUSY_MODULES = 10  # modules that use their whole attack time (the header and cookie checks take a moment)
OVERRUN = 90              # seconds a scanner may run past its own limit before it is stopped


def main(argv=None):
    """Run the scan (or the self-check); return the exit status."""
    args = _parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    out_dir = args.output or os.path.join(ROOT, "var", "security-scan",
                                          datetime.datetime.now().strftime("%Y%m%d-%H%M%S"))
    os.makedirs(out_dir, exist_ok=True)
    if args.self_check:
        return self_check(out_dir)
    result = scan(args, out_dir, " ".join(["python3", "tests/security/scan.py",
                                           *(sys.argv[1:] if argv is None else argv)]))
    result["verdict"] = summary.verdict(result)
    print(summary.write(result, out_dir))
    print(f"summary: {os.path.join(out_dir, 'summary.md')} and summary.json")
    return result["verdict"]["exit_code"]


def _parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--worktree", action="store_true", help="scan the working tree instead of HEAD")
    parser.add_argument("--only", choices=("sqlmap", "wapiti"), help="run one scanner only")
    parser.add_argument("--target", action="append", help="sqlmap target(s) to run (default: all)")
    parser.add_argument("--accounts", type=int, default=500, help="demo accounts to seed (default 500)")
    parser.add_argument("--output", help="folder for the reports (default var/security-scan/<time>)")
    parser.add_argument("--self-check", action="store_true", help="check that both scanners find a known hole")
    return parser.parse_args(argv)


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def scan(args, out_dir, command):
    """Set up, run the scanners, tear down; return the result (a JSON-able dict, without the verdict)."""
    started = time.monotonic()
    result = {"started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              "commit": _git("rev-parse", "HEAD"), "command": command}
    workdir, inst = tempfile.mkdtemp(prefix="portal-scan-"), None
    try:
        _ensure_portal_venv()
        installed = tools.ensure_tools()
        result["tools"] = tools.versions(installed)
        result["source"], source = _source(args.worktree, workdir)
        inst = Instance(workdir, args.accounts, source)
        inst.start()
        result["portal"] = f"{inst.url}, SQLite, {args.accounts} demo accounts, PORTAL_ENV=development"
        _, page = client.sign_in(inst.url)
        values = client.list_values(page)
        deadline = time.monotonic() + BUDGET
        if args.only != "wapiti":
            result["sqlmap"] = [scan_target(installed, inst, t, out_dir) for t in targets.sqlmap_targets(values)
                                if not args.target or t.name in args.target]
        if args.only != "sqlmap":
            result["wapiti"] = scan_wapiti(installed, inst, values, out_dir, wapiti_attack_time(deadline))
    except (InstanceFailed, tools.ToolsFailed, client.SignInFailed, OSError, RuntimeError) as exc:
        result["error"] = f"{type(exc).__name__}: {exc}"
    except KeyboardInterrupt:
        result["error"] = "interrupted"
    finally:
        if inst is not None:
            inst.stop()
            shutil.copy(inst.web_log, os.path.join(out_dir, "web.log"))
        shutil.rmtree(workdir, ignore_errors=True)
    result["duration_s"] = round(time.monotonic() - started, 1)
    return result


def _ensure_portal_venv():
    """Create the portal's own virtual environment as run.py does (nothing to do when it is current)."""
    sys.path.insert(0, ROOT)
    import run

    try:
        run.ensure_venv("")
    except run.SetupFailed as exc:
        raise InstanceFailed(str(exc)) from exc


def _source(worktree, workdir):
    """Return (what is scanned, its folder): the working tree, or a clean export of HEAD into workdir."""
    if worktree:
        changed = _git("status", "--porcelain", "--", "portal", "templates", "static", "migrations")
        return f"working tree{' with uncommitted changes' if changed else ''}", ROOT
    export = os.path.join(workdir, "source")
    os.makedirs(export)
    archive = subprocess.run(["git", "archive", "--format=tar", "HEAD"], cwd=ROOT, capture_output=True)
    if archive.returncode != 0:
        raise InstanceFailed(f"git archive HEAD failed: {archive.stderr.decode(errors='replace')}")
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(export, filter="data")
    return "HEAD, a clean export", export


def _git(*args):
    found = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
    return found.stdout.strip() if found.returncode == 0 else None


def run_bounded(cmd, log_path, limit):
    """Run a scanner with its output in log_path; stop it by its PID after `limit` s. Return (seconds, killed)."""
    os.makedirs(os.path.dirname(log_path), exist_ok=True)
    started = time.monotonic()
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, cwd=os.path.dirname(log_path), stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    killed = False
    try:
        proc.wait(limit)
    except subprocess.TimeoutExpired:
        killed = True
    finally:
        if proc.poll() is None:  # over its time, or we are interrupted
            stop_process(proc)
    return time.monotonic() - started, killed


class LogSlice:
    """The part of the portal's log written while one scanner ran."""

    def __init__(self, path):
        self.path, self.start = path, os.path.getsize(path)

    def read(self):
        time.sleep(0.5)  # the last answers' lines
        with open(self.path, "rb") as f:
            f.seek(self.start)
            parsed = reports.parse_server_log(f.read().decode("utf-8", "replace"))
        return {"requests": len(parsed["requests"]), "statuses": reports.status_counts(parsed["requests"]),
                "errors": parsed["errors"]}


def scan_target(installed, inst, target, out_dir):
    """Run sqlmap on one target with a session of its own; return what it tested and found."""
    session = client.sign_in(inst.url)[0] if target.signed_in else client.anonymous_session(inst.url)
    target_dir = os.path.join(out_dir, "sqlmap", target.name)
    os.makedirs(target_dir, exist_ok=True)
    log = LogSlice(inst.web_log)
    print(f"==> sqlmap {target.name}: {target.method} {target.path.split('?')[0]} "
          f"{','.join(target.params)} (at most {target.time_limit} s)", flush=True)
    elapsed, killed = run_bounded(tools.sqlmap_command(installed, inst.url, target, session, target_dir),
                                  os.path.join(target_dir, "console.txt"), target.time_limit + OVERRUN)
    with open(os.path.join(target_dir, "console.txt"), encoding="utf-8", errors="replace") as f:
        console = reports.parse_sqlmap_console(f.read())
    injections = reports.parse_sqlmap_report(reports.load_json(os.path.join(target_dir, "report.json")))
    judged = reports.judge_sqlmap(target.place_params(), console, injections)
    if target.signed_in and not client.still_signed_in(inst.url, session) and judged["status"] != "injectable":
        judged.update(status="inconclusive", why="the session no longer opens the account list after the run")
    if killed:
        judged.update(status="inconclusive", why=f"stopped after {target.time_limit + OVERRUN} s")
    return {"name": target.name, "what": target.what, "method": target.method, "path": target.path,
            "params": target.place_params(), "dbms": target.dbms, "technique": target.technique,
            "time_limit": target.time_limit,
            "elapsed_s": round(elapsed, 1), **judged, "injections": injections, "console": console,
            "server": log.read()}


def wapiti_attack_time(deadline):
    """Return wapiti's seconds per attack module: WAPITI_ATTACK_TIME, less near the budget's end (10 at least)."""
    left = deadline - time.monotonic() - WAPITI_SCAN_TIME - 30
    return int(max(10, min(WAPITI_ATTACK_TIME, left / WAPITI_BUSY_MODULES)))


def scan_wapiti(installed, inst, values, out_dir, attack_time):
    """Run wapiti signed in (a session of its own), crawl and attacks bounded; return what it reported."""
    session, _ = client.sign_in(inst.url)
    wapiti_dir = os.path.join(out_dir, "wapiti")
    os.makedirs(wapiti_dir, exist_ok=True)
    start_paths = targets.wapiti_start_paths(inst.routes(), values)
    limit = WAPITI_SCAN_TIME + attack_time * len(tools.WAPITI_MODULES)
    log = LogSlice(inst.web_log)
    print(f"==> wapiti: {len(start_paths)} start pages, {len(tools.WAPITI_MODULES)} modules (at most {limit} s)",
          flush=True)
    cmd = tools.wapiti_command(installed, inst.url, session, wapiti_dir, start_paths, WAPITI_SCAN_TIME,
                               attack_time, free_port())
    elapsed, killed = run_bounded(cmd, os.path.join(wapiti_dir, "console.txt"), limit + OVERRUN)
    report = reports.load_json(os.path.join(wapiti_dir, "report.json"))
    parsed = reports.parse_wapiti_report(report) if report else {"findings": [], "crawled_pages": None}
    with open(os.path.join(wapiti_dir, "console.txt"), encoding="utf-8", errors="replace") as f:
        console = reports.parse_wapiti_console(f.read())
    return {"modules_requested": list(tools.WAPITI_MODULES), "start_paths": start_paths,
            "scan_time": WAPITI_SCAN_TIME, "attack_time": attack_time, "elapsed_s": round(elapsed, 1),
            "killed": killed, "report_missing": report is None, **parsed, **console,
            "signed_in_at_end": client.still_signed_in(inst.url, session), "server": log.read()}


def self_check(out_dir):
    """Point both scanners at sqlmap's deliberately vulnerable server (loopback); 0 if both find its hole."""
    installed = tools.ensure_tools()
    port = free_port()
    server = subprocess.Popen([installed.python, "-m", "sqlmap.extra.vulnserver.vulnserver", "127.0.0.1", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        if not wait_for_port(port, server):
            print("the vulnerable server did not start")
            return summary.EXIT_INCOMPLETE
        return _self_check_against(installed, f"http://127.0.0.1:{port}", out_dir)
    finally:
        stop_process(server)


def _self_check_against(installed, base_url, out_dir):
    sqlmap_dir, wapiti_dir = os.path.join(out_dir, "sqlmap", "vulnserver"), os.path.join(out_dir, "wapiti")
    target = tools.SqlmapTarget("vulnserver", "GET", "/?id=1", ("id",), time_limit=120)
    run_bounded(tools.sqlmap_command(installed, base_url, target, client.Session("x=1", "none"), sqlmap_dir),
                os.path.join(sqlmap_dir, "console.txt"), 240)
    found = reports.parse_sqlmap_report(reports.load_json(os.path.join(sqlmap_dir, "report.json")))
    cmd = tools.wapiti_command(installed, base_url, client.Session("x=1", "none"), wapiti_dir, ["/?id=1"], 30, 30,
                               free_port())
    run_bounded(cmd, os.path.join(wapiti_dir, "console.txt"), 600)
    wapiti = reports.parse_wapiti_report(reports.load_json(os.path.join(wapiti_dir, "report.json")) or {})
    failing = reports.failing_wapiti(wapiti["findings"])
    print(f"sqlmap found: {[(p['place'], p['parameter']) for p in found]}")
    print(f"wapiti found (medium or above): {[(f['category'], f['parameter']) for f in failing]}")
    print(f"outputs in {out_dir}")
    return summary.EXIT_CLEAN if found and failing else summary.EXIT_FINDINGS


if __name__ == "__main__":
    sys.exit(main())
