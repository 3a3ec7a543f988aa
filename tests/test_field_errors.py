"""Errors at the field (issue 16, item 5): the schedule's cron error names the wrong part and its value, a good
expression is said in plain words with its next five runs (also live, as typed), and only the fields of the kind
chosen (monthly or cron) can be typed in."""
import re
from datetime import datetime

import pytest

from portal.domain import schedule

NOW = datetime(2026, 12, 1, 10, 0)


def _html(response):
    return response.get_data(as_text=True)


@pytest.mark.parametrize("cron, part", [
    ("61 3 * * *", "The minute, the 1st part, is 61, which is not a minute from 0 to 59"),
    ("0 25 * * *", "The hour, the 2nd part, is 25, which is not an hour from 0 to 23"),
    ("0 3,99 * * *", "The hour, the 2nd part, is 99 (in 3,99), which is not an hour"),
    ("0 3 32 * *", "The day, the 3rd part, is 32, which is not a day of the month from 1 to 31"),
    ("0 3 * 13 *", "The month, the 4th part, is 13, which is not a month from 1 to 12 or jan to dec"),
    ("0 3 * * 8", "The weekday, the 5th part, is 8, which is not a weekday from 0 to 7"),
    ("0 3 * * funday", "The weekday, the 5th part, is funday"),
    ("0 3 * *", "A cron expression has five parts, minute hour day month weekday; 0 3 * * has 4"),
    ("0 0 3 * * *", "0 0 3 * * * has 6"),
])
def test_a_cron_error_names_the_wrong_part_and_its_value(cron, part):
    assert part in schedule.cron_problem(cron, NOW)


def test_a_good_expression_in_plain_words_with_its_next_five_runs(ctx):
    seen = schedule.preview({"mode": "cron", "cron": "30 2 * * 1"}, NOW)
    assert seen["errors"] == {} and seen["words"] == "At 02:30, only on Monday (UTC)"
    assert seen["upcoming"] == [datetime(2026, 12, d, 2, 30) for d in (7, 14, 21, 28)] + [datetime(2027, 1, 4, 2, 30)]
    monthly = schedule.preview({"mode": "monthly", "day_of_month": "31", "time_of_day": "22:15"}, NOW)
    assert [s.date().isoformat() for s in monthly["upcoming"]] == [
        "2026-12-31", "2027-01-31", "2027-02-28", "2027-03-31", "2027-04-30"]
    bad = schedule.preview({"mode": "cron", "cron": "0 25 * * *"}, NOW)
    assert bad["upcoming"] == [] and "The hour" in bad["errors"]["cron"]


@pytest.mark.parametrize("htmx", [False, True])
def test_the_schedule_form_shows_the_error_at_the_field(auth, world, htmx):
    auth.login(world.admin.email)
    response = auth.post("/sweeps/schedule", {"enabled": "1", "mode": "cron", "cron": "0 3 * 13 *"}, htmx=htmx)
    html = _html(response)
    assert response.status_code == 422
    assert re.search(r'<p id="cron-error" class="field-error">The month, the 4th part, is 13', html)
    assert re.search(r'<input id="cron"[^>]*aria-invalid="true"', html)
    assert "0 3 * 13 *" in html  # what was typed comes back
    assert ('<html' in html) is not htmx


def test_the_schedule_page_shows_the_stored_schedule_in_words_and_its_next_runs(auth, world):
    auth.login(world.admin.email)
    assert auth.post("/sweeps/schedule", {"enabled": "1", "mode": "cron", "cron": "0 4 * * 1-5"}).status_code == 303
    html = _html(auth.client.get("/sweeps/schedule"))
    assert 'data-testid="schedule-words">At 04:00, Monday through Friday (UTC).' in html
    upcoming = html[html.index('data-testid="schedule-upcoming"'):]
    assert len(re.findall(r"<li>", upcoming[:upcoming.index("</ol>")])) == 5


def test_the_live_preview_answers_as_typed(auth, world):
    auth.login(world.admin.email)
    good = auth.client.get("/sweeps/schedule/preview?mode=cron&cron=15+3+1+*+*", headers={"HX-Request": "true"})
    html = _html(good)
    assert good.status_code == 200 and html.lstrip().startswith('<section id="schedule-preview"')
    assert "At 03:15, on day 1 of the month (UTC)." in html and html.count("<li>") == 5
    bad = _html(auth.client.get("/sweeps/schedule/preview?mode=cron&cron=0+3+*+*+8", headers={"HX-Request": "true"}))
    assert 'data-testid="schedule-preview-problem"' in bad and "The weekday, the 5th part, is 8" in bad
    often = _html(auth.client.get("/sweeps/schedule/preview?mode=cron&cron=*/5+*+*+*+*"))
    assert "would run every 5 minutes" in often


def test_only_the_fields_of_the_kind_chosen_are_enabled(auth, world):
    auth.login(world.admin.email)

    def disabled(html):
        return {name for name in ("day_of_month", "time_of_day", "cron")
                if re.search(rf'<input id="{name}"[^>]*\sdisabled[\s>]', html)}

    monthly = _html(auth.client.get("/sweeps/schedule"))
    assert disabled(monthly) == {"cron"}
    assert auth.post("/sweeps/schedule", {"enabled": "1", "mode": "cron", "cron": "0 3 1 * *"}).status_code == 303
    assert disabled(_html(auth.client.get("/sweeps/schedule"))) == {"day_of_month", "time_of_day"}
    refused = _html(auth.post("/sweeps/schedule", {"enabled": "1", "mode": "monthly", "day_of_month": "40",
                                                   "time_of_day": "03:00"}, htmx=True))
    assert disabled(refused) == {"cron"}
    cron_refused = _html(auth.post("/sweeps/schedule", {"enabled": "1", "mode": "cron", "cron": "0 3 * 13 *"}))
    assert disabled(cron_refused) == {"day_of_month", "time_of_day"}
    assert re.search(r'<input id="time_of_day" name="time_of_day" value="03:00"', cron_refused)  # kept as stored
    # without JavaScript a link shows the other kind's fields
    assert disabled(_html(auth.client.get("/sweeps/schedule?mode=monthly"))) == {"cron"}
    assert 'href="/sweeps/schedule?mode=monthly"' in _html(auth.client.get("/sweeps/schedule"))
