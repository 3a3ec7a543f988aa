"""Fixtures: app, client, runner, auth, and real services (Redis, PostgreSQL, Chromium).

Every test that takes `app` runs twice: on SQLite and on PostgreSQL. With CI=true a missing
service fails the run instead of skipping. Under pytest-xdist (`python3 run.py test` runs one worker
per core) each worker starts its own services, in session fixtures: its own redis-server and PostgreSQL
cluster on ports of its own block (tests/services.py), its own SQLite template and browser under its own
temporary folder.
"""
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import threading
import time

import pytest
from hypothesis import HealthCheck, settings
from sqlalchemy import text

from tests.services import PostgresCluster, RedisServer, ServiceUnavailable

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IN_CI = os.environ.get("CI", "").lower() == "true"
CHROMIUM = os.environ.get("PORTAL_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]
PASSWORD = "correct horse battery staple"
SECRET = "test-secret-key-not-for-production"

# Tests whose assertions are about time (a quick 503, a stale chunk taken over, a restart within seconds) or that
# kill and restart processes mid-run: `pytestmark = ALONE`. `alone_if_marked` holds the other workers' tests back
# while one runs, so it has the machine as in a run without xdist. The mark is also an xdist group, so that under
# `--dist loadgroup` (run.py test) they run in a row on one worker. pytest-xdist 3.8 does not group on pytest 9.2
# (pytest-dev/pytest-xdist#1386: it renames node ids, which pytest 9.2 ignores), hence pytest < 9.2 in
# pyproject.toml; tests/test_run_script.py fails if the grouping stops.
ALONE_GROUP = "timing"
ALONE = pytest.mark.xdist_group(ALONE_GROUP)

# Hypothesis: the "ci" profile (CI=true) has no per-example deadline, which a machine busy with other workers
# misses for reasons of its own, and does not keep failing examples in .hypothesis/ (print_blob shows how
# to reproduce one instead). The number of examples stays each test's own. HYPOTHESIS_PROFILE chooses another.
settings.register_profile("ci", deadline=None, database=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if IN_CI else "default"))


def _url_builders_compiled_when_first_used():
    """Build each test's app in half the time: werkzeug writes and compiles two URL builders (Python source, run
    through exec) for every route as the route is added, about 0.1 s of the 0.15 s an app of this size takes to
    build, and every test builds one. Here each builder is compiled the first time it builds a URL instead; the
    builders, and so every URL, are the same. The portal itself keeps werkzeug's way (it builds its app once)."""
    from werkzeug.routing import rules

    compile_builder = rules.Rule._compile_builder

    def compiled_on_first_use(rule, append_unknown=True):
        name = "_build_unknown" if append_unknown else "_build"

        def build(self, *args, **kwargs):
            builder = compile_builder(self, append_unknown).__get__(self, None)
            setattr(self, name, builder)
            return builder(*args, **kwargs)

        return build

    rules.Rule._compile_builder = compiled_on_first_use


_url_builders_compiled_when_first_used()


def unavailable(message):
    """Fail under CI, skip elsewhere."""
    if IN_CI:
        pytest.fail(f"required service missing under CI=true: {message}", pytrace=False)
    pytest.skip(message)


# ---------------------------------------------------------------- xdist: ALONE tests run alone

def _is_alone(item):
    mark = item.get_closest_marker("xdist_group") if item is not None else None
    return mark is not None and (mark.args[:1] or [mark.kwargs.get("name")])[0] == ALONE_GROUP


_alone_held = []  # the lock files while this worker has the run to itself (kept over consecutive ALONE tests)


def pytest_collection_modifyitems(config, items):
    """Under xdist, put the ALONE tests first (each worker the same, stable order otherwise).

    xdist hands out consecutive tests, so one worker gets them all in a row and holds the run once for the lot,
    instead of waiting for another worker's test to end before each of them.
    """
    if hasattr(config, "workerinput"):
        items[:] = sorted(items, key=lambda item: not _is_alone(item))


