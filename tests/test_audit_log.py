"""The audit log: every event across accounts, newest first; filters, keyset pages, CSV, links, roles, bad input."""
import csv
import io
import re
from datetime import datetime
from types import SimpleNamespace

import pytest
from sqlalchemy import select

from portal.domain import api_tokens, audit, audit_log, runs, suspension
from portal.extensions import db
from portal.models import Account, AuditEvent, User

HX = {"HX-Request": "true"}
DAY1, DAY2, DAY3 = datetime(2026, 11, 2, 9, 0), datetime(2026, 11, 5, 14, 30), datetime(2026, 11, 9, 8, 15)


@pytest.fixture
def app_config():
    return {"LOGIN_RATE_LIMIT": "1000 per minute"}


def _user(user_id):
    return db.session.get(User, user_id)


@pytest.fixture
def trail(app, world, make):
    """Events by a person, a bulk run, a scheduled run, an API token and the system, on two accounts and none."""
    t = SimpleNamespace(world=world)
    with app.app_context():
        admin, support = _user(world.admin.id), _user(world.support.id)
        acct, other = db.session.get(Account, world.account), db.session.get(Account, world.other_account)
        t.number, t.other_number = acct.number, other.number
        suspension.suspend(admin, acct.id, "non_payment", "Three invoices unpaid", now=DAY1)
        audit.record("cancellation_requested", other.id, support, reason_note="Called to leave", now=DAY2)
        audit.record("rule_updated", None, admin, data={"rule": 1}, now=DAY2)
        bulk = runs.start_run(admin, "bulk", "suspend", {"type": "ids", "ids": [other.id]}, "policy_violation",
                              "Spam complaints", enqueue=False, now=DAY3, as_of=DAY3)
        runs.process_run(bulk.id, worker_name="test", poll=0)
        t.bulk_run = bulk.id
        scheduled = runs.start_run(None, "bulk", "reactivate", {"type": "ids", "ids": [acct.id]}, "other",
                                   "Scheduled check", trigger="schedule", enqueue=False, now=DAY3, as_of=DAY3)
        runs.process_run(scheduled.id, worker_name="test", poll=0)
        t.scheduled_run = scheduled.id
        token, text = api_tokens.create_token(admin, "billing-sync", "accounts:read accounts:write", now=DAY1)
        t.token_prefix = token.prefix
        _token, actor, _outcome = api_tokens.authenticate(text)
        audit.record("invoice_added", other.id, actor, data={"seq": 1}, now=DAY3)
        audit.record("payment_recorded", acct.id, None, now=DAY3)
        db.session.commit()
        t.count = db.session.query(AuditEvent).count()
    return t


def _ids(html):
    return [int(i) for i in re.findall(r'data-event-id="(\d+)"', html)]


def _actions(html):
    return re.findall(r'data-testid="audit-row" data-event-id="\d+" data-action="([a-z_]+)"', html)


def _all_ids(app):
    with app.app_context():
        return list(db.session.scalars(select(AuditEvent.id).order_by(AuditEvent.id.desc())))


def test_every_event_is_listed_newest_first_with_htmx_and_without(app, trail, auth, client):
    auth.login(trail.world.support.email)
    page = client.get("/audit")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "<html" in html and "HX-Request" in page.headers["Vary"]
    assert _ids(html) == _all_ids(app) and len(_ids(html)) == trail.count
    fragment = client.get("/audit", headers=HX).get_data(as_text=True)
    assert fragment.lstrip().startswith('<div id="audit-log"') and "<html" not in fragment
    assert _ids(fragment) == _ids(html)


@pytest.mark.parametrize("actor, expected", [
    ("Ada Admin", {"suspended", "rule_updated", "run_bulk_started", "api_token_created", "invoice_added"}),
    ("SAM SUPPORT", {"cancellation_requested"}),
    ("schedule", {"run_bulk_started", "run_bulk_finished", "reactivated"}),
    ("billing-sync", {"invoice_added"}),
])
def test_filter_by_actor(app, trail, auth, client, actor, expected):
    """A person's events include what their API token and the bulk run they started did (both name them)."""
    auth.login(trail.world.admin.email)
    html = client.get("/audit", query_string={"actor": actor}).get_data(as_text=True)
    assert set(_actions(html)) == expected


def test_a_persons_email_and_a_tokens_prefix_and_label_find_them(app, trail, auth, client):
    auth.login(trail.world.admin.email)
    by_email = _actions(client.get("/audit", query_string={"actor": trail.world.support.email}).get_data(as_text=True))
    assert by_email == ["cancellation_requested"]
    by_prefix = _actions(client.get("/audit", query_string={"actor": trail.token_prefix}).get_data(as_text=True))
    assert by_prefix == ["invoice_added"]
    with app.app_context():
        label = db.session.scalar(select(AuditEvent.actor_label).where(AuditEvent.action == "invoice_added"))
    assert label.startswith("API token ‘billing-sync’")
    assert _actions(client.get("/audit", query_string={"actor": label}).get_data(as_text=True)) == ["invoice_added"]


