"""Times shown with their zone: the configured display zone (PORTAL_TIMEZONE, default UTC) checked at start-up, one
`dt` filter printing the zone's abbreviation inside <time datetime="ISO 8601">, and ISO 8601 with zone in CSV."""
import csv
import io
import re
from datetime import date, datetime
from pathlib import Path

import pytest
from flask import Flask, render_template_string

from portal.config import Config, ConfigError, load_config
from portal.timeutil import iso_utc

ROOT = Path(__file__).resolve().parent.parent
WINTER = datetime(2026, 12, 1, 14, 5)  # stored naive UTC
SUMMER = datetime(2026, 7, 1, 14, 5)


def _bare_app(zone):
    app = Flask(__name__)
    load_config(app, {"ENV_NAME": "testing", "DISPLAY_TIMEZONE": zone})
    from portal.web import words

    words.init_app(app)
    return app


def test_the_zone_defaults_to_utc():
    assert Config.DISPLAY_TIMEZONE == "UTC" or "PORTAL_TIMEZONE" in __import__("os").environ
    assert _bare_app("UTC").config["DISPLAY_TIMEZONE"] == "UTC"


@pytest.mark.parametrize("zone", ["Mars/Olympus_Mons", "", "../../etc/passwd", "UTC+2 or so"])
def test_an_unknown_zone_stops_the_start_with_a_clear_message(zone):
    app = Flask(__name__)
    with pytest.raises(ConfigError, match="PORTAL_TIMEZONE must be a time zone name"):
        load_config(app, {"ENV_NAME": "testing", "DISPLAY_TIMEZONE": zone or " "})


@pytest.mark.parametrize("zone, moment, shown", [
    ("UTC", WINTER, "2026-12-01 14:05 UTC"),
    ("Europe/Berlin", WINTER, "2026-12-01 15:05 CET"),
    ("Europe/Berlin", SUMMER, "2026-07-01 16:05 CEST"),
    ("America/New_York", WINTER, "2026-12-01 09:05 EST"),
])
def test_dt_shows_the_time_in_the_zone_with_its_abbreviation_and_the_instant(zone, moment, shown):
    with _bare_app(zone).test_request_context():
        html = render_template_string("{{ t|dt }}", t=moment)
    assert html == f'<time datetime="{moment.isoformat()}+00:00">{shown}</time>'


def test_dt_without_a_time_shows_the_local_date_and_none_shows_a_dash():
    with _bare_app("Asia/Tokyo").test_request_context():
        assert ">2026-12-02</time>" in render_template_string("{{ t|dt('%Y-%m-%d') }}", t=datetime(2026, 12, 1, 20))
        assert render_template_string("{{ t|dt }}", t=None) == "—"
        assert render_template_string("{{ d|dt }}", d=date(2026, 9, 30)) == \
            '<time datetime="2026-09-30">2026-09-30</time>'


def test_dt_in_a_text_email_is_plain_text():
    """A .txt email is rendered without autoescape: the time and its zone, no markup; and one post is "1 new post"."""
    from types import SimpleNamespace as NS

    from portal import create_app

    app = create_app({"ENV_NAME": "testing", "DISPLAY_TIMEZONE": "Europe/Berlin",
                      "SQLALCHEMY_DATABASE_URI": "sqlite://"})
    post = NS(author="Rita", network="rss", posted_at=WINTER, content="Lovely", url="")
    with app.app_context():
        text = app.jinja_env.get_template("email/social_alert.txt").render(
            user=NS(name="Ada"), account=NS(name="Shop", number="A1"), posts=[post], total=1, more=0)
    assert "1 new post about Shop" in text and "Rita on rss, 2026-12-01 15:05 CET:" in text and "<time" not in text


def test_iso_utc_names_the_zone():
    assert iso_utc(WINTER) == "2026-12-01T14:05:00+00:00"
    assert iso_utc(None) == "" and iso_utc(date(2026, 1, 2)) == "2026-01-02"


