"""The `<int:…>` URL converter every route with an id uses: only ids the database can hold match.

Werkzeug's own converter takes any run of Unicode digits of any length ("٣", 2^63), which then reaches the
database as a number its integer columns cannot hold (a 500). This one reads the id with parsing.record_id,
so an id out of range is a 404, exactly like an id that exists nowhere.
"""
from werkzeug.routing import IntegerConverter, ValidationError

from portal.domain.parsing import record_id


class IdConverter(IntegerConverter):
    """ASCII digits, 1 to parsing.ID_MAX; anything else does not match the route (404)."""

    regex = r"[0-9]+"

    def to_python(self, value):
        found = record_id(value)
        if found is None:
            raise ValidationError()
        return found


def init_app(app):
    """Make `<int:…>` mean an id for every route; call before any blueprint is registered."""
    app.url_map.converters["int"] = IdConverter
