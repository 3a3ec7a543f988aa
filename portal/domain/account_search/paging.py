"""One page of the account list, read from a keyset position, with the signed cursors of its pager."""
from dataclasses import dataclass, replace

from portal.domain.account_search.keyset import SORTS, encode_cursor
from portal.domain.account_search.reading import read


@dataclass
class Page:
    """One page of the list, in display order, with signed cursors for the pager."""

    rows: list
    next_cursor: str | None = None
    prev_cursor: str | None = None
    next_is_continuation: bool = False  # the walk stopped at its budget before the page was full
    prev_is_continuation: bool = False
    at_start: bool = True
    start: int | None = 0  # how many matching accounts come before this page's first row, if known

    @property
    def first_number(self):
        """The place of the first row among the matches (1-based), or None if not known."""
        return None if self.start is None or not self.rows else self.start + 1

    @property
    def last_number(self):
        return None if self.start is None or not self.rows else self.start + len(self.rows)


def list_page(f):
    """Return one page of accounts for these filters, sort and cursor, never scanning the whole table.

    Args:
        f: Filters from parse_filters.

    Returns:
        Page: rows (id, number, name, email, status, ... sort_key), signed next/previous cursors and, when
        known, the page's place among the matches (`start`).
    """
    sort = SORTS[f.sort]
    limit = f.per_page + 1
    if f.cursor is None:
        direction, pos, seen = "after", None, 0
    else:
        direction, pos, seen = f.cursor[0], (f.cursor[1], f.cursor[2]), _seen(f.cursor)
    backward = direction == "before"
    asc = sort.descending == backward
    rows, frontier = read(f, sort, pos, asc, limit, seen=None if backward else seen)
    if not backward:
        return _forward_page(f, rows, frontier, pos, seen)
    if len(rows) < limit and frontier is None:  # reached the start: show the real first page
        return list_page(replace(f, cursor=None))
    return _backward_page(f, rows, frontier, seen)


def _seen(cursor):
    return cursor[3] if len(cursor) > 3 else None


def _cursor(f, direction, position, seen):
    return encode_cursor(f.sort, direction, position[0], position[1], seen)


def _plus(seen, n):
    return None if seen is None else seen + n


def _forward_page(f, rows, frontier, pos, seen):
    """The page after pos (or the first page): rows were read in display order, one more than a page if any.

    `seen` matches come before the page; the next cursor carries them plus this page's rows.
    """
    full = len(rows) == f.per_page + 1
    rows = rows[:f.per_page]
    page = Page(rows, at_start=pos is None, start=seen)
    if full:
        page.next_cursor = _cursor(f, "after", (rows[-1].sort_key, rows[-1].id), _plus(seen, len(rows)))
    elif frontier is not None:
        page.next_cursor = _cursor(f, "after", frontier, _plus(seen, len(rows)))
        page.next_is_continuation = True
    if pos is not None and rows:
        page.prev_cursor = _cursor(f, "before", (rows[0].sort_key, rows[0].id), seen)
    return page


def _backward_page(f, rows, frontier, before):
    """The page before a position: rows were read walking back, so they are reversed for display.

    `before` matches come before the position; this page starts that many less its rows.
    """
    full = len(rows) == f.per_page + 1
    rows = rows[:f.per_page][::-1]
    start = None if before is None else max(before - len(rows), 0)
    page = Page(rows, at_start=False, start=start)
    if full:
        page.prev_cursor = _cursor(f, "before", (rows[0].sort_key, rows[0].id), start)
    else:
        page.prev_cursor, page.prev_is_continuation = _cursor(f, "before", frontier, start), True
    page.next_cursor = (_cursor(f, "after", (rows[-1].sort_key, rows[-1].id), _plus(start, len(rows))) if rows
                        else _cursor(f, "after", frontier, start))
    return page


def sample(f, size=10):
    """Return the first `size` accounts of the list for these filters (shown in bulk confirmations)."""
    return list_page(replace(f, per_page=size, cursor=None)).rows
