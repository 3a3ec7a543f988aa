"""Sign in to the scan instance as a person would, and read what the scanners need from its pages.

The portal checks the CSRF token as the form field `csrf_token` and as the `X-CSRFToken` header; a token is
tied to the session it was issued in, so the scanners get the cookie and the token of one session together.
"""
import html
import http.cookiejar
import re
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass

DEMO_ADMIN = "admin@example.com"
DEMO_PASSWORD = "portal-demo-2026"
TOKEN_FIELD = re.compile(r'name="csrf_token"\s+value="([^"]+)"')
TOKEN_HEADER = re.compile(r'"X-CSRFToken":\s*"([^"]+)"')
CLASS_OPTION = re.compile(r'<select id="class" name="class".*?</select>', re.S)
OPTION_VALUE = re.compile(r'<option value="(\d+)"')
CURSOR = re.compile(r'[?&;]cursor=([^&"\s]+)')
ROW = re.compile(r'<a href="/accounts/(\d+)">[^<]*</a></td>\s*<td>([A-Za-z]{3})')


class SignInFailed(RuntimeError):
    """The demo super admin could not be signed in; the message says what the portal answered."""


@dataclass
class Session:
    """One session of the portal: its cookie header value and its CSRF token."""

    cookie: str
    csrf_token: str


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


class Browser:
    """A cookie jar and an opener for one origin; it follows redirects as a browser does."""

    def __init__(self, base_url):
        self.base_url = base_url
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))

    def get(self, path):
        with self.opener.open(self.base_url + path, timeout=30) as response:
            return response.status, response.geturl(), response.read().decode("utf-8", "replace")

    def post(self, path, fields):
        data = urllib.parse.urlencode(fields).encode()
        with self.opener.open(self.base_url + path, data=data, timeout=30) as response:
            return response.status, response.geturl(), response.read().decode("utf-8", "replace")

    def cookie_header(self):
        return "; ".join(f"{c.name}={c.value}" for c in self.jar)


def page_token(page):
    """Return the CSRF token a page carries (its htmx header, else a form's hidden field)."""
    found = TOKEN_HEADER.search(page) or TOKEN_FIELD.search(page)
    if not found:
        raise SignInFailed("the page carries no CSRF token")
    return html.unescape(found.group(1))


def anonymous_session(base_url):
    """Open the sign-in page without signing in; return that session (for scanning the sign-in form)."""
    browser = Browser(base_url)
    _, _, page = browser.get("/login")
    return Session(browser.cookie_header(), page_token(page))


def sign_in(base_url, email=DEMO_ADMIN, password=DEMO_PASSWORD):
    """Sign in and open the account list; return (session, the list page's HTML)."""
    browser = Browser(base_url)
    _, _, login_page = browser.get("/login")
    try:
        status, landed, page = browser.post("/login", {"csrf_token": page_token(login_page), "email": email,
                                                       "password": password})
    except urllib.error.HTTPError as exc:
        raise SignInFailed(f"POST /login answered {exc.code}: {exc.read()[:300]!r}") from exc
    if urllib.parse.urlsplit(landed).path != "/accounts":
        raise SignInFailed(f"sign-in as {email} landed on {landed} (status {status}), not on /accounts")
    # The list page issued this session's CSRF token and stored it in the cookie: take both after it.
    return Session(browser.cookie_header(), page_token(page)), page


def still_signed_in(base_url, session):
    """True when the session cookie still opens the account list (no redirect to sign-in)."""
    opener = urllib.request.build_opener(_NoRedirect)
    request = urllib.request.Request(base_url + "/accounts", headers={"Cookie": session.cookie})
    try:
        with opener.open(request, timeout=30) as response:
            return response.status == 200
    except urllib.error.HTTPError:
        return False


def list_values(page):
    """Read from the account list page values that select rows: a class, a next-page cursor, a row's id and name."""
    select = CLASS_OPTION.search(page)
    classes = OPTION_VALUE.findall(select.group(0)) if select else []
    cursor = CURSOR.search(page)
    row = ROW.search(page)
    return {"class": classes[0] if classes else "1",
            "cursor": html.unescape(urllib.parse.unquote(cursor.group(1))) if cursor else None,
            "id": row.group(1) if row else "1", "q": row.group(2).lower() if row else "a"}
