"""The staff overview: each panel's figures against a small world worked out by hand, the exact status counts
and their cache, the chart's data against its table, bad ranges, roles, the landing page, htmx and not."""
import json
import re
from datetime import datetime, timedelta

import pytest
from sqlalchemy import text

from portal.domain import account_search, bulk, overview, status_counts, suspension
from portal.domain.billing import ledger
from portal.domain.cancellations import overview as retention
from portal.domain.dunning import daily
from portal.domain.runs import process_run, start_run
from portal.extensions import db
from portal.models import Account, CancellationRequest, OutboxEmail, User
from portal.timeutil import utcnow
from tests.conftest import PASSWORD

HX = {"HX-Request": "true"}
NOTE = "Checked with the customer."
PANELS = ("status", "activity", "runs", "emails", "upcoming", "cancellations")
SOURCES = ("admin", "sweep", "dunning", "bulk")


@pytest.fixture
def app_config():
    return {"LOGIN_RATE_LIMIT": "1000 per minute"}


def today():
    return utcnow().date()


def at(day, hour=12):
    return datetime.combine(day, datetime.min.time()) + timedelta(hours=hour)


def admin_user(world):
    return db.session.get(User, world.admin.id)


def run_now(actor, kind, action, selection, category="other", **extra):
    """Start a run and process it here (no queue); return its id."""
    run = start_run(actor, kind, action, selection, category, NOTE, enqueue=False, **extra)
    process_run(run.id)
    return run.id


@pytest.fixture
def history(app, world, make):
    """A small world of status changes on known days, by every source (counted by hand in EXPECTED)."""
    t = today()
    ids = [make.account(name=f"History {i}") for i in range(9)]
    standard = make.customer_class("Standard", limit_after_days=15, suspend_after_days=20)
    with app.app_context():
        admin = admin_user(world)
        # an admin, on two earlier days, and once long ago (outside 90 days)
        suspension.suspend(admin, ids[0], "other", NOTE, now=at(t - timedelta(days=10), 9))
        suspension.reactivate(admin, ids[0], "other", NOTE, now=at(t - timedelta(days=3), 11))
        suspension.suspend(admin, ids[1], "other", NOTE, now=at(t - timedelta(days=3), 15))
        suspension.suspend(admin, ids[2], "other", NOTE, now=at(t - timedelta(days=200)))
        # a bulk action (a run) and its undo; a clean-up (a sweep): runs stamp the time they run, today
        bulk = run_now(admin, "bulk", "suspend", {"type": "ids", "ids": [ids[3], ids[4]]})
        undo = run_now(admin, "undo", "reactivate", {"type": "undo", "run_id": bulk}, undo_of_run_id=bulk)
        sweep = run_now(None, "cleanup", "suspend", {"type": "ids", "ids": [ids[5]]}, "inactivity", trigger="cli")
        # the dunning schedule: applied at once on an invoice 25 days overdue, then cleared by its payment;
        # a limitation (not counted); and the daily run suspending one account
        for i in (6, 7, 8):
            db.session.get(Account, ids[i]).customer_class_id = standard
        db.session.commit()
        ledger.add_invoice(admin, ids[6], "49.00", t - timedelta(days=25))
        ledger.record_payment(admin, ids[6], "49.00")
        ledger.add_invoice(admin, ids[7], "30.00", t - timedelta(days=17))
        db.session.remove()
    make.invoice(ids[8], 2500, due_date=t - timedelta(days=25))  # not through billing: the run finds it
    with app.app_context():
        db.session.get(Account, ids[8]).dunning_next_on = t
        db.session.commit()
        dunning = daily.start_daily_run(None, t, enqueue=False).id
        process_run(dunning)
        db.session.remove()
    return {"ids": ids, "bulk": bulk, "undo": undo, "sweep": sweep, "dunning": dunning}


