"""Reading a fetched feed into posts: JSON Feed 1.1, a plain JSON list of posts, RSS or Atom.

Accepted shapes (anything else is "not a feed", recorded as the poll's error):
- JSON Feed 1.1: `{"items": [{"id", "content_text" or "content_html", "url", "date_published",
  "author": {"name"} (or "authors": [{"name"}])}]}`;
- a plain JSON list: `[{"id", "content", "url", "author", "posted_at"}]` (author a name; the same
  keys are also read inside an "items" object);
- RSS 0.9x/1.0/2.0 or Atom, read by feedparser: guid/id, summary or content, link, author, published.

Each post becomes a dict (external_id, content, url, author, posted_at). HTML content is reduced to its
text. A post without an id gets a digest of its content and date, so the same post keeps the same id
across polls. Posts with no content are skipped (counted).
"""
import calendar
import hashlib
import json
from datetime import datetime, timezone
from html.parser import HTMLParser

import feedparser

from portal.domain.features.social_fetch import FeedError
from portal.domain.parsing import bad_character

CONTENT_MAX = 10_000
AUTHOR_MAX = 200
URL_MAX = 500
EXTERNAL_ID_MAX = 200
NOT_A_FEED = "The feed is not JSON Feed, a JSON list of posts, RSS or Atom."


class _TextOnly(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts = []

    def handle_data(self, data):
        self.parts.append(data)


def plain_text(html):
    """Return the text of an HTML fragment (tags dropped, entities decoded, spaces collapsed)."""
    parser = _TextOnly()
    parser.feed(html or "")
    parser.close()
    return " ".join("".join(parser.parts).split())


def _clean(value, limit):
    """Text safe to store: a string, no characters the databases refuse, at most limit characters."""
    if not isinstance(value, str):
        return None
    text = "".join(char for char in value if bad_character(char) is None).strip()
    return text[:limit] or None


def _datetime(value):
    """A naive UTC datetime from ISO 8601 / RFC 3339 text, or None."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip().replace("Z", "+00:00").replace("z", "+00:00")
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(timezone.utc).replace(tzinfo=None)
    return parsed if 1900 <= parsed.year <= 2200 else None


def _url(value):
    text = _clean(value, URL_MAX)
    return text if text and text.lower().startswith(("http://", "https://")) else None


def post_id(external_id, content, posted_at):
    """The post's id in its feed, or a digest of its content and date when the feed gives none."""
    if isinstance(external_id, bool) or not isinstance(external_id, (str, int)):
        external_id = None
    text = _clean(str(external_id), 10_000) if external_id is not None else None
    if text and len(text) <= EXTERNAL_ID_MAX:
        return text
    seed = text or f"{content}\n{posted_at.isoformat() if posted_at else ''}"
    return "sha256:" + hashlib.sha256(seed.encode("utf-8")).hexdigest()


def _post(external_id, content, url, author, posted_at):
    content = _clean(content, CONTENT_MAX)
    if content is None:
        return None
    return {"external_id": post_id(external_id, content, posted_at), "content": content, "url": _url(url),
            "author": _clean(author, AUTHOR_MAX), "posted_at": posted_at}


def _json_item(item):
    """One JSON Feed item or plain-list post as a post dict, or None if it has no content."""
    if not isinstance(item, dict):
        return None
    content = item.get("content_text") or item.get("content")
    if not isinstance(content, str) or not content.strip():
        content = plain_text(item["content_html"]) if isinstance(item.get("content_html"), str) else None
    author = item.get("author")
    if isinstance(author, dict):
        author = author.get("name")
    elif author is None and isinstance(item.get("authors"), list) and item["authors"]:
        first = item["authors"][0]
        author = first.get("name") if isinstance(first, dict) else None
    posted_at = _datetime(item.get("date_published") or item.get("posted_at"))
    return _post(item.get("id"), content, item.get("url"), author, posted_at)


def _json_posts(body):
    try:
        data = json.loads(body.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise FeedError("The feed's JSON could not be read.") from None
    if isinstance(data, dict) and isinstance(data.get("items"), list):
        return data["items"], _json_item
    if isinstance(data, list):
        return data, _json_item
    raise FeedError(NOT_A_FEED)


def _entry_post(entry):
    content = None
    if entry.get("content"):
        content = plain_text(entry["content"][0].get("value", ""))
    if not content:
        content = plain_text(entry.get("summary", "")) or plain_text(entry.get("title", ""))
    stamp = entry.get("published_parsed") or entry.get("updated_parsed")
    posted_at = datetime.fromtimestamp(calendar.timegm(stamp), timezone.utc).replace(tzinfo=None) if stamp else None
    return _post(entry.get("id") or entry.get("guid"), content, entry.get("link"), entry.get("author"), posted_at)


def _xml_posts(body):
    parsed = feedparser.parse(body, sanitize_html=True, resolve_relative_uris=False)
    if not parsed.get("version") and not parsed.entries:
        raise FeedError(NOT_A_FEED)
    return parsed.entries, _entry_post


def read_posts(body, content_type="", max_items=100):
    """Read a feed's body into posts.

    Args:
        body: the bytes fetched.
        content_type: the response's Content-Type (JSON is also recognised by its first character).
        max_items: read at most this many items, the first ones in the feed (feeds list the newest first).

    Returns:
        (posts, skipped): the post dicts, each id once (the first wins), and how many items had no content.

    Raises:
        FeedError: the body is neither JSON of an accepted shape nor RSS/Atom.
    """
    start = body.lstrip()[:1]
    is_json = "json" in (content_type or "").lower() or start in (b"{", b"[")
    items, read = _json_posts(body) if is_json else _xml_posts(body)
    posts, seen, skipped = [], set(), 0
    for item in items[:max_items]:
        post = read(item)
        if post is None:
            skipped += 1
        elif post["external_id"] not in seen:
            seen.add(post["external_id"])
            posts.append(post)
    return posts, skipped