@pytest.fixture(autouse=True)
def alone_if_marked(request, tmp_path_factory):
    """Under xdist, run an ALONE test while no other worker runs any test; other tests run side by side.

    A readers-writer lock shared by this run's workers (flock on files in the parent of their temporary folders):
    each test holds it shared, an ALONE test exclusively. The turnstile stops new tests from starting while an
    ALONE test waits for the running ones to end, so a stream of them cannot keep it waiting. The exclusive hold
    lasts until the last of consecutive ALONE tests (their xdist group runs them in a row) has been torn down.
    """
    if not hasattr(request.config, "workerinput"):  # not an xdist worker (a nested pytest inherits only its env)
        yield
        return
    import fcntl

    folder = tmp_path_factory.getbasetemp().parent
    if _is_alone(request.node):
        if not _alone_held:
            turnstile, lock = open(folder / "alone.turnstile", "a"), open(folder / "alone.lock", "a")
            fcntl.flock(turnstile, fcntl.LOCK_EX)
            fcntl.flock(lock, fcntl.LOCK_EX)
            _alone_held.extend((lock, turnstile))
        yield  # released by pytest_runtest_teardown below
        return
    with open(folder / "alone.turnstile", "a") as turnstile, open(folder / "alone.lock", "a") as lock:
        fcntl.flock(turnstile, fcntl.LOCK_EX)
        fcntl.flock(turnstile, fcntl.LOCK_UN)
        fcntl.flock(lock, fcntl.LOCK_SH)
        yield  # closing the files at the end releases the lock


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item, nextitem):
    """After an ALONE test's teardown, let the other workers go on unless the next test here is ALONE too."""
    try:
        return (yield)
    finally:
        if _alone_held and not _is_alone(nextitem):
            while _alone_held:
                _alone_held.pop(0).close()  # the lock, then the turnstile


# ---------------------------------------------------------------- services (session scope)

@pytest.fixture(scope="session")
def redis_server():
    try:
        server = RedisServer()
    except ServiceUnavailable as exc:
        unavailable(str(exc))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def pg_cluster():
    try:
        cluster = PostgresCluster()
    except ServiceUnavailable as exc:
        unavailable(str(exc))
    yield cluster
    cluster.stop()


def _migrate(url):
    from flask_migrate import upgrade

    from portal import create_app
    from portal.extensions import db

    app = create_app(_config(url, "redis://127.0.0.1:1/0"))
    with app.app_context():
        upgrade()
        db.engine.dispose()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory):
    path = tmp_path_factory.mktemp("sqlite-template") / "template.sqlite3"
    _migrate(f"sqlite:///{path}")
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.execute("PRAGMA journal_mode=DELETE")
    return path


@pytest.fixture(scope="session")
def pg_database(pg_cluster):
    url = pg_cluster.create_database("portal_test")
    _migrate(url)
    return url


def _config(database_url, redis_url, **extra):
    config = {
        "ENV_NAME": "testing",
        "SECRET_KEY": SECRET,
        "SQLALCHEMY_DATABASE_URI": database_url,
        "REDIS_URL": redis_url,
        "RATELIMIT_STORAGE_URI": redis_url,
        "BILLING_CONTACT": "billing@portal.test",
        "SMTP_PORT": 1,  # nothing listens: tests that need SMTP start their own server
        "SMTP_TIMEOUT": 2,
    }
    config.update(extra)
    return config


# ---------------------------------------------------------------- the app, on both databases

@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path):
    if request.param == "sqlite":
        template = request.getfixturevalue("sqlite_template")
        target = tmp_path / "portal.sqlite3"
        shutil.copyfile(template, target)
        return f"sqlite:///{target}"
    url, emptying = request.getfixturevalue("pg_database"), request.getfixturevalue("pg_emptying")
    from sqlalchemy import create_engine

    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text(emptying))
    engine.dispose()
    return url


