"""What staff ask the account list for: filters, sort and page size, read and validated from query arguments.

A value that makes no sense is dropped, and `Filters.problems` says why, for the page to show.
"""
import re
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from portal.domain.account_search.keyset import SORTS, decode_cursor
from portal.domain.account_search.rows import class_names
from portal.domain.account_search.by_run import run_exists
from portal.domain.gate import STATE_LABELS
from portal.domain.parsing import InvalidValue, bad_character, iso_date, money_cents, record_id, whole_number

PAGE_SIZES = (25, 50, 100, 200)
DEFAULT_PAGE_SIZE = 50
Q_MAX = 100
BALANCE_LIMIT_CENTS = 10 ** 13
RAW_FIELDS = ("q", "run", "status", "class", "balance_min", "balance_max", "active_after", "active_before",
              "exempt", "sort", "per_page")


@dataclass
class Filters:
    """What the staff asked for, validated; `problems` maps a field to why its value was ignored."""

    q: str = ""
    run_id: int | None = None  # the accounts this run changed (account_search.by_run)
    status: str = ""
    class_id: int | None = None
    balance_min: int | None = None  # cents
    balance_max: int | None = None
    active_after: date | None = None
    active_before: date | None = None
    exempt: bool | None = None
    sort: str = "name"
    per_page: int = DEFAULT_PAGE_SIZE
    cursor: tuple | None = None  # (direction "after"|"before", key, id, matches before it or None)
    problems: dict = field(default_factory=dict)
    raw: dict = field(default_factory=dict)

    def args(self, cursor=None, without=()):
        """Return the canonical query arguments of this view (valid, non-default values only), less `without`."""
        out = {}
        if self.q:
            out["q"] = self.q
        if self.run_id is not None:
            out["run"] = str(self.run_id)
        if self.status:
            out["status"] = self.status
        if self.class_id is not None:
            out["class"] = str(self.class_id)
        for name in ("balance_min", "balance_max"):
            cents = getattr(self, name)
            if cents is not None:
                out[name] = f"{Decimal(cents) / 100:.2f}".rstrip("0").rstrip(".")
        for name in ("active_after", "active_before"):
            if getattr(self, name) is not None:
                out[name] = getattr(self, name).isoformat()
        if self.exempt is not None:
            out["exempt"] = "yes" if self.exempt else "no"
        if self.sort != "name":
            out["sort"] = self.sort
        if self.per_page != DEFAULT_PAGE_SIZE:
            out["per_page"] = str(self.per_page)
        if cursor:
            out["cursor"] = cursor
        return {k: v for k, v in out.items() if k not in without}

    def selection_filter(self):
        """Return the filter as stored in a bulk run's selection (no sort, page size or cursor)."""
        return {k: v for k, v in self.args().items() if k not in ("sort", "per_page", "cursor")}

    @property
    def narrowed(self):
        """True when anything other than sort and page size restricts the list."""
        return bool(self.selection_filter())


def parse_filters(args):
    """Read and validate list filters from query arguments; nonsense values are dropped and explained.

    Args:
        args: a mapping of query arguments (request.args, or a stored selection filter).

    Returns:
        Filters, whose `problems` maps each ignored field to a message for the page.
    """
    f = Filters(raw={k: _text(args, k) for k in RAW_FIELDS})
    # In the order of the form: `problems` keeps it, and a stored filter's error joins the messages in it.
    for read in (_read_q, _read_run, _read_status, _read_class, _read_balance, _read_activity, _read_exempt,
                 _read_sort, _read_per_page):
        read(f, f.raw, f.problems)
    if _text(args, "cursor"):
        f.cursor = decode_cursor(_text(args, "cursor"), f.sort)
        if f.cursor is None:
            f.problems["cursor"] = ("That page link is not valid (it may come from another sort order); "
                                    "showing the first page.")
    return f


# ---------------------------------------------------------------- one field each: set it on f, or explain in p

