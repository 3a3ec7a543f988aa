"""API benchmark: GET /api/v1/accounts/{number} and a payment push at 1,000,000 accounts, through gunicorn.

    python bench/bench_api.py --accounts 1000000 --db sqlite|postgresql|both \
        [--samples 2000] [--workers 2] [--clients 8] [--seconds 30] [--data-dir /tmp/portal-bench-api]

Seeds the demo data once per size (bench/bench_load.py's sqlite_database / postgres_database: `flask demo seed`'s
function, then the accounts idle for a year suspended as by a clean-up) and keeps it under --data-dir. For each
database: a token with accounts:read and billing:write made through the domain (as the demo super admin), then
gunicorn as `python3 run.py` starts it (portal/gunicorn_conf.py) with --workers processes on 127.0.0.1 and a
private Redis, the API's per-token limit raised (PORTAL_API_RATE_LIMIT) so it measures the server, not the limit.

1. Server time, one client, kept-alive connection: --samples GETs of random accounts and --samples payment pushes,
   each paying the oldest open invoice of an account not paid before in this run (its exact amount, the invoice
   named, a new Idempotency-Key each); 100 of each first, not counted. p50/p95/p99 of the portal's own time (its
   Server-Timing header) and of the round trip. Targets: GET p95 < 15 ms, payment p95 < 30 ms.
2. CPU per request, in this process (Flask's test client, no HTTP): --samples / 2 of each, the thread's CPU time
   (time.thread_time) and wall time of each, and the SQL statements each sent (counted with SQLAlchemy's
   before_cursor_execute; min / median / max, and the statements of the last one of each kind). The machine is shared by several engineers' tests and benchmarks; CPU
   time shows what a request costs whatever else runs, wall time what it waited besides.
3. Throughput: --clients threads, each its own kept-alive connection, no think time, for --seconds: GETs, then
   payment pushes. Requests/s, errors, p95 of the round trip and of the server time under that load.

With --baseline DIR (another tree of the portal, such as `git archive` of the commit before a change), a second
gunicorn runs that tree's code on the same database beside this tree's, and phases 1 and 3 measure both in one
run: one client alternates its requests between the two servers (the same load for both, request by request),
then each server's throughput in turn. Phase 2 is this tree's only.

Every request times out after 30 s; a phase stops starting requests after --seconds. The load average before and
after each database is printed: the machine is shared, so read figures with it.
"""
import argparse
import contextlib
import os
import random
import sys
import threading
import time
import uuid
from datetime import datetime

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path[:0] = [ROOT, HERE]

import httpx  # noqa: E402

import bench_http  # noqa: E402
from bench_http import ProductionServer, load_average, percentile, server_ms  # noqa: E402
from bench_load import _app, postgres_database, say, sqlite_database  # noqa: E402

from tests.services import RedisServer  # noqa: E402

ADMIN = "admin@example.com"  # portal.seed's demo super admin
WARMUP = 100


def prepare(url, samples, pay_targets, rng):
    """Return (token, account numbers to read, payment targets [(number, seq, owed cents)]) for a run."""
    from sqlalchemy import func, select, text

    from portal.domain import api_tokens
    from portal.models import Account, User

    app = _app(url)
    with app.app_context():
        from portal.extensions import db

        admin = db.session.scalar(select(User).where(User.email == ADMIN))
        _token, token = api_tokens.create_token(admin, f"bench-{uuid.uuid4().hex[:8]}",
                                                ["accounts:read", "billing:write"])
        top = db.session.scalar(select(func.max(Account.id)))
        ids = rng.sample(range(1, top + 1), samples + WARMUP)
        numbers = list(db.session.scalars(select(Account.number).where(Account.id.in_(ids))))
        # the oldest open invoice of accounts picked at random (each paid once in this run)
        start = rng.randrange(1, max(2, top - 10 * pay_targets))
        rows = db.session.execute(text(
            "SELECT a.number, i.seq, i.amount_cents - i.paid_cents FROM invoices i JOIN accounts a ON a.id = i.account_id "
            "WHERE i.account_id >= :start AND i.paid_at IS NULL AND i.written_off_at IS NULL "
            "AND a.status <> 'cancelled' AND i.seq = (SELECT min(j.seq) FROM invoices j WHERE j.account_id = i.account_id "
            "AND j.paid_at IS NULL AND j.written_off_at IS NULL) ORDER BY i.account_id LIMIT :n"),
            {"start": start, "n": pay_targets}).all()
        db.session.remove()
        db.engine.dispose()
    rng.shuffle(numbers)
    targets = [tuple(r) for r in rows]
    rng.shuffle(targets)
    return token, numbers, targets