@pytest.fixture(scope="session")
def pg_emptying(pg_database):
    """The statements that empty the test database and restart its ids, as TRUNCATE … RESTART IDENTITY would.

    DELETE in dependency order and setval take about 5 ms where TRUNCATE of the 33 tables takes about 70 ms (it
    gives each table and index a new file), and every PostgreSQL test starts with them. TRUNCATE stays the way when
    the database holds a table the models do not know (then the order is not known either).
    """
    from sqlalchemy import create_engine

    from portal import models  # noqa: F401  (the tables, into the metadata)
    from portal.extensions import db

    engine = create_engine(pg_database)
    with engine.connect() as conn:
        tables = set(conn.execute(text("SELECT tablename FROM pg_tables WHERE schemaname='public' "
                                       "AND tablename <> 'alembic_version'")).scalars())
        sequences = conn.execute(text("SELECT sequencename FROM pg_sequences WHERE schemaname='public'")).scalars().all()
    engine.dispose()
    known = [table.name for table in reversed(db.metadata.sorted_tables)]
    if tables != set(known):
        return f"TRUNCATE {', '.join(sorted(tables))} RESTART IDENTITY CASCADE"
    statements = [f"DELETE FROM {name}" for name in known]
    if sequences:
        statements.append("SELECT " + ", ".join(f"setval('{name}', 1, false)" for name in sequences))
    return "; ".join(statements)


@pytest.fixture
def app_config():
    """Extra settings a test module can override."""
    return {}


@pytest.fixture
def app(database_url, redis_server, app_config):
    from redis import Redis

    from portal import create_app
    from portal.extensions import db

    Redis.from_url(redis_server.url).flushdb()
    app = create_app(_config(database_url, redis_server.url, **app_config))
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def ctx(app):
    """An app context for domain tests."""
    with app.app_context():
        yield app


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def db_backend(database_url):
    return "sqlite" if database_url.startswith("sqlite") else "postgresql"


# ---------------------------------------------------------------- people and accounts

@pytest.fixture
def make(app):
    """Factories for accounts and users (see tests/factories.py)."""
    from tests import factories

    return factories.Factory(app)


def every_row(app):
    """Every row of every table of the app's database, as {table name: rows in primary-key order}."""
    from sqlalchemy import select

    from portal.extensions import db

    with app.app_context():
        rows = {table.name: db.session.execute(select(table).order_by(*table.primary_key.columns)).all()
                for table in db.metadata.sorted_tables}
        db.session.remove()
    return rows


