"""Finding accounts for staff: filters from a query string, keyset pages, counts by status, export rows,
and the bulk engine's "filter" selection, all built from one WHERE builder (`filter_clause`).

How a page is read at a million accounts without scanning the table:
- a filter that an index narrows to at most SMALL_SET accounts (a search prefix, exempt, a balance or
  activity range, a customer class) is read through that index, and only those accounts are sorted; a search
  with a word of 3+ letters or digits asks its trigram index once per request, for up to SEARCH_SET + 1
  candidates: at most SEARCH_SET are read and sorted, more make it a common search that the walk tests;
- otherwise the sort's own index is walked from the cursor in growing windows, at most SCAN_BUDGET entries
  per request; a page not filled within the budget ends with a "keep looking" cursor where the walk stopped.
- a rare status (limited, cancelled) in name order is walked along the rare statuses' partial index (which a
  sweep, active to suspended, does not write); a status of at most RARE_SET accounts (cancelled) is read
  along the (status, id) index in any other order, or when that walk stopped at its budget;
- a walk under a filter counts its matches first (as far as the page needs): none is an empty page at once,
  and "keep looking" is offered only while more matches may follow.

This module is the public entry; the work is done, by subject, in:
    filters     what staff ask for (Filters), parsed and validated from query arguments
    keyset      the sort orders, positions along them (SQL bounds) and their signed cursors
    conditions  the SQL WHERE of a filter, and the bulk engine's "filter" selection
    rows        the list's columns, one row, the customer class names
    reading     how rows are found: a small id set from an index, or a bounded walk of the sort's index
    paging      one page of the list, with the pager's cursors
    counts      accounts per status (the chips), exact counts for confirmations
    export      the CSV rows

The bounds on database work below live here and are read at call time, so they are turned in one place.
"""
from portal.domain.account_search.conditions import (  # noqa: F401  (re-exported)
    NARROWING_KEYS, SEARCH_KEYS, filter_clause, search_ranges, selection_clause)
from portal.domain.account_search.counts import (  # noqa: F401  (re-exported)
    StatusCounts, count_by_status, count_matching)
from portal.domain.account_search.export import EXPORT_HEADER, export_rows  # noqa: F401  (re-exported)
from portal.domain.account_search.filters import (  # noqa: F401  (re-exported)
    BALANCE_LIMIT_CENTS, DEFAULT_PAGE_SIZE, PAGE_SIZES, Q_MAX, Filters, parse_filters)
from portal.domain.account_search.keyset import (  # noqa: F401  (re-exported)
    SORTS, Sort, decode_cursor, encode_cursor)
from portal.domain.account_search.paging import Page, list_page, sample  # noqa: F401  (re-exported)
from portal.domain.account_search.rows import LIST_COLUMNS, class_names, get_row  # noqa: F401  (re-exported)

SMALL_SET = 2_000  # a narrowing filter matching at most this many accounts is read through its own index
SEARCH_SET = 5_000  # a search whose trigram index finds at most this many candidates reads (and sorts) them all
PREFIX_SPLIT_FROM = 500  # in name order, more candidates than this and names starting with what was typed: the
                         # range of those names is walked and the other candidates merged in (reading.plan)
RARE_SET = 10_000  # a status with at most this many accounts is read by its ids
WINDOWS = (2_000, 18_000)  # index entries walked per step; their sum is the per-request budget
SCAN_BUDGET = sum(WINDOWS)
COUNT_CAP = 10_000  # counts under a filter stop here ("10,000+")
EXPORT_CHUNK = 5_000
