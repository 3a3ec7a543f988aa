"""Money as typed by people: dollars with at most two decimals, kept as integer cents."""
from portal.domain.errors import ValidationFailed
from portal.domain.parsing import InvalidValue, money_cents

MAX_CENTS = 10**13  # $100 billion: far above any invoice, far below a 64-bit column


def parse_amount(value, field="amount", allow_zero=False):
    """Return the cents of a dollar amount such as "120", "120.5" or "$1,200.00".

    Raises:
        ValidationFailed: not an amount (only ASCII digits, at most two decimals), zero or negative.
    """
    text = str(value if value is not None else "").strip()
    if text.startswith("-"):
        raise ValidationFailed({field: "Enter an amount above zero."})
    try:
        cents = money_cents(text, MAX_CENTS, message="Enter an amount in dollars, like 120.00.")
    except InvalidValue as exc:
        raise ValidationFailed({field: exc.message}) from None
    if cents == 0 and not allow_zero:
        raise ValidationFailed({field: "Enter an amount above zero."})
    return cents


def dollars(cents):
    """Format cents as "$1,234.50"."""
    sign = "-" if cents < 0 else ""
    return f"{sign}${abs(cents) / 100:,.2f}"