class Recorder:
    def __init__(self):
        self.lock = threading.Lock()
        self.trip, self.server, self.errors, self.samples = [], [], 0, []

    def note(self, trip_ms, response, expected):
        with self.lock:
            if response is None or response.status_code != expected:
                self.errors += 1
                if len(self.samples) < 3:
                    self.samples.append(response.text[:200] if response is not None else "no answer")
                return
            self.trip.append(trip_ms)
            value = server_ms(response)
            if value is not None:
                self.server.append(value)


def get_account(client, number):
    return client.get(f"/api/v1/accounts/{number}"), 200


def push_payment(client, target):
    number, seq, owed = target
    return client.post(f"/api/v1/accounts/{number}/payments", json={"amount_cents": int(owed), "invoice_seq": seq,
                                                                    "reference": "bench"},
                       headers={"Idempotency-Key": uuid.uuid4().hex}), 201


def timed(recorder, call, client, item):
    started = time.perf_counter()
    try:
        response, expected = call(client, item)
    except httpx.HTTPError:
        response, expected = None, None
    if recorder is not None:
        recorder.note((time.perf_counter() - started) * 1000, response, expected)


def api_client(base_url, token):
    return httpx.Client(base_url=base_url, timeout=30.0, headers={"Authorization": f"Bearer {token}"})


def sequential(base_url, token, call, items):
    """One client: the first WARMUP items not counted, then the rest; return the Recorder."""
    recorder = Recorder()
    with api_client(base_url, token) as client:
        for index, item in enumerate(items):
            timed(recorder if index >= WARMUP else None, call, client, item)
    return recorder


def concurrent(base_url, token, call, items, clients, seconds):
    """clients threads sharing the items (each used once) for seconds; return (Recorder, requests/s)."""
    recorder, lock, stop_at = Recorder(), threading.Lock(), time.monotonic() + seconds
    source = iter(items)

    def take():
        with lock:
            return next(source, None)

    def work():
        with api_client(base_url, token) as client:
            timed(None, call, client, take())  # open the connection before the clock runs
            barrier.wait()
            while time.monotonic() < stop_at:
                item = take()
                if item is None:
                    return
                timed(recorder, call, client, item)

    barrier = threading.Barrier(clients + 1)
    threads = [threading.Thread(target=work, daemon=True) for _ in range(clients)]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = time.monotonic()
    for thread in threads:
        thread.join(seconds + 60)
    elapsed = time.monotonic() - started
    return recorder, (len(recorder.trip) + recorder.errors) / elapsed


def in_process(url, redis_url, token, numbers, targets):
    """CPU and wall time of each request through the test client; return {kind: (cpu ms sorted, wall ms sorted)}."""
    from portal import create_app

    os.environ["PORTAL_API_RATE_LIMIT"] = "1000000 per minute"
    app = create_app({"ENV_NAME": "development", "SECRET_KEY": "bench", "SQLALCHEMY_DATABASE_URI": url,
                      "REDIS_URL": redis_url, "RATELIMIT_STORAGE_URI": redis_url})
    client = app.test_client()
    headers = {"Authorization": f"Bearer {token}"}
    from sqlalchemy import event

    with app.app_context():
        from portal.extensions import db

        engine = db.engine
    sent = []
    event.listen(engine, "before_cursor_execute",
                 lambda _conn, _cursor, statement, *_rest: sent.append(" ".join(statement.split())[:100]))

    def get(number):
        return client.get(f"/api/v1/accounts/{number}", headers=headers).status_code == 200

    def pay(target):
        number, seq, owed = target
        return client.post(f"/api/v1/accounts/{number}/payments", json={"amount_cents": int(owed), "invoice_seq": seq},
                           headers={**headers, "Idempotency-Key": uuid.uuid4().hex}).status_code == 201

    result = {}
    for kind, call, items in (("GET account", get, numbers), ("payment push", pay, targets)):
        cpu, wall, counts = [], [], []
        for index, item in enumerate(items):
            sent.clear()
            started, started_cpu = time.perf_counter(), time.thread_time()
            if not call(item):
                raise RuntimeError(f"{kind} failed for {item}")
            if index >= WARMUP // 2:
                cpu.append((time.thread_time() - started_cpu) * 1000)
                wall.append((time.perf_counter() - started) * 1000)
                counts.append(len(sent))
        result[kind] = (sorted(cpu), sorted(wall), sorted(counts), list(sent))
    with app.app_context():
        from portal.extensions import db

        db.engine.dispose()
    return result


