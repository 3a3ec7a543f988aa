"""Fetching a social feed safely: only http(s), only public addresses, bounded in time and size.

A feed URL is typed by a customer, so the portal must not become a way to reach its own network
(server-side request forgery). The address is checked when the URL is saved and again at every fetch:
the host is resolved, every address it resolves to must be public (not private, loopback, link-local,
multicast, reserved or unspecified) unless SOCIAL_FEED_ALLOW_PRIVATE is set, and the request is then sent
to the very address that was checked (Host header and TLS server name keep the original name), so a DNS
answer that changes between the check and the connection (DNS rebinding) cannot redirect it. Redirects
are followed by hand, at most MAX_REDIRECTS, each one checked the same way. The checks themselves are
portal.domain.egress, shared with the webhooks; this module words their refusals for feeds.
"""
import socket  # noqa: F401  (tests answer DNS through social_fetch.socket.getaddrinfo)
import time
from urllib.parse import urljoin

import httpx

from portal.domain import egress

MAX_URL_LENGTH = 500
MAX_REDIRECTS = 3
USER_AGENT = "AccountSuspensionPortal-SocialMonitor/1.0"
DEFAULT_MAX_BYTES = 2 * 1024 * 1024
DEFAULT_TIMEOUT = 10.0


class FeedError(Exception):
    """The feed could not be fetched or read; `message` is safe to show and to store as the last error."""

    def __init__(self, message):
        super().__init__(message)
        self.message = message


FEED_MESSAGES = {
    egress.EMPTY: "Enter the feed's address, starting with http:// or https://.",
    egress.TOO_LONG: f"Keep the feed's address to {MAX_URL_LENGTH} characters.",
    egress.NOT_A_URL: "That is not a web address; enter one like https://example.com/feed.json.",
    egress.SCHEME: "The feed's address must start with http:// or https://.",
    egress.NO_HOST: "The feed's address needs a host name, like https://example.com/feed.json.",
    egress.CREDENTIALS: "Leave user names and passwords out of the feed's address.",
    egress.NOT_FOUND: "The feed's host {host} could not be found.",
    egress.PRIVATE: "The feed's address points inside a private network (a private, loopback or "
                    "link-local address), which the portal does not fetch from.",
}


def _refused(address):
    return egress.is_refused(address)


def resolve_public(url, allow_private=False):
    """Resolve the URL's host and return the address to connect to (portal.domain.egress.resolve).

    Args:
        url: an http(s) URL.
        allow_private: accept private, loopback and link-local addresses (tests, an intranet deployment).

    Returns:
        (scheme, host, port, address): the address is one the host resolved to, every one of which passed.

    Raises:
        FeedError: not an http(s) URL, the host cannot be found, or it resolves to an address refused.
    """
    try:
        return egress.resolve(url, allow_private, MAX_URL_LENGTH, refused=_refused)
    except egress.AddressRefused as exc:
        raise FeedError(FEED_MESSAGES[exc.kind].format(host=exc.host)) from None


def check_url(url, allow_private=False):
    """Return the URL, stripped, if the portal would fetch it (see resolve_public); raise FeedError if not."""
    resolve_public(url, allow_private)
    return url.strip()


_pinned = egress.pinned


def _read_body(response, max_bytes, deadline):
    """Read the body up to max_bytes and before the deadline (a server trickling bytes cannot hold us)."""
    if response.headers.get("content-encoding", "identity").lower() not in ("identity", ""):
        raise FeedError("The feed was sent compressed although the portal asked for it plain.")
    declared = response.headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and int(declared) > max_bytes:
        raise FeedError(f"The feed is larger than {max_bytes // 1024:,} KiB; the portal reads no more.")
    body = bytearray()
    for chunk in response.iter_raw():
        body.extend(chunk)
        if len(body) > max_bytes:
            raise FeedError(f"The feed is larger than {max_bytes // 1024:,} KiB; the portal reads no more.")
        if time.monotonic() > deadline:
            raise FeedError("The feed took too long to answer.")
    return bytes(body)


def fetch(url, allow_private=False, timeout=DEFAULT_TIMEOUT, max_bytes=DEFAULT_MAX_BYTES):
    """Fetch a feed and return (body bytes, content type).

    Args:
        url: the feed's http(s) URL.
        allow_private: see resolve_public.
        timeout: seconds for the whole fetch (each connect and read, and all of them together).
        max_bytes: the most the portal reads; a larger body is refused, not cut.

    Raises:
        FeedError: refused address, no answer in time, an HTTP error status, too large, too many redirects.
    """
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=httpx.Timeout(timeout), follow_redirects=False, trust_env=False) as client:
        for _hop in range(MAX_REDIRECTS + 1):
            scheme, host, _port, address = resolve_public(url, allow_private)
            target, host_header = _pinned(url, address)
            headers = {"Host": host_header, "User-Agent": USER_AGENT, "Accept-Encoding": "identity",
                       "Accept": "application/feed+json, application/json, application/rss+xml, "
                                 "application/atom+xml, application/xml;q=0.9, */*;q=0.5"}
            extensions = {"sni_hostname": host} if scheme == "https" else {}
            try:
                with client.stream("GET", target, headers=headers, extensions=extensions) as response:
                    if response.is_redirect and response.headers.get("location"):
                        url = urljoin(url, response.headers["location"])
                        continue
                    if response.status_code != 200:
                        raise FeedError(f"The feed answered HTTP {response.status_code} instead of the feed.")
                    body = _read_body(response, max_bytes, deadline)
                    return body, response.headers.get("content-type", "")
            except httpx.TimeoutException:
                raise FeedError("The feed took too long to answer.") from None
            except httpx.HTTPError as exc:
                raise FeedError(f"The feed could not be reached ({exc.__class__.__name__}).") from None
    raise FeedError(f"The feed redirected more than {MAX_REDIRECTS} times.")
