"""Benchmark the daily dunning run end to end through RQ against raw SQL making the same changes, on copies of a seed.

    # SQLite: a seeded portal.sqlite3 (flask demo seed --accounts 1000000 --as-of 2026-12-01), copied per measurement
    .venv/bin/python bench/bench_dunning.py --sqlite /path/to/seeded.sqlite3 --workers 1 --repeat 3
    # PostgreSQL: a seeded database used as a template (CREATE DATABASE ... TEMPLATE) for every measurement
    .venv/bin/python bench/bench_dunning.py --postgres postgresql+psycopg://postgres@127.0.0.1:5432/bench \
        --workers 1 2 --repeat 3

Each round measures, on fresh copies of the seeded database (each measurement after the same warm-up read, a
CHECKPOINT on PostgreSQL and an os.sync()):
  raw        the fastest statements we found that make the same changes over the whole table: one pass
             noting each candidate's state, target, next look and overdue invoices, the audit rows, one
             UPDATE of the accounts' states and next looks, the managers' emails, the members' mail held.
             SQLite: five statements in one transaction over a temporary table; PostgreSQL: one statement
             of data-modifying CTEs with JIT off, on one connection, and split by id halves over two
             connections at once (each in its own transaction). Then the next day, the same way.
             --raw-scopes: whether each day's pass aggregates every open invoice or only the candidates'.
  ours       start_daily_run (what `flask dunning run` and the scheduler call) until the run reads done,
             processed by N forking `worker.py sweeps` processes already waiting on a private Redis: the
             seed day, then the next day, then a day on which nothing is due (the day after, if nothing is
             planned for it, else the day before the seed day: every look is planned later); then
             --payments calls of billing.ledger.record_payment, each paying all overdue invoices of an
             account the run suspended, timed in process (p50, p95, max).
After the seed day, raw and ours must leave the database alike: the same accounts in each state, the same
next looks, audit rows and emails (a fingerprint of each is compared and printed). On PostgreSQL the seed
day is followed (untimed) by VACUUM ANALYZE of what it wrote, as autovacuum would before the next day.
On SQLite every measurement ends once the write-ahead log is checkpointed into the database file.
Every round is printed; with --repeat N the medians and their ratios close (each of ours against the
fastest raw line of its round). The seeded database is not changed.
"""
import argparse
import os
import random
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import date, datetime, timedelta

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
os.environ.setdefault("PORTAL_ENV", "development")

sys.path.insert(0, os.path.join(ROOT, "bench"))
from bench_sweep import Copies, _checkpoint, _median, _start_redis  # noqa: E402

RAW_RUN_ID = 999_999  # the run id the raw statements write (a label of the same length as ours)
RAW_LABEL = "Daily dunning run #1"
NOTE = "Daily dunning evaluation"


def _app(url, redis_url="redis://127.0.0.1:1/0"):
    from portal import create_app

    return create_app({"SQLALCHEMY_DATABASE_URI": url, "REDIS_URL": redis_url, "ENV_NAME": "development"})


def _warm(app):
    """Read accounts and open invoices once (after a checkpoint on PostgreSQL), so each measurement starts alike."""
    from sqlalchemy import text

    from portal.extensions import db

    with app.app_context():
        if db.engine.dialect.name == "postgresql":
            db.session.execute(text("CHECKPOINT"))
        db.session.execute(text("SELECT count(*), sum(balance_cents), count(dunning_next_on) FROM accounts")).one()
        db.session.execute(text("SELECT count(*), sum(amount_cents) FROM invoices "
                                "WHERE paid_at IS NULL AND written_off_at IS NULL")).one()
        db.session.remove()
    # and with no dirty file pages left to the kernel from the copy or the measurement before (on this shared
    # disk a run that followed 2-3 GB of fresh copies and checkpoints took twice as long while they were written)
    os.sync()


# ---------------------------------------------------------------- raw statements

RANK_SQL = "CASE {0} WHEN 'suspended' THEN 2 WHEN 'limited' THEN 1 ELSE 0 END"


