"""Reading typed values out of text: whole numbers, ids, money, dates and free text, one way for the whole portal.

Views, domain validators and `flask` commands all read their input here, so the same text means the same
value everywhere, and every refusal is an `InvalidValue` whose message can be shown next to the field:
- numbers are ASCII digits only (`str.isdigit()` and `int()` also take "²", "٣" or "１", which then fail
  or mean something nobody typed), bounded, and never long enough to make `int()` slow;
- ids fit the integer columns they are looked up in (PostgreSQL's `integer`: 1 to 2^31 - 1), so a huge id
  is simply not found instead of a database error;
- money is dollars with at most two decimals and a maximum, read without `Decimal`'s exponents (which
  overflow its context: "1e1000000");
- dates are ISO `YYYY-MM-DD` (date-times add `THH:MM[:SS]`), years 1900 to 2200;
- text refuses what no field can hold and the database drivers cannot encode: NUL, lone surrogates (how
  Python carries bytes that are not UTF-8, from a command line for example) and Unicode noncharacters.
"""
import re
from datetime import date, datetime, timezone

ID_MAX = 2**31 - 1  # every id column is an `Integer` (PostgreSQL int4); SQLite's range is wider
NUMBER_TEXT_MAX = 40  # characters: longer text is not a number anyone typed
YEARS = (1900, 2200)

_WHOLE = re.compile(r"-?[0-9]+", re.ASCII)
_MONEY = re.compile(r"(-)?\$?([0-9][0-9,]*)(?:\.([0-9]{1,2}))?", re.ASCII)
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", re.ASCII)
_DATETIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}(?:[T ][0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]{1,6})?)?"
                       r"(?:Z|[+-][0-9]{2}:[0-9]{2})?)?", re.ASCII)


class InvalidValue(ValueError):
    """Text that is not a value of the expected kind; `message` says what to enter instead."""

    def __init__(self, message):
        super().__init__(message)
        self.message = message


def _text(value):
    return value.strip() if isinstance(value, str) else str(value if value is not None else "").strip()


def whole_number(value, low=None, high=None, message=None):
    """Return the whole number written in value (ASCII digits, an optional minus sign, spaces around).

    Args:
        value: text (or an int, read as its text).
        low, high: the allowed range, inclusive (None: unbounded on that side).
        message: the refusal to show; by default it names the range.

    Raises:
        InvalidValue: not ASCII digits, or outside low..high.
    """
    text = _text(value)
    if message is None:
        message = "Enter a whole number" + (f" from {low:,} to {high:,}." if low is not None and high is not None
                                            else ".")
    if len(text) > NUMBER_TEXT_MAX or not _WHOLE.fullmatch(text):
        raise InvalidValue(message)
    number = int(text)
    if (low is not None and number < low) or (high is not None and number > high):
        raise InvalidValue(message)
    return number


def record_id(value):
    """Return the id written in value, or None if it is not one (not ASCII digits, 0, or beyond ID_MAX).

    None rather than an error: callers answer "not found", as for an id that exists nowhere.
    """
    try:
        return whole_number(value, 1, ID_MAX)
    except InvalidValue:
        return None


def money_cents(value, max_cents, allow_negative=False, message=None):
    """Return the amount in cents written in value, in dollars: "25", "$1,250.50", "0.5".

    Args:
        value: text such as "12.50" (a "$" and thousands commas are allowed; no exponents, at most 2 decimals).
        max_cents: the largest amount allowed (and, with allow_negative, the largest below zero).
        allow_negative: accept amounts below zero ("-5", for balances in credit).
        message: the refusal to show for text that is not an amount.

    Raises:
        InvalidValue: not an amount in that form, or larger than max_cents.
    """
    text = _text(value).replace(" ", "")
    match = _MONEY.fullmatch(text) if len(text) <= NUMBER_TEXT_MAX else None
    if match is None or (match.group(1) and not allow_negative) or ",," in text or match.group(2).endswith(","):
        raise InvalidValue(message or ("Enter an amount in dollars with at most two decimals, like 5 or 12.50"
                                       + (" (a minus sign for credit)." if allow_negative else ".")))
    cents = int(match.group(2).replace(",", "")) * 100 + int((match.group(3) or "0").ljust(2, "0"))
    if cents > max_cents:
        raise InvalidValue(f"Enter an amount of at most ${max_cents / 100:,.2f}.")
    return -cents if match.group(1) else cents


DATE_FORMAT = "YYYY-MM-DD"  # how a date is typed: every date field's placeholder and every date error say it
DATE_EXAMPLE = "2026-11-22"


def date_message(what="a date"):
    """Return the error for a date that could not be read: "Enter the due date as YYYY-MM-DD, like 2026-11-22."."""
    return f"Enter {what} as {DATE_FORMAT}, like {DATE_EXAMPLE}."


def iso_date(value, message=None):
    """Return the date written in value as YYYY-MM-DD (years 1900 to 2200).

    Raises:
        InvalidValue: another format, a day that does not exist, or a year out of range.
    """
    message = message or date_message()
    text = _text(value)
    if not _DATE.fullmatch(text):
        raise InvalidValue(message)
    try:
        parsed = date.fromisoformat(text)
    except ValueError:
        raise InvalidValue(message) from None
    if not YEARS[0] <= parsed.year <= YEARS[1]:
        raise InvalidValue(message)
    return parsed


def iso_datetime(value, message="Enter a date as YYYY-MM-DD or a date and time as YYYY-MM-DDTHH:MM (UTC)."):
    """Return the naive UTC date-time written in value: YYYY-MM-DD, optionally THH:MM[:SS] and an offset.

    A date alone is its midnight; an offset (Z, +02:00) is converted to UTC.

    Raises:
        InvalidValue: another format, a time or day that does not exist, or a year out of range.
    """
    text = _text(value)
    if not _DATETIME.fullmatch(text):
        raise InvalidValue(message)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidValue(message) from None
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(timezone.utc).replace(tzinfo=None)
    if not YEARS[0] <= parsed.year <= YEARS[1]:
        raise InvalidValue(message)
    return parsed


def _unusable(char):
    point = ord(char)
    return (point == 0 or 0xD800 <= point <= 0xDFFF or 0xFDD0 <= point <= 0xFDEF
            or (point & 0xFFFE) == 0xFFFE)


def bad_character(text):
    """Return the first character of text that no field can hold (see clean_text), or None."""
    return next((char for char in text or "" if _unusable(char)), None)


def text_problem(text, what="This field"):
    """Return why text cannot be stored or searched, or None if it can (see clean_text).

    The message names the character by its code point, never echoing it (it may not even be printable).
    """
    char = bad_character(text)
    if char is None:
        return None
    return f"{what} contains a character that can't be used (U+{ord(char):04X}). Remove it and try again."


def clean_text(value, what="This field"):
    """Return value (stripped) if every character can be stored and searched.

    Args:
        value: the text (None reads as "").
        what: how the message names the field ("The search", "The note").

    Raises:
        InvalidValue: it holds NUL, a lone surrogate or a Unicode noncharacter (U+FDD0..U+FDEF, U+xFFFE,
            U+xFFFF).
    """
    text = _text(value)
    problem = text_problem(text, what)
    if problem is not None:
        raise InvalidValue(problem)
    return text
