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


def list_page(f):
    """Return one page of accounts for these filters, sort and cursor, never scanning the whole table.

    Args:
        f: Filters from parse_filters.

    Returns:
        Page: rows (id, number, name, email, status, ... sort_key) and signed next/previous cursors.
    """
    sort = SORTS[f.sort]
    limit = f.per_page + 1
    direction, pos = ("after", None) if f.cursor is None else (f.cursor[0], (f.cursor[1], f.cursor[2]))
    backward = direction == "before"
    asc = sort.descending == backward
    rows, frontier = read(f, sort, pos, asc, limit)
    if not backward:
        return _forward_page(f, rows, frontier, pos)
    if len(rows) < limit and frontier is None:  # reached the start: show the real first page
        return list_page(replace(f, cursor=None))
    return _backward_page(f, rows, frontier)


def _cursor(f, direction, position):
    return encode_cursor(f.sort, direction, position[0], position[1])


def _forward_page(f, rows, frontier, pos):
    """The page after pos (or the first page): rows were read in display order, one more than a page if any."""
    full = len(rows) == f.per_page + 1
    rows = rows[:f.per_page]
    page = Page(rows, at_start=pos is None)
    if full:
        page.next_cursor = _cursor(f, "after", (rows[-1].sort_key, rows[-1].id))
    elif frontier is not None:
        page.next_cursor, page.next_is_continuation = _cursor(f, "after", frontier), True
    if pos is not None and rows:
        page.prev_cursor = _cursor(f, "before", (rows[0].sort_key, rows[0].id))
    return page


def _backward_page(f, rows, frontier):
    """The page before a position: rows were read walking back, so they are reversed for display."""
    full = len(rows) == f.per_page + 1
    rows = rows[:f.per_page][::-1]
    page = Page(rows, at_start=False)
    if full:
        page.prev_cursor = _cursor(f, "before", (rows[0].sort_key, rows[0].id))
    else:
        page.prev_cursor, page.prev_is_continuation = _cursor(f, "before", frontier), True
    page.next_cursor = (_cursor(f, "after", (rows[-1].sort_key, rows[-1].id)) if rows
                        else _cursor(f, "after", frontier))
    return page


def sample(f, size=10):
    """Return the first `size` accounts of the list for these filters (shown in bulk confirmations)."""
    return list_page(replace(f, per_page=size, cursor=None)).rows