class Snapshots:
    """What a fixture's build does to the database, done again on later tests in one transaction instead.

    Building the world makes a dozen commits through the models (about 0.1 s; the route walk's world, three times
    that), and most tests start from it. The first build on each kind of database is read back: every row of
    every table before and after, and PostgreSQL's sequences. A later test whose database is where that build
    started (each table's row count and highest key, and the sequences, the same) gets the rows it added
    inserted and the rows it changed updated by key (SQLite's FTS triggers fire as for the first), the sequences
    set where it left them, the Redis keys it added (RQ's jobs and queues: DUMP, then RESTORE with their time to
    live), and a copy of what it returned. A build that deleted a row or changed or deleted a Redis key it found
    is never kept: it builds each time, as does any test whose database or Redis is somewhere else.
    """

    def __init__(self):
        self._kept = {}

    @staticmethod
    def _tables():
        from portal.extensions import db

        return db.metadata.sorted_tables

    def _rows(self, app):
        """every_row's rows as {table name: {primary key: row mapping}}."""
        keys = {table.name: [c.name for c in table.primary_key.columns] for table in self._tables()}
        return {name: {tuple(r._mapping[k] for k in keys[name]): r._mapping for r in rows}
                for name, rows in every_row(app).items()}

    def _where(self, app):
        """Each table's row count and highest key, and the sequences: one statement (two on PostgreSQL)."""
        from portal.extensions import db

        parts = []
        for table in self._tables():
            key = list(table.primary_key.columns)
            top = f"max({key[0].name})" if len(key) == 1 else "NULL"
            parts.append(f"SELECT '{table.name}', count(*), {top} FROM {table.name}")
        with app.app_context():
            found = tuple(db.session.execute(text(" UNION ALL ".join(parts))).all())
            if db.engine.dialect.name == "postgresql":
                found += tuple(db.session.execute(text(
                    "SELECT sequencename, NULL, last_value FROM pg_sequences WHERE schemaname = 'public' "
                    "ORDER BY sequencename")).all())
            db.session.remove()
        return tuple(map(tuple, found))

    @staticmethod
    def _redis(app):
        """{key: (DUMP, milliseconds to live or 0)} of every Redis key but the rate limiter's counters."""
        from portal.extensions import get_redis

        from redis.exceptions import ConnectionError as RedisDown

        with app.app_context():
            redis = get_redis()
            try:
                return {k: (redis.dump(k), max(redis.pttl(k), 0)) for k in redis.keys()
                        if not k.startswith(b"LIMITS")}
            except RedisDown:
                return None  # a test of the portal without Redis: nothing to note, or to write back

    def get(self, name, app, build):
        import copy

        backend = app.config["SQLALCHEMY_DATABASE_URI"].split(":", 1)[0]
        kept = self._kept.get((backend, name))
        if kept is False:  # this build cannot be kept
            return build()
        redis_now = self._redis(app)
        if redis_now is None:  # Redis is out of reach (on purpose): build as usual
            return build()
        where = self._where(app), sorted(redis_now)
        if kept is not None:
            if kept["where"] == where:
                self._restore(app, kept)
                return copy.deepcopy(kept["result"])
            return build()
        before, redis_before = self._rows(app), redis_now
        result = build()
        after, redis_after = self._rows(app), self._redis(app)
        deleted = any(key not in after[table] for table, rows in before.items() for key in rows)
        redis_changed = redis_after is None or any(redis_after.get(k, (None,))[0] != dump
                                                   for k, (dump, _ttl) in redis_before.items())
        if deleted or redis_changed:
            self._kept[(backend, name)] = False
            return result
        self._kept[(backend, name)] = {
            "where": where, "result": copy.deepcopy(result), "sequences": [row for row in self._where(app)
                                                                          if row[1] is None and row[2] is not None],
            "redis": {k: v for k, v in redis_after.items() if k not in redis_before},
            "added": {table: [dict(r) for key, r in rows.items() if key not in before[table]]
                      for table, rows in after.items()},
            "changed": {table: [dict(r) for key, r in rows.items() if key in before[table] and r != before[table][key]]
                        for table, rows in after.items()}}
        return result

    def _restore(self, app, kept):
        from sqlalchemy import and_, bindparam

        from portal.extensions import db

        with app.app_context():
            with db.engine.begin() as conn:
                for table in self._tables():  # every insert first: a changed row may point at an added one
                    if kept["added"][table.name]:
                        conn.execute(table.insert(), kept["added"][table.name])
                for table in self._tables():
                    if kept["changed"][table.name]:
                        keys = [c.name for c in table.primary_key.columns]
                        stmt = table.update().where(and_(*(table.c[k] == bindparam(f"key_{k}") for k in keys)))
                        conn.execute(stmt, [{**{c: v for c, v in r.items() if c not in keys},
                                             **{f"key_{k}": r[k] for k in keys}} for r in kept["changed"][table.name]])
                if db.engine.dialect.name == "postgresql":
                    for sequence, _, value in kept["sequences"]:
                        conn.execute(text("SELECT setval(:name, :value)"), {"name": sequence, "value": value})
            if kept["redis"]:
                from portal.extensions import get_redis

                with get_redis().pipeline(transaction=True) as pipe:
                    for key, (dump, ttl) in kept["redis"].items():
                        pipe.restore(key, ttl, dump, replace=True)
                    pipe.execute()


SNAPSHOTS = Snapshots()


@pytest.fixture
def world(app, make):
    """Two accounts with every role, plus staff; returns a namespace of ids and emails (Snapshots: built once)."""
    return SNAPSHOTS.get("world", app, make.world)


CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')