def _sql_text(rendered, fields):
    """A rendered email with placeholders as SQL text: 'literal' || column || 'literal' ..."""
    parts = []
    for piece in (p for p in re.split(r"(\x01[A-Z]+\x01)", rendered) if p):
        parts.append(fields.get(piece) or "'" + piece.replace("'", "''") + "'")
    return " || ".join(parts) or "''"


def _email_sql():
    """(subject, body) SQL expressions over u (users), a (accounts) and r (the noted rows), as ours renders them."""
    from portal.domain.dunning.emails import KINDS, PLACEHOLDERS, _render

    fields = {PLACEHOLDERS["user"]: "u.name", PLACEHOLDERS["number"]: "r.number", PLACEHOLDERS["name"]: "r.name",
              PLACEHOLDERS["invoices"]: "coalesce(r.seqs, '')", PLACEHOLDERS["next_step"]: "coalesce(r.suspend_on, '')",
              PLACEHOLDERS["step_date"]: "''"}
    (_k1, lim_subject, lim_t), (_k2, sus_subject, sus_t) = KINDS["limited"], KINDS["suspended"]
    number = PLACEHOLDERS["number"]
    subject = (f"CASE r.target WHEN 'limited' THEN {_sql_text(lim_subject.replace('{number}', number), fields)}"
               f" ELSE {_sql_text(sus_subject.replace('{number}', number), fields)} END")
    body = (f"CASE WHEN r.target = 'suspended' THEN {_sql_text(_render(sus_t, None, False), fields)}"
            f" WHEN r.suspend_on IS NOT NULL THEN {_sql_text(_render(lim_t, None, True), fields)}"
            f" ELSE {_sql_text(_render(lim_t, None, False), fields)} END")
    return subject, body


OPEN = "paid_at IS NULL AND written_off_at IS NULL"
AUDIT_COLUMNS = ("created_at, account_id, actor_user_id, actor_run_id, actor_label, action, reason_category, "
                 "reason_note, state_before, state_after")
OUTBOX_COLUMNS = "created_at, account_id, user_id, kind, to_addr, subject, body, status, attempts"
STATE_SET = ("status = CASE WHEN r.change = 1 THEN r.target ELSE accounts.status END, "
             "status_reason = CASE WHEN r.change = 1 THEN 'non_payment' ELSE accounts.status_reason END, "
             "status_source = CASE WHEN r.change = 1 THEN 'dunning' ELSE accounts.status_source END, "
             f"status_note = CASE WHEN r.change = 1 THEN '{NOTE}' ELSE accounts.status_note END, "
             "status_changed_at = CASE WHEN r.change = 1 THEN :now ELSE accounts.status_changed_at END, "
             "suspended_by_run_id = CASE WHEN r.change = 1 THEN :run ELSE accounts.suspended_by_run_id END, "
             "dunning_warned = CASE WHEN r.change = 1 THEN NULL ELSE accounts.dunning_warned END, "
             "dunning_next_on = r.next_on, version = accounts.version + 1")


DUE = "account_id IN (SELECT id FROM accounts WHERE dunning_next_on <= :day)"  # the candidates' invoices only


