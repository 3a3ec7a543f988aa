"""How many SQL statements the API's two hot requests send, on both databases: a regression here is a
round trip more per request, which on PostgreSQL is where their time goes (BENCHMARKS.md, the JSON API at
1,000,000 accounts). The counts are pinned; a change that needs more says so here, with its reason."""
from datetime import date, timedelta

import pytest
from sqlalchemy import event

from portal.extensions import db
from tests.api_support import Api, make_token, number_of

# GET /api/v1/accounts/{number}: the token with its maker, the account (its class joined), its open
# invoices, its manual dates, the request's log line.
GET_STATEMENTS = 5
# POST …/payments: the token with its maker, the account; the key claimed (INSERT … ON CONFLICT); the
# account's lock returning its row, its open invoices, its manual dates; the invoice settled and the payment
# (one flush: the payment's id goes into its audit event); the audit event, the account's balance and next
# look (one UPDATE), the key's answer and the log line, all in the payment's one transaction.
PAYMENT_STATEMENTS = 12
# The same push again: the token, the account, the key found taken, the stored answer, the log line.
REPLAY_STATEMENTS = 5
# Not counted: whether a webhook endpoint is enabled, read after a change's commit at most once every 5 s per
# process (portal.domain.webhooks.jobs), so a run of pushes sends it once in a while, not once each.
NOT_COUNTED = ("SELECT webhook_endpoints.id FROM webhook_endpoints",)


class Statements:
    """The statements the app's engine sends while counting."""

    def __init__(self, app):
        with app.app_context():
            self.engine = db.engine
        self.seen = []
        event.listen(self.engine, "before_cursor_execute", self._note)

    def _note(self, conn, cursor, statement, parameters, context, executemany):  # noqa: ARG002
        text = " ".join(statement.split())
        if not text.startswith(NOT_COUNTED):
            self.seen.append(text[:160])

    def close(self):
        event.remove(self.engine, "before_cursor_execute", self._note)

    def during(self, call):
        self.seen.clear()
        result = call()
        return result, list(self.seen)


@pytest.fixture
def statements(app):
    counter = Statements(app)
    yield counter
    counter.close()


def _listed(seen):
    return "\n".join(seen)


def test_a_get_and_a_payment_send_the_pinned_number_of_statements(app, client, world, make, statements):
    make.invoice(world.account, amount_cents=4900, seq=1, due_date=date.today() + timedelta(days=20))
    make.invoice(world.account, amount_cents=2500, seq=2, due_date=date.today() - timedelta(days=3))
    number = number_of(app, world.account)
    api = Api(client, make_token(app, world.admin.id))
    assert api.get(f"/api/v1/accounts/{number}").status_code == 200  # first use: its last-used time is written

    got, seen = statements.during(lambda: api.get(f"/api/v1/accounts/{number}"))
    assert got.status_code == 200 and got.get_json()["overdue_invoices"] == [2]
    assert len(seen) == GET_STATEMENTS, _listed(seen)

    body = {"amount_cents": 1000, "invoice_seq": 1}
    paid, seen = statements.during(lambda: api.post(f"/api/v1/accounts/{number}/payments", body, key="count-1"))
    assert paid.status_code == 201, paid.get_data(as_text=True)
    assert paid.get_json()["settled"] == [{"seq": 1, "cents": 1000}]
    assert paid.get_json()["account"]["balance_cents"] == 6400
    assert len(seen) == PAYMENT_STATEMENTS, _listed(seen)
    assert sum(s.startswith("UPDATE accounts") for s in seen) == 2, _listed(seen)  # the lock, then the change
    assert not any(s.startswith("SELECT customer_classes") for s in seen), _listed(seen)

    again, seen = statements.during(lambda: api.post(f"/api/v1/accounts/{number}/payments", body, key="count-1"))
    assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
    assert again.get_json() == paid.get_json()
    assert len(seen) == REPLAY_STATEMENTS, _listed(seen)


def test_the_token_s_last_used_time_is_written_at_most_once_a_minute(app, client, world, statements):
    from sqlalchemy import select, update

    from portal.models import ApiToken
    from portal.timeutil import utcnow

    number = number_of(app, world.account)
    api = Api(client, make_token(app, world.admin.id))
    _got, seen = statements.during(lambda: api.get(f"/api/v1/accounts/{number}"))
    assert any(s.startswith("UPDATE api_tokens SET last_used_at") for s in seen), _listed(seen)
    _got, seen = statements.during(lambda: api.get(f"/api/v1/accounts/{number}"))
    assert not any(s.startswith("UPDATE api_tokens") for s in seen), _listed(seen)
    with app.app_context():
        db.session.execute(update(ApiToken).values(last_used_at=utcnow() - timedelta(seconds=61)))
        db.session.commit()
    _got, seen = statements.during(lambda: api.get(f"/api/v1/accounts/{number}"))
    assert any(s.startswith("UPDATE api_tokens SET last_used_at") for s in seen), _listed(seen)
    with app.app_context():
        assert utcnow() - db.session.scalars(select(ApiToken.last_used_at)).one() < timedelta(seconds=30)
