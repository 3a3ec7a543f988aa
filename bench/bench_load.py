"""Load benchmark: the production web server under concurrent signed-in staff, on SQLite and PostgreSQL.

    python bench/bench_load.py --accounts 1000000 --db sqlite|postgresql|both \
        [--workers 1 2] [--clients 20 50] [--seconds 60] [--warmup 5] [--rounds 1]

Seeds a demo database once per size with bench/bench_seed.py's run_once (`flask demo seed`'s function:
accounts, people, invoices, reservations), then puts it in the state after a one-time clean-up (accounts
inactive for a year suspended by a sweep) and keeps it under --data-dir (a SQLite file; a database in a
private PostgreSQL cluster); later runs reuse it. For each database, each worker count and each client
count: gunicorn as `python3 run.py` starts it (portal/gunicorn_conf.py, PORTAL_WEB_WORKERS processes of the
default threads), on 127.0.0.1, with a private Redis; then N client threads, each a super admin signed in
through the sign-in form (its own session, cookies and CSRF token, kept-alive connection, no think time),
repeat a weighted mix of what staff do in a browser:

- the account list's htmx fragment with one of several filter shapes, then the status counts request the
  fragment loads (`/accounts/counts` with the same filters);
- an account's page (any account);
- a suspension and its reactivation: the account's page, the status dialog (for the form's version), the
  suspend POST (htmx, X-CSRFToken) and the three parts of the page it refreshes (status card, people,
  timeline), then the same for the reactivation. Each client has its own active accounts, so every pair
  succeeds and leaves the account active as it was (the audit trail keeps both events).

Each phase warms up for --warmup s (not counted), then runs --seconds s; a client stops starting new
actions at the end and finishes the one in hand. Printed per phase: requests/s, p50/p95/p99 of the round
trip per request kind (and of the portal's own time, from its Server-Timing header), errors (any answer
other than the expected one, a 503 of PORTAL_MAX_INFLIGHT included, a timeout or a dropped connection),
the CPU used by the client, by each gunicorn worker and by PostgreSQL, the machine's busy share, and the
load average before and after. At the end: the throughput with the most workers over the fewest, per
client count and round, and the requests served per core-second of server CPU (gunicorn's workers and
PostgreSQL): on a machine whose cores are busy with other work, the workers get less than a core each, and
that figure tells the portal's cost apart from the CPU it was given. Everything stops by itself (each request times out after 30 s, each phase after
--seconds + 60 s).
"""
import argparse
import os
import random
import re
import statistics
import sys
import threading
import time
from collections import defaultdict
from datetime import datetime, timedelta

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path[:0] = [ROOT, HERE]

import bench_http  # noqa: E402
from bench_http import ProductionServer, load_average, percentile, server_ms, sign_in  # noqa: E402

from tests.services import RedisServer  # noqa: E402

ADMIN, PASSWORD = "admin@example.com", "portal-demo-2026"  # portal.seed's demo super admin
PAIRS_PER_CLIENT = 60  # active accounts each client suspends and reactivates in turn
VERSION = re.compile(r'name="version" value="(\d+)"')
KINDS = ("list fragment", "list counts", "account page", "status dialog", "suspend", "reactivate", "card refresh")
MIX = (("list", 6), ("account", 3), ("pair", 1))  # actions, by weight


def say(message=""):
    print(message, flush=True)


# ---------------------------------------------------------------- data: a demo database, seeded once

def _app(url):
    from portal import create_app

    return create_app({"ENV_NAME": "development", "SECRET_KEY": bench_http.SECRET, "SQLALCHEMY_DATABASE_URI": url,
                       "REDIS_URL": "redis://127.0.0.1:1/0", "RATELIMIT_STORAGE_URI": "memory://"})


def _after_cleanup(url, now):
    """Put the demo data in the state after a one-time clean-up: accounts idle for a year suspended by a sweep."""
    from sqlalchemy import text

    app = _app(url)
    with app.app_context():
        from portal.extensions import db

        cutoff = now - timedelta(days=365)
        with db.engine.begin() as conn:
            changed = conn.execute(text(
                "UPDATE accounts SET status = 'suspended', status_reason = 'inactivity', status_source = 'sweep', "
                "status_note = 'No activity for a year', status_changed_at = :now, version = version + 1 "
                "WHERE id > 2 AND (last_activity_at < :cutoff OR (last_activity_at IS NULL AND created_at < :cutoff))"),
                {"now": now, "cutoff": cutoff}).rowcount
        if db.engine.dialect.name == "postgresql":
            with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.exec_driver_sql("VACUUM ANALYZE")
        else:
            with db.engine.begin() as conn:
                conn.exec_driver_sql("ANALYZE")
        db.engine.dispose()
    return changed