def expected_activity():
    """(measure, source) -> {day: count}, from the history fixture."""
    t = today()
    return {("suspended", "admin"): {t - timedelta(days=10): 1, t - timedelta(days=3): 1},
            ("reactivated", "admin"): {t - timedelta(days=3): 1},
            ("suspended", "bulk"): {t: 2}, ("reactivated", "bulk"): {t: 2},
            ("suspended", "sweep"): {t: 1},
            ("suspended", "dunning"): {t: 2}, ("reactivated", "dunning"): {t: 1}}


# ---------------------------------------------------------------- activity

def test_activity_counts_each_day_by_source_as_worked_out_by_hand(app, history):
    with app.app_context():
        start, end = overview.activity_range(today=today())
        assert (start, end) == (today() - timedelta(days=89), today())
        figures = overview.activity(start, end)
    expected = expected_activity()
    assert len(figures.days) == 90
    for measure in ("suspended", "reactivated"):
        for source in SOURCES:
            wanted = [expected.get((measure, source), {}).get(day, 0) for day in figures.days]
            assert figures.counts[(measure, source)] == wanted, (measure, source)
    assert figures.measure_total("suspended") == 7 and figures.measure_total("reactivated") == 4
    with app.app_context():  # the event 200 days ago is in a range that reaches it
        longer = overview.activity(today() - timedelta(days=250), today() - timedelta(days=150))
    assert longer.totals[("suspended", "admin")] == 1 and longer.measure_total("reactivated") == 0


def test_a_bulk_change_made_at_once_counts_as_bulk(app, world, make):
    ids = [make.account() for _ in range(2)]
    with app.app_context():
        outcome = bulk.apply(admin_user(world), "suspend", "selected", [str(i) for i in ids], None, "other", NOTE)
        assert outcome.changed_ids == ids and not outcome.queued  # below the threshold: done in this request
        figures = overview.activity(*overview.activity_range(days="1", today=today()))
    assert figures.totals[("suspended", "bulk")] == 2 and figures.totals[("suspended", "admin")] == 0


def test_the_chart_data_is_the_table(app, world, history, auth, client):
    auth.login(world.support.email)
    html = client.get("/overview/activity", headers=HX).get_data(as_text=True)
    data = json.loads(re.search(r'<script type="application/json" id="activity-chart-data">(.*?)</script>', html,
                                re.S).group(1))
    table = html[html.index('data-testid="activity-table"'):]
    header = re.findall(r'<th scope="col">([^<]*)</th>', table[:table.index("</thead>")])
    assert header == ["Day"] + [s["label"] for s in data["series"]] + ["Total"]
    rows = re.findall(r'<tr data-testid="activity-row"><th scope="row">([^<]+)</th>(.*?)</tr>', table, re.S)
    assert [day for day, _cells in rows] == data["labels"]
    for i, (_day, cells) in enumerate(rows):
        numbers = [int(n.replace(",", "")) for n in re.findall(r"<td>([\d,]+)</td>", cells)]
        assert numbers[:-1] == [s["data"][i] for s in data["series"]] and numbers[-1] == sum(numbers[:-1])
    assert sum(sum(s["data"]) for s in data["series"]) == 11  # the 11 events of the last 90 days
    assert 'role="img"' in html and 'aria-describedby="activity-summary"' in html
    assert "7 suspended" in html and "4 reactivated" in html  # the text alternative


@pytest.mark.parametrize("args, field, words", [
    ({"days": "abc"}, "days", "Enter a number of days from 1 to 366"),
    ({"days": "0"}, "days", "Enter a number of days from 1 to 366"),
    ({"days": "400"}, "days", "Enter a number of days from 1 to 366"),
    ({"date_from": "2026-05-10", "date_to": "2026-05-01"}, "date_to", "is before the start"),
    ({"date_from": "2025-01-01", "date_to": "2026-06-30"}, "date_from", "at most 366 days"),
    ({"date_from": "2026-02-30"}, "date_from", "Enter a date as YYYY-MM-DD"),
])
def test_a_bad_range_is_refused_at_its_field_and_the_chart_stays(world, auth, client, args, field, words):
    auth.login(world.admin.email)
    response = client.get("/overview/activity", query_string=args, headers=HX)
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert html.lstrip().startswith('<form id="activity-form"') and "activity-chart" not in html  # only the form
    assert response.headers["HX-Retarget"] == "#activity-form" and response.headers["HX-Reswap"] == "outerHTML"
    error = re.search(rf'<p id="activity-{field}-error" class="field-error"[^>]*>([^<]*)</p>', html)
    assert error and words in error.group(1)
    assert f'aria-describedby="activity-{field}-error"' in html
    page = client.get("/overview/activity", query_string=args)  # without htmx: the page with the message
    assert page.status_code == 422 and "<html" in page.get_data(as_text=True) and words in page.get_data(as_text=True)


