"""Reading the fields of listings and profiles: names, free text, phone numbers and websites.

Each reader returns the clean value or raises InvalidValue with the message for its field; `read` runs a
set of readers over a form and raises ValidationFailed naming every bad field, so nothing is half-read.
"""
from urllib.parse import urlsplit

from portal.domain.cancellations.fields import normal_phone
from portal.domain.errors import ValidationFailed
from portal.domain.parsing import InvalidValue, clean_text

WEBSITE_MAX = 300
WEBSITE_MESSAGE = "Enter a web address starting with http:// or https://, like https://example.com."


def text(label, max_len, required=False):
    """Return a reader of free text up to max_len characters (empty: None, or refused when required)."""

    def reader(value):
        value = clean_text(value, label)
        if not value:
            if required:
                raise InvalidValue(f"Enter {label.lower()}.")
            return None
        if len(value) > max_len:
            raise InvalidValue(f"Keep {label.lower()} to {max_len:,} characters (it has {len(value):,}).")
        return value

    return reader


def phone(value):
    """Return the phone number in E.164, or None when empty (checked with the phonenumbers library)."""
    return normal_phone(value)


def website(value):
    """Return a web address that is http(s) with a host, or None when empty.

    Raises:
        InvalidValue: another scheme (javascript:, ftp:, a bare host), spaces, credentials, or too long.
    """
    value = clean_text(value, "The website")
    if not value:
        return None
    if len(value) > WEBSITE_MAX:
        raise InvalidValue(f"Keep the website to {WEBSITE_MAX} characters (it has {len(value):,}).")
    if any(char.isspace() or ord(char) < 32 or ord(char) == 127 for char in value):
        raise InvalidValue(WEBSITE_MESSAGE)
    try:
        parts = urlsplit(value)
        host = parts.hostname
        parts.port  # noqa: B018  (a port that is not a number raises here)
    except ValueError:
        raise InvalidValue(WEBSITE_MESSAGE) from None
    if parts.scheme.lower() not in ("http", "https") or not host or "@" in parts.netloc:
        raise InvalidValue(WEBSITE_MESSAGE)
    return value


def checkbox(value):
    """Return True for a ticked checkbox (any non-empty value but "0"/"false"/"off")."""
    return str(value or "").strip().lower() not in ("", "0", "false", "off", "no")


def read(form, readers):
    """Return {field: value} read from form by readers, or raise with every bad field's message.

    Raises:
        ValidationFailed: field_errors maps each bad field to its message.
    """
    values, errors = {}, {}
    for name, reader in readers.items():
        try:
            values[name] = reader(form.get(name))
        except InvalidValue as exc:
            errors[name] = exc.message
    if errors:
        raise ValidationFailed(errors)
    return values