def describe(label, recorder, rate=None):
    trip, server = sorted(recorder.trip), sorted(recorder.server)
    line = (f"  {label:<28} n={len(trip):>6,}  server p50/p95/p99 {percentile(server, .5):6.2f} / "
            f"{percentile(server, .95):6.2f} / {percentile(server, .99):6.2f} ms   round trip p50/p95 "
            f"{percentile(trip, .5):6.2f} / {percentile(trip, .95):6.2f} ms   errors {recorder.errors}")
    if rate is not None:
        line += f"   {rate:,.0f} requests/s"
    say(line)
    for sample in recorder.samples:
        say(f"    error: {sample}")


class TreeServer(ProductionServer):
    """The production server run from another tree of the portal (--baseline)."""

    def __init__(self, root, *args, **kwargs):
        self.root = root
        super().__init__(*args, **kwargs)

    def __enter__(self):
        saved, bench_http.ROOT = bench_http.ROOT, self.root
        try:
            return super().__enter__()
        finally:
            bench_http.ROOT = saved


def alternating(urls, token, call, items):
    """One client per server, taking the items in turn (the first WARMUP rounds not counted); one Recorder each."""
    recorders = [Recorder() for _ in urls]
    with contextlib.ExitStack() as stack:
        clients = [stack.enter_context(api_client(url, token)) for url in urls]
        for index, item in enumerate(items):
            which = index % len(urls)
            timed(recorders[which] if index >= WARMUP * len(urls) else None, call, clients[which], item)
    return recorders