def _sqlite_statements(scope):
    """SQLite: note the candidates once in a temporary table, then write audit rows, accounts and emails from it.

    scope "all": the overdue and coming invoices are aggregated over the whole table; "due": only the
    candidates' (found through the partial index on dunning_next_on, their invoices through the open-invoice index).
    """
    subject, body = _email_sql()
    only = f" AND {DUE}" if scope == "due" else ""
    far = "'9999-12-31'"
    note = f"""
    INSERT INTO raw_rows
    WITH od AS (SELECT account_id AS aid, min(due_date) AS start, sum(amount_cents - paid_cents) AS owed,
                       group_concat('#' || seq, ', ') AS seqs
                FROM (SELECT account_id, due_date, amount_cents, paid_cents, seq FROM invoices
                      WHERE {OPEN} AND due_date < :day{only} ORDER BY account_id, seq)
                GROUP BY account_id),
         up AS (SELECT account_id AS aid, min(due_date) AS next_due FROM invoices
                WHERE {OPEN} AND due_date >= :day{only} GROUP BY account_id),
         s AS (SELECT a.id, a.status, od.seqs, up.next_due,
                      date(od.start, '+' || c.limit_after_days || ' days') AS limit_on,
                      date(od.start, '+' || c.suspend_after_days || ' days') AS suspend_on,
                      od.owed >= coalesce(c.least_amount_cents, 1) AS counts
               FROM accounts a LEFT JOIN customer_classes c ON c.id = a.customer_class_id
               LEFT JOIN od ON od.aid = a.id LEFT JOIN up ON up.aid = a.id
               WHERE a.dunning_next_on <= :day AND a.status != 'cancelled' AND a.exempt = 0),
         t AS (SELECT *, CASE WHEN counts AND suspend_on <= :day THEN 'suspended'
                              WHEN counts AND limit_on <= :day THEN 'limited' ELSE 'active' END AS target FROM s)
    SELECT id, status, target, {RANK_SQL.format('target')} > {RANK_SQL.format('status')},
           nullif(min(coalesce(date(next_due, '+1 days'), {far}),
                      coalesce(CASE WHEN counts AND limit_on > :day THEN limit_on END, {far}),
                      coalesce(CASE WHEN counts AND suspend_on > :day THEN suspend_on END, {far})), {far}),
           seqs, suspend_on FROM t"""
    audit = f"""INSERT INTO audit_events ({AUDIT_COLUMNS})
        SELECT :now, id, NULL, :run, :label, target, 'non_payment', 'Overdue invoices: ' || seqs, state_before, target
        FROM raw_rows WHERE change = 1"""
    # "accounts.id IN (...)" lets SQLite walk the small temporary table and find each account by its key; with
    # only the join it scans every account and probes the temporary table (its size is unknown to the planner)
    accounts = (f"UPDATE accounts SET {STATE_SET} FROM raw_rows r WHERE accounts.id = r.id "
                "AND accounts.id IN (SELECT id FROM raw_rows) AND accounts.status = r.state_before")
    emails = f"""INSERT INTO outbox_emails ({OUTBOX_COLUMNS})
        SELECT :now, r.id, u.id, CASE r.target WHEN 'limited' THEN 'dunning_limited' ELSE 'dunning_suspended' END,
               u.email, {subject}, {body}, 'pending', 0
        FROM (SELECT raw_rows.*, a.number, a.name FROM raw_rows JOIN accounts a ON a.id = raw_rows.id
              WHERE raw_rows.change = 1) r
        JOIN users u ON u.account_id = r.id
        WHERE u.role = 'account_manager' AND u.disabled = 0 AND u.email_notifications = 1"""
    hold = """UPDATE outbox_emails SET status = 'held' WHERE status = 'pending'
        AND account_id IN (SELECT id FROM raw_rows WHERE change = 1 AND target = 'suspended')
        AND user_id IN (SELECT id FROM users WHERE role IN ('tier_manager', 'user')
                        AND account_id IN (SELECT id FROM raw_rows WHERE change = 1 AND target = 'suspended'))"""
    create = ("CREATE TEMPORARY TABLE IF NOT EXISTS raw_rows (id INTEGER PRIMARY KEY, state_before VARCHAR, "
              "target VARCHAR, change INTEGER, next_on DATE, seqs VARCHAR, suspend_on VARCHAR)")
    return [create, "DELETE FROM raw_rows", note, audit, accounts, emails, hold]