def test_filter_by_run_lists_its_events_and_links_to_the_run(app, trail, auth, client):
    auth.login(trail.world.admin.email)
    for typed in (f"#{trail.bulk_run}", f"run {trail.bulk_run}", f"Bulk action #{trail.bulk_run}"):
        html = client.get("/audit", query_string={"actor": typed}).get_data(as_text=True)
        assert set(_actions(html)) == {"run_bulk_started", "suspended", "run_bulk_finished"}, typed
    assert f'href="/sweeps/runs/{trail.bulk_run}"' in html
    assert f'href="/accounts/{trail.world.other_account}"' in html


def test_filters_by_action_reason_account_and_dates_alone_and_combined(app, trail, auth, client):
    auth.login(trail.world.support.email)

    def actions(**args):
        return _actions(client.get("/audit", query_string=args).get_data(as_text=True))

    assert sorted(actions(action="suspended")) == ["suspended", "suspended"]
    assert actions(reason="policy_violation") == ["suspended", "run_bulk_started"]  # the run carries its reason
    assert sorted(actions(account=trail.number)) == sorted(["suspended", "reactivated", "payment_recorded"])
    assert actions(account=trail.number.lower(), action="suspended", reason="non_payment") == ["suspended"]
    assert actions(account=trail.number, action="suspended", reason="policy_violation") == []
    assert sorted(actions(date_from="2026-11-05", date_to="2026-11-05")) == ["cancellation_requested", "rule_updated"]
    assert actions(date_to="2026-11-02") == ["api_token_created", "suspended"]
    assert actions(date_from="2026-11-02", date_to="2026-11-05", actor="Sam") == ["cancellation_requested"]
    assert actions(actor="schedule", account=trail.other_number) == []


def test_a_family_of_actions_and_an_action_not_seen_yet(app, trail, auth, client):
    auth.login(trail.world.admin.email)
    html = client.get("/audit", query_string={"action": "run_*"}).get_data(as_text=True)
    assert sorted(_actions(html)) == sorted(["run_bulk_started", "run_bulk_finished"] * 2)
    assert '<option value="run_*" selected>Any run event</option>' in html
    unseen = client.get("/audit", query_string={"action": "class_deleted"})
    assert unseen.status_code == 200 and 'data-testid="audit-empty"' in unseen.get_data(as_text=True)


def test_the_action_choices_are_the_actions_that_exist(app, trail, auth, client):
    with app.app_context():
        expected = sorted(set(db.session.scalars(select(AuditEvent.action))))
        assert audit_log.action_choices() == expected
    auth.login(trail.world.support.email)
    html = client.get("/audit").get_data(as_text=True)
    listed = html.split('label="Actions"')[1].split("</select>")[0]
    assert re.findall(r'<option value="([a-z_]+)" >', listed) == expected


@pytest.mark.parametrize("args, field, message", [
    ({"actor": "nobody-at-all"}, "actor", "No person, run or API token matches “nobody-at-all”"),
    ({"actor": "#999"}, "actor", "There is no run #999."),
    ({"account": "Z9999999"}, "account", "No account has the number “Z9999999”"),
    ({"date_from": "2026-11-09", "date_to": "2026-11-01"}, "date_to", "ends (2026-11-01) before it starts"),
    ({"date_from": "2026-13-01"}, "date_from", "Enter a date as YYYY-MM-DD"),
    ({"action": "DROP TABLE"}, "action", "That is not an action"),
    ({"reason": "whim"}, "reason", "Choose one of the listed reasons."),
])
def test_bad_filters_are_explained_at_their_field_and_list_nothing(app, trail, auth, client, args, field, message):
    auth.login(trail.world.admin.email)
    before = _all_ids(app)
    for headers in ({}, HX):
        response = client.get("/audit", query_string=args, headers=headers)
        html = response.get_data(as_text=True)
        assert response.status_code == 422
        error = re.search(rf'id="audit-{field}-error"[^>]*>([^<]+)<', html)
        assert error and message in error.group(1)
        assert f'aria-describedby="audit-{field}-error"' in html or f"audit-{field}-error\"" in html
        assert _ids(html) == []
    export = client.get("/audit/export.csv", query_string=args)
    assert export.status_code == 422 and "Nothing was exported" in export.get_data(as_text=True)
    assert _all_ids(app) == before  # nothing changed


