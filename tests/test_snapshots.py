"""The suite's own shortcut (tests.conftest.Snapshots): a fixture's build written back leaves the database exactly as
building it would, and a database that is not where the build started is built on, never written over."""
from types import SimpleNamespace

from sqlalchemy import delete, text, update

from portal.extensions import db
from portal.models import Account, Invoice, User
from tests.conftest import Snapshots


def _back_to(app, where, base, made):
    """Undo the build: its rows deleted, the account it changed as it was, the sequences where they were."""
    with app.app_context():
        db.session.execute(delete(Invoice).where(Invoice.id == made.invoice))
        db.session.execute(delete(User).where(User.id == made.user.id))
        db.session.execute(update(Account).where(Account.id == base).values(balance_cents=0))
        if db.engine.dialect.name == "postgresql":
            for name, _, value in (row for row in where if row[1] is None):
                db.session.execute(text("SELECT setval(:name, :value, :called)"),
                                   {"name": name, "value": value or 1, "called": value is not None})
        db.session.commit()


def test_a_kept_build_is_written_back_as_it_was_built_and_the_next_ids_follow_on(app, make):
    base = make.account(name="Base Account")
    builds = []

    def build():
        builds.append(1)
        return SimpleNamespace(user=make.user("support"), invoice=make.invoice(base))  # adds rows, changes one

    snapshots = Snapshots()
    start = snapshots._where(app)
    first = snapshots.get("t", app, build)
    built_rows, built_where = snapshots._rows(app), snapshots._where(app)
    assert built_rows["accounts"][(base,)]["balance_cents"] == 2500

    _back_to(app, start, base, first)
    assert snapshots._where(app) == start
    again = snapshots.get("t", app, build)
    assert len(builds) == 1, "written back, not built again"
    assert vars(again) == vars(first) and again is not first
    assert snapshots._rows(app) == built_rows  # every row of every table, the changed balance included
    assert snapshots._where(app) == built_where  # so the next ids are the ones a build would have left
    next_id = make.account(name="After")
    with app.app_context():
        assert next_id == db.session.scalar(text("SELECT max(id) FROM accounts"))
        assert next_id == max(key[0] for key in built_rows["accounts"]) + 1
        found = db.session.execute(text("SELECT count(*) FROM accounts WHERE lower(name) LIKE '%base account%'"))
        assert found.scalar() == 1


def test_a_database_somewhere_else_is_built_on_not_written_over(app, make):
    base = make.account(name="Base Account")
    builds = []

    def build():
        builds.append(1)
        return SimpleNamespace(user=make.user("support"), invoice=make.invoice(base))

    snapshots = Snapshots()
    start = snapshots._where(app)
    first = snapshots.get("t", app, build)
    _back_to(app, start, base, first)
    make.account(name="One more")  # not where the build started
    again = snapshots.get("t", app, build)
    assert len(builds) == 2 and again.user.email != first.user.email  # a new build (its own email)
    with app.app_context():
        assert db.session.scalar(text("SELECT count(*) FROM users")) == 1


def test_a_build_that_deletes_or_touches_redis_is_never_kept(app, make):
    from portal.extensions import get_redis

    snapshots = Snapshots()

    def build():
        with app.app_context():
            get_redis().set("something", "1")
        return make.account()

    snapshots.get("r", app, build)
    with app.app_context():
        get_redis().delete("something")
        db.session.execute(delete(Account))
        db.session.commit()
    snapshots.get("r", app, build)
    with app.app_context():
        assert get_redis().get("something") == b"1"  # built again: only a build writes to Redis