def _seed(url, accounts):
    import bench_seed

    started = time.perf_counter()
    seconds, rows = bench_seed.run_once(url, accounts)  # migrates, then portal.seed.seed_demo
    say(f"  seeded in {seconds:.0f} s: " + ", ".join(f"{n:,} {t}" for t, n in rows.items()))
    from portal.timeutil import utcnow

    suspended = _after_cleanup(url, utcnow())
    say(f"  {suspended:,} accounts idle for a year suspended (as by a clean-up); "
        f"{time.perf_counter() - started:.0f} s in all")


def sqlite_database(data_dir, accounts):
    """The URL of the seeded SQLite file, seeding it first if missing (into a temporary name, then renamed)."""
    path = os.path.join(data_dir, f"demo-{accounts}.sqlite3")
    if not os.path.exists(path):
        seeding = path + ".seeding"
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(seeding + suffix):
                os.remove(seeding + suffix)
        say(f"  seeding {accounts:,} demo accounts into {path} (once)")
        _seed(f"sqlite:///{seeding}", accounts)
        if os.path.exists(seeding + "-wal"):
            raise SystemExit(f"{seeding}-wal is still there; not renaming a database with an open log")
        os.rename(seeding, path)
    return f"sqlite:///{path}"


def postgres_database(cluster, accounts):
    """The URL of the seeded PostgreSQL database, seeding it first if missing or left half-seeded."""
    import psycopg

    name = f"demo_{accounts}"
    dsn = f"host=127.0.0.1 port={cluster.port} user=postgres"
    with psycopg.connect(f"{dsn} dbname=postgres", autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
    if exists:
        with psycopg.connect(f"{dsn} dbname={name}", autocommit=True) as conn:
            done = conn.execute("SELECT to_regclass('bench_seeded') IS NOT NULL").fetchone()[0]
        if done:
            return cluster.url(name)
        with psycopg.connect(f"{dsn} dbname=postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE "{name}"')
    url = cluster.url(name)
    say(f"  seeding {accounts:,} demo accounts into database {name} (once)")
    _seed(url, accounts)
    with psycopg.connect(f"{dsn} dbname={name}", autocommit=True) as conn:
        conn.execute("CREATE TABLE bench_seeded (seeded_at timestamp DEFAULT now())")
        conn.execute("INSERT INTO bench_seeded DEFAULT VALUES")
    return url


def migrate(url):
    """Bring a cached database up to the code's migrations (a seeded copy outlives later schema changes)."""
    import logging

    from flask_migrate import upgrade

    logging.getLogger("alembic").setLevel(logging.WARNING)
    app = _app(url)
    with app.app_context():
        from portal.extensions import db

        upgrade()
        db.engine.dispose()


def workload(url, clients, rng):
    """Return (class ids, account count, one list of active accounts per client for its suspend pairs)."""
    from sqlalchemy import func, select

    from portal.models import Account, CustomerClass

    app = _app(url)
    with app.app_context():
        from portal.extensions import db

        class_ids = list(db.session.scalars(select(CustomerClass.id).order_by(CustomerClass.id)))
        count = db.session.scalar(select(func.count()).select_from(Account))
        active = list(db.session.scalars(select(Account.id).where(Account.status == "active", Account.id > 2)))
        db.engine.dispose()
    chosen = rng.sample(active, clients * PAIRS_PER_CLIENT)
    return class_ids, count, [chosen[i::clients] for i in range(clients)]


def accounts_not_active(url, ids):
    """How many of the given accounts are not active (after a phase: left suspended by a half-done pair)."""
    from sqlalchemy import func, select

    from portal.models import Account

    app = _app(url)
    with app.app_context():
        from portal.extensions import db

        left = db.session.scalar(select(func.count()).select_from(Account)
                                 .where(Account.id.in_(ids), Account.status != "active"))
        db.engine.dispose()
    return left


# ---------------------------------------------------------------- what one client does

class Recorder:
    """Round-trip and server times per request kind, and the errors, of one phase (shared by its clients)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.trip = defaultdict(list)
        self.server = defaultdict(list)
        self.errors = defaultdict(int)
        self.error_samples = []
        self.counting = False

    def note(self, kind, trip_ms, server, error=None):
        with self.lock:
            if error:  # counted in the warm-up too: no error may go unseen
                self.errors[kind] += 1
                if len(self.error_samples) < 5:
                    self.error_samples.append(f"{kind}: {error}")
                return
            if not self.counting:
                return
            self.trip[kind].append(trip_ms)
            if server is not None:
                self.server[kind].append(server)


class Failed(Exception):
    """A request did not get the answer a browser expects; the action stops there."""


class Client:
    """One signed-in super admin repeating the mix over one kept-alive connection."""

    def __init__(self, session, base_url, shapes, account_count, pair_accounts, recorder, seed):
        self.session, self.http = session, session.client(base_url)
        self.shapes, self.account_count, self.pair_accounts = shapes, account_count, pair_accounts
        self.recorder, self.rng, self.next_pair = recorder, random.Random(seed), 0
        self.htmx = {"HX-Request": "true", "X-CSRFToken": session.csrf_token}

    def request(self, kind, method, url, expect=200, data=None, htmx=True, current=None):
        headers = dict(self.htmx, **({"HX-Current-URL": current} if current else {})) if htmx else {}
        started = time.perf_counter()
        try:
            response = self.http.request(method, url, headers=headers, data=data)
        except Exception as exc:  # noqa: BLE001 - a timeout or dropped connection is an error to count
            self.recorder.note(kind, 0, None, f"{type(exc).__name__} {exc} ({url})")
            raise Failed(kind) from exc
        trip = (time.perf_counter() - started) * 1000
        if response.status_code != expect:
            self.recorder.note(kind, trip, None, f"{response.status_code} for {method} {url}: {response.text[:120]!r}")
            raise Failed(kind)
        self.recorder.note(kind, trip, server_ms(response))
        return response

    def run(self, until):
        while time.monotonic() < until:
            action = self.rng.choices([a for a, _w in MIX], [w for _a, w in MIX])[0]
            try:
                getattr(self, action)()
            except Failed:
                time.sleep(0.05)
        self.session.cookies = self.http.cookies  # the session as it is now, for the next phase
        self.http.close()

    def list(self):
        query = self.rng.choice(self.shapes)()
        self.request("list fragment", "GET", "/accounts" + query, current="/accounts")
        self.request("list counts", "GET", "/accounts/counts" + query, current="/accounts" + query)

    def account(self):
        self.request("account page", "GET", f"/accounts/{self.rng.randint(1, self.account_count)}", htmx=False)

    def pair(self):
        account_id = self.pair_accounts[self.next_pair % len(self.pair_accounts)]
        self.next_pair += 1
        page = f"/accounts/{account_id}"
        self.request("account page", "GET", page, htmx=False)
        for action, reason in (("suspend", "inactivity"), ("reactivate", "other")):
            dialog = self.request("status dialog", "GET", f"{page}/status-dialog?next={page}", current=page)
            version = VERSION.search(dialog.text).group(1)
            self.request(action, "POST", f"{page}/{action}", current=page, data={
                "reason_category": reason, "reason_note": f"Load benchmark: {action}", "version": version,
                "confirm": "1", "next": page, "csrf_token": self.session.csrf_token})
            for part in ("status-card", "people", "timeline"):  # what the page's HX-Trigger listeners fetch
                self.request("card refresh", "GET", f"{page}/{part}", current=page)


def list_shapes(rng, class_ids):
    """The list's filter shapes, each a function returning one query string."""
    from portal.seed import ADJECTIVES, NOUNS

    prefixes = [a.lower() for a in ADJECTIVES] + [f"{a} {n}".lower() for a in ADJECTIVES for n in NOUNS[:4]]
    return [
        lambda: "",  # the first page
        lambda: f"?status={rng.choice(['active', 'suspended'])}&class={rng.choice(class_ids)}",  # a chip + class
        lambda: f"?q={rng.choice(prefixes).replace(' ', '+')}",  # a name prefix search
        lambda: f"?status=active&class={rng.choice(class_ids)}&balance_min={rng.choice([10, 20, 50])}",
        lambda: f"?sort=-balance&status={rng.choice(['active', 'suspended'])}",  # biggest balances first
    ]


# ---------------------------------------------------------------- CPU accounting

TICK = os.sysconf("SC_CLK_TCK")


def process_cpu(pid):
    """CPU seconds used so far by a process (user + system), 0 if it is gone."""
    try:
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICK


def children(pid):
    try:
        return [int(p) for p in open(f"/proc/{pid}/task/{pid}/children").read().split()]
    except OSError:
        return []


def machine_busy():
    """(busy, total) CPU ticks of the whole machine so far."""
    values = [int(v) for v in open("/proc/stat").readline().split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


class CpuMeter:
    """CPU used during a phase by this process, each gunicorn worker, PostgreSQL's processes, and the machine."""

    def __init__(self, server, postmaster_pid):
        self.server, self.postmaster_pid = server, postmaster_pid

    def _read(self):
        pg = children(self.postmaster_pid) if self.postmaster_pid else []
        return (time.process_time(), {pid: process_cpu(pid) for pid in self.server.worker_pids()},
                {pid: process_cpu(pid) for pid in pg}, machine_busy(), time.monotonic())

    def start(self):
        self.before = self._read()

    def stop(self):
        (c0, w0, p0, (b0, t0), m0), (c1, w1, p1, (b1, t1), m1) = self.before, self._read()
        wall = m1 - m0
        workers = [(w1[pid] - w0.get(pid, 0.0)) / wall for pid in sorted(w1)]
        pg = sum(p1[pid] - p0.get(pid, 0.0) for pid in p1) / wall
        return dict(client=(c1 - c0) / wall, workers=workers, postgres=pg,
                    machine=(b1 - b0) / max(1, t1 - t0) * os.cpu_count())


# ---------------------------------------------------------------- one phase

def phase(server, sessions, shapes, account_count, pairs, seconds, warmup, postmaster_pid, seed):
    """Run len(sessions) clients against server: warm-up, then `seconds` measured; return the figures."""
    recorder = Recorder()
    clients = [Client(s, server.url, shapes, account_count, pairs[i], recorder, seed * 1000 + i)
               for i, s in enumerate(sessions)]
    meter = CpuMeter(server, postmaster_pid)
    start = time.monotonic() + 0.5
    measure_from, until = start + warmup, start + warmup + seconds
    threads = [threading.Thread(target=c.run, args=(until,), daemon=True) for c in clients]
    for t in threads:
        t.start()
    time.sleep(max(0.0, measure_from - time.monotonic()))
    load_before = load_average()
    recorder.counting = True
    meter.start()
    began = time.monotonic()
    for t in threads:
        t.join(max(0.1, until + 60 - time.monotonic()))
    elapsed = time.monotonic() - began
    cpu = meter.stop()
    recorder.counting = False
    stuck = sum(t.is_alive() for t in threads)
    done = sum(len(v) for v in recorder.trip.values())
    return dict(recorder=recorder, elapsed=elapsed, rps=done / elapsed, requests=done, cpu=cpu, stuck=stuck,
                errors=sum(recorder.errors.values()), load_before=load_before, load_after=load_average())


def report_phase(label, result):
    r = result["recorder"]
    cpu = result["cpu"]
    say(f"  {label}: {result['requests']:,} requests in {result['elapsed']:.1f} s = {result['rps']:.1f} requests/s, "
        f"errors {result['errors']} (warm-up included)" + (f", {result['stuck']} clients stuck" if result["stuck"] else ""))
    say(f"    load average before {result['load_before']}, after {result['load_after']}; CPU (cores): client "
        f"{cpu['client']:.2f}, gunicorn workers {' + '.join(f'{w:.2f}' for w in cpu['workers'])}, "
        f"PostgreSQL {cpu['postgres']:.2f}, whole machine {cpu['machine']:.2f} of {os.cpu_count()}")
    say(f"    {'kind':<14} {'count':>6}  {'round trip p50 / p95 / p99 ms':>30}  {'server p50 / p95 ms':>20}")
    everything = sorted(v for k in KINDS for v in r.trip.get(k, []))
    for kind in KINDS + ("all",):
        trips = everything if kind == "all" else sorted(r.trip.get(kind, []))
        if not trips:
            continue
        servers = sorted(v for k in KINDS for v in r.server.get(k, [])) if kind == "all" else sorted(r.server[kind])
        say(f"    {kind:<14} {len(trips):>6}  {percentile(trips, .5):8.1f} / {percentile(trips, .95):7.1f} / "
            f"{percentile(trips, .99):7.1f}  {percentile(servers, .5):9.1f} / {percentile(servers, .95):7.1f}")
    for sample in r.error_samples:
        say(f"    error: {sample}")


def bench_database(db_name, url, args, redis_url, postmaster_pid=None):
    migrate(url)
    rng = random.Random(3)
    most = max(args.clients)
    class_ids, account_count, pairs = workload(url, most, rng)
    shapes = list_shapes(rng, class_ids)
    say(f"== {db_name}: {account_count:,} accounts; {url}")
    sessions, results = None, {}
    for round_no in range(1, args.rounds + 1):
        for workers in args.workers:
            log = os.path.join(args.data_dir, f"gunicorn-{db_name}.log")
            with ProductionServer(url, redis_url, workers, log_path=log) as server:
                n, threads, inflight = server.settings()
                if sessions is None:
                    sessions = [sign_in(server.url, ADMIN, PASSWORD) for _ in range(most)]
                say(f" round {round_no}, gunicorn {n} worker(s) x {threads} threads, PORTAL_MAX_INFLIGHT {inflight} "
                    f"per process (default; >= {most} clients, so it never answers 503 here)")
                for clients in args.clients:
                    result = phase(server, sessions[:clients], shapes, account_count, pairs, args.seconds,
                                   args.warmup, postmaster_pid, seed=round_no * 100 + workers * 10 + clients)
                    report_phase(f"{workers} worker(s), {clients} clients", result)
                    results.setdefault((workers, clients), []).append(result)
        left = accounts_not_active(url, [a for p in pairs for a in p])
        say(f"  accounts of the suspend/reactivate pairs not active after round {round_no}: {left}")
    summary(db_name, args, results)
    return results


def summary(db_name, args, results):
    fewest, most = min(args.workers), max(args.workers)
    say(f"  summary {db_name} (median of {args.rounds} round(s)):")
    for clients in args.clients:
        line = []
        for workers in args.workers:
            runs = results[(workers, clients)]
            rps = statistics.median(r["rps"] for r in runs)
            trips = sorted(v for r in runs for k in KINDS for v in r["recorder"].trip.get(k, []))
            errors = sum(r["errors"] for r in runs)
            cores = statistics.median(sum(r["cpu"]["workers"]) + r["cpu"]["postgres"] for r in runs)
            line.append(f"{workers} worker(s) {rps:.1f} req/s, p95 {percentile(trips, .95):.0f} ms, errors {errors}, "
                        f"server CPU {cores:.2f} cores = {rps / max(cores, 0.01):.0f} req per core-second")
        ratio = ""
        if fewest != most:
            per_round = [b["rps"] / a["rps"] for a, b in zip(results[(fewest, clients)], results[(most, clients)])]
            ratio = f"; {most}/{fewest} workers: " + ", ".join(f"{x:.2f}x" for x in per_round)
        say(f"    {clients} clients: " + "; ".join(line) + ratio)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=1_000_000)
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--clients", type=int, nargs="+", default=[20, 50])
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--warmup", type=float, default=5)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--data-dir", default=os.environ.get("BENCH_LOAD_DIR", "/tmp/portal-bench-load"))
    parser.add_argument("--seed-only", action="store_true", help="seed the databases, measure nothing")
    parser.add_argument("--keep-cluster", action="store_true", help="leave the PostgreSQL cluster running")
    args = parser.parse_args(argv)
    os.makedirs(args.data_dir, exist_ok=True)
    say(f"bench_load: {args.accounts:,} accounts, {datetime.now():%Y-%m-%d %H:%M}, {os.cpu_count()} CPUs, "
        f"python {sys.version.split()[0]}; load average {load_average()}")
    autogroup = "/proc/sys/kernel/sched_autogroup_enabled"
    if os.path.exists(autogroup) and open(autogroup).read().strip() == "1":
        say("  note: the kernel shares CPU between sessions (sched_autogroup): on a machine busy with other work, "
            "gunicorn's workers (one session, as run.py starts them) get one session's share together")
    from bench_account_list import BenchCluster

    cluster = redis = None
    try:
        if args.db in ("sqlite", "both"):
            url = sqlite_database(args.data_dir, args.accounts)
            if not args.seed_only:
                redis = redis or RedisServer()
                bench_database("sqlite", url, args, redis.url)
        if args.db in ("postgresql", "both"):
            cluster = BenchCluster(os.path.join(args.data_dir, "pg")).start()
            url = postgres_database(cluster, args.accounts)
            if not args.seed_only:
                redis = redis or RedisServer()
                postmaster = int(open(os.path.join(cluster.data, "postmaster.pid")).readline())
                bench_database("postgresql", url, args, redis.url, postmaster)
    finally:
        if cluster is not None and not args.keep_cluster:
            cluster.stop()
        if redis is not None:
            redis.stop()
    say(f"load average at the end {load_average()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
