"""Counts in words: "1 account", "6,652 accounts" from one helper, on pages, in messages and in CLI output."""
import re
from pathlib import Path

import pytest

from portal.plurals import count, plural

ROOT = Path(__file__).resolve().parent.parent
TEMPLATES = ROOT / "templates"


@pytest.mark.parametrize("n, word, expected", [
    (0, "account", "0 accounts"), (1, "account", "1 account"), (2, "account", "2 accounts"),
    (6652, "account", "6,652 accounts"), (1_000_000, "account", "1,000,000 accounts"),
    (1, "survey request", "1 survey request"), (3, "survey request", "3 survey requests"),
    (2, "reply", "2 replies"), (2, "day", "2 days"), (2, "box", "2 boxes"), (None, "email", "0 emails"),
])
def test_a_count_reads_as_english(n, word, expected):
    assert count(n, word) == expected


def test_the_word_alone_agrees_with_the_number():
    assert [plural(n, "is", "are") for n in (0, 1, 2)] == ["are", "is", "are"]
    assert plural(1, "uses", "use") == "uses" and plural(5, "uses", "use") == "use"
    assert plural(2, "person") == "people"


def test_templates_use_the_count_filter_and_show_no_s_in_brackets():
    """No "(s)" in any template, and no hand-made plural ("s" if n != 1): they go through |count or plural()."""
    found = []
    for path in sorted(TEMPLATES.rglob("*")):
        if path.suffix not in (".html", ".txt"):
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if "(s)" in line or re.search(r"""["']s["'] if\b|["']s use["']""", line):
                found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not found, "hand-made plurals:\n" + "\n".join(found)


def test_messages_people_read_show_no_s_in_brackets():
    """Flash messages, errors and CLI output never say "account(s)": portal.plurals.count words them."""
    said = re.compile(r"""(flash|echo|click\.echo|raise \w+|message=|subject =)\(?.*\w\(s\)""")
    found = []
    for path in sorted((ROOT / "portal").rglob("*.py")):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if said.search(line):
                found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not found, "\n".join(found)


def test_the_sign_in_wait_is_in_words():
    from portal.web.throttle import wait_text

    assert [wait_text(s) for s in (1, 40, 120, 60 * 60)] == ["1 second", "40 seconds", "2 minutes", "60 minutes"]


def _class_with(make, n):
    cls = make.customer_class(name="Plural")
    for _ in range(n):
        make.account(customer_class_id=cls)
    return cls


@pytest.mark.parametrize("n, words", [(1, "1 account uses this class"), (2, "2 accounts use this class")])
def test_class_pages_count_the_accounts_using_it(world, make, auth, client, n, words):
    cls = _class_with(make, n)
    auth.login(world.admin.email)
    for path in (f"/classes/{cls}/edit", f"/classes/{cls}/delete"):
        html = client.get(path).get_data(as_text=True)
        assert words in html, path
        assert "(s)" not in html


@pytest.mark.parametrize("n, words", [(1, "it has 1 unpaid invoice ("), (2, "it has 2 unpaid invoices (")])
def test_the_unpaid_invoices_refusal_counts_them(app, world, make, n, words):
    from portal.domain.billing.unpaid import refuse_if_unpaid
    from portal.domain.errors import UnpaidInvoices
    from portal.extensions import db
    from portal.models import Account

    for _ in range(n):
        make.invoice(world.account)
    with app.app_context():
        with pytest.raises(UnpaidInvoices) as refused:
            refuse_if_unpaid(db.session.get(Account, world.account), "cancel")
    assert words in refused.value.message


@pytest.mark.parametrize("n, words", [(1, "Put 1 account in no class."), (3, "Put 3 accounts in no class.")])
def test_the_bulk_class_change_counts_in_words(n, words):
    from portal.domain.dunning.class_bulk import ClassOutcome

    assert ClassOutcome(class_name=None, changed_ids=list(range(n))).summary == words


# The account page's words: the Exemption card, the timeline's reasons and runs, the billing contact.

def _record(app, account_id, **fields):
    from portal.domain import audit
    from portal.extensions import db

    with app.app_context():
        audit.record(account_id=account_id, **fields)
        db.session.commit()