def session_client(app, user_id):
    """A test client signed in as the user directly through the session, as the sign-in form leaves it (the
    session id with its status key, a staff session's clock), and the session's CSRF token, made by Flask-WTF as a
    form's is (no page rendered for it: the route walk and the fuzz make thousands). user_id None: a client signed
    in as nobody."""
    from flask import session
    from flask_wtf.csrf import generate_csrf

    from portal.extensions import db
    from portal.models import User
    from portal.web import staff_sessions

    client = app.test_client()
    with app.test_request_context():  # the token as a page would put it in its form (without rendering one)
        token = generate_csrf()
        secret = session[app.config["WTF_CSRF_FIELD_NAME"]]
    session_id = is_staff = None
    if user_id is not None:
        with app.app_context():
            user = db.session.get(User, user_id)
            session_id, is_staff = user.get_id(), user.is_staff
            db.session.remove()
    with client.session_transaction() as sess:
        sess[app.config["WTF_CSRF_FIELD_NAME"]] = secret
        if session_id is not None:
            sess["_user_id"] = session_id
            sess["_fresh"] = True
            if is_staff:
                staff_sessions.start(sess)
    return client, token


class RowsWatch:
    """Every row of every table of an app's database, read again only after a statement that could change rows.

    A walk that checks "this request changed nothing" after each of thousands of requests would otherwise read
    every table each time. Any change reaches the database as a statement through the app's engine (the web
    side has no other way in), so while no INSERT, UPDATE, DELETE or the like has run since the last read, the
    rows are the same and are not read again. Statements that begin with WITH count as writes (PostgreSQL's
    data-modifying CTEs), so do DDL and anything unexpected; only SELECT, EXPLAIN, PRAGMA, SET, SHOW and
    transaction control count as reads.
    """

    READS = re.compile(r"\s*(SELECT|EXPLAIN|PRAGMA|SET|SHOW|BEGIN|COMMIT|ROLLBACK|SAVEPOINT|RELEASE)\b", re.I)

    def __init__(self, app):
        from portal.extensions import db

        self.app = app
        with app.app_context():
            self.engine = db.engine
        self.written = True
        self.reads = 0  # how many times every table was read (the test of this watch counts them)
        self._rows = None
        from sqlalchemy import event

        event.listen(self.engine, "before_cursor_execute", self._seen)

    def _seen(self, conn, cursor, statement, parameters, context, executemany):  # noqa: ARG002
        if not self.READS.match(statement):
            self.written = True

    def rows(self):
        """Every row of every table, as {table name: rows in primary-key order} (every_row)."""
        if self.written or self._rows is None:
            self.written = False  # before reading: a write during the read is seen next time
            self.reads += 1
            self._rows = every_row(self.app)
        return self._rows

    def close(self):
        from sqlalchemy import event

        event.remove(self.engine, "before_cursor_execute", self._seen)


@pytest.fixture
def rows_watch(app):
    watch = RowsWatch(app)
    yield watch
    watch.close()


def without_csrf(html):
    """A page without its CSRF tokens (the hidden fields and htmx's header), which are signed with the second
    they were made in: two answers a second apart differ only there."""
    html = CSRF_RE.sub('name="csrf_token" value=""', html)
    return re.sub(r'"X-CSRFToken": "[^"]*"', '"X-CSRFToken": ""', html)


class AuthActions:
    """Sign in and out, and send CSRF-protected posts, through the test client."""

    def __init__(self, client):
        self.client = client

    def csrf_token(self, path="/login"):
        response = self.client.get(path, follow_redirects=True)  # "/" redirects to the role's home page
        match = CSRF_RE.search(response.get_data(as_text=True))
        assert match, f"no CSRF token on {path}"
        return match.group(1)

    def login(self, email, password=PASSWORD, remember=False):
        token = self.csrf_token("/login")
        data = {"email": email, "password": password, "csrf_token": token}
        if remember:
            data["remember"] = "1"
        return self.client.post("/login", data=data)

    def logout(self):
        return self.post("/logout")

    def post(self, path, data=None, htmx=False, headers=None, page="/"):
        token = self.csrf_token(page)
        headers = dict(headers or {})
        payload = dict(data or {})
        if htmx:
            headers.update({"HX-Request": "true", "X-CSRFToken": token})
        else:
            payload.setdefault("csrf_token", token)
        return self.client.post(path, data=payload, headers=headers)


@pytest.fixture
def auth(client):
    return AuthActions(client)


# ---------------------------------------------------------------- worker processes