def _postgres_statement(scope):
    """PostgreSQL: one statement: note the candidates, update them, and from the RETURNING write audit rows and emails.

    scope: as for _sqlite_statements.
    """
    subject, body = _email_sql()
    only = f" AND {DUE}" if scope == "due" else ""
    return f"""
    WITH od AS (SELECT account_id AS aid, min(due_date) AS start, sum(amount_cents - paid_cents) AS owed,
                       string_agg('#' || seq, ', ' ORDER BY seq) AS seqs
                FROM invoices WHERE {OPEN} AND due_date < :day AND account_id >= :lo AND account_id < :hi{only}
                GROUP BY account_id),
         up AS (SELECT account_id AS aid, min(due_date) AS next_due FROM invoices
                WHERE {OPEN} AND due_date >= :day AND account_id >= :lo AND account_id < :hi{only} GROUP BY account_id),
         s AS (SELECT a.id, a.status, od.seqs, up.next_due, od.start + c.limit_after_days AS limit_on,
                      od.start + c.suspend_after_days AS suspend_on,
                      coalesce(od.owed >= coalesce(c.least_amount_cents, 1), false) AS counts
               FROM accounts a LEFT JOIN customer_classes c ON c.id = a.customer_class_id
               LEFT JOIN od ON od.aid = a.id LEFT JOIN up ON up.aid = a.id
               WHERE a.dunning_next_on <= :day AND a.id >= :lo AND a.id < :hi
                 AND a.status <> 'cancelled' AND NOT a.exempt),
         t AS (SELECT *, CASE WHEN counts AND suspend_on <= :day THEN 'suspended'
                              WHEN counts AND limit_on <= :day THEN 'limited' ELSE 'active' END AS target FROM s),
         r AS (SELECT id, status AS state_before, target,
                      CASE WHEN {RANK_SQL.format('target')} > {RANK_SQL.format('status')} THEN 1 ELSE 0 END AS change,
                      least(next_due + 1, CASE WHEN counts AND limit_on > :day THEN limit_on END,
                            CASE WHEN counts AND suspend_on > :day THEN suspend_on END) AS next_on,
                      seqs, suspend_on::text AS suspend_on FROM t),
         upd AS (UPDATE accounts SET {STATE_SET} FROM r WHERE accounts.id = r.id AND accounts.status = r.state_before
                 RETURNING r.*, accounts.number, accounts.name),
         aud AS (INSERT INTO audit_events ({AUDIT_COLUMNS})
                 SELECT :now, id, NULL, :run, :label, target, 'non_payment', 'Overdue invoices: ' || seqs,
                        state_before, target FROM upd WHERE change = 1 RETURNING 1),
         em AS (INSERT INTO outbox_emails ({OUTBOX_COLUMNS})
                SELECT :now, r.id, u.id,
                       CASE r.target WHEN 'limited' THEN 'dunning_limited' ELSE 'dunning_suspended' END,
                       u.email, {subject}, {body}, 'pending', 0
                FROM upd r JOIN users u ON u.account_id = r.id
                WHERE r.change = 1 AND u.role = 'account_manager' AND NOT u.disabled AND u.email_notifications
                RETURNING 1),
         hold AS (UPDATE outbox_emails o SET status = 'held' FROM users u
                  WHERE o.status = 'pending' AND u.id = o.user_id AND u.account_id = o.account_id
                    AND u.role IN ('tier_manager', 'user')
                    AND o.account_id IN (SELECT id FROM upd WHERE change = 1 AND target = 'suspended')
                  RETURNING 1)
    SELECT (SELECT count(*) FROM upd WHERE change = 1), (SELECT count(*) FROM em), (SELECT count(*) FROM hold)"""


def _params(day):
    from datetime import datetime as dt

    return {"day": day, "now": dt.combine(day, dt.min.time()), "run": RAW_RUN_ID, "label": RAW_LABEL}


def _bound(sql, day):
    """A text statement with the parameters it names, dates typed as the portal stores them."""
    from sqlalchemy import Date, DateTime, bindparam, text

    names = set(re.findall(r"(?<![:\w]):(\w+)", sql))
    types = {"day": Date(), "now": DateTime()}
    stmt = text(sql).bindparams(*(bindparam(name, type_=types[name]) for name in names & set(types)))
    return stmt, {k: v for k, v in _params(day).items() if k in names}