def test_a_good_range_by_days_or_dates(app, world, history, auth, client):
    auth.login(world.admin.email)
    week = client.get("/overview/activity?days=7", headers=HX).get_data(as_text=True)
    assert week.count('data-testid="activity-row"') == 7 and "6 suspended" in week  # day -10 left out
    t = today()
    dates = client.get(f"/overview/activity?date_from={(t - timedelta(days=3)).isoformat()}&date_to={t}",
                       headers=HX).get_data(as_text=True)
    assert dates.count('data-testid="activity-row"') == 4 and "6 suspended" in dates and "4 reactivated" in dates


def test_the_chart_counts_only_new_events_on_top_of_what_it_kept(app, world, make, monkeypatch):
    ids = [make.account() for _ in range(3)]
    calls = []
    real = overview._count_events
    monkeypatch.setattr(overview, "_count_events", lambda *a: calls.append(a[2:]) or real(*a))
    with app.app_context():
        start, end = overview.activity_range(days="30", today=today())
        admin = admin_user(world)
        suspension.suspend(admin, ids[0], "other", NOTE, now=at(today() - timedelta(days=2)))
        first = overview.activity(start, end)
        suspension.suspend(admin, ids[1], "other", NOTE, now=at(today() - timedelta(days=2)))
        suspension.suspend(admin, ids[2], "other", NOTE, now=at(today() - timedelta(days=40)))  # outside the range
        second = overview.activity(start, end)
        assert overview.activity(start, end).counts == second.counts  # nothing new: nothing counted
        overview.forget_activity()
        fresh = overview.activity(start, end)
    assert first.totals[("suspended", "admin")] == 1 and second.totals[("suspended", "admin")] == 2
    assert fresh.counts == second.counts
    newest = [upto for _after, upto in calls]
    assert calls[0][0] == 0 and calls[1][0] == newest[0] and len(calls) == 3 and calls[2][0] == 0


def test_a_chart_event_committed_late_on_postgresql_is_not_missed(app, world, make, db_backend):
    if db_backend != "postgresql":
        pytest.skip("SQLite has one writer at a time: its ids commit in order")
    late = make.account(name="Late")
    with app.app_context():
        start, end = overview.activity_range(days="7", today=today())
        slow = db.engine.connect()
        slow_tx = slow.begin()
        slow.execute(text("INSERT INTO audit_events (created_at, account_id, actor_label, action, state_before, "
                          "state_after) VALUES (now(), :id, 'Test', 'suspended', 'active', 'suspended')"), {"id": late})
        with db.engine.begin() as quick:
            quick.execute(text("INSERT INTO audit_events (created_at, account_id, actor_label, action) "
                               "VALUES (now(), :id, 'Test', 'note_added')"), {"id": late})
        assert overview.activity(start, end).measure_total("suspended") == 0
        db.session.rollback()
        slow_tx.commit()
        slow.close()
        assert overview.activity(start, end).measure_total("suspended") == 1


# ---------------------------------------------------------------- accounts by status

def list_counts(app):
    """The account list's own counts: exactly what each status filter matches, and its chips counted afresh."""
    with app.app_context():
        exact = {status: account_search.count_matching(account_search.parse_filters({"status": status}))
                 for status in status_counts.STATUSES}
        db.session.remove()
    return exact


