"""Where the portal may connect out to: http(s) URLs whose host resolves only to public addresses.

Feeds (portal.domain.features.social_fetch) and webhooks (portal.domain.webhooks) connect to URLs that
people type, so the portal must not become a way into its own network (server-side request forgery).
Both check a URL when it is saved and again at every connection: the host is resolved, every address it
resolves to must be public (not private, loopback, link-local, multicast, reserved or unspecified) unless
the caller's setting allows private ones, and the connection then goes to the very address that was
checked (`pinned`: the Host header and the TLS server name keep the original name), so a DNS answer that
changes between the check and the connection (DNS rebinding) cannot redirect it.

The callers word the refusals for their own pages: AddressRefused carries a `kind`, not a message.
"""
import ipaddress
import socket
from urllib.parse import urlsplit, urlunsplit

# AddressRefused.kind: what is wrong with the URL
EMPTY, TOO_LONG, NOT_A_URL, SCHEME, NO_HOST, CREDENTIALS, NOT_FOUND, PRIVATE = (
    "empty", "too_long", "not_a_url", "scheme", "no_host", "credentials", "not_found", "private")


class AddressRefused(Exception):
    """The URL is not one the portal connects to; `kind` says why, `host` names the host when known."""

    def __init__(self, kind, host=None):
        super().__init__(kind)
        self.kind = kind
        self.host = host


def split(url, max_length):
    """Return (scheme, host, port) of an http(s) URL of at most max_length characters.

    Raises:
        AddressRefused: empty, too long, not a URL, not http(s), no host, or a user name or password in it.
    """
    if not isinstance(url, str) or not url.strip():
        raise AddressRefused(EMPTY)
    if len(url) > max_length:
        raise AddressRefused(TOO_LONG)
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        raise AddressRefused(NOT_A_URL) from None
    if parts.scheme not in ("http", "https"):
        raise AddressRefused(SCHEME)
    if not parts.hostname:
        raise AddressRefused(NO_HOST)
    if parts.username is not None or parts.password is not None:
        raise AddressRefused(CREDENTIALS, parts.hostname)
    return parts.scheme, parts.hostname, port or (443 if parts.scheme == "https" else 80)


def is_refused(address):
    """True for an address the portal does not connect to: anything but a global unicast address."""
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not ip.is_global or ip.is_multicast


def resolve(url, allow_private=False, max_length=2000, refused=is_refused):
    """Resolve the URL's host and return the address to connect to, checked as described above.

    Args:
        url: an http(s) URL.
        allow_private: accept private, loopback and link-local addresses (tests, an intranet deployment).
        max_length: the longest URL accepted.
        refused: the address check (callers may narrow it in their tests).

    Returns:
        (scheme, host, port, address): the address is one the host resolved to, every one of which passed.

    Raises:
        AddressRefused: see split; NOT_FOUND when the host has no address, PRIVATE when one is refused.
    """
    scheme, host, port = split(url, max_length)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError, OSError):
        raise AddressRefused(NOT_FOUND, host) from None
    addresses = list(dict.fromkeys(info[4][0].split("%", 1)[0] for info in infos))
    if not addresses:
        raise AddressRefused(NOT_FOUND, host)
    if not allow_private and any(refused(address) for address in addresses):
        # every address must pass: a name answering with one public and one internal address is refused
        raise AddressRefused(PRIVATE, host)
    return scheme, host, port, addresses[0]


def pinned(url, address):
    """Return the URL with its host replaced by address, and the Host header naming the original host."""
    parts = urlsplit(url)
    literal = f"[{address}]" if ":" in address else address
    netloc = literal if parts.port is None else f"{literal}:{parts.port}"
    host_header = parts.hostname if parts.port is None else f"{parts.hostname}:{parts.port}"
    if ":" in parts.hostname:  # an IPv6 literal in the URL itself
        host_header = f"[{parts.hostname}]" + (f":{parts.port}" if parts.port is not None else "")
    return urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, "")), host_header