@pytest.fixture
def run_worker(app, database_url, redis_server):
    """Run a real RQ worker process in burst mode on the given queues; returns its exit code."""

    def run(*queues, timeout=120, extra_env=None):
        env = dict(os.environ, PORTAL_ENV="testing", SECRET_KEY=SECRET, DATABASE_URL=database_url,
                   REDIS_URL=redis_server.url, PORTAL_BILLING_CONTACT="billing@portal.test")
        env.update({k: str(v) for k, v in (extra_env or {}).items()})
        cmd = [sys.executable, os.path.join(ROOT, "worker.py"), "--burst", *queues]
        return subprocess.run(cmd, env=env, cwd=ROOT, timeout=timeout, capture_output=True, text=True)

    return run


def wait_for_queued(redis_url, queue, timeout=60):
    """Wait until queue holds a job (e.g. a command has queued its run); return whether it did in time.

    Start a burst worker after this, not after a fixed pause: a burst worker that finds the queue empty exits.
    """
    from redis import Redis
    from rq import Queue

    deadline = time.monotonic() + timeout
    with Redis.from_url(redis_url) as connection:
        while Queue(queue, connection=connection).count == 0:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
    return True


# ---------------------------------------------------------------- browser

class CspWatch:
    """Content-Security-Policy violations reported in any page of any browser context a test opens."""

    REPORT = ("document.addEventListener('securitypolicyviolation', function (e) {"
              " console.error('CSP violation: ' + e.violatedDirective + ' blocked ' + (e.blockedURI || 'inline')"
              " + ' at ' + e.sourceFile + ':' + e.lineNumber); });")

    def __init__(self):
        self.violations = []

    def attach(self, context):
        context.add_init_script(script=self.REPORT)
        context.on("console", self._console)
        return context

    def _console(self, message):
        if "Content Security Policy" in message.text or message.text.startswith("CSP violation"):
            self.violations.append(f"{message.page.url if message.page else '?'}: {message.text}")


CSP_WATCH = CspWatch()


@pytest.fixture(scope="session")
def browser():
    if not os.path.exists(CHROMIUM):
        unavailable(f"Chromium not found at {CHROMIUM} (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        new_context = browser.new_context
        browser.new_context = lambda *args, **kwargs: CSP_WATCH.attach(new_context(*args, **kwargs))
        yield browser
        browser.close()


@pytest.fixture(autouse=True)
def no_csp_violations(request):
    """Fail a browser test on any Content-Security-Policy violation its pages report."""
    if "browser" not in request.fixturenames:
        yield
        return
    CSP_WATCH.violations.clear()
    yield
    if CSP_WATCH.violations:
        pytest.fail("Content-Security-Policy violations:\n" + "\n".join(CSP_WATCH.violations), pytrace=False)


@pytest.fixture
def live_server(app):
    """Serve the app on a free loopback port from a background thread."""
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    server.url = f"http://127.0.0.1:{server.server_port}"
    yield server
    server.shutdown()
    thread.join(5)


@pytest.fixture
def page(browser, live_server):
    context = browser.new_context(base_url=live_server.url)
    context.set_default_timeout(10_000)
    page = context.new_page()
    yield page
    context.close()


def browser_login(page, email, password=PASSWORD):
    """Sign in through the real form; return once the browser is on the page sign-in led to."""
    from urllib.parse import urlsplit

    page.goto("/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    with page.expect_response(lambda r: r.request.method == "POST" and urlsplit(r.url).path == "/login") as sent:
        page.get_by_role("button", name="Sign in").click()
    target = sent.value.headers.get("hx-redirect") or sent.value.headers.get("location")
    if target:  # htmx follows HX-Redirect after the response arrives: wait for that page, not just idleness
        wait_for_path(page, urlsplit(target).path)
    page.wait_for_load_state("networkidle")


def wait_for_path(page, path):
    """Wait until the browser is on `path` (any query) and the page has loaded.

    The address is polled (the driver's own view of the frame), not waited for as a navigation event: CI saw
    page.wait_for_url miss the navigation that htmx's HX-Redirect made while the page was already on its target.
    """
    from playwright.sync_api import expect

    expect(page).to_have_url(re.compile(r"^[a-z]+://[^/]+" + re.escape(path) + r"(?:[?#].*)?$"))
    page.wait_for_load_state("load")
