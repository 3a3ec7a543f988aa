"""Benchmark the clean-up end to end through RQ against the fastest raw SQL making the same change, shape by shape.

    # SQLite: a seeded portal.sqlite3 (flask demo seed --accounts 1000000), copied once into --workdir
    .venv/bin/python bench/bench_sweep.py --sqlite /path/to/seeded.sqlite3 --workers 1 --repeat 5
    # PostgreSQL: a seeded database, copied once (CREATE DATABASE ... TEMPLATE)
    .venv/bin/python bench/bench_sweep.py --postgres postgresql+psycopg://postgres@127.0.0.1:5432/bench \
        --workers 1 2 --repeat 5

Shapes (--shapes): rule sets matching about 1 %, 5 % and 33 % of the accounts (33 % is the default rules), and
"none", rules that match no account. Every line of a shape makes the same change: each selected account (status
active or limited, not exempt, matching a rule) is suspended with the same columns a clean-up writes (status,
status_reason by rule, status_note, status_source, status_changed_at, suspended_by_run_id, version + 1), one
audit row per account (when, the run, suspended, the reason, the note, the state before and after), and one
outbox email per enabled account manager of the account (the clean-up's own text, the reason's wording filled
in by SQL). After every line the rows it wrote are counted; a round whose lines disagree says so. Every line
evaluates the rules as of the same moment (AS_OF, taken once when the benchmark starts: the confirmation's
counts, every raw line, ours and the preview), so no account drifts across a rule's boundary between lines.

  raw     the fastest raw SQL we found for that change, in one transaction per connection, with the portal's
          session settings: on SQLite the same page cache and checkpoint interval as a run's connection, two
          forms (one pass noting the selected accounts in a temporary table then writing the audit rows, the
          accounts and the emails from it, the emails starting from its accounts; or the audit rows first,
          then the accounts and emails found by them), the faster of the round counting; on PostgreSQL one
          statement (the selected accounts and their state noted once in a materialized CTE, the UPDATE by id
          from it, its RETURNING feeding the audit and email INSERTs as data-modifying CTEs, the managers
          looked up per changed account as ours does), JIT off, on one connection and split by id range over
          --raw-connections connections at once (default 1 and 2: a worker works on two chunks at a time, and
          two workers together keep two in hand), the fastest of the round counting;
  ours    runs.start_run (what the clean-up calls once its confirmation is checked, with the total the
          confirmation counted) until the run reads done, processed by N `python worker.py sweeps` processes
          (real RQ workers, forking a work horse per job) already waiting on a private redis-server on a free
          loopback port; it also writes the run, its chunks' progress and skip counts, and its started and
          finished events;
  preview the dry run of the same rules (portal.domain.preview.preview, what sweeps.preview and the clean-up's
          confirmation run): for the "none" shape ours is judged against it. Ours for "none" is started
          without a total, as the scheduled sweep starts (start_run counts the selection itself).

Every round measures each line of each shape once, in an order that alternates from round to round, on the
same working copy brought back to the seeded state before each line: the changed accounts are restored with
one UPDATE from a saved copy of their columns, the rows the line added are deleted, and then (equally for every
line) VACUUM ANALYZE of the touched tables and a CHECKPOINT on PostgreSQL, a truncating WAL checkpoint on
SQLite, an os.sync() and the same warm-up read. On SQLite every line ends once the write-ahead log is
checkpointed into the database file. Each round prints every line, ours / the round's fastest raw line (or
the preview), and the verdict per shape closes: within --limit (1.5x) in at least 4 of 5 rounds and at the
median of the per-round ratios. The seeded database is never changed.
"""
import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTE = "Benchmark clean-up"  # the reason note of every measurement
RAW_RUN_ID = 999_999
RAW_LABEL = "Clean-up run #99"  # the same length as ours' labels ("Clean-up run #NN")
AS_OF = datetime.utcnow().replace(microsecond=0)  # the rules' moment for every line of every round
sys.path.insert(0, ROOT)
os.environ.setdefault("PORTAL_ENV", "development")


