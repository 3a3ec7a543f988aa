"""Benchmark the one-time clean-up end to end through RQ against one raw SQL statement, on a copy of a seeded database.

    # SQLite: a seeded portal.sqlite3 (flask demo seed --accounts 1000000), copied for every measurement
    .venv/bin/python bench/bench_sweep.py --sqlite /path/to/seeded.sqlite3 --workers 1
    # PostgreSQL: a seeded database used as a template (CREATE DATABASE ... TEMPLATE) for every measurement
    .venv/bin/python bench/bench_sweep.py --postgres postgresql+psycopg://postgres@127.0.0.1:5432/bench --workers 1 2 \
        --connections 1 2 --repeat 3

For each database it prints:
  raw      one UPDATE doing the same selection and the same column changes as the clean-up;
  raw+audit the same UPDATE plus one audit row per account (one statement on PostgreSQL, two in one
           transaction on SQLite);
  ours     start_run (the enabled rules, reason by rule) until the run is done, processed by N forking
           `worker.py sweeps` processes already waiting on a private Redis (audit rows, outbox emails,
           progress per chunk included), each working on --connections chunks at a time, with the
           workers' peak memory (the largest worker or work horse);
  naive    an ORM loop over the first --naive accounts (load each, lazy-load its invoices and
           reservations, decide in Python, suspend with an audit event and emails, commit each).
On SQLite every measurement ends once the write-ahead log is checkpointed into the database file.
With --repeat N each round measures everything once, in turn; the medians and their ratios close.
Nothing is changed in the seeded database itself.
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

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTE = "Benchmark clean-up"  # the reason note of every measurement
sys.path.insert(0, ROOT)
os.environ.setdefault("PORTAL_ENV", "development")


def _app(url, redis_url="redis://127.0.0.1:1/0"):
    from portal import create_app

    return create_app({"SQLALCHEMY_DATABASE_URI": url, "REDIS_URL": redis_url, "ENV_NAME": "development"})


class Copies:
    """Fresh copies of the seeded database, one per measurement."""

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
    """Read accounts and open invoices once (after a checkpoint on PostgreSQL), so each measurement starts alike."""
    from sqlalchemy import text

    from portal.extensions import db

    with app.app_context():
        if db.engine.dialect.name == "postgresql":
            db.session.execute(text("CHECKPOINT"))  # start each measurement with no dirty pages to flush
        db.session.execute(text("SELECT count(*), sum(balance_cents), max(coalesce(last_activity_at, created_at)) "
                                "FROM accounts")).one()
        db.session.execute(text("SELECT count(*) FROM invoices WHERE paid_at IS NULL AND written_off_at IS NULL")).one()
        db.session.remove()


def _selection(app):
    from portal.domain import sweeps

    with app.app_context():
        return {"type": "rules", "rules": sweeps.enabled_rules()}


# ---------------------------------------------------------------- raw statements

def raw_statement(url, with_audit):
    """One UPDATE (plus audit rows) doing what the clean-up does to accounts; return (seconds, rows)."""
    from sqlalchemy import and_, insert, literal, select, update

    from portal.domain import rules as rules_domain
    from portal.domain.runs.chunk import BY_RULE, reason_expression
    from portal.extensions import db
    from portal.models import Account, AuditEvent
    from portal.timeutil import utcnow

    app = _app(url)
    selection = _selection(app)
    _warm(app)
    with app.app_context():
        now = utcnow()

        class Run:  # what reason_expression reads
            reason_category, params, as_of = BY_RULE, {"selection": selection}, now

        reason = reason_expression(Run)
        target = and_(Account.status.in_(("active", "limited")), Account.exempt.is_(False),
                      rules_domain.match_clause(selection["rules"], now))
        # the same values a clean-up writes (the same note, an actor label of the same length)
        values = dict(status="suspended", status_reason=reason, status_note=NOTE, status_source="sweep",
                      status_changed_at=now, suspended_by_run_id=999_999, version=Account.version + 1)
        audit_cols = ["created_at", "account_id", "actor_run_id", "actor_label", "action", "reason_category",
                      "reason_note", "state_before", "state_after"]
        label, note = literal("Clean-up run #1"), literal(NOTE)
        started = time.perf_counter()
        if not with_audit:
            rows = db.session.execute(update(Account).where(target).values(**values)
                                      .execution_options(synchronize_session=False)).rowcount
        elif db.engine.dialect.name == "postgresql":
            acc = Account.__table__
            upd = (update(acc).where(target).values(**values)
                   .returning(acc.c.id, acc.c.status_reason).cte("upd"))
            rows_sel = select(literal(now), upd.c.id, literal(999_999), label, literal("suspended"),
                              upd.c.status_reason, note, literal("active"), literal("suspended"))
            ins = insert(AuditEvent.__table__).from_select(audit_cols, rows_sel).returning(AuditEvent.id).cte("ins")
            from sqlalchemy import func

            rows = db.session.scalar(select(func.count()).select_from(ins))
        else:
            rows_sel = select(literal(now), Account.id, literal(999_999), label, literal("suspended"),
                              reason, note, Account.status, literal("suspended")).where(target)
            rows = db.session.execute(insert(AuditEvent.__table__).from_select(audit_cols, rows_sel)).rowcount
            db.session.execute(update(Account).where(Account.id.in_(
                select(AuditEvent.account_id).where(AuditEvent.actor_run_id == 999_999))).values(**values)
                .execution_options(synchronize_session=False))
        db.session.commit()
        _checkpoint()
        elapsed = time.perf_counter() - started
        db.session.remove()
        db.engine.dispose()
    return elapsed, rows


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


# ---------------------------------------------------------------- ours, through RQ

def _start_redis():
    from tests.services import RedisServer

    return RedisServer()


class MemorySampler(threading.Thread):
    """Sample the workers and their work horses every 20 ms: peak RSS and peak anonymous (private) memory.

    RSS alone would count the SQLite file pages the connection maps (mmap_size, capped at 256 MB):
    shared, clean page cache, not memory the worker holds.
    """

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


def ours(url, workers, chunk_size=None, connections=0):
    """start_run until done with `workers` waiting sweep workers; return dict of figures.

    connections: chunks each worker works on at a time (PORTAL_SWEEP_CONNECTIONS; 0: the default).
    On SQLite the time runs until the write-ahead log is checkpointed, as for the raw statements.
    """
    from rq import Worker

    from portal.domain import runs, sweeps
    from portal.extensions import db, get_redis

    redis = _start_redis()
    env = dict(os.environ, DATABASE_URL=url, REDIS_URL=redis.url, PORTAL_ENV="development",
               PORTAL_SECRET_KEY="bench", PYTHONUNBUFFERED="1")
    env.pop("PORTAL_INSTANCE_PATH", None)
    if chunk_size:
        env["PORTAL_SWEEP_CHUNK_SIZE"] = str(chunk_size)
    if connections:
        env["PORTAL_SWEEP_CONNECTIONS"] = str(connections)
    procs = []
    app = _app(url, redis.url)
    if chunk_size:
        app.config["SWEEP_CHUNK_SIZE"] = chunk_size
    app.config["SWEEP_PARALLEL_JOBS"] = workers
    try:
        logs = [open(os.path.join(tempfile.gettempdir(), f"bench-worker-{i}.log"), "w") for i in range(workers)]
        procs = [subprocess.Popen([sys.executable, os.path.join(ROOT, "worker.py"), "sweeps"], env=env, cwd=ROOT,
                                  stdout=logs[i], stderr=subprocess.STDOUT) for i in range(workers)]
        with app.app_context():
            deadline = time.monotonic() + 60
            while len(Worker.all(connection=get_redis())) < workers and time.monotonic() < deadline:
                time.sleep(0.2)
        _warm(app)
        selection = _selection(app)
        sampler = MemorySampler([proc.pid for proc in procs])
        sampler.start()
        with app.app_context():
            started = time.perf_counter()
            run = sweeps.runs.start_run(None, "cleanup", "suspend", selection, sweeps.BY_RULE, NOTE,
                                        trigger="cli")
            run_id = run.id
            while True:
                db.session.rollback()
                state = runs.progress(run_id)
                if state["finished"]:
                    break
                time.sleep(0.05)
            _checkpoint()
            elapsed = time.perf_counter() - started
            db.session.remove()
            db.engine.dispose()
        sampler.stopped.set()
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        redis.stop()
    return {"seconds": elapsed, "status": state["status"], "matched": state["matched"], "changed": state["changed"],
            "skipped": state["skipped"], "chunks": state["chunks"], "in_worker_s": state["duration_s"],
            "peak_rss_mb": sampler.peak_rss / 1024, "peak_anon_mb": sampler.peak_anon / 1024, "error": state["error"]}


# ---------------------------------------------------------------- the naive ORM loop

def naive(url, limit):
    """Suspend matching accounts among the first `limit` one ORM object at a time; return accounts/s."""
    from datetime import timedelta

    from sqlalchemy import select

    from portal.domain import audit, notify
    from portal.extensions import db
    from portal.models import Account, Invoice, Reservation
    from portal.timeutil import add_months, utcnow

    app = _app(url)
    selection = _selection(app)
    _warm(app)
    with app.test_request_context():
        now = utcnow()
        started = time.perf_counter()
        suspended = 0
        for account_id in range(1, limit + 1):
            account = db.session.get(Account, account_id)
            invoices = db.session.scalars(select(Invoice).where(Invoice.account_id == account_id)).all()
            reservations = db.session.scalars(select(Reservation).where(Reservation.account_id == account_id)).all()
            last = max((r.created_at for r in reservations), default=None) or account.created_at
            unpaid = [i for i in invoices if i.paid_at is None and i.written_off_at is None]
            oldest = min((i.due_date for i in unpaid), default=None)
            balance = sum(i.amount_cents for i in unpaid)
            hit = False
            for rule in selection["rules"]:
                checks = []
                if rule["inactivity_months"] is not None:
                    checks.append(last < add_months(now, -rule["inactivity_months"]))
                if rule["min_balance_cents"] is not None:
                    checks.append(balance > rule["min_balance_cents"])
                if rule["overdue_days"] is not None:
                    checks.append(oldest is not None and oldest < now.date() - timedelta(days=rule["overdue_days"]))
                hit = hit or (bool(checks) and all(checks))
            if hit and account.status in ("active", "limited") and not account.exempt:
                before = account.status
                account.status, account.status_reason, account.status_source = "suspended", "inactivity", "sweep"
                account.status_changed_at, account.version = now, account.version + 1
                audit.record("suspended", account.id, "Naive loop", state_before=before, state_after="suspended")
                for manager in notify.account_managers(account.id):
                    notify.queue_email(manager, "account_suspended", "Suspended", "account_suspended.txt",
                                       account=account, reason="inactivity", note="naive")
                suspended += 1
            db.session.commit()
        elapsed = time.perf_counter() - started
        db.session.remove()
        db.engine.dispose()
    return limit / elapsed, suspended, elapsed


def _median(values):
    """The middle value (the mean of the two middle ones for an even count)."""
    values = sorted(values)
    middle = len(values) // 2
    return values[middle] if len(values) % 2 else (values[middle - 1] + values[middle]) / 2


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--sqlite", help="a seeded SQLite file (copied, never changed)")
    source.add_argument("--postgres", help="URL of a seeded PostgreSQL database (used as a template)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1])
    parser.add_argument("--connections", type=int, nargs="+", default=[0],
                        help="chunks each worker works on at a time (0: the default, 2 on PostgreSQL, 1 on SQLite)")
    parser.add_argument("--repeat", type=int, default=1, help="rounds; each round measures everything once, in turn")
    parser.add_argument("--chunk-size", type=int, default=None)
    parser.add_argument("--naive", type=int, default=10_000, help="accounts for the naive loop (0: skip)")
    parser.add_argument("--skip-raw", action="store_true")
    parser.add_argument("--workdir", default=None, help="where SQLite copies go (default: the temp folder)")
    args = parser.parse_args()
    copies = Copies(args)
    print(f"database: {'SQLite ' + args.sqlite if args.sqlite else 'PostgreSQL ' + args.postgres}", flush=True)
    times = {}
    try:
        for round_no in range(1, args.repeat + 1):
            if args.repeat > 1:
                print(f"round {round_no}", flush=True)
            _round(args, copies, times)
        if args.repeat > 1:
            _summary(times)
        if args.naive:
            rate, suspended, elapsed = naive(copies.fresh(), args.naive)
            print(f"naive ORM loop:        {rate:7.0f} accounts/s ({args.naive:,} accounts in {elapsed:.1f} s, "
                  f"{suspended:,} suspended)", flush=True)
    finally:
        copies.drop()


def _round(args, copies, times):
    """Measure the raw statements and each worker/connection setting once; print and collect the times."""
    if not args.skip_raw:
        for label, with_audit in (("raw UPDATE", False), ("raw UPDATE + audit", True)):
            seconds, rows = raw_statement(copies.fresh(), with_audit=with_audit)
            times.setdefault(label, []).append(seconds)
            print(f"{label + ':':<32}{seconds:7.2f} s  ({rows:,} accounts)", flush=True)
    for count in args.workers:
        for connections in args.connections:
            result = ours(copies.fresh(), count, args.chunk_size, connections)
            label = f"ours, {count} worker(s)" + (f" x {connections} connection(s)" if connections else "")
            times.setdefault(label, []).append(result["seconds"])
            raw, raw_audit = times.get("raw UPDATE", [None])[-1], times.get("raw UPDATE + audit", [None])[-1]
            ratio = (f"  = {result['seconds'] / raw:.2f}x raw UPDATE, {result['seconds'] / raw_audit:.2f}x raw+audit"
                     if raw else "")
            print(f"{label + ':':<32}{result['seconds']:7.2f} s{ratio}", flush=True)
            print(f"    status {result['status']}, matched {result['matched']:,}, suspended {result['changed']:,}, "
                  f"skipped {result['skipped']:,}, {result['chunks']} chunks, {result['in_worker_s']:.2f} s from the "
                  f"first claim to done; worker peak RSS {result['peak_rss_mb']:.0f} MB, of which anonymous "
                  f"{result['peak_anon_mb']:.0f} MB"
                  + (f"; error {result['error']}" if result["error"] else ""), flush=True)


def _summary(times):
    """Medians over the rounds, and each setting's ratio to the raw statements' medians."""
    print("medians:", flush=True)
    raw, raw_audit = (_median(times[k]) if k in times else None for k in ("raw UPDATE", "raw UPDATE + audit"))
    for label, values in times.items():
        median = _median(values)
        ratio = (f"  = {median / raw:.2f}x raw UPDATE, {median / raw_audit:.2f}x raw+audit"
                 if raw and label.startswith("ours") else "")
        spread = ", ".join(f"{v:.2f}" for v in values)
        print(f"{label + ':':<32}{median:7.2f} s  ({spread}){ratio}", flush=True)


if __name__ == "__main__":
    main()
