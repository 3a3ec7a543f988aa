"""The effect matrix (/effects): every cell is the gate's answer, and the page follows the gate's table."""
from html.parser import HTMLParser
from types import SimpleNamespace

import pytest
from flask import Flask

from portal.domain import gate
from portal.domain.features import effects
from portal.extensions import db
from portal.models import Account, User

HX = {"HX-Request": "true"}


@pytest.fixture
def app_config():
    return {"LOGIN_RATE_LIMIT": "1000 per minute"}


class MatrixPage(HTMLParser):
    """Read the page's tables: {(state, role, action): (verdict, message)}, checking each cell's column."""

    def __init__(self):
        super().__init__()
        self.cells, self.section_ids, self.captions = {}, [], []
        self._state = self._cell = self._span = None
        self._header, self._column, self._in_caption = [], 0, False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "section" and (a.get("id") or "").startswith("state-"):
            self.section_ids.append(a["id"])
        if tag == "table" and a.get("data-testid") == "effects-table":
            self._state, self._header = a["data-state"], []
        elif tag == "caption" and self._state:
            self._in_caption, self.captions = True, self.captions + [""]
        elif tag == "th" and "data-role" in a:
            self._header.append(a["data-role"])
        elif tag == "tr":
            self._column = 0
        elif tag == "td" and a.get("data-testid") == "effect":
            assert a["data-role"] == self._header[self._column], "a cell sits under another role's heading"
            self._column += 1
            self._cell = {"key": (self._state, a["data-role"], a["data-action"]), "verdict": "", "message": ""}
        elif tag == "span" and self._cell is not None:
            self._span = {"effect-verdict": "verdict", "effect-message": "message"}.get(a.get("class"))

    def handle_endtag(self, tag):
        if tag == "span":
            self._span = None
        elif tag == "caption":
            self._in_caption = False
        elif tag == "td" and self._cell is not None:
            self.cells[self._cell["key"]] = (self._cell["verdict"], self._cell["message"])
            self._cell = None
        elif tag == "table":
            self._state = None

    def handle_data(self, data):
        if self._in_caption:
            self.captions[-1] += data
        if self._cell is not None and self._span:
            self._cell[self._span] += data


def read_page(html):
    parser = MatrixPage()
    parser.feed(html)
    return parser


def expected_cell(decision, role, action):
    if decision.allowed:
        return ("Allowed", "")
    verdict = "Refused" if action in gate.ROLE_ACTIONS[role] else "Not for this role"
    return (verdict, decision.message)


def real_actors(world):
    """The world's person for each role (customers in world.account), the system, and the public."""
    people = {"super_admin": world.admin, "support": world.support, "account_manager": world.manager,
              "tier_manager": world.tier, "user": world.member}
    actors = {role: db.session.get(User, person.id) for role, person in people.items()}
    return dict(actors, system="system", public=None)


def show(auth, client, email, query="", headers=None):
    auth.login(email)
    return client.get(f"/effects{query}", headers=headers or {})


# ---------------------------------------------------------------- the labels and the matrix

def test_every_gate_action_has_a_plain_label_and_a_feature():
    missing = [a for a in gate.ACTIONS if a not in effects.ACTION_LABELS]
    assert missing == [], f"gate actions without a label in portal/domain/features/effects.py: {missing}"
    stale = sorted(set(effects.ACTION_LABELS) - set(gate.ACTIONS))
    assert stale == [], f"labels for actions the gate no longer has: {stale}"
    for action, (label, feature) in effects.ACTION_LABELS.items():
        assert label.strip() and feature in effects.FEATURES, action
    assert set(effects.ROLE_LABELS) >= set(gate.ROLES)


def test_the_features_asked_for_each_have_actions():
    used = {feature for _label, feature in effects.ACTION_LABELS.values()}
    assert used >= {"reservations", "campaigns", "surveys", "ingestion", "listings", "profile", "social", "email",
                    "staff"}


def test_an_action_without_a_label_still_shows_under_other_actions(monkeypatch):
    monkeypatch.delitem(effects.ACTION_LABELS, "publish_listing")
    groups = {g.feature: [r.action for r in g.rows] for g in effects.matrix()[0].groups}
    assert groups["other"] == ["publish_listing"] and "publish_listing" not in groups["listings"]


def test_the_matrix_is_may_for_every_state_role_and_action_with_the_configured_billing_contact():
    app = Flask(__name__)
    app.config["BILLING_CONTACT"] = "accounts@billing.example"
    with app.app_context():
        sections = effects.matrix()
        assert [s.state for s in sections] == list(gate.STATES)
        seen = 0
        for section in sections:
            account = SimpleNamespace(id=7, status=section.state)
            for group in section.groups:
                for row in group.rows:
                    assert [c.role for c in row.cells] == list(gate.ROLES)
                    for cell in row.cells:
                        actor = {"system": "system", "public": None}.get(
                            cell.role, SimpleNamespace(role=cell.role, account_id=7, disabled=False))
                        decision = gate.may(actor, row.action, account)
                        assert (cell.allowed, cell.message) == (decision.allowed, decision.message)
                        seen += 1
        assert seen == len(gate.STATES) * len(gate.ROLES) * len(gate.ACTIONS)
        suspended = effects.effect("suspended", "account_manager", "edit_listing")
        assert suspended.kind == "state" and "accounts@billing.example" in suspended.message
        assert "{billing_contact}" not in suspended.message


def test_the_count_of_refusals_a_state_adds_is_zero_when_active_and_grows_with_the_restriction():
    paused = {s.state: s.paused for s in effects.matrix()}
    assert paused["active"] == 0
    assert 0 < paused["limited"] < paused["suspended"] < paused["cancelled"]