def _rules(*specs):
    """Rule snapshots from (name, inactivity_months, min_balance_cents, overdue_days)."""
    return [{"id": i, "name": name, "enabled": True, "inactivity_months": months, "min_balance_cents": cents,
             "overdue_days": days} for i, (name, months, cents, days) in enumerate(specs, start=1)]


SHAPES = {  # calibrated on `flask demo seed --accounts 1000000` (seed 42): the share each matches is printed
    "1%": _rules(("Inactive 38+ months", 38, None, None), ("Balance over $400 unpaid 60+ days", None, 40_000, 60)),
    "5%": _rules(("Inactive 33+ months", 33, None, None), ("Balance over $300 unpaid 45+ days", None, 30_000, 45)),
    "33%": _rules(("Inactive 12+ months", 12, None, None), ("Balance over $5 unpaid 30+ days", None, 500, 30)),
    "none": _rules(("Inactive 50+ years", 600, None, None), ("Balance over $1bn unpaid 10+ years", None, 10**11, 3650)),
}
SAVED_COLUMNS = ("status", "status_reason", "status_note", "status_source", "status_changed_at",
                 "suspended_by_run_id", "version")
TOUCHED = ("accounts", "audit_events", "outbox_emails", "sweep_run_chunks", "sweep_runs")


def _app(url, redis_url="redis://127.0.0.1:1/0"):
    from portal import create_app

    return create_app({"SQLALCHEMY_DATABASE_URI": url, "REDIS_URL": redis_url, "ENV_NAME": "development"})


class Copies:
    """Fresh copies of the seeded database, one per measurement (bench_dunning's way)."""

    def __init__(self, args):
        self.args = args
        self.tmp = tempfile.mkdtemp(prefix="bench-sweep-", dir=args.workdir)
        self.count = 0

    def fresh(self):
        self.count += 1
        if self.args.sqlite:
            target = os.path.join(self.tmp, "copy.sqlite3")
            for suffix in ("", "-wal", "-shm"):
                if os.path.exists(target + suffix):
                    os.remove(target + suffix)
            shutil.copyfile(self.args.sqlite, target)
            return f"sqlite:///{target}"
        import psycopg

        base = self.args.postgres.rsplit("/", 1)
        name = f"bench_copy_{os.getpid()}"
        dsn = base[0].replace("postgresql+psycopg://", "postgresql://") + "/postgres"
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{base[1]}"')
        return f"{base[0]}/{name}"

    def drop(self):
        shutil.rmtree(self.tmp, ignore_errors=True)
        if self.args.postgres:
            import psycopg

            base = self.args.postgres.rsplit("/", 1)
            dsn = base[0].replace("postgresql+psycopg://", "postgresql://") + "/postgres"
            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "bench_copy_{os.getpid()}"')


def _warm(app):
    """Read accounts and open invoices once (after a checkpoint on PostgreSQL), so each measurement starts alike.

    Returns how many accounts are suspended (the working copy's state is checked with it).
    """
    from sqlalchemy import text

    from portal.extensions import db

    with app.app_context():
        if db.engine.dialect.name == "postgresql":
            db.session.execute(text("CHECKPOINT"))  # start each measurement with no dirty pages to flush
        suspended = db.session.execute(text(
            "SELECT sum(CASE WHEN status = 'suspended' THEN 1 ELSE 0 END), sum(balance_cents), "
            "max(coalesce(last_activity_at, created_at)) FROM accounts")).one()[0]
        db.session.execute(text("SELECT count(*) FROM invoices WHERE paid_at IS NULL AND written_off_at IS NULL")).one()
        db.session.remove()
    os.sync()  # no dirty file pages left to the kernel by the reset
    return int(suspended or 0)


def _selection(rules):
    return {"type": "rules", "rules": rules}


