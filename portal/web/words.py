"""Exact words on pages: counts with the right plural, and times with their time zone.

`{{ n|count("account") }}` gives "6,652 accounts" or "1 account" (portal.plurals, which flash messages, domain
errors and CLI output use too); `plural(n, "is", "are")` gives the word alone.
Times are stored as naive UTC; `{{ moment|dt }}` shows one in the configured zone (PORTAL_TIMEZONE) with the
zone's abbreviation, inside a <time datetime="…"> element carrying the exact instant.
"""
from datetime import date, datetime
from urllib.parse import quote

from flask import current_app, has_app_context
from jinja2 import pass_eval_context
from markupsafe import Markup, escape

from portal.domain.parsing import DATE_FORMAT
from portal.plurals import count, plural
from portal.timeutil import in_zone, iso_utc, zone_named

DEFAULT_FORMAT = "%Y-%m-%d %H:%M"
TIME_DIRECTIVES = ("%H", "%I", "%M", "%S", "%X", "%c", "%p", "%T", "%R")


def display_zone():
    """Return the ZoneInfo pages show times in (DISPLAY_TIMEZONE, checked at start-up; UTC outside an app)."""
    name = current_app.config.get("DISPLAY_TIMEZONE", "UTC") if has_app_context() else "UTC"
    return zone_named(name)


def local_today():
    """Return today's date in the display zone (a download's file name says the day its reader sees)."""
    return datetime.now(display_zone()).date()


def local_time(moment, fmt=DEFAULT_FORMAT):
    """Return a stored naive UTC datetime as text in the display zone, with its abbreviation when fmt shows a time.

    "2026-12-01 14:05 UTC", "2026-12-01 15:05 CET"; a date-only format gives the local date alone; a date is
    shown as it is (dates carry no zone).
    """
    if moment is None:
        return "—"
    if not isinstance(moment, datetime):
        if not isinstance(moment, date):
            return str(moment)
        return moment.strftime(fmt if fmt != DEFAULT_FORMAT else "%Y-%m-%d")
    local = in_zone(moment, display_zone())
    text = local.strftime(fmt)
    if any(d in fmt for d in TIME_DIRECTIVES):
        text += " " + (local.tzname() or "")
    return text.rstrip()


@pass_eval_context
def dt_filter(eval_ctx, moment, fmt=DEFAULT_FORMAT):
    """The `dt` filter: <time datetime="ISO 8601">local time and zone</time> in HTML, the text alone elsewhere."""
    text = local_time(moment, fmt)
    if moment is None or not eval_ctx.autoescape:
        return text
    return Markup('<time datetime="{}">{}</time>').format(iso_utc(moment), text)


def mail_link(address, text=None):
    """Return an email address as a mailto link (escaped; the address percent-encoded in the href), or the text alone
    when it is not one address (a phone number, a name, two addresses)."""
    value = (address or "").strip()
    local, at, domain = value.partition("@")
    if not (local and at and domain) or "@" in domain or any(c.isspace() or c in "<>\"'," for c in value):
        return escape(text if text is not None else value)
    href = "mailto:" + quote(value, safe="@.+-_!~*'")
    return Markup('<a href="{}">{}</a>').format(href, text if text is not None else value)


def init_app(app):
    """Register the count filter, the plural global, the dt filter and the mail_link filter."""
    app.add_template_filter(count, "count")
    app.add_template_global(plural, "plural")
    app.add_template_filter(dt_filter, "dt")
    app.add_template_filter(mail_link, "mail_link")
    app.add_template_global(DATE_FORMAT, "date_format")  # date fields' placeholder: the format date errors name

