"""The route walks' RowsWatch (tests.conftest): every table is read again after any statement that could write,
and only then, so the walks' "nothing changed" checks stay whole while costing a read per change."""
from sqlalchemy import select, text, update

from portal.extensions import db
from portal.models import Account


def test_a_write_is_seen_and_reads_alone_read_nothing_again(app, make, rows_watch):
    account = make.account(name="Watched Shop")
    first = rows_watch.rows()
    with app.app_context():
        db.session.execute(select(Account).where(Account.id == account)).all()
        db.session.execute(text("SELECT count(*) FROM accounts")).all()
        db.session.remove()
    assert rows_watch.rows() is first and rows_watch.reads == 1  # reads only: the rows were not read again
    with app.app_context():
        db.session.execute(update(Account).where(Account.id == account).values(name="Changed Shop"))
        db.session.commit()
    after = rows_watch.rows()
    assert rows_watch.reads == 2 and after != first
    assert any(row.name == "Changed Shop" for row in after["accounts"])


def test_a_rolled_back_write_and_a_cte_are_counted_as_writes(app, make, rows_watch):
    make.account()
    rows_watch.rows()
    with app.app_context():
        db.session.execute(text("UPDATE accounts SET name = 'Never kept'"))
        db.session.rollback()
    assert rows_watch.rows()["accounts"][0].name != "Never kept" and rows_watch.reads == 2
    with app.app_context():
        db.session.execute(text("WITH x AS (SELECT 1 AS one) SELECT one FROM x")).all()
        db.session.remove()
    rows_watch.rows()
    assert rows_watch.reads == 3  # a WITH might modify data on PostgreSQL: read again, to be safe
