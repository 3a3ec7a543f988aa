"""Money as typed by people: dollars with at most two decimals, kept as integer cents."""
import re

from portal.domain.errors import ValidationFailed

MAX_CENTS = 10**13  # $100 billion: far above any invoice, far below a 64-bit column
_AMOUNT = re.compile(r"^\$?\s*([0-9]{1,12})(?:\.([0-9]{1,2}))?$")


def parse_amount(value, field="amount", allow_zero=False):
    """Return the cents of a dollar amount such as "120", "120.5" or "$1,200.00".

    Raises:
        ValidationFailed: not an amount (only ASCII digits, at most two decimals), zero or negative.
    """
    text = str(value if value is not None else "").strip().replace(",", "")
    if text.startswith("-"):
        raise ValidationFailed({field: "Enter an amount above zero."})
    match = _AMOUNT.match(text) if text.isascii() else None
    if not match:
        raise ValidationFailed({field: "Enter an amount in dollars, like 120.00."})
    cents = int(match.group(1)) * 100 + int((match.group(2) or "0").ljust(2, "0"))
    if cents == 0 and not allow_zero:
        raise ValidationFailed({field: "Enter an amount above zero."})
    if cents > MAX_CENTS:
        raise ValidationFailed({field: "That amount is too large."})
    return cents


def dollars(cents):
    """Format cents as "$1,234.50"."""
    sign = "-" if cents < 0 else ""
    return f"{sign}${abs(cents) / 100:,.2f}"