def _raw_sqlite(app, day, scope):
    """The statements in one transaction, ended by a checkpoint; return (seconds, accounts changed)."""
    from portal.extensions import db

    with app.app_context():
        started = time.perf_counter()
        connection = db.session.connection()
        changed = 0
        for sql in _sqlite_statements(scope):
            result = connection.execute(*_bound(sql, day))
            if "INSERT INTO audit_events" in sql:
                changed = result.rowcount
        db.session.commit()
        _checkpoint()
        elapsed = time.perf_counter() - started
        db.session.remove()
        db.engine.dispose()
    return elapsed, changed


def _raw_postgres_part(app, day, scope, lo, hi, out, index):
    """The statement over lo <= id < hi in its own transaction, JIT off; out[index] = accounts changed."""
    from portal.extensions import db

    with app.app_context():
        try:
            connection = db.session.connection()
            connection.exec_driver_sql("SET LOCAL jit = off")
            stmt, params = _bound(_postgres_statement(scope), day)
            out[index] = connection.execute(stmt, dict(params, lo=lo, hi=hi)).one()[0]
            db.session.commit()
        finally:
            db.session.remove()


def _raw_postgres(app, day, scope, connections):
    """The one statement over the whole table, or over id halves on two connections at once."""
    from sqlalchemy import func, select

    from portal.extensions import db
    from portal.models import Account

    with app.app_context():
        top = db.session.scalar(select(func.max(Account.id))) + 1
        db.session.remove()
    out = [0] * connections
    bounds = [top * i // connections for i in range(connections + 1)]
    started = time.perf_counter()
    if connections == 1:
        _raw_postgres_part(app, day, scope, 0, top, out, 0)
    else:
        threads = [threading.Thread(target=_raw_postgres_part, args=(app, day, scope, bounds[i], bounds[i + 1], out, i))
                   for i in range(connections)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    elapsed = time.perf_counter() - started
    with app.app_context():
        db.engine.dispose()
    return elapsed, sum(out)


def raw(url, days, scopes, connections=1):
    """The raw statements for each day in turn (day i with scopes[i]) on one copy.

    Returns ([(seconds, accounts changed)], fingerprint after the first day).
    """
    app = _app(url)
    _warm(app)
    results, print_after = [], None
    for i, day in enumerate(days):
        if url.startswith("sqlite"):
            results.append(_raw_sqlite(app, day, scopes[i]))
        else:
            results.append(_raw_postgres(app, day, scopes[i], connections))
        if i == 0:
            print_after = fingerprint(app, RAW_RUN_ID)
            _as_autovacuum_would(app)
    return results, print_after


def _as_autovacuum_would(app):
    """PostgreSQL, between the seed day and the next (untimed): VACUUM ANALYZE what the run wrote, as autovacuum
    would within a day after a run rewrote a sixth of the accounts; with the seed's statistics the planner
    expects every account planned for the seed day to be due the next day too, and an empty outbox."""
    from portal.extensions import db

    with app.app_context():
        if db.engine.dialect.name == "postgresql":
            with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.exec_driver_sql("VACUUM ANALYZE accounts, audit_events, outbox_emails")
        db.session.remove()


# ---------------------------------------------------------------- what the database holds afterwards

def fingerprint(app, run_id):
    """Accounts per state (count and id sum), next looks (count, checksum), the run's audit rows and emails."""
    from sqlalchemy import text

    from portal.extensions import db

    with app.app_context():
        pg = db.engine.dialect.name == "postgresql"
        days = ("(dunning_next_on - DATE '2000-01-01')::bigint" if pg
                else "(julianday(dunning_next_on) - julianday('2000-01-01'))")
        states = db.session.execute(text("SELECT status, count(*), sum(id) FROM accounts GROUP BY status "
                                         "ORDER BY status")).all()
        looks = db.session.execute(text(f"SELECT count(dunning_next_on), sum(id * {days}) FROM accounts")).one()
        audit = db.session.execute(text(
            "SELECT action, count(*), sum(account_id), sum(length(reason_note)) FROM audit_events "
            "WHERE actor_run_id = :run AND action IN ('limited', 'suspended') GROUP BY action ORDER BY action"),
            {"run": run_id}).all()
        emails = db.session.execute(text(
            "SELECT kind, count(*), sum(account_id), sum(length(body)) FROM outbox_emails "
            "WHERE kind IN ('dunning_limited', 'dunning_suspended') GROUP BY kind ORDER BY kind")).all()
        db.session.remove()
    return {"states": [tuple(int(v) if not isinstance(v, str) else v for v in r) for r in states],
            "next looks": (int(looks[0]), int(looks[1] or 0)),
            "audit": [(r[0], int(r[1]), int(r[2]), int(r[3])) for r in audit],
            "emails": [(r[0], int(r[1]), int(r[2]), int(r[3])) for r in emails]}


def _states_text(print_):
    return ", ".join(f"{state} {count:,}" for state, count, _ids in print_["states"])


# ---------------------------------------------------------------- ours, through RQ

def _start_workers(url, redis, workers):
    env = dict(os.environ, DATABASE_URL=url, REDIS_URL=redis.url, PORTAL_ENV="development",
               PORTAL_SECRET_KEY="bench", PYTHONUNBUFFERED="1")
    env.pop("PORTAL_INSTANCE_PATH", None)
    logs = [open(os.path.join(tempfile.gettempdir(), f"bench-dunning-worker-{i}.log"), "w") for i in range(workers)]
    return [subprocess.Popen([sys.executable, os.path.join(ROOT, "worker.py"), "sweeps"], env=env, cwd=ROOT,
                             stdout=logs[i], stderr=subprocess.STDOUT) for i in range(workers)]


def _stop_workers(procs):
    for proc in procs:
        proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _one_run(app, day):
    """start_daily_run until the run reads done; return (seconds, progress)."""
    from portal.domain import runs
    from portal.domain.dunning import daily
    from portal.extensions import db

    with app.app_context():
        started = time.perf_counter()
        run_id = daily.start_daily_run(None, day).id
        while True:
            state = runs.progress(run_id)
            db.session.rollback()  # hold no read snapshot while waiting (SQLite: it would keep the log from resetting)
            if state["finished"]:
                break
            # 10 ms at first (a day with nothing due takes a fraction of a second), at most 100 ms later on
            time.sleep(min(0.1, 0.01 + (time.perf_counter() - started) / 20))
        _checkpoint()
        elapsed = time.perf_counter() - started
        db.session.remove()
    return elapsed, state


def _nothing_due_day(app, seed_day, last_day):
    """The day after last_day if nothing is due on it, else the day before the seed day (every look is later)."""
    from sqlalchemy import func, select

    from portal.extensions import db
    from portal.models import Account

    with app.app_context():
        first = db.session.scalar(select(func.min(Account.dunning_next_on)))
        db.session.remove()
    after = last_day + timedelta(days=1)
    return after if first is None or first > after else seed_day - timedelta(days=1)


def ours(url, workers, days, payments):
    """The seed day, the next day and a day with nothing due through RQ, then the payments; return figures."""
    from rq import Worker

    from portal.extensions import get_redis

    redis = _start_redis()
    procs = []
    app = _app(url, redis.url)
    app.config["SWEEP_PARALLEL_JOBS"] = workers
    figures = {}
    try:
        procs = _start_workers(url, redis, workers)
        with app.app_context():
            deadline = time.monotonic() + 60
            while len(Worker.all(connection=get_redis())) < workers and time.monotonic() < deadline:
                time.sleep(0.2)
        _warm(app)
        figures["first"] = _one_run(app, days[0])
        figures["print"] = fingerprint(app, figures["first"][1]["id"])
        _as_autovacuum_would(app)
        figures["next"] = _one_run(app, days[1])
        idle = _nothing_due_day(app, days[0], days[1])
        figures["idle"] = _one_run(app, idle) + (idle,)
        if payments:
            figures["payments"] = pay(app, days[1], payments)
        with app.app_context():
            from portal.extensions import db

            db.engine.dispose()
    finally:
        _stop_workers(procs)
        redis.stop()
    return figures


# ---------------------------------------------------------------- payments that clear a restriction

def pay(app, day, count, seed=7):
    """record_payment of everything overdue on `count` accounts the daily run suspended; return timings (s)."""
    from sqlalchemy import func, select

    from portal.domain.billing.ledger import record_payment
    from portal.extensions import db
    from portal.models import Account, Invoice, User

    with app.test_request_context():
        admin = db.session.scalar(select(User).where(User.role == "super_admin").order_by(User.id).limit(1))
        suspended = list(db.session.scalars(select(Account.id).where(Account.status == "suspended",
                                                                     Account.status_source == "dunning")))
        chosen = random.Random(seed).sample(suspended, min(count, len(suspended)))
        owed = dict(db.session.execute(
            select(Invoice.account_id, func.sum(Invoice.amount_cents - Invoice.paid_cents))
            .where(Invoice.account_id.in_(chosen), Invoice.paid_at.is_(None), Invoice.written_off_at.is_(None),
                   Invoice.due_date < day).group_by(Invoice.account_id)).all())
        db.session.commit()
        timings, restored = [], 0
        for account_id in chosen:
            started = time.perf_counter()
            outcome = record_payment(admin, account_id, int(owed[account_id]), as_of=day, reference="bench")
            timings.append(time.perf_counter() - started)
            restored += bool(outcome.restored)
        db.session.remove()
    return timings, restored


def _percentile(values, fraction):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(fraction * (len(values) - 1))))]