def bench_pair(db_name, url, args, redis_url):
    """This tree and --baseline's, side by side on one database (see the module docstring)."""
    rng = random.Random(20261201)
    per_second = 400
    count = 2 * (args.samples + WARMUP)
    token, numbers, targets = prepare(url, count - WARMUP, count + 2 * per_second * int(args.seconds), rng)
    say(f"{db_name}: this tree ({ROOT}) and the baseline ({args.baseline}) side by side; load average "
        f"{load_average()}")
    env = {"PORTAL_API_RATE_LIMIT": "1000000 per minute"}
    log = os.path.join(args.data_dir, f"gunicorn-{db_name}.log")
    with ProductionServer(url, redis_url, workers=args.workers, log_path=log, extra_env=env) as ours, \
            TreeServer(args.baseline, url, redis_url, workers=args.workers, log_path=log + ".baseline",
                       extra_env=env) as base:
        names = ("ours", "baseline")
        for kind, call, items in (("GET account", get_account, numbers[:count]),
                                  ("payment push", push_payment, targets[:count])):
            for name, recorder in zip(names, alternating([ours.url, base.url], token, call, items)):
                describe(f"{kind}, 1 client, {name}", recorder)
            say(f"    load average {load_average()}")
        rest = targets[count:]
        reads = numbers * (1 + int(args.seconds * 2000 // max(1, len(numbers))))
        for name, server, paying in (("ours", ours, rest[0::2]), ("baseline", base, rest[1::2])):
            recorder, rate = concurrent(server.url, token, get_account, reads, args.clients, args.seconds)
            describe(f"GET, {args.clients} clients, {name}", recorder, rate)
            recorder, rate = concurrent(server.url, token, push_payment, paying, args.clients, args.seconds)
            describe(f"payment, {args.clients} clients, {name}", recorder, rate)
            say(f"    load average {load_average()}")
    say(f"  load average after {load_average()}")


def bench_database(db_name, url, args, redis_url):
    rng = random.Random(20261201)
    per_second = 400  # payments a second at most, to size the targets of the throughput phase
    token, numbers, targets = prepare(url, args.samples, args.samples + WARMUP + per_second * int(args.seconds), rng)
    say(f"{db_name}: {len(numbers):,} accounts to read, {len(targets):,} open invoices to pay; "
        f"load average {load_average()}")
    log = os.path.join(args.data_dir, f"gunicorn-{db_name}.log")
    with ProductionServer(url, redis_url, workers=args.workers, log_path=log,
                          extra_env={"PORTAL_API_RATE_LIMIT": "1000000 per minute"}) as server:
        say(f"  gunicorn: {server.workers} workers on {server.url}")
        describe("GET account, 1 client", sequential(server.url, token, get_account, numbers))
        paying = targets[:args.samples + WARMUP]
        describe("payment push, 1 client", sequential(server.url, token, push_payment, paying))
        reads = numbers * (1 + int(args.seconds * 2000 // max(1, len(numbers))))
        recorder, rate = concurrent(server.url, token, get_account, reads, args.clients, args.seconds)
        describe(f"GET account, {args.clients} clients", recorder, rate)
        recorder, rate = concurrent(server.url, token, push_payment, targets[args.samples + WARMUP:], args.clients,
                                    args.seconds)
        describe(f"payment push, {args.clients} clients", recorder, rate)
    half = args.samples // 2 + WARMUP // 2
    for kind, (cpu, wall, counts, last) in in_process(url, redis_url, token, numbers[:half], targets[-half:]).items():
        say(f"  {kind + ', in process':<28} n={len(cpu):>6,}  CPU p50/p95/p99 {percentile(cpu, .5):6.2f} / "
            f"{percentile(cpu, .95):6.2f} / {percentile(cpu, .99):6.2f} ms   wall p50/p95 {percentile(wall, .5):6.2f} / "
            f"{percentile(wall, .95):6.2f} ms   SQL statements min/median/max {counts[0]} / "
            f"{counts[len(counts) // 2]} / {counts[-1]}")
        if args.show_statements:
            for statement in last:
                say(f"      {statement}")
    say(f"  load average after {load_average()}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=1_000_000)
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--data-dir", default=os.environ.get("BENCH_API_DIR", "/tmp/portal-bench-api"))
    parser.add_argument("--keep-cluster", action="store_true", help="leave the PostgreSQL cluster running")
    parser.add_argument("--seed-only", action="store_true", help="seed the databases, measure nothing")
    parser.add_argument("--baseline", help="another tree of the portal to measure beside this one (see above)")
    parser.add_argument("--show-statements", action="store_true",
                        help="print the SQL statements of the last in-process request of each kind")
    args = parser.parse_args(argv)
    os.makedirs(args.data_dir, exist_ok=True)
    say(f"bench_api: {args.accounts:,} accounts, {datetime.now():%Y-%m-%d %H:%M}, {os.cpu_count()} CPUs, "
        f"python {sys.version.split()[0]}; load average {load_average()}")
    from bench_account_list import BenchCluster

    cluster = redis = None
    try:
        redis = RedisServer()
        if args.db in ("sqlite", "both"):
            url = sqlite_database(args.data_dir, args.accounts)
            if not args.seed_only:
                (bench_pair if args.baseline else bench_database)("sqlite", url, args, redis.url)
        if args.db in ("postgresql", "both"):
            cluster = BenchCluster(os.path.join(args.data_dir, "pg")).start()
            url = postgres_database(cluster, args.accounts)
            if not args.seed_only:
                (bench_pair if args.baseline else bench_database)("postgresql", url, args, redis.url)
    finally:
        if cluster is not None and not args.keep_cluster:
            cluster.stop()
        if redis is not None:
            redis.stop()
    say(f"load average at the end {load_average()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
