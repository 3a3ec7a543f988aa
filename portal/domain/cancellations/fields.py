"""Reading a cancellation request's fields: every refusal names its field, nothing is half-read."""
from datetime import date

import phonenumbers
from flask import current_app, has_app_context

from portal.domain.cancellations.choices import CHANNELS, REASON_CODES
from portal.domain.money import MAX_CENTS
from portal.domain.parsing import InvalidValue, clean_text, date_message, iso_date, money_cents, whole_number

NAME_MAX = 200
REASON_MAX = 1000
MONTHS_MAX = 1200
PHONE_MESSAGE = "Enter a phone number, like (201) 555-0123 or +44 20 7946 0958."


def phone_region():
    """The region assumed for phone numbers typed without +country (PORTAL_PHONE_REGION, default US)."""
    return (current_app.config.get("PHONE_REGION") if has_app_context() else None) or "US"


def normal_phone(value):
    """Return the phone number in value in E.164 ("+12015550123"), or None if value is empty.

    Raises:
        InvalidValue: it is not a valid phone number (checked with the phonenumbers library).
    """
    text = clean_text(value, "The phone number")
    if not text:
        return None
    if len(text) > 40:
        raise InvalidValue(PHONE_MESSAGE)
    try:
        number = phonenumbers.parse(text, phone_region())
    except phonenumbers.NumberParseException:
        raise InvalidValue(PHONE_MESSAGE) from None
    if not phonenumbers.is_valid_number(number):
        raise InvalidValue(PHONE_MESSAGE)
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def display_phone(e164):
    """Format a stored E.164 number for people (national form in the portal's region, else international)."""
    if not e164:
        return ""
    try:
        number = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return e164
    region = phonenumbers.region_code_for_number(number)
    style = (phonenumbers.PhoneNumberFormat.NATIONAL if region == phone_region()
             else phonenumbers.PhoneNumberFormat.INTERNATIONAL)
    return phonenumbers.format_number(number, style)


def request_day(value, today):
    """The date of a request: YYYY-MM-DD, not after today (empty: today)."""
    if value in (None, "") or (isinstance(value, str) and not value.strip()):
        return today
    day = value if isinstance(value, date) else iso_date(value, date_message("the date"))
    if day > today:
        raise InvalidValue(f"The date can't be in the future (today is {today.isoformat()}).")
    return day


def collected_cents(value):
    """The total collected, in dollars, zero or more."""
    if isinstance(value, int):
        if value < 0:
            raise InvalidValue("Enter the amount collected in dollars, like 120.00 (zero or more).")
        return value
    text = str(value if value is not None else "").strip()
    if text.startswith("-"):
        raise InvalidValue("The amount collected can't be negative.")
    return money_cents(text or "0", MAX_CENTS, message="Enter the amount collected in dollars, like 120.00.")


def months(value):
    """The months in the program: a whole number from 0 to MONTHS_MAX."""
    if isinstance(value, int):
        value = str(value)
    text = str(value if value is not None else "").strip()
    if text.startswith("-"):
        raise InvalidValue("The months in the program can't be negative.")
    return whole_number(text or "0", 0, MONTHS_MAX,
                        message=f"Enter the months in the program as a whole number from 0 to {MONTHS_MAX:,}.")


def _choice(value, choices, message):
    text = str(value or "").strip()
    if text not in choices:
        raise InvalidValue(message)
    return text


def _name(value):
    text = clean_text(value, "The contact's name")
    if not text:
        raise InvalidValue("Enter the contact's name.")
    if len(text) > NAME_MAX:
        raise InvalidValue(f"Keep the name to {NAME_MAX} characters (it has {len(text)}).")
    return text


def _reason_text(value, code):
    text = clean_text(value, "The reason")
    if len(text) > REASON_MAX:
        raise InvalidValue(f"Keep the reason to {REASON_MAX} characters (it has {len(text)}).")
    if code == "other" and not text:
        raise InvalidValue("Say what the reason is (the reason chosen is Other).")
    return text


def read_request(form, today):
    """Return the request's fields cleaned from form (a mapping of text), or raise with every field's problem.

    Fields: channel, contact_name, phone, request_date, collected, months, reason_code, reason.

    Raises:
        ValidationFailed: field_errors maps each bad field to its message.
    """
    from portal.domain.errors import ValidationFailed

    readers = {
        "channel": lambda v: _choice(v, CHANNELS, "Choose how the request came in: call, text or email."),
        "contact_name": _name,
        "phone": normal_phone,
        "request_date": lambda v: request_day(v, today),
        "collected": collected_cents,
        "months": months,
        "reason_code": lambda v: _choice(v, REASON_CODES, "Choose a reason from the list."),
    }
    values, errors = {}, {}
    for name, reader in readers.items():
        try:
            values[name] = reader(form.get(name))
        except InvalidValue as exc:
            errors[name] = exc.message
    try:
        values["reason"] = _reason_text(form.get("reason"), values.get("reason_code"))
    except InvalidValue as exc:
        errors["reason"] = exc.message
    if errors:
        raise ValidationFailed(errors)
    return values