def _checkpoint():
    """SQLite: wait until the write-ahead log is copied into the database file (a checkpoint running in
    another connection is waited for), so every measurement ends with its writes in the database itself."""
    from portal.extensions import db

    if db.engine.dialect.name != "sqlite":
        return
    while True:  # (busy, frames in the log, frames checkpointed); busy while another connection checkpoints
        busy, logged, done = db.session.connection().exec_driver_sql("PRAGMA wal_checkpoint(FULL)").one()
        db.session.commit()
        if not busy and logged == done:
            return
        time.sleep(0.01)


def _median(values):
    """The middle value (the mean of the two middle ones for an even count)."""
    values = sorted(values)
    middle = len(values) // 2
    return values[middle] if len(values) % 2 else (values[middle - 1] + values[middle]) / 2


# ---------------------------------------------------------------- the working copy and its reset

class Working:
    """One copy of the seeded database, brought back to the seeded state before every measurement."""

    def __init__(self, args):
        self.args, self.tmp = args, tempfile.mkdtemp(prefix="bench-sweep-", dir=args.workdir)
        if args.sqlite:
            target = os.path.join(self.tmp, "work.sqlite3")
            shutil.copyfile(args.sqlite, target)
            self.url = f"sqlite:///{target}"
        else:
            base, name = args.postgres.rsplit("/", 1)
            self.work_name = f"bench_sweep_work_{os.getpid()}"
            self._admin(f'DROP DATABASE IF EXISTS "{self.work_name}"',
                        f'CREATE DATABASE "{self.work_name}" TEMPLATE "{name}"')
            self.url = f"{base}/{self.work_name}"
        self.app = _app(self.url)
        self._save()
        self.suspended = _warm(self.app)

    def _admin(self, *statements):
        import psycopg

        base = self.args.postgres.rsplit("/", 1)[0].replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(base + "/postgres", autocommit=True) as conn:
            for sql in statements:
                conn.execute(sql)

    def _save(self):
        """Keep the columns a sweep writes of every account any shape may change, and the tables' last ids."""
        from sqlalchemy import and_, column, func, insert, or_, select, table, text

        from portal.domain import rules as rules_domain
        from portal.extensions import db
        from portal.models import Account

        with self.app.app_context():
            any_shape = or_(*(rules_domain.match_clause(rules, AS_OF) for rules in SHAPES.values()))
            query = select(Account.id, *(getattr(Account, c) for c in SAVED_COLUMNS)).where(
                and_(Account.status.in_(("active", "limited")), Account.exempt.is_(False), any_shape))
            db.session.execute(text("DROP TABLE IF EXISTS bench_saved"))
            db.session.execute(text(f"CREATE TABLE bench_saved AS SELECT id, {', '.join(SAVED_COLUMNS)} FROM accounts "
                                    "WHERE 1 = 0"))
            saved = table("bench_saved", *(column(c) for c in ("id",) + SAVED_COLUMNS))
            db.session.execute(insert(saved).from_select(["id", *SAVED_COLUMNS], query))
            db.session.execute(text("CREATE UNIQUE INDEX bench_saved_id ON bench_saved (id)"))
            self.marks = {t: db.session.scalar(text(f"SELECT coalesce(max(id), 0) FROM {t}"))
                          for t in ("audit_events", "outbox_emails", "sweep_runs", "sweep_run_chunks")}
            self.saved = db.session.scalar(select(func.count()).select_from(text("bench_saved")))
            db.session.commit()
            db.session.remove()

    def written(self):
        """What the last measurement wrote: accounts changed, audit rows about an account, outbox emails."""
        from sqlalchemy import text

        from portal.extensions import db

        with self.app.app_context():
            changed = db.session.scalar(text("SELECT count(*) FROM accounts a JOIN bench_saved s ON s.id = a.id "
                                             "WHERE a.version <> s.version"))
            audit = db.session.scalar(text(f"SELECT count(*) FROM audit_events WHERE id > {self.marks['audit_events']}"
                                           " AND account_id IS NOT NULL"))
            emails = db.session.scalar(text(f"SELECT count(*) FROM outbox_emails "
                                            f"WHERE id > {self.marks['outbox_emails']}"))
            db.session.remove()
        return changed, audit, emails

    def reset(self):
        """Back to the seeded state: one UPDATE restores the changed accounts; the added rows go; then the same
        housekeeping before every measurement (VACUUM ANALYZE and CHECKPOINT, or a truncating checkpoint)."""
        from sqlalchemy import text

        from portal.extensions import db

        sets = ", ".join(f"{c} = s.{c}" for c in SAVED_COLUMNS)
        with self.app.app_context():
            db.session.execute(text(f"UPDATE accounts SET {sets} FROM bench_saved s "
                                    "WHERE accounts.id = s.id AND accounts.version <> s.version"))
            for table in ("outbox_emails", "audit_events", "sweep_run_chunks", "sweep_runs"):
                db.session.execute(text(f"DELETE FROM {table} WHERE id > {self.marks[table]}"))
            db.session.commit()
            if db.engine.dialect.name == "postgresql":
                with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                    conn.exec_driver_sql(f"VACUUM (ANALYZE) {', '.join(TOUCHED)}")
            else:
                db.session.connection().exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)").all()
                db.session.commit()
            db.session.remove()
            db.engine.dispose()
        suspended = _warm(self.app)
        if suspended != self.suspended:
            raise RuntimeError(f"the reset left {suspended:,} accounts suspended, not {self.suspended:,}")

    def drop(self):
        with self.app.app_context():
            from portal.extensions import db

            db.engine.dispose()
        shutil.rmtree(self.tmp, ignore_errors=True)
        if self.args.postgres:
            self._admin(f'DROP DATABASE IF EXISTS "{self.work_name}"')