# ---------------------------------------------------------------- the report

def machine():
    """One line about the machine: CPU, cores, memory, Python, the database's version."""
    import platform

    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem_gb = int(f.readline().split()[1]) / 1024 / 1024
    return f"{os.cpu_count()} x {cpu}, {mem_gb:.0f} GB RAM, Python {platform.python_version()}"


def database_line(url):
    """The database's version and the settings that matter for writing many rows."""
    import sqlite3

    if url.startswith("sqlite"):
        return f"SQLite {sqlite3.sqlite_version} (WAL, synchronous NORMAL, mmap 256 MB: the portal's connection)"
    import psycopg

    dsn = url.replace("postgresql+psycopg://", "postgresql://")
    names = ("server_version", "shared_buffers", "fsync", "full_page_writes", "synchronous_commit", "max_wal_size",
             "work_mem", "jit")
    with psycopg.connect(dsn) as conn:
        values = [conn.execute(f"SHOW {name}").fetchone()[0] for name in names]
    return "PostgreSQL " + ", ".join(f"{n} {v}" for n, v in zip(names, values))


def _load():
    return "load average " + " ".join(f"{v:.2f}" for v in os.getloadavg())


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--sqlite", help="a seeded SQLite file (copied, never changed)")
    source.add_argument("--postgres", help="URL of a seeded PostgreSQL database (used as a template)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1])
    parser.add_argument("--repeat", type=int, default=1, help="rounds; each round measures everything once, in turn")
    parser.add_argument("--day", type=date.fromisoformat, default=date(2026, 12, 1), help="the seed day")
    parser.add_argument("--payments", type=int, default=200)
    parser.add_argument("--raw-scopes", type=lambda v: v.split(","), default=["all", "due"],
                        help="the raw statements' invoice aggregation for the seed day and the next: all (every "
                             "open invoice) or due (the candidates' only); the defaults were the faster on both")
    parser.add_argument("--skip-raw", action="store_true")
    parser.add_argument("--workdir", default=None, help="where SQLite copies go (default: the temp folder)")
    args = parser.parse_args()
    copies = Copies(args)
    days = [args.day, args.day + timedelta(days=1)]
    print(f"database: {'SQLite ' + args.sqlite if args.sqlite else 'PostgreSQL ' + args.postgres}", flush=True)
    print(f"machine: {machine()}; {datetime.utcnow():%Y-%m-%d %H:%M} UTC; {_load()}", flush=True)
    print(f"database: {database_line(args.postgres or 'sqlite')}", flush=True)
    times, ratios = {}, {}
    try:
        for round_no in range(1, args.repeat + 1):
            print(f"round {round_no} ({_load()})", flush=True)
            _round(args, copies, days, times, ratios)
        print(f"medians over {args.repeat} round(s) ({_load()}):", flush=True)
        _summary(times, ratios)
    finally:
        copies.drop()


def _round(args, copies, days, times, ratios):
    """Measure the raw statements and each worker count once; print and collect the times."""
    raw_print, best = None, {}
    if not args.skip_raw:
        for connections in ([1] if args.sqlite else [1, 2]):
            results, print_ = raw(copies.fresh(), days, args.raw_scopes, connections)
            raw_print = raw_print or print_
            suffix = "" if args.sqlite else f", {connections} connection(s)"
            for (seconds, changed), what in zip(results, ("seed day", "next day")):
                label = f"raw {what}{suffix}"
                times.setdefault(label, []).append(seconds)
                best[what] = min(best.get(what, seconds), seconds)
                print(f"  {label + ':':<42}{seconds:7.2f} s  ({changed:,} accounts changed)", flush=True)
            print(f"    after the seed day: {_states_text(print_)}"
                  + ("" if print_ == raw_print else "; DIFFERS from 1 connection's"), flush=True)
        for what, seconds in best.items():
            times.setdefault(f"raw {what}, fastest", []).append(seconds)
    for count in args.workers:
        figures = ours(copies.fresh(), count, days, args.payments)
        for key, what in (("first", "seed day"), ("next", "next day"), ("idle", "nothing due")):
            seconds, state = figures[key][:2]
            label = f"ours {what}, {count} worker(s)"
            times.setdefault(label, []).append(seconds)
            ratio = ""
            if what in best:
                ratios.setdefault(label, []).append(seconds / best[what])
                ratio = f"  = {seconds / best[what]:.2f}x the fastest raw"
            extra = f" (as of {figures[key][2]})" if key == "idle" else ""
            print(f"  {label + extra + ':':<42}{seconds:7.2f} s{ratio}", flush=True)
            print(f"    {state['status']}, looked at {state['matched']:,}, changed {state['changed']:,} "
                  f"{state['skip_reasons']}, {state['chunks']} chunk(s), {state['duration_s'] or 0:.2f} s in the "
                  f"worker" + (f"; error {state['error']}" if state["error"] else ""), flush=True)
        print(f"    after the seed day: {_states_text(figures['print'])}", flush=True)
        if raw_print is not None:
            same = figures["print"] == raw_print
            print(f"    database after the seed day {'the same as' if same else 'DIFFERS from'} raw's "
                  f"(states, next looks, audit rows, emails)" + ("" if same else f": ours {figures['print']} "
                                                                 f"raw {raw_print}"), flush=True)
        if "payments" in figures:
            timings, restored = figures["payments"]
            p95 = _percentile(timings, 0.95)
            times.setdefault(f"payment p95, {count} worker(s)", []).append(p95)
            print(f"  payments clearing a suspension: {len(timings)}, restored {restored}; p50 "
                  f"{statistics.median(timings) * 1000:.1f} ms, p95 {p95 * 1000:.1f} ms, max "
                  f"{max(timings) * 1000:.1f} ms", flush=True)


def _summary(times, ratios):
    """Medians over the rounds; each of ours against the fastest raw line's median, and the ratios per round."""
    for label, values in times.items():
        median = _median(values)
        spread = ", ".join(f"{v:.3f}" if v < 1 else f"{v:.2f}" for v in values)
        line = f"  {label + ':':<42}{median:7.3f} s  ({spread})"
        what = next((w for w in ("seed day", "next day") if f"ours {w}," in label), None)
        if what and f"raw {what}, fastest" in times:
            line += (f"  = {median / _median(times[f'raw {what}, fastest']):.2f}x the fastest raw's median; per round "
                     + ", ".join(f"{r:.2f}x" for r in ratios[label]))
        print(line, flush=True)


if __name__ == "__main__":
    main()