def test_keyset_pages_stay_stable_when_events_arrive(app, trail, auth, client, monkeypatch):
    monkeypatch.setattr(audit_log, "PAGE_SIZE", 3)
    monkeypatch.setattr(audit_log.events_page, "__defaults__", (3,))
    auth.login(trail.world.admin.email)
    first = client.get("/audit").get_data(as_text=True)
    older = re.search(r'href="(/audit\?after=\d+)"[^>]*data-testid="audit-older"', first).group(1)
    with app.app_context():  # events written between two pages
        for i in range(5):
            audit.record("rule_updated", None, _user(trail.world.admin.id), data={"i": i})
        db.session.commit()
    seen = _ids(first)
    url = older
    while url:
        html = client.get(url.replace("&amp;", "&")).get_data(as_text=True)
        seen += _ids(html)
        found = re.search(r'href="(/audit\?[^"]*after=\d+)"[^>]*data-testid="audit-older"', html)
        url = found.group(1) if found else None
    assert seen == sorted(seen, reverse=True) and len(seen) == len(set(seen)) == trail.count  # none twice, none lost


def test_pages_keep_the_filters(app, trail, auth, client, monkeypatch):
    monkeypatch.setattr(audit_log.events_page, "__defaults__", (1,))
    auth.login(trail.world.admin.email)
    html = client.get("/audit", query_string={"account": trail.number}).get_data(as_text=True)
    older = re.search(r'href="([^"]+)"[^>]*data-testid="audit-older"', html).group(1).replace("&amp;", "&")
    assert f"account={trail.number}" in older and "after=" in older
    bad = client.get("/audit?after=abc")
    assert bad.status_code == 422 and "That page link is not valid" in bad.get_data(as_text=True)


def test_the_csv_has_every_matching_event_with_times_in_iso_8601_with_zone(app, trail, auth, client):
    auth.login(trail.world.support.email)
    response = client.get("/audit/export.csv", query_string={"account": trail.other_number})
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert 'filename="audit-log.csv"' in response.headers["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(response.get_data(as_text=True))))
    assert tuple(rows[0]) == audit_log.CSV_HEADER
    body = [dict(zip(rows[0], r)) for r in rows[1:]]
    assert [r["action"] for r in body] == ["invoice_added", "suspended", "cancellation_requested"]
    assert all(r["account_number"] == trail.other_number for r in body)
    assert body[0]["at"] == "2026-11-09T08:15:00+00:00"
    assert datetime.fromisoformat(body[1]["at"]).tzinfo is not None
    assert body[1]["run_id"] == str(trail.bulk_run) and body[1]["reason"] == "policy_violation"
    everything = list(csv.reader(io.StringIO(client.get("/audit/export.csv").get_data(as_text=True))))
    assert len(everything) == trail.count + 1


def test_formula_like_text_is_kept_as_text_in_the_csv(app, trail, auth, client):
    with app.app_context():
        audit.record("cancellation_requested", trail.world.account, _user(trail.world.support.id),
                     reason_note="=HYPERLINK(\"http://evil\")")
        db.session.commit()
    auth.login(trail.world.support.email)
    rows = list(csv.reader(io.StringIO(client.get("/audit/export.csv?actor=Sam").get_data(as_text=True))))
    assert rows[1][rows[0].index("note")] == "'=HYPERLINK(\"http://evil\")"


def test_events_link_to_their_account_and_support_sees_no_run_page_link(app, trail, auth, client):
    auth.login(trail.world.support.email)
    html = client.get("/audit", query_string={"actor": f"#{trail.bulk_run}"}).get_data(as_text=True)
    assert f'href="/accounts/{trail.world.other_account}"' in html
    assert "/sweeps/runs/" not in html  # support cannot open run pages (super admins only)
    assert f'href="/audit?actor=%23{trail.bulk_run}"' in html  # but can list the run's events


@pytest.mark.parametrize("role", ["account_manager", "tier_manager", "user"])
def test_customers_are_refused(app, trail, auth, client, role):
    person = {"account_manager": trail.world.manager, "tier_manager": trail.world.tier,
              "user": trail.world.member}[role]
    auth.login(person.email)
    assert client.get("/audit").status_code == 403
    assert client.get("/audit/export.csv").status_code == 403


def test_the_staff_navigation_and_the_pages_promising_an_audit_trail_link_here(app, trail, auth, client):
    auth.login(trail.world.admin.email)
    home = client.get(f"/accounts/{trail.world.account}").get_data(as_text=True)
    assert 'href="/audit"' in home  # the navigation
    assert f'href="/audit?account={trail.number}"' in home  # the account's timeline
    rules = client.get("/rules").get_data(as_text=True)
    assert '<a href="/audit?action=rule_*">audit trail</a>' in rules


@pytest.mark.browser
def test_in_a_browser_filters_narrow_the_log_and_a_bad_one_is_shown_at_its_field(app, page, trail):
    from playwright.sync_api import expect

    from tests.conftest import browser_login

    browser_login(page, trail.world.admin.email)
    page.goto("/audit")
    expect(page.get_by_test_id("audit-row")).to_have_count(trail.count)
    page.get_by_label("Account number").fill(trail.number)
    page.get_by_label("Account number").press("Enter")
    expect(page.get_by_test_id("audit-row")).to_have_count(3)
    assert f"account={trail.number}" in page.url
    page.get_by_label("Actor").fill("nobody-at-all")
    page.get_by_label("Actor").press("Enter")
    expect(page.get_by_test_id("audit-actor-error")).to_contain_text("No person, run or API token matches")
    expect(page.get_by_label("Actor")).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_test_id("audit-row")).to_have_count(0)
    page.get_by_label("Actor").fill("#" + str(trail.bulk_run))
    page.get_by_label("Actor").press("Enter")
    expect(page.get_by_test_id("audit-empty")).to_be_visible()  # the run did nothing to this account
    page.get_by_label("Account number").fill("")
    page.get_by_label("Account number").press("Enter")
    expect(page.get_by_test_id("audit-row")).to_have_count(3)
    page.get_by_test_id("audit-run-link").first.click()
    expect(page).to_have_url(re.compile(rf"/sweeps/runs/{trail.bulk_run}$"))


