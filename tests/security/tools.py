"""The scanners: their own virtual environment, and the command lines that point them at the scan instance.

sqlmap and wapiti are installed from PyPI into `.venv-scan/` (PORTAL_SCAN_VENV), pinned in requirements.txt
beside this file, apart from the portal's own environment. Everything they are pointed at is on 127.0.0.1.
"""
import hashlib
import os
import subprocess
import sys
import venv
from dataclasses import dataclass

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
SCAN_VENV = os.environ.get("PORTAL_SCAN_VENV", os.path.join(ROOT, ".venv-scan"))
REQUIREMENTS = os.path.join(HERE, "requirements.txt")
USER_AGENT = "portal-security-scan"

# wapiti's modules that apply to this portal. Left out: ssl and https_redirect (the scan instance speaks plain
# HTTP; HSTS and headers are checked by the test suite), ssrf, xxe and log4shell (they need wapiti's public
# endpoint or DNS, and the scan stays on 127.0.0.1), ldap (the portal has no directory; its md5-based guess
# reads the portal's own 400 page for NUL bytes as an LDAP answer), nikto, wapp, htp, cms, wp_enum, buster,
# backup, htaccess, shellshock, spring4shell, network_device, takeover (downloads, or other stacks' files),
# methods (informational only).
WAPITI_MODULES = ("cookieflags", "csp", "http_headers", "csrf", "crlf", "exec", "file", "redirect", "sql",
                  "timesql", "xss", "permanentxss", "upload", "brute_login_form")


class ToolsFailed(RuntimeError):
    """The scanners could not be installed; the message holds pip's last words."""


@dataclass
class Tools:
    """Paths of the installed scanners."""

    python: str
    sqlmap: str
    wapiti: str


def ensure_tools(venv_dir=SCAN_VENV):
    """Create the scanners' virtual environment and install them (again only when requirements.txt changes)."""
    bin_dir = os.path.join(venv_dir, "bin")
    tools = Tools(os.path.join(bin_dir, "python"), os.path.join(bin_dir, "sqlmap"), os.path.join(bin_dir, "wapiti"))
    with open(REQUIREMENTS, "rb") as f:
        digest = hashlib.sha256(f.read() + sys.version.encode()).hexdigest()
    stamp = os.path.join(venv_dir, ".installed")
    if os.path.exists(stamp) and open(stamp).read() == digest:
        return tools
    if not os.path.exists(tools.python):
        venv.EnvBuilder(with_pip=True, clear=True).create(venv_dir)
    result = subprocess.run([tools.python, "-m", "pip", "install", "-q", "--disable-pip-version-check",
                             "-r", REQUIREMENTS], capture_output=True, text=True)
    if result.returncode != 0:
        raise ToolsFailed(f"installing the scanners into {venv_dir} failed:\n{result.stderr[-2000:]}")
    with open(stamp, "w") as f:
        f.write(digest)
    return tools


def versions(tools):
    """Return {"sqlmap": version, "wapiti": version} as the installed tools report them."""
    found = {}
    for name, cmd in (("sqlmap", [tools.sqlmap, "--version"]), ("wapiti", [tools.wapiti, "--version"])):
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        found[name] = (out.stdout.strip().splitlines() or ["?"])[-1]
    return found


@dataclass
class SqlmapTarget:
    """One request sqlmap attacks: its method, path with query, body, the parameters to test and its budget."""

    name: str
    method: str
    path: str
    params: tuple
    data: str | None = None
    fragment: bool = False      # send HX-Request: true, as htmx does (the counts answer only htmx)
    signed_in: bool = True      # False: an anonymous session (the sign-in form)
    time_limit: int = 120       # seconds; sqlmap stops by itself (--time-limit)
    dbms: str | None = None     # None: every DBMS's payloads; "SQLite": the instance's own and the generic ones
    technique: str | None = None  # None: all of sqlmap's techniques (BEUSTQ)
    what: str = ""

    def place_params(self):
        """Return the tested parameters as sqlmap names them: "GET q", "POST email"."""
        body = set(_names(self.data))
        return [f"{'POST' if p in body else 'GET'} {p}" for p in self.params]


def _names(query):
    return [pair.split("=", 1)[0] for pair in (query or "").split("&") if pair]


def sqlmap_command(tools, base_url, target, session, out_dir):
    """Return the sqlmap command line for one target, with its session cookie and CSRF token."""
    cmd = [tools.sqlmap, "-u", base_url + target.path, "-p", ",".join(target.params), "--level", "3",
           "--risk", "2", "--batch", "--disable-coloring", "--flush-session", "--output-dir", out_dir,
           "--report-json", os.path.join(out_dir, "report.json"), "--time-limit", str(target.time_limit),
           "--cookie", session.cookie, "--drop-set-cookie", "--timeout", "20", "--retries", "1",
           "--user-agent", f"{USER_AGENT} sqlmap"]
    headers = [f"X-CSRFToken: {session.csrf_token}"] + (["HX-Request: true"] if target.fragment else [])
    cmd += ["--headers", "\n".join(headers)]
    if target.data is not None:
        cmd += ["--data", target.data.replace("{csrf_token}", session.csrf_token)]
    if target.dbms:
        cmd += ["--dbms", target.dbms]
    if target.technique:
        cmd += ["--technique", target.technique]
    return cmd


def wapiti_command(tools, base_url, session, out_dir, start_paths, scan_time, attack_time, dead_port):
    """Return the wapiti command line: signed in with the cookie, /logout excluded, bounded in time.

    No X-CSRFToken header: wapiti posts the forms with the token they carry, and its csrf module must see
    what the portal does with a form whose token is missing or wrong.

    dead_port: a loopback port nothing listens on, given as wapiti's endpoint so that no module reaches out
    to wapiti's public one.
    """
    cmd = [tools.wapiti, "-u", base_url + "/", "--scope", "folder", "-x", base_url + "/logout",
           "-C", session.cookie, "-m", ",".join(WAPITI_MODULES),
           "-f", "json", "-o", os.path.join(out_dir, "report.json"), "-dr", "2",
           "--max-scan-time", str(scan_time), "--max-attack-time", str(attack_time),
           "--max-files-per-dir", "5", "--max-links-per-page", "20", "-d", "5", "-t", "15",
           "--no-bugreport", "--endpoint", f"http://127.0.0.1:{dead_port}/",
           "--store-session", os.path.join(out_dir, "session"), "--store-config", os.path.join(out_dir, "config"),
           "--flush-session", "-v", "1", "-A", f"{USER_AGENT} wapiti"]
    for path in start_paths:
        cmd += ["-s", base_url + path]
    return cmd