# ---------------------------------------------------------------- raw statements

class _RawRun:
    """What the portal's SQL builders read of a run: the reason by rule, the note, the rules, the as-of time."""

    kind, action, id, triggered_by_id = "cleanup", "suspend", RAW_RUN_ID, None

    def __init__(self, rules):
        from portal.domain.runs.chunk import BY_RULE

        self.reason_category, self.reason_note, self.as_of = BY_RULE, NOTE, AS_OF
        self.params = {"selection": _selection(rules)}


def _target(rules):
    from sqlalchemy import and_

    from portal.domain import rules as rules_domain
    from portal.models import Account

    return and_(Account.status.in_(("active", "limited")), Account.exempt.is_(False),
                rules_domain.match_clause(rules, AS_OF))


def _account_values(reason, now):
    from portal.models import Account

    return dict(status="suspended", status_reason=reason, status_note=NOTE, status_source="sweep",
                status_changed_at=now, suspended_by_run_id=RAW_RUN_ID, version=Account.version + 1)


AUDIT_COLUMNS = ["created_at", "account_id", "actor_user_id", "actor_run_id", "actor_label", "action",
                 "reason_category", "reason_note", "state_before", "state_after"]


def _audit_row(now, account_id, reason, before):
    from sqlalchemy import DateTime, literal, null

    return [literal(now, DateTime()), account_id, null(), literal(RAW_RUN_ID), literal(RAW_LABEL),
            literal("suspended"), reason, literal(NOTE), before, literal("suspended")]