# ---------------------------------------------------------------- no filter reads the whole table

PLANNED = [
    {"actor": "Ada Admin"}, {"actor": "billing-sync"}, {"actor": "#1"}, {"actor": "schedule"},
    {"action": "suspended"}, {"action": "run_*"}, {"reason": "policy_violation"}, {"account": "NUMBER"},
    {"date_from": "2026-11-05", "date_to": "2026-11-05"},
]


@pytest.fixture
def indexed(app):
    """The audit log's indexes as the model declares them (created here until their migration exists, then dropped)."""
    from sqlalchemy import inspect

    with app.app_context():
        existing = {i["name"] for i in inspect(db.engine).get_indexes("audit_events")}
        created = [index for index in AuditEvent.__table__.indexes if index.name not in existing]
        for index in created:
            index.create(db.engine)
    yield
    with app.app_context():
        for index in created:
            index.drop(db.engine)


@pytest.mark.parametrize("args", PLANNED, ids=[next(iter(a)) + "=" + next(iter(a.values())) for a in PLANNED])
def test_each_filter_is_read_through_an_index(app, trail, indexed, auth, client, args):
    from sqlalchemy import event

    args = {k: (trail.number if v == "NUMBER" else v) for k, v in args.items()}
    seen = []
    with app.app_context():
        engine = db.engine

    def listen(conn, cursor, statement, parameters, context, executemany):
        if re.search(r"\bFROM audit_events\b", statement) and "ORDER BY audit_events.id DESC" in statement:
            seen.append((statement, parameters))

    auth.login(trail.world.admin.email)
    event.listen(engine, "before_cursor_execute", listen)
    try:
        assert client.get("/audit", query_string=args).status_code == 200
    finally:
        event.remove(engine, "before_cursor_execute", listen)
    [(statement, parameters)] = seen
    with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            # PostgreSQL plans by its statistics, and a test's few dozen rows (analysed or not, depending on when
            # autovacuum last looked) make any plan about as cheap as any other. So the plan is taken at the
            # shape the filters are for: the trail among 20,000 older events that match no filter, analysed,
            # inside a transaction that is rolled back (statistics and rows with it).
            with conn.begin() as tx:
                conn.exec_driver_sql(
                    "INSERT INTO audit_events (created_at, actor_label, action) "
                    "SELECT timestamp '2020-01-01' + g * interval '1 minute', 'filler', 'filler' "
                    "FROM generate_series(1, 20000) AS g")
                conn.exec_driver_sql("ANALYZE audit_events")
                plan = [r[0] for r in conn.exec_driver_sql("EXPLAIN " + statement, parameters)]
                tx.rollback()
            assert not any("Seq Scan on audit_events" in line for line in plan), plan
            assert any(re.search(r"Index .*Scan .*(using|on) ix_audit_events_\w+( on audit_events)?", line)
                       for line in plan), plan
        else:
            plan = [r[-1] for r in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)]
            assert any(re.match(r"SEARCH audit_events USING (COVERING )?INDEX ix_audit_events_", line)
                       for line in plan), plan