def _text(args, name):
    value = args.get(name)
    return value.strip() if isinstance(value, str) else ""


def _read_q(f, raw, p):
    char = bad_character(raw["q"])
    if char is not None:  # the database could not compare it (a surrogate) or it means nothing (a noncharacter)
        p["q"] = f"The search contains a character that can't be used (U+{ord(char):04X}); the search was ignored."
        return
    q = re.sub(r"\s+", " ", raw["q"])
    if len(q) > Q_MAX:  # refused, not cut: the first part of a pasted text would find something else
        p["q"] = (f"A search can be at most {Q_MAX} characters; this one has {len(q):,}, so it was ignored. "
                  "Type a word or two of the name, email or account number.")
        return
    f.q = q


def _read_run(f, raw, p):
    if raw["run"]:
        run_id = record_id(raw["run"].lstrip("#"))
        if run_id is None:
            p["run"] = ("“Changed by run” takes a run number, such as 12; that value was ignored, so the list shows "
                        "accounts whatever changed them.")
        elif not run_exists(run_id):
            p["run"] = (f"There is no run #{run_id}; the “changed by run” filter was ignored, so the list shows "
                        "accounts whatever changed them.")
        else:
            f.run_id = run_id


def _read_status(f, raw, p):
    status = raw["status"]
    if status in STATE_LABELS:
        f.status = status
    elif status:
        p["status"] = "Unknown status; showing every status."


def _read_class(f, raw, p):
    if raw["class"]:
        class_id = record_id(raw["class"])
        if class_id is not None and class_id in class_names():
            f.class_id = class_id
        else:
            p["class"] = "Unknown customer class; showing every class."


def _parse_money(text):
    try:
        return money_cents(text, BALANCE_LIMIT_CENTS - 1, allow_negative=True)
    except InvalidValue:
        return None


def _read_balance(f, raw, p):
    for name in ("balance_min", "balance_max"):
        if raw[name]:
            cents = _parse_money(raw[name])
            if cents is None:
                p[name] = "Enter an amount in dollars, such as 25 or 25.50; this value was ignored."
            setattr(f, name, cents)
    if f.balance_min is not None and f.balance_max is not None and f.balance_min > f.balance_max:
        p["balance_max"] = "The highest balance is below the lowest; the range was ignored."
        f.balance_min = f.balance_max = None


def _parse_date(text):
    try:
        return iso_date(text)
    except InvalidValue:
        return None


def _read_activity(f, raw, p):
    for name in ("active_after", "active_before"):
        if raw[name]:
            value = _parse_date(raw[name])
            if value is None:
                p[name] = "Enter a date as YYYY-MM-DD; this value was ignored."
            setattr(f, name, value)
    if f.active_after and f.active_before and f.active_after >= f.active_before:
        p["active_before"] = "“Before” must be later than “on or after”; the dates were ignored."
        f.active_after = f.active_before = None


def _read_exempt(f, raw, p):
    exempt = raw["exempt"].lower()
    if exempt in ("yes", "no"):
        f.exempt = exempt == "yes"
    elif exempt:
        p["exempt"] = "Choose yes or no; showing exempt and non-exempt accounts."


def _read_sort(f, raw, p):
    sort = raw["sort"]
    if sort in SORTS:
        f.sort = sort
    elif sort:
        p["sort"] = "Unknown sort order; sorted by name."


def _read_per_page(f, raw, p):
    per_page = raw["per_page"]
    if per_page:
        try:
            n = whole_number(per_page, low=1)
        except InvalidValue:
            n = None
        if n is None:
            p["per_page"] = f"Page size must be a number; showing {DEFAULT_PAGE_SIZE} per page."
        elif n > PAGE_SIZES[-1]:
            p["per_page"] = f"At most {PAGE_SIZES[-1]} accounts are shown per page."
            f.per_page = PAGE_SIZES[-1]
        else:
            f.per_page = max(n, 10)