def overview_counts(client):
    html = client.get("/overview/status", headers=HX).get_data(as_text=True)
    return {status: int(re.search(rf'data-testid="status-count-{status}">([\d,]+)<', html).group(1).replace(",", ""))
            for status in status_counts.STATUSES}


def test_status_counts_agree_with_the_list_after_each_kind_of_change(app, world, make, auth, client):
    ids = [make.account(name=f"Counted {i}") for i in range(6)]
    make.account(name="Gone", status="cancelled")
    auth.login(world.support.email)
    first = overview_counts(client)
    assert first == list_counts(app) == {"active": 8, "limited": 0, "suspended": 0, "cancelled": 1}
    with app.app_context():  # the list's chips, counted now, say the same
        chips = account_search.count_by_status(account_search.parse_filters({}))
        assert {s: chips.counts.get(s, 0) for s in status_counts.STATUSES} == first
        admin = admin_user(world)
        suspension.suspend(admin, ids[0], "other", NOTE)
        db.session.remove()
    assert overview_counts(client) == list_counts(app) == {"active": 7, "limited": 0, "suspended": 1, "cancelled": 1}
    with app.app_context():
        bulk = run_now(admin_user(world), "bulk", "suspend", {"type": "ids", "ids": ids[1:4]})
        db.session.remove()
    assert overview_counts(client) == list_counts(app) == {"active": 4, "limited": 0, "suspended": 4, "cancelled": 1}
    with app.app_context():
        suspension.reactivate(admin_user(world), ids[0], "other", NOTE)
        run_now(admin_user(world), "undo", "reactivate", {"type": "undo", "run_id": bulk}, undo_of_run_id=bulk)
        db.session.remove()
    assert overview_counts(client) == list_counts(app) == {"active": 8, "limited": 0, "suspended": 0, "cancelled": 1}


def test_the_counts_are_cached_until_a_status_changes(app, world, make):
    account = make.account()
    with app.app_context():
        counted = status_counts.current()
        again = status_counts.current()
        assert not counted.cached and again.cached and again.counts == counted.counts
        # a change anywhere else in the database does not matter; a status change does, at once
        db.session.execute(text("UPDATE accounts SET name = 'Renamed'"))
        db.session.commit()
        assert status_counts.current().cached
        suspension.suspend(admin_user(world), account, "other", NOTE)
        fresh = status_counts.current()
        assert not fresh.cached and fresh.counts["suspended"] == 1 and fresh.version != counted.version
        assert status_counts.current().cached
        make.account()  # a new account (seeding writes rows without an event) counts too
        grown = status_counts.current()
        assert not grown.cached and grown.counts["active"] == counted.counts["active"]  # one suspended, one new


def test_a_status_change_committed_late_on_postgresql_is_not_missed(app, world, make, db_backend):
    """A transaction holding a lower audit id commits after one holding a higher id: the count taken in
    between is not kept once the first commits (max(id) alone would keep it); a transaction that ends
    without adding events below the id leaves the kept count alone."""
    if db_backend != "postgresql":
        pytest.skip("SQLite has one writer at a time: its ids commit in order")
    late, other = make.account(name="Late"), make.account(name="Other")
    with app.app_context():
        engine = db.engine
        slow, bystander = engine.connect(), engine.connect()
        slow_tx, bystander_tx = slow.begin(), bystander.begin()
        slow.execute(text("UPDATE accounts SET status = 'suspended' WHERE id = :id"), {"id": late})
        slow.execute(text("INSERT INTO audit_events (created_at, account_id, actor_label, action, state_before, "
                          "state_after) VALUES (now(), :id, 'Test', 'suspended', 'active', 'suspended')"), {"id": late})
        bystander.execute(text("UPDATE accounts SET name = 'Renamed' WHERE id = :id"), {"id": other})
        with engine.begin() as quick:  # a higher id, committed first (a note, no status change)
            quick.execute(text("INSERT INTO audit_events (created_at, account_id, actor_label, action) "
                               "VALUES (now(), :id, 'Test', 'note_added')"), {"id": other})
        before = status_counts.current()
        assert before.counts["suspended"] == 0
        db.session.rollback()
        bystander_tx.commit()  # ended, but added no event: the count holds
        bystander.close()
        assert status_counts.current().cached
        db.session.rollback()
        slow_tx.commit()
        slow.close()
        after = status_counts.current()
        assert after.version == before.version  # the highest id did not move
        assert not after.cached and after.counts["suspended"] == 1