def test_no_template_prints_a_time_without_the_filter():
    """Times go through |dt: no strftime with hours, no hand-written " UTC" after a time, no bare <time> wrapper."""
    found = []
    bad = re.compile(r"""strftime\(['"][^'"]*%H"""  # a time printed by hand
                     r"""|\|dt[^}]*\}\}\s*UTC|~\s*['"] UTC"""  # a zone written after the filter's own
                     r"""|<time datetime="\{\{[^}]*\}\}Z?">\{\{[^}]*\|dt""")  # a <time> around the filter's <time>
    for path in sorted((ROOT / "templates").rglob("*")):
        if path.suffix in (".html", ".txt"):
            for number, line in enumerate(path.read_text().splitlines(), 1):
                if bad.search(line):
                    found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not found, "\n".join(found)


@pytest.fixture
def suspended(app, world, make):
    from portal.extensions import db
    from portal.models import Account

    with app.app_context():
        account = db.session.get(Account, world.account)
        account.status, account.status_reason, account.status_changed_at = "suspended", "non_payment", WINTER
        db.session.commit()
    return world.account


def test_the_account_page_shows_times_in_the_configured_zone(app, world, suspended, auth, client):
    auth.login(world.admin.email)
    html = client.get(f"/accounts/{suspended}").get_data(as_text=True)
    assert '<time datetime="2026-12-01T14:05:00+00:00">2026-12-01 14:05 UTC</time>' in html
    app.config["DISPLAY_TIMEZONE"] = "Europe/Berlin"
    html = client.get(f"/accounts/{suspended}").get_data(as_text=True)
    assert '<time datetime="2026-12-01T14:05:00+00:00">2026-12-01 15:05 CET</time>' in html


def test_csv_exports_write_iso_8601_with_the_zone(app, world, suspended, auth, client, make):
    from portal.domain import audit
    from portal.extensions import db

    with app.app_context():
        audit.record("note_added", world.account, "System", reason_note="zone check", now=WINTER)
        db.session.commit()
    app.config["DISPLAY_TIMEZONE"] = "Europe/Berlin"  # the page's zone: a CSV stays in UTC, saying so
    auth.login(world.support.email)
    accounts = list(csv.DictReader(io.StringIO(client.get("/accounts/export.csv").get_data(as_text=True))))
    mine = next(r for r in accounts if r["status"] == "suspended")
    assert mine["status_changed_at"] == "2026-12-01T14:05:00+00:00"
    assert all(r["created_at"].endswith("+00:00") for r in accounts)
    events = list(csv.reader(io.StringIO(client.get("/audit/export.csv").get_data(as_text=True))))
    assert "2026-12-01T14:05:00+00:00" in [row[1] for row in events[1:]]


def test_the_sign_in_limit_says_until_when_in_the_configured_zone(app, world, client):
    import re

    from tests.test_throttle import fail, sign_in

    app.config["DISPLAY_TIMEZONE"] = "Asia/Kolkata"  # +05:30 all year: no daylight saving to trip over
    fail(client, world.admin.email, 5)  # the default email limit: 5 a minute
    response = sign_in(client, world.admin.email, "wrong password")
    html = response.get_data(as_text=True)
    assert response.status_code == 429, html
    assert re.search(r"and try again \(from \d\d:\d\d:\d\d IST\)", html), html


def test_a_reservation_time_is_typed_in_the_zone_the_page_shows(app, world, auth, client):
    """The booking form's date and time is read in the display zone, stored as UTC and shown as typed."""
    from portal.extensions import db
    from portal.models import Reservation

    app.config["DISPLAY_TIMEZONE"] = "Europe/Berlin"
    auth.login(world.manager.email)
    response = auth.post("/reservations", {"starts_at": "2099-01-10T19:30", "party_size": "2", "note": ""})
    assert response.status_code == 303, response.get_data(as_text=True)
    with app.app_context():
        stored = db.session.scalars(db.select(Reservation.starts_at).where(Reservation.account_id == world.account)
                                    .order_by(Reservation.id.desc())).first()
    assert stored == datetime(2099, 1, 10, 18, 30)  # CET is UTC+1 in January
    assert "2099-01-10 19:30 CET" in client.get("/reservations").get_data(as_text=True)
    response = auth.post("/reservations", {"starts_at": "2099-07-10T19:30+00:00", "party_size": "2", "note": ""})
    with app.app_context():  # an explicit offset is taken as given
        assert db.session.scalars(db.select(Reservation.starts_at).order_by(Reservation.id.desc())).first() \
            == datetime(2099, 7, 10, 19, 30)