def _raw_sqlite(app, rules, form):
    """SQLite, one transaction: `temp` notes the selected accounts once in a temporary table and writes from it;
    `audit` writes the audit rows first and finds the accounts and emails by them. Returns (seconds, changed)."""
    from sqlalchemy import Column, Integer, MetaData, String, Table, insert, select, update
    from sqlalchemy.schema import CreateTable

    from portal.domain.runs.chunk import _sqlite_bulk_settings, reason_expression
    from portal.domain.runs.emails import OUTBOX_COLUMNS, email_rows
    from portal.extensions import db
    from portal.models import Account, AuditEvent, OutboxEmail

    with app.app_context():
        now = datetime.utcnow()
        run = _RawRun(rules)
        acc = Account.__table__
        started = time.perf_counter()
        connection = db.session.connection()
        _sqlite_bulk_settings(connection)  # the page cache and checkpoint interval of a run's connection
        if form == "temp":
            t = Table("raw_rows", MetaData(), Column("id", Integer, primary_key=True), Column("before", String),
                      Column("reason", String), prefixes=["TEMPORARY"])
            connection.execute(CreateTable(t, if_not_exists=True))
            connection.execute(insert(t).from_select(["id", "before", "reason"], select(
                Account.id, Account.status, reason_expression(run)).where(_target(rules))))
            changed = connection.execute(insert(AuditEvent.__table__).from_select(AUDIT_COLUMNS, select(
                *_audit_row(now, t.c.id, t.c.reason, t.c.before)))).rowcount
            reason = select(t.c.reason).where(t.c.id == Account.id).scalar_subquery()
            connection.execute(update(acc).where(acc.c.id.in_(select(t.c.id))).values(**_account_values(reason, now)))
            # the emails from the changed accounts (their managers by the users' account index), as ours
            changed_rows = (select(t.c.id, acc.c.number, acc.c.name, t.c.reason.label("status_reason"))
                            .select_from(t).join(acc, acc.c.id == t.c.id).subquery("changed"))
            emails = email_rows(run, "account_suspended", now, changed_rows)
        else:
            changed = connection.execute(insert(AuditEvent.__table__).from_select(AUDIT_COLUMNS, select(
                *_audit_row(now, Account.id, reason_expression(run), Account.status)).where(
                _target(rules)))).rowcount
            mine = select(AuditEvent.account_id).where(AuditEvent.actor_run_id == RAW_RUN_ID)
            reason = (select(AuditEvent.reason_category).where(AuditEvent.actor_run_id == RAW_RUN_ID,
                                                               AuditEvent.account_id == Account.id)
                      .scalar_subquery())
            connection.execute(update(acc).where(acc.c.id.in_(mine)).values(**_account_values(reason, now)))
            top = db.session.scalar(select(Account.id).order_by(Account.id.desc()).limit(1)) + 1
            emails = email_rows(run, "account_suspended", now, acc, 0, top).where(
                acc.c.suspended_by_run_id == RAW_RUN_ID)
        connection.execute(insert(OutboxEmail.__table__).from_select(OUTBOX_COLUMNS, emails))
        db.session.commit()
        _checkpoint()
        elapsed = time.perf_counter() - started
        db.session.remove()
        db.engine.dispose()
    return elapsed, changed


def _raw_postgres_part(app, rules, now, lo, hi, out, index):
    """PostgreSQL: one statement over lo <= id < hi in its own transaction, JIT off; out[index] = changed."""
    from sqlalchemy import and_, func, insert, literal, select, text, update

    from portal.domain.runs.chunk import reason_expression
    from portal.domain.runs.emails import OUTBOX_COLUMNS, email_rows
    from portal.extensions import db
    from portal.models import Account, AuditEvent, OutboxEmail

    with app.app_context():
        try:
            run = _RawRun(rules)
            db.session.execute(text("SET LOCAL jit = off"))
            acc = Account.__table__
            # the range read once: the selected accounts and their state before, then the update by id (as ours)
            in_range = and_(acc.c.id >= lo, acc.c.id < hi, _target(rules))
            sel = select(acc.c.id, acc.c.status).where(in_range).cte("sel").prefix_with("MATERIALIZED")
            upd = (update(acc).where(acc.c.id == sel.c.id, acc.c.status == sel.c.status, in_range)
                   .values(**_account_values(reason_expression(run), now))
                   .returning(acc.c.id, sel.c.status.label("before"), acc.c.status_reason, acc.c.number, acc.c.name)
                   .cte("upd"))
            audit = insert(AuditEvent.__table__).from_select(AUDIT_COLUMNS, select(
                *_audit_row(now, upd.c.id, upd.c.status_reason, upd.c.before))).returning(literal(1)).cte("aud")
            emails = insert(OutboxEmail.__table__).from_select(
                OUTBOX_COLUMNS, email_rows(run, "account_suspended", now, upd, lateral=True)).returning(literal(1)).cte("em")
            out[index] = db.session.execute(select(
                select(func.count()).select_from(upd).scalar_subquery(),
                select(func.count()).select_from(audit).scalar_subquery(),
                select(func.count()).select_from(emails).scalar_subquery())).one()[0]
            db.session.commit()
        finally:
            db.session.remove()