# ---------------------------------------------------------------- runs, emails, upcoming, cancellations

def test_the_last_runs_newest_first_with_their_outcome(app, world, history, auth, client):
    auth.login(world.admin.email)
    html = client.get("/overview/runs", headers=HX).get_data(as_text=True)
    order = [int(n) for n in re.findall(r'data-testid="overview-run" data-run-id="(\d+)"', html)]
    assert order == [history["dunning"], history["sweep"], history["undo"], history["bulk"]]
    rows = dict(zip(order, html.split('data-testid="overview-run"')[1:]))
    assert "1 changed" in rows[history["dunning"]] and "1 changed" in rows[history["sweep"]]
    assert "2 changed" in rows[history["undo"]] and f"Undo of #{history['bulk']}" in rows[history["undo"]]
    assert f'Undone by <a href="/sweeps/runs/{history["undo"]}">#{history["undo"]}</a>' in rows[history["bulk"]]
    assert f'href="/sweeps/runs/{history["bulk"]}"' in rows[history["bulk"]]
    auth.login(world.support.email)  # support may not open run pages: the same runs, no links to them
    support = client.get("/overview/runs", headers=HX).get_data(as_text=True)
    assert support.count('data-testid="overview-run"') == 4 and "/sweeps/runs/" not in support


def test_emails_waiting_retrying_held_and_failed(app, world, auth, client):
    with app.app_context():
        old = utcnow() - timedelta(hours=5)
        rows = [("pending", 0, old), ("pending", 2, None), ("pending", 0, None), ("held", 0, None),
                ("held", 0, None), ("failed", 5, None), ("sending", 1, None)] + [("sent", 1, None)] * 4
        for status, attempts, created in rows:
            db.session.add(OutboxEmail(kind="test", to_addr="someone@example.test", subject="Hello", body="Hi",
                                       status=status, attempts=attempts, created_at=created or utcnow()))
        db.session.commit()
        figures = overview.emails()
    assert (figures.waiting, figures.retrying, figures.sending, figures.held, figures.failed) == (3, 1, 1, 2, 1)
    assert abs((figures.oldest_waiting_at - old).total_seconds()) < 1
    auth.login(world.support.email)
    html = client.get("/overview/emails", headers=HX).get_data(as_text=True)
    for name, value in (("waiting", 3), ("retrying", 1), ("sending", 1), ("held", 2), ("failed", 1)):
        assert re.search(rf'data-testid="emails-{name}"[^>]*>(<a href="[^"]+">)?{value}\b', html), name
    if "outbox.index" in app.view_functions:  # each figure opens the outbox at its status
        assert 'href="/outbox"' in html and 'href="/outbox?status=failed">1</a>' in html
    else:
        assert "/outbox" not in html


@pytest.fixture
def steps_ahead(app, world, make):
    """Three accounts with a step in the next 7 days (in 3, 4 and 6 days) and one later (in 13 days)."""
    standard = make.customer_class("Standard", limit_after_days=15, suspend_after_days=20)
    soon, later, last, far = (make.account(name=n) for n in ("Soon Cafe", "Later Bar", "Last Deli", "Far Diner"))
    with app.app_context():
        admin = admin_user(world)
        for account_id in (soon, later, last, far):
            db.session.get(Account, account_id).customer_class_id = standard
        db.session.commit()
        ledger.add_invoice(admin, soon, "49.00", today() - timedelta(days=12))  # limitation in 3 days
        ledger.add_invoice(admin, later, "20.00", today() - timedelta(days=16))  # limited; suspension in 4 days
        ledger.add_invoice(admin, last, "20.00", today() - timedelta(days=9))  # limitation in 6 days
        ledger.add_invoice(admin, far, "20.00", today() - timedelta(days=2))  # limitation in 13 days: not shown
        db.session.remove()
    return soon, later, last, far


