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


def _no_accounts(app):
    """Delete every account and start their ids again (as the build found the table)."""
    with app.app_context():
        db.session.execute(delete(Account))
        if db.engine.dialect.name == "postgresql":
            db.session.execute(text("SELECT setval('accounts_id_seq', 1, false)"))
        db.session.commit()


def test_the_redis_keys_a_build_adds_are_written_back_with_their_time_to_live(app, make):
    from portal.extensions import get_redis

    snapshots, builds = Snapshots(), []

    def build():
        builds.append(1)
        with app.app_context():
            get_redis().rpush("queue", "job-1", "job-2")
            get_redis().set("lease", "1", px=600_000)
        return make.account()

    first = snapshots.get("q", app, build)
    with app.app_context():
        get_redis().delete("queue", "lease")
    _no_accounts(app)
    assert snapshots.get("q", app, build) == first and len(builds) == 1
    with app.app_context():
        assert get_redis().lrange("queue", 0, -1) == [b"job-1", b"job-2"]
        assert 0 < get_redis().pttl("lease") <= 600_000


def test_a_build_that_changes_a_redis_key_it_found_is_never_kept(app, make):
    from portal.extensions import get_redis

    snapshots = Snapshots()
    with app.app_context():
        get_redis().set("counter", 1)

    def build():
        with app.app_context():
            get_redis().incr("counter")
        return make.account()

    where = snapshots._where(app)
    snapshots.get("c", app, build)
    with app.app_context():
        get_redis().set("counter", 1)
    _no_accounts(app)
    assert snapshots._where(app) == where  # the database is where the build started: only Redis differs
    snapshots.get("c", app, build)
    with app.app_context():
        assert get_redis().get("counter") == b"2"  # built again (a write back would not have counted)