def _raw_postgres(app, rules, connections):
    """The one statement over the whole table, or split by id range over `connections` connections at once."""
    from sqlalchemy import func, select

    from portal.extensions import db
    from portal.models import Account

    with app.app_context():
        top = db.session.scalar(select(func.max(Account.id))) + 1
        db.session.remove()
    now = datetime.utcnow()
    out = [0] * connections
    bounds = [top * i // connections for i in range(connections + 1)]
    threads = [threading.Thread(target=_raw_postgres_part, args=(app, rules, now, bounds[i], bounds[i + 1], out, i))
               for i in range(connections)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    with app.app_context():
        db.engine.dispose()
    return elapsed, sum(out)


def raw(working, rules, form):
    """One raw line on the working copy: (seconds, accounts changed)."""
    app = _app(working.url)
    if form in ("temp", "audit"):
        return _raw_sqlite(app, rules, form)
    return _raw_postgres(app, rules, int(form))


def preview_time(working, rules):
    """The dry run of the same rules, as sweeps.preview makes it (a sample of 20): (seconds, would change)."""
    from portal.domain.preview import preview
    from portal.extensions import db

    app = _app(working.url)
    with app.app_context():
        started = time.perf_counter()
        result = preview(rules, as_of=AS_OF, sample_size=20)
        db.session.rollback()
        elapsed = time.perf_counter() - started
        db.session.remove()
        db.engine.dispose()
    return elapsed, result


# ---------------------------------------------------------------- ours, through RQ

def _start_redis():
    from tests.services import RedisServer

    return RedisServer()


class MemorySampler(threading.Thread):
    """Sample the workers and their work horses every 20 ms: peak RSS and peak anonymous (private) memory."""

    def __init__(self, pids):
        super().__init__(daemon=True)
        self.pids, self.peak_rss, self.peak_anon, self.stopped = pids, 0, 0, threading.Event()

    def _tree(self):
        found = list(self.pids)
        for pid in self.pids:
            try:
                with open(f"/proc/{pid}/task/{pid}/children") as f:
                    found += [int(c) for c in f.read().split()]
            except OSError:
                pass
        return found

    def run(self):
        while not self.stopped.is_set():
            for pid in self._tree():
                try:
                    with open(f"/proc/{pid}/status") as f:
                        fields = dict(line.split(":", 1) for line in f if ":" in line)
                except OSError:
                    continue
                self.peak_rss = max(self.peak_rss, int(fields.get("VmRSS", "0 kB").split()[0]))
                self.peak_anon = max(self.peak_anon, int(fields.get("RssAnon", "0 kB").split()[0]))
            self.stopped.wait(0.02)


def _start_workers(url, redis, workers, chunk_size=None):
    from rq import Worker

    from portal.extensions import get_redis

    env = dict(os.environ, DATABASE_URL=url, REDIS_URL=redis.url, PORTAL_ENV="development",
               PORTAL_SECRET_KEY="bench", PYTHONUNBUFFERED="1", PORTAL_SWEEP_PARALLEL_JOBS=str(workers))
    env.pop("PORTAL_INSTANCE_PATH", None)
    if chunk_size:
        env["PORTAL_SWEEP_CHUNK_SIZE"] = str(chunk_size)
    logs = [open(os.path.join(tempfile.gettempdir(), f"bench-sweep-worker-{i}.log"), "w") for i in range(workers)]
    procs = [subprocess.Popen([sys.executable, os.path.join(ROOT, "worker.py"), "sweeps"], env=env, cwd=ROOT,
                              stdout=logs[i], stderr=subprocess.STDOUT) for i in range(workers)]
    app = _app(url, redis.url)
    with app.app_context():
        deadline = time.monotonic() + 60
        while len(Worker.all(connection=get_redis())) < workers and time.monotonic() < deadline:
            time.sleep(0.1)
    return procs


def _stop_workers(procs):
    for proc in procs:
        proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def ours(working, rules, workers, total, chunk_size=None):
    """start_run until the run reads done, with `workers` sweep workers waiting; return a dict of figures.

    total: the confirmation's count, passed as the clean-up passes it (None: start_run counts, as for a
    scheduled sweep). On SQLite the time runs until the write-ahead log is checkpointed, as for the raw lines.
    """
    from sqlalchemy import select

    from portal.domain import runs
    from portal.domain.runs.chunk import BY_RULE
    from portal.extensions import db
    from portal.models import SweepRun

    redis = _start_redis()
    procs = []
    try:
        procs = _start_workers(working.url, redis, workers, chunk_size)
        app = _app(working.url, redis.url)
        app.config["SWEEP_PARALLEL_JOBS"] = workers
        if chunk_size:
            app.config["SWEEP_CHUNK_SIZE"] = chunk_size
        _warm(app)
        sampler = MemorySampler([proc.pid for proc in procs])
        sampler.start()
        with app.app_context():
            started = time.perf_counter()
            run = runs.start_run(None, "cleanup", "suspend", _selection(rules), BY_RULE, NOTE, trigger="cli",
                                 as_of=AS_OF, total=total)
            run_id = run.id
            while db.session.scalar(select(SweepRun.status).where(SweepRun.id == run_id)) not in ("done", "failed"):
                db.session.rollback()  # a cheap look every 20 ms; the progress figures once it is done
                time.sleep(0.02)
            _checkpoint()
            elapsed = time.perf_counter() - started
            state = runs.progress(run_id)
            db.session.remove()
            db.engine.dispose()
        sampler.stopped.set()
    finally:
        _stop_workers(procs)
        redis.stop()
    return {"seconds": elapsed, "status": state["status"], "matched": state["matched"], "changed": state["changed"],
            "skipped": state["skipped"], "chunks": state["chunks"], "in_worker_s": state["duration_s"] or 0.0,
            "peak_rss_mb": sampler.peak_rss / 1024, "peak_anon_mb": sampler.peak_anon / 1024, "error": state["error"]}


# ---------------------------------------------------------------- rounds and the report

def _load():
    return "load average " + " ".join(f"{v:.2f}" for v in os.getloadavg())


def _lines(args, shape):
    """The lines of a shape, in the order of an even round (odd rounds reverse it)."""
    if shape == "none":
        raws = [("preview", None)]
    elif args.sqlite:
        raws = [("raw, temporary table", "temp"), ("raw, audit rows first", "audit")]
    else:
        raws = [(f"raw, {c} connection(s)", str(c)) for c in args.raw_connections]
    return raws + [(f"ours, {w} worker(s)", w) for w in args.workers]


def _measure(args, working, shape, label, what, totals):
    rules = SHAPES[shape]
    working.reset()
    load = _load()
    if label == "preview":
        seconds, result = preview_time(working, rules)
        return seconds, f"would change {result['would_change']:,} ({load})"
    if label.startswith("raw"):
        seconds, _changed = raw(working, rules, what)
        changed, audit, emails = working.written()
        return seconds, f"{changed:,} accounts, {audit:,} audit rows, {emails:,} emails ({load})"
    result = ours(working, rules, what, None if shape == "none" else totals[shape], args.chunk_size)
    changed, audit, emails = working.written()
    return result["seconds"], (
        f"{changed:,} accounts, {audit:,} audit rows, {emails:,} emails; run {result['status']}, "
        f"matched {result['matched']:,}, skipped {result['skipped']:,}, {result['chunks']} chunk(s), "
        f"{result['in_worker_s']:.2f} s from the first claim to done; worker peak RSS {result['peak_rss_mb']:.0f} MB "
        f"(anonymous {result['peak_anon_mb']:.0f} MB)" + (f"; ERROR {result['error']}" if result["error"] else "")
        + f" ({load})")


def _round(args, working, round_no, times, ratios, totals):
    for shape in args.shapes:
        lines = _lines(args, shape)
        if round_no % 2 == 0:
            lines = lines[::-1]
        print(f"  shape {shape}:", flush=True)
        measured = {}
        for label, what in lines:
            seconds, detail = _measure(args, working, shape, label, what, totals)
            measured[label] = seconds
            times.setdefault((shape, label), []).append(seconds)
            print(f"    {label + ':':<28}{seconds:7.2f} s  {detail}", flush=True)
        base = min(v for k, v in measured.items() if not k.startswith("ours"))
        for label, seconds in measured.items():
            if label.startswith("ours"):
                ratios.setdefault((shape, label), []).append(seconds / base)
        summary = ", ".join(f"{k} {v / base:.2f}x" for k, v in measured.items() if k.startswith("ours"))
        against = "the preview" if shape == "none" else "the fastest raw line"
        print(f"    -> against {against} ({base:.2f} s): {summary}", flush=True)


def _verdicts(args, times, ratios):
    print(f"medians and verdicts over {args.repeat} round(s) ({_load()}); within = at most {args.limit}x:", flush=True)
    for (shape, label), values in times.items():
        spread = ", ".join(f"{v:.2f}" for v in values)
        line = f"  {shape:>5} {label + ':':<28}{_median(values):7.2f} s  ({spread})"
        if (shape, label) in ratios:
            rs = ratios[(shape, label)]
            within = sum(r <= args.limit for r in rs)
            need = max(1, len(rs) - 1) if len(rs) > 1 else 1
            ok = within >= min(4, need) and _median(rs) <= args.limit
            line += (f"  ratios {', '.join(f'{r:.2f}' for r in rs)}; median {_median(rs):.2f}x; within in "
                     f"{within} of {len(rs)}: {'PASS' if ok else 'FAIL'}")
        print(line, flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--sqlite", help="a seeded SQLite file (copied once, never changed)")
    source.add_argument("--postgres", help="URL of a seeded PostgreSQL database (copied once as a template)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1])
    parser.add_argument("--raw-connections", type=int, nargs="+", default=[1, 2],
                        help="PostgreSQL: the raw statement on this many connections at once (each a line)")
    parser.add_argument("--shapes", nargs="+", default=list(SHAPES), choices=list(SHAPES))
    parser.add_argument("--repeat", type=int, default=5, help="rounds; each measures every line once")
    parser.add_argument("--limit", type=float, default=1.5)
    parser.add_argument("--chunk-size", type=int, default=None)
    parser.add_argument("--workdir", default=None, help="where the SQLite copy goes (default: the temp folder)")
    args = parser.parse_args()
    print(f"database: {'SQLite ' + args.sqlite if args.sqlite else 'PostgreSQL ' + args.postgres}; "
          f"{datetime.utcnow():%Y-%m-%d %H:%M} UTC; {os.cpu_count()} cores; {_load()}", flush=True)
    working = Working(args)
    times, ratios, totals = {}, {}, {}
    try:
        print(f"working copy ready: {working.saved:,} accounts saved for the resets", flush=True)
        for shape in args.shapes:
            seconds, result = preview_time(working, SHAPES[shape])
            totals[shape] = result["matched"]
            print(f"shape {shape}: {result['matched']:,} of {result['total_accounts']:,} accounts match "
                  f"({100 * result['matched'] / result['total_accounts']:.1f} %), {result['would_change']:,} would "
                  f"be suspended, skipped {result['skipped']}; the confirmation's count took {seconds:.2f} s",
                  flush=True)
        for round_no in range(1, args.repeat + 1):
            print(f"round {round_no} ({_load()})", flush=True)
            _round(args, working, round_no, times, ratios, totals)
        _verdicts(args, times, ratios)
    finally:
        working.drop()


if __name__ == "__main__":
    main()