def test_the_dunning_steps_of_the_next_7_days_as_the_upcoming_page_lists_them(app, world, steps_ahead, auth,
                                                                              client):
    soon, later, last, _far = steps_ahead
    with app.app_context():
        steps = overview.upcoming_steps(today())
        listed = daily.upcoming(as_of=today())
    assert steps["complete"] and steps["left"] == 0 and steps["total"] == len(listed) == 3
    assert steps["by_action"] == {"limitation": 2, "suspension": 1, "reapply": 0}
    assert [r["id"] for r in steps["rows"]] == [r["id"] for r in listed] == [soon, later, last]
    assert [(r["date"], r["action"], r["owed_cents"]) for r in steps["rows"]] == \
        [(r["date"], r["action"], r["owed_cents"]) for r in listed]
    auth.login(world.support.email)
    html = client.get("/overview/upcoming", headers=HX).get_data(as_text=True)
    summary = " ".join(re.search(r'data-testid="upcoming-summary">(.*?)</p>', html, re.S).group(1).split())
    assert summary.startswith("3 steps by") and "2 limitations, 1 suspension, if nothing is paid" in summary
    assert html.count('data-testid="overview-upcoming-row"') == 3 and "$49.00" in html and "Far Diner" not in html
    assert 'href="/dunning/upcoming"' in html
    assert client.get("/dunning/upcoming").get_data(as_text=True).count('data-testid="upcoming-row"') == 3


def test_upcoming_steps_within_a_budget_say_what_is_counted(app, world, steps_ahead, auth, client, monkeypatch):
    soon, later, _last, _far = steps_ahead
    with app.app_context():
        steps = overview.upcoming_steps(today(), budget=2)  # asked: the two accounts with the first next looks
    assert not steps["complete"] and steps["left"] == 1 and steps["total"] == 2
    assert [r["id"] for r in steps["rows"]] == [soon, later]
    assert steps["exact_before"] == today() + timedelta(days=4)  # every step before the last day asked is counted
    monkeypatch.setattr(overview, "UPCOMING_BUDGET", 2)
    auth.login(world.support.email)
    html = client.get("/overview/upcoming", headers=HX).get_data(as_text=True)
    summary = " ".join(re.search(r'data-testid="upcoming-summary">(.*?)</p>', html, re.S).group(1).split())
    assert summary.startswith("At least 2 steps by") and "1 more account is due a look by then" in summary
    assert f"every step before {(today() + timedelta(days=4)).strftime('%a %Y-%m-%d')} is counted" in summary
    assert "All of them on Upcoming" in html


def test_the_save_rate_over_30_and_90_days_as_the_retention_overview_counts_it(app, world, make, auth, client):
    account = make.account()
    t = today()
    made = [(5, "retained"), (10, "paused"), (20, "cancelled"), (25, "open"), (1, "withdrawn"),  # last 30 days
            (40, "retained"), (60, "cancelled"), (80, "cancelled"), (100, "retained")]  # 100: outside both
    with app.app_context():
        for days_ago, outcome in made:
            db.session.add(CancellationRequest(account_id=account, contact_name="Dana", request_date=t - timedelta(
                days=days_ago), reason="", outcome=outcome))
        db.session.commit()
        thirty, ninety = overview.save_rates(t)
        for figures, days in ((thirty, 30), (ninety, 90)):
            week = retention.overview(t - timedelta(days=days - 1), t).total
            assert figures.counts == week.counts and figures.save_rate == week.save_rate
    assert (thirty.saved, thirty.decided, thirty.counts["open"]) == (2, 3, 1) and thirty.save_rate == 2 / 3
    assert (ninety.saved, ninety.decided) == (3, 6) and ninety.save_rate == 0.5
    auth.login(world.admin.email)
    html = client.get("/overview/cancellations", headers=HX).get_data(as_text=True)
    assert 'data-testid="save-rate-30">66.7 %<' in html and 'data-testid="save-rate-90">50.0 %<' in html
    assert f"date_from={(t - timedelta(days=29)).isoformat()}" in html


