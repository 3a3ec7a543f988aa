"""The one check for every `next` and back link: only the portal's own paths, encoded for a header.

A `next` value comes from the address bar, a form or a header, so anyone can write it. Browsers read
more than the standard says: a backslash as a slash (`/\\evil.example` is another site), tabs and
newlines are dropped (`/\t/evil.example` becomes `//evil.example`), and some proxies decode `%2F`
or fold full-width characters before routing. So the check is strict: a path of this site that
starts with one slash, with nothing in it that a browser or proxy could turn into a second slash or
a host; and the value handed back is plain ASCII (a query's other characters percent-encoded), safe
to put in a `Location` or `HX-Redirect` header or an attribute.
"""
import posixpath
import unicodedata
from urllib.parse import quote, unquote, urlsplit

MAX_LENGTH = 2000
# Printable ASCII stays as it is (existing %XX escapes included); everything else is encoded.
_KEEP = "".join(chr(code) for code in range(0x21, 0x7F))
_DECODE_ROUNDS = 4  # /%252F… decodes to /%2F… and then to //…: decode until nothing changes


def _has_unsafe_character(text):
    """True if text holds a backslash, whitespace, or a control, format, private or unassigned character."""
    for char in text:
        category = unicodedata.category(char)
        if char == "\\" or char.isspace() or category[0] in ("C", "Z"):
            return True
    return False


def _looks_like_another_site(path):
    """True unless path starts with one "/" and holds only printable ASCII other than a backslash.

    The portal's own paths are ASCII; anything else in a path (U+FF0F FULLWIDTH SOLIDUS, U+2215
    DIVISION SLASH, …) is only there to look like a slash to someone or something.
    """
    if not path.startswith("/") or path.startswith("//"):
        return True
    return any(char == "\\" or not "\x21" <= char <= "\x7e" for char in path)


def _decoded_forms(path):
    """Return path and its percent-decoded forms until decoding changes nothing (None: it never settles)."""
    forms = [path]
    for _ in range(_DECODE_ROUNDS):
        decoded = unquote(forms[-1], errors="replace")
        if decoded == forms[-1]:
            return forms
        forms.append(decoded)
    return None


def safe_next(target):
    """Return target as a safe link to a page of this portal, or None if it is not one.

    Accepted: a path that starts with exactly one "/", with an optional query and fragment; no
    scheme, no host, no backslash, whitespace or control character anywhere; a path of printable
    ASCII only, also once percent-decoded (so no `/%2F…`, `/%5C…` or Unicode look-alike of a slash).

    Args:
        target: the `next` (or back) value as received; anything that is not a string is refused.

    Returns:
        The same path with any non-ASCII character percent-encoded (so it can go into a header as
        is), or None.
    """
    if not isinstance(target, str) or not target or len(target) > MAX_LENGTH:
        return None
    if _has_unsafe_character(target):
        return None
    path = target.split("?", 1)[0].split("#", 1)[0]
    forms = _decoded_forms(path)
    if forms is None or any(_looks_like_another_site(form) for form in forms):
        return None
    encoded = quote(target, safe=_KEEP)
    parts = urlsplit(encoded)
    if parts.scheme or parts.netloc:
        return None
    return encoded


def is_page(target, path):
    """Whether target (a safe_next result) names the page at path, however it is written (/%6Cogin, /./login)."""
    if not target:
        return False
    return posixpath.normpath(unquote(urlsplit(target).path)) == path