def test_the_exemption_card_is_called_exemption_and_folds_its_form(app, world, auth, client):
    auth.login(world.admin.email)
    html = client.get(f"/accounts/{world.account}").get_data(as_text=True)
    card = html[html.index('data-testid="exempt-card"'):]
    card = card[:card.index("</section>")]
    assert ">Exemption</h2>" in card
    assert '<details class="exempt-change" data-testid="exempt-change">' in card  # closed: shown when asked
    assert "<summary>Exempt this account from sweeps…</summary>" in card and 'name="exempt_reason"' in card
    refused = auth.post(f"/accounts/{world.account}/exempt", {"exempt_reason": ""}, htmx=True)
    assert refused.status_code == 422
    assert '<details class="exempt-change" data-testid="exempt-change" open>' in refused.get_data(as_text=True)


def test_support_sees_the_exemption_without_its_form(world, auth, client):
    auth.login(world.support.email)
    html = client.get(f"/accounts/{world.account}").get_data(as_text=True)
    assert ">Exemption</h2>" in html and "exempt-change" not in html


def test_timeline_entries_show_their_reasons_and_link_their_run_for_roles_that_may_open_it(app, world, auth, client):
    _record(app, world.account, action="suspended", actor="Clean-up #41", run_id=41, reason_category="inactivity",
            reason_note="No bookings <since> May", state_before="active", state_after="suspended")
    _record(app, world.account, action="exempted", actor="Ada <ada@example.com>", reason_note="Family business")
    auth.login(world.admin.email)
    html = client.get(f"/accounts/{world.account}/timeline").get_data(as_text=True)
    assert '<a href="/sweeps/runs/41" data-testid="timeline-run-link">Clean-up #41</a>' in html
    assert "Reason: Inactivity — No bookings &lt;since&gt; May" in html
    assert 'data-testid="timeline-reason">Reason: Family business</div>' in html  # a note without a category
    auth.login(world.support.email)  # support may not open run pages (the sweeps blueprint is super admins')
    html = client.get(f"/accounts/{world.account}/timeline").get_data(as_text=True)
    assert '<span data-testid="timeline-run">Clean-up #41</span>' in html and "/sweeps/runs/41" not in html
    assert client.get("/sweeps/runs/41").status_code == 403


def test_a_run_event_under_a_persons_name_names_the_run_too(app, world, auth, client):
    _record(app, world.account, action="suspended", actor="Ada <ada@example.com>", run_id=7)
    auth.login(world.admin.email)
    html = client.get(f"/accounts/{world.account}/timeline").get_data(as_text=True)
    assert 'by Ada &lt;ada@example.com&gt; · <a href="/sweeps/runs/7" data-testid="timeline-run-link">run #7</a>' in html


def test_the_billing_contact_is_a_mail_link_escaped(app, world, auth, client):
    from portal.extensions import db
    from portal.models import Account

    with app.app_context():
        account = db.session.get(Account, world.account)
        account.email, account.contact_name = "pay+shop@example.com", "Rita <Owner>"
        db.session.commit()
    auth.login(world.admin.email)
    html = client.get(f"/accounts/{world.account}").get_data(as_text=True)
    card = html[html.index('data-testid="billing-contact"'):]
    assert card.startswith('data-testid="billing-contact">Billing contact: Rita &lt;Owner&gt; · '
                           '<a href="mailto:pay+shop@example.com">pay+shop@example.com</a>')


def test_a_mail_link_never_carries_markup_or_extra_headers():
    from portal.web.words import mail_link

    assert str(mail_link('x"><script>@example.com')) == "x&#34;&gt;&lt;script&gt;@example.com"
    assert str(mail_link("a@example.com?cc=b")) == '<a href="mailto:a@example.com%3Fcc%3Db">a@example.com?cc=b</a>'
    assert str(mail_link("call 555-0100")) == "call 555-0100"


def test_date_fields_show_the_format_their_errors_name(world, auth, client):
    from portal.domain.parsing import DATE_FORMAT, date_message

    auth.login(world.support.email)
    html = client.get("/audit").get_data(as_text=True)
    assert html.count(f'type="date" placeholder="{DATE_FORMAT}"') == 2
    bad = client.get("/audit?date_from=30/11/2026").get_data(as_text=True)
    assert date_message() in bad and DATE_FORMAT in date_message()