def test_no_figures_yet_say_so(world, auth, client):
    auth.login(world.admin.email)
    runs = client.get("/overview/runs", headers=HX).get_data(as_text=True)
    assert "No runs yet." in runs
    rates = client.get("/overview/cancellations", headers=HX).get_data(as_text=True)
    assert 'data-testid="save-rate-30">—<' in rates
    steps = client.get("/overview/upcoming", headers=HX).get_data(as_text=True)
    assert re.search(r'data-testid="upcoming-summary">0 steps by', steps)


# ---------------------------------------------------------------- pages, roles, landing

def test_the_shell_loads_each_panel_in_its_own_request_or_links_to_it(world, auth, client):
    auth.login(world.admin.email)
    html = client.get("/overview").get_data(as_text=True)
    for name in PANELS:
        assert re.search(rf'hx-get="/overview/{name}" hx-trigger="load" hx-swap="outerHTML"', html), name
        assert f'<a href="/overview/{name}" data-testid="panel-link-{name}">' in html
    assert "chart.js-4.6.1/chart.umd.js" in html and "js/overview.js" in html
    passed_on = client.get("/overview?days=30").get_data(as_text=True)
    assert 'hx-get="/overview/activity?days=30"' in passed_on


@pytest.mark.parametrize("name", PANELS)
def test_each_panel_is_a_fragment_for_htmx_and_a_page_without(world, auth, client, name):
    auth.login(world.support.email)
    fragment = client.get(f"/overview/{name}", headers=HX)
    body = fragment.get_data(as_text=True)
    assert fragment.status_code == 200 and "HX-Request" in fragment.headers["Vary"]
    assert body.lstrip().startswith(f'<section class="card overview-panel overview-{name}" id="overview-{name}"')
    assert "<html" not in body and "hx-trigger=\"load\"" not in body  # a loaded panel does not load itself again
    page = client.get(f"/overview/{name}")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "<html" in html and f'id="overview-{name}"' in html
    assert '<a href="/overview">The whole overview</a>' in html


def test_staff_may_see_the_overview_and_customers_may_not(world, auth, client):
    for who in (world.admin, world.support):
        auth.login(who.email)
        for path in ["/overview"] + [f"/overview/{name}" for name in PANELS]:
            assert client.get(path).status_code == 200, (who.role, path)
    for who in (world.manager, world.tier, world.member):
        auth.login(who.email)
        for path in ["/overview"] + [f"/overview/{name}" for name in PANELS]:
            assert client.get(path, headers=HX).status_code == 403, (who.role, path)


def test_staff_land_on_the_overview_after_signing_in(world, auth, client):
    for who in (world.admin, world.support):
        response = auth.login(who.email)
        assert response.status_code == 303 and response.headers["Location"] == "/overview"
        assert client.get("/").headers["Location"] == "/overview"  # the brand link goes home
        assert client.get("/login").headers["Location"] == "/overview"
        auth.logout()
    htmx = auth.post("/login", {"email": world.support.email, "password": PASSWORD}, htmx=True, page="/login")
    assert htmx.status_code == 204 and htmx.headers["HX-Redirect"] == "/overview"
    auth.logout()
    assert auth.login(world.manager.email).headers["Location"] == "/my-account"


def test_overview_comes_first_in_the_staff_navigation(world, auth, client):
    auth.login(world.support.email)
    html = client.get("/overview").get_data(as_text=True)
    nav = html[html.index('<nav aria-label="Main">'):html.index("</nav>")]
    links = re.findall(r'<a href="([^"]+)"', nav)
    assert links[:2] == ["/overview", "/accounts"]
    assert '<a href="/overview" aria-current="page">Overview</a>' in nav
    panel_page = client.get("/overview/runs").get_data(as_text=True)
    assert '<a href="/overview" aria-current="page">Overview</a>' in panel_page