def test_filters_keep_one_role_or_one_feature_and_ignore_unknown_values():
    one = effects.matrix(role="support", feature="listings")
    for section in one:
        assert [g.feature for g in section.groups] == ["listings"]
        assert {c.role for g in section.groups for r in g.rows for c in r.cells} == {"support"}
    assert effects.normalise_filters("root", "<script>") == (None, None)
    assert effects.matrix(role="root", feature="nope") == effects.matrix()


# ---------------------------------------------------------------- the page

def test_every_cell_of_the_page_is_what_may_answers_for_the_real_people(app, client, auth, world):
    page = read_page(show(auth, client, world.admin.email).get_data(as_text=True))
    with app.app_context():
        actors = real_actors(world)
        account = db.session.get(Account, world.account)
        checked = 0
        for state in gate.STATES:
            account.status = state  # in memory only: may() reads the account's state
            for role, actor in actors.items():
                for action in gate.ACTIONS:
                    decision = gate.may(actor, action, account)
                    assert page.cells[(state, role, action)] == expected_cell(decision, role, action), \
                        (state, role, action)
                    checked += 1
        db.session.rollback()
    assert checked == len(page.cells) == len(gate.STATES) * len(gate.ROLES) * len(gate.ACTIONS)
    assert any("billing@portal.test" in message for _verdict, message in page.cells.values())
    assert not any("{billing_contact}" in message for _verdict, message in page.cells.values())


def test_the_page_has_a_section_per_state_with_a_captioned_table_and_explains_the_dunning_labels(client, auth,
                                                                                                  world):
    response = show(auth, client, world.support.email)
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    page = read_page(html)
    assert page.section_ids == [f"state-{s}" for s in gate.STATES]
    assert page.captions[2].startswith("What each action does while the account is Suspended")
    assert 'scope="col"' in html and 'scope="row"' in html and 'scope="rowgroup"' in html
    for label in ("Limitation pending", "Service limitation delayed", "Suspension pending", "Suspension delayed"):
        assert label in html
    assert page.cells[("suspended", "tier_manager", "login")] == ("Refused", gate.MEMBER_SUSPENDED)


def test_changing_the_gate_table_changes_the_page(client, auth, world, monkeypatch):
    before = read_page(show(auth, client, world.admin.email).get_data(as_text=True)).cells
    assert before[("suspended", "account_manager", "publish_listing")][0] == "Refused"
    assert before[("active", "user", "book_reservation")] == ("Allowed", "")
    monkeypatch.setitem(gate.TABLE, ("suspended", "account_manager", "publish_listing"), None)
    monkeypatch.setitem(gate.TABLE, ("active", "user", "book_reservation"),
                        "Closed for the holidays; questions: {billing_contact}.")
    after = read_page(client.get("/effects").get_data(as_text=True)).cells
    assert after[("suspended", "account_manager", "publish_listing")] == ("Allowed", "")
    assert after[("active", "user", "book_reservation")] == (
        "Refused", "Closed for the holidays; questions: billing@portal.test.")
    changed = {key for key in before if before[key] != after[key]}
    assert changed == {("suspended", "account_manager", "publish_listing"), ("active", "user", "book_reservation")}


def test_filtering_by_role_and_feature_works_as_a_plain_get_and_as_an_htmx_fragment(client, auth, world):
    response = show(auth, client, world.admin.email, "?role=system&feature=campaigns")
    html = response.get_data(as_text=True)
    cells = read_page(html).cells
    assert {(role, action) for _state, role, action in cells} == {("system", "manage_campaigns"),
                                                                 ("system", "run_campaign")}
    assert cells[("suspended", "system", "run_campaign")] == ("Refused", gate.PAUSED)
    assert '<option value="system" selected>' in html and "<h1>" in html
    fragment = client.get("/effects?role=system&feature=campaigns", headers=HX)
    body = fragment.get_data(as_text=True)
    assert fragment.status_code == 200 and "<h1>" not in body and 'id="effects-matrix"' in body
    assert read_page(body).cells == cells
    assert "HX-Request" in fragment.headers["Vary"]
    unknown = client.get("/effects?role=root&feature=%3Cscript%3E")
    assert unknown.status_code == 200 and len(read_page(unknown.get_data(as_text=True)).cells) == len(gate.TABLE)


@pytest.mark.parametrize("person, status", [("admin", 200), ("support", 200), ("manager", 403), ("tier", 403),
                                            ("member", 403)])
def test_only_staff_see_the_matrix(client, auth, world, person, status):
    assert show(auth, client, getattr(world, person).email).status_code == status


def test_anonymous_visitors_are_sent_to_sign_in(client):
    response = client.get("/effects")
    assert response.status_code in (302, 303) and "/login" in response.headers["Location"]


def test_staff_navigation_shows_the_effects_page(client, auth, world):
    assert 'href="/effects"' in show(auth, client, world.support.email).get_data(as_text=True)


@pytest.mark.parametrize("status, text", [("active", "What each role may do"), ("suspended", "What this state pauses"),
                                          ("limited", "What this state pauses")])
def test_the_account_page_links_to_its_state_in_the_matrix(app, client, auth, world, status, text):
    with app.app_context():
        db.session.get(Account, world.account).status = status
        db.session.commit()
    auth.login(world.support.email)
    html = client.get(f"/accounts/{world.account}").get_data(as_text=True)
    assert f'href="/effects#state-{status}" data-testid="effects-link">{text}</a>' in html
    assert f"state-{status}" in read_page(client.get("/effects").get_data(as_text=True)).section_ids
