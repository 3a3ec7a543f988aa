"""Benchmark the staff account list on many accounts, on SQLite and on PostgreSQL.

    python bench/bench_account_list.py --accounts 1000000 --db sqlite|postgresql|both [--iterations 200]
        [--via client http]

Seeds its own databases once under --data-dir (SQLite file; a private PostgreSQL cluster started the way
tests/services.py does), then measures the server time of the list fragment (HX-Request) for: the first
page, a filtered page, a status chip with a class, a prefix search, a page 10,000 rows deep, the status
counts, a rare filter and the search box's shapes (search_cases); `--via client` in this process through Flask's test client, `--via http` through
the production server (gunicorn as `python3 run.py` starts it, bench/bench_http.py) with sequential
requests over one kept-alive connection of a super admin signed in through the sign-in form, timing the
round trip and reading the portal's own time from its Server-Timing header. Both by default, on the same
sequence of URLs. Prints p50/p95 per case (and with --plans the query plan of each shape). Re-running
reuses the seeded data; indexes on `accounts` are brought in line with the model first, so an index change
is measured without re-seeding.
"""
import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
from datetime import datetime, timedelta

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, "bench")]

from tests.services import PG_BIN, RedisServer, ServiceUnavailable, free_port  # noqa: E402

from portal.seed import ADJECTIVES, KINDS, NOUNS  # noqa: E402  (the demo data's name parts)
# Stored states, roughly as after the one-time clean-up: most active, many suspended, few limited or cancelled.
STATUS_WEIGHTS = [("active", 0.80), ("suspended", 0.155), ("limited", 0.04), ("cancelled", 0.005)]
NOW = datetime(2026, 11, 1, 12, 0, 0)
BATCH = 20_000
SECRET = "bench-secret-key"
ONLY = None  # --only: the cases whose name contains this text


def say(message):
    print(message, flush=True)


# ---------------------------------------------------------------- PostgreSQL: a private cluster that persists

class BenchCluster:
    """A PostgreSQL cluster in data_dir/pg, created once and started/stopped by this script."""

    def __init__(self, base):
        self.base = base
        self.data = os.path.join(base, "data")
        self.sock = os.path.join(base, "sock")
        self.as_root = os.geteuid() == 0
        self.port_file = os.path.join(base, "port")

    def _run(self, cmd, check=True):
        if self.as_root:
            cmd = ["runuser", "-u", "postgres", "--"] + cmd
        result = subprocess.run(cmd, capture_output=True, text=True)
        if check and result.returncode != 0:
            raise ServiceUnavailable(f"{' '.join(cmd)}: {result.stderr.strip() or result.stdout.strip()}")
        return result

    def start(self):
        if not os.path.exists(os.path.join(PG_BIN, "initdb")):
            raise ServiceUnavailable(f"PostgreSQL binaries not found in {PG_BIN}")
        if not os.path.exists(self.data):
            os.makedirs(self.sock, exist_ok=True)
            os.chmod(self.base, 0o755)
            if self.as_root:
                shutil.chown(self.base, "postgres", "postgres")
                shutil.chown(self.sock, "postgres", "postgres")
            self._run([os.path.join(PG_BIN, "initdb"), "-D", self.data, "--no-sync", "-A", "trust", "-U", "postgres",
                       "-E", "UTF8", "--locale=C"])
        status = self._run([os.path.join(PG_BIN, "pg_ctl"), "-D", self.data, "status"], check=False)
        if status.returncode == 0 and os.path.exists(self.port_file):
            self.port = int(open(self.port_file).read())
            return self
        self.port = free_port()
        # shared_buffers as a production server holding 1M accounts would have it: their table and its indexes
        # (about 720 MB) and the invoices the list reads stay in PostgreSQL's own cache, not only the OS's
        options = (f"-p {self.port} -k {self.sock} -c listen_addresses=127.0.0.1 -c fsync=off "
                   "-c synchronous_commit=off -c full_page_writes=off -c shared_buffers=2GB "
                   "-c maintenance_work_mem=256MB -c max_wal_size=4GB")
        self._run([os.path.join(PG_BIN, "pg_ctl"), "-D", self.data, "-o", options, "-w", "-t", "60",
                   "-l", os.path.join(self.base, "log"), "start"])
        with open(self.port_file, "w") as f:
            f.write(str(self.port))
        return self

    def stop(self):
        self._run([os.path.join(PG_BIN, "pg_ctl"), "-D", self.data, "-m", "fast", "-w", "stop"], check=False)

    def url(self, name):
        import psycopg

        with psycopg.connect(f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres",
                             autocommit=True) as conn:
            if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
                conn.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{name}"


# ---------------------------------------------------------------- seeding

def make_app(url, redis_url="redis://127.0.0.1:1/0"):
    from portal import create_app

    return create_app({"ENV_NAME": "testing", "TESTING": False, "SECRET_KEY": SECRET,
                       "SQLALCHEMY_DATABASE_URI": url, "REDIS_URL": redis_url, "RATELIMIT_STORAGE_URI": "memory://"})


def account_rows(count, class_ids, seed=7):
    """Yield account rows (dicts), deterministic for a seed."""
    rng = random.Random(seed)
    states = [s for s, _w in STATUS_WEIGHTS]
    weights = [w for _s, w in STATUS_WEIGHTS]
    for idx in range(1, count + 1):
        name = f"{rng.choice(ADJECTIVES)} {rng.choice(NOUNS)} {rng.choice(KINDS)}"
        status = rng.choices(states, weights)[0]
        created = NOW - timedelta(days=rng.randint(30, 4 * 365), minutes=rng.randint(0, 1439))
        last = None if rng.random() < 0.05 else created + (NOW - created) * rng.random()
        overdue = rng.random() < 0.16
        yield dict(
            id=idx, number=f"A{idx:07d}", name=name, email=f"hello{idx}@{name.lower().replace(' ', '-')}.example",
            status=status, status_reason="inactivity" if status == "suspended" else None,
            status_source="sweep" if status == "suspended" else None,
            customer_class_id=rng.choice(class_ids), exempt=rng.random() < 0.01,
            balance_cents=rng.choice([900, 1900, 2900, 4900, 9900, 14900]) * rng.randint(1, 3) if overdue else 0,
            created_at=created, last_activity_at=last, contact_name="Alex Nguyen",
            contact_phone=f"+1 555 {rng.randint(100, 999)} {rng.randint(1000, 9999)}",
            settings='{"timezone": "UTC"}', version=1)


def seed(app, count):
    """Create the schema and `count` accounts plus one super admin; skip if already seeded."""
    from flask_migrate import upgrade
    from sqlalchemy import func, insert, select

    from portal.domain.auth import hash_password, new_session_token
    from portal.extensions import db
    from portal.models import Account, CustomerClass, User

    with app.app_context():
        upgrade()
        have = db.session.scalar(select(func.count()).select_from(Account))
        if have == count:
            return False
        if have:
            raise SystemExit(f"{app.config['SQLALCHEMY_DATABASE_URI']} holds {have} accounts, not {count}; "
                             "use --reseed (or another --data-dir).")
        for name in ("Standard", "Premium", "Trial"):
            db.session.add(CustomerClass(name=name, limit_after_days=15, suspend_after_days=20))
        db.session.add(User(email="bench-admin@example.com", name="Bench Admin", role="super_admin",
                            password_hash=hash_password("bench"), session_token=new_session_token()))
        db.session.commit()
        class_ids = list(db.session.scalars(select(CustomerClass.id)))
        started = time.perf_counter()
        if db.engine.dialect.name == "postgresql":
            _copy_postgres(db, count, class_ids)
        else:
            rows = []
            with db.engine.begin() as conn:
                for row in account_rows(count, class_ids):
                    row["settings"] = {"timezone": "UTC"}
                    rows.append(row)
                    if len(rows) >= BATCH:
                        conn.execute(insert(Account.__table__), rows)
                        rows.clear()
                if rows:
                    conn.execute(insert(Account.__table__), rows)
        say(f"  seeded {count:,} accounts in {time.perf_counter() - started:.0f} s")
        _analyze(db)
        return True


def _copy_postgres(db, count, class_ids):
    columns = ["id", "number", "name", "email", "status", "status_reason", "status_source", "customer_class_id",
               "exempt", "balance_cents", "created_at", "last_activity_at", "contact_name", "contact_phone",
               "settings", "version"]
    raw = db.engine.raw_connection()
    try:
        cur = raw.cursor()
        with cur.copy(f"COPY accounts ({', '.join(columns)}) FROM STDIN") as copy:
            for row in account_rows(count, class_ids):
                copy.write_row([row[c] for c in columns])
        cur.execute("SELECT setval(pg_get_serial_sequence('accounts', 'id'), (SELECT MAX(id) FROM accounts))")
        raw.commit()
    finally:
        raw.close()


def _analyze(db):
    if db.engine.dialect.name == "postgresql":
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE accounts")
    else:
        with db.engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE")


def sync_indexes(app):
    """Make the indexes on accounts match the model: when the model's index DDL changed, rebuild them all."""
    import hashlib

    from sqlalchemy.schema import CreateIndex

    from portal.extensions import db
    from portal.models import Account

    with app.app_context():
        engine = db.engine
        ddl = sorted(str(CreateIndex(ix).compile(engine)) for ix in Account.__table__.indexes)
        fingerprint = hashlib.sha256("\n".join(ddl).encode()).hexdigest()
        with engine.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE IF NOT EXISTS bench_meta (key VARCHAR(50) PRIMARY KEY, value TEXT)")
            stored = conn.exec_driver_sql("SELECT value FROM bench_meta WHERE key = 'index_ddl'").scalar()
        if stored is None:  # freshly migrated: the migration made the indexes
            stored = fingerprint
        if stored != fingerprint:
            if engine.dialect.name == "postgresql":
                sql = ("SELECT indexname FROM pg_indexes WHERE tablename = 'accounts' "
                       "AND indexname NOT IN ('pk_accounts', 'uq_accounts_number')")
            else:
                sql = "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'accounts' AND sql IS NOT NULL"
            with engine.begin() as conn:
                for name in conn.exec_driver_sql(sql).scalars().all():
                    conn.exec_driver_sql(f"DROP INDEX {name}")
            for ix in Account.__table__.indexes:
                say(f"  creating {ix.name}")
                ix.create(engine)
            _analyze(db)
        with engine.begin() as conn:
            conn.exec_driver_sql("DELETE FROM bench_meta WHERE key = 'index_ddl'")
            conn.exec_driver_sql(f"INSERT INTO bench_meta (key, value) VALUES ('index_ddl', '{fingerprint}')")


# ---------------------------------------------------------------- measuring

def signed_in_client(app):
    """Return a test client with the bench super admin signed in (no password round trip)."""
    from sqlalchemy import select

    from portal.extensions import db
    from portal.models import User
    from portal.web import staff_sessions

    with app.app_context():
        user = db.session.scalar(select(User).where(User.email == "bench-admin@example.com"))
        user_key = user.get_id()
    client = app.test_client()
    with client.session_transaction() as sess:
        sess["_user_id"] = user_key
        sess["_fresh"] = True
        staff_sessions.start(sess)  # a staff session without its start counts as ended
    return client


def deep_cursor_url(app, depth):
    """Return the list URL of the page that starts `depth` rows deep, as the pager's Next link would give it."""
    from sqlalchemy import func, select

    from portal.domain import account_search
    from portal.extensions import db
    from portal.models import Account

    with app.app_context():
        key = func.lower(Account.name)
        row = db.session.execute(select(key, Account.id).order_by(key, Account.id).offset(depth - 1).limit(1)).one()
        return "/accounts?cursor=" + account_search.encode_cursor("name", "after", row[0], row[1])


def cases(app, rng):
    """Return {case name: function returning the URL of one request}."""
    from sqlalchemy import select

    from portal.extensions import db
    from portal.models import CustomerClass

    with app.app_context():
        class_ids = list(db.session.scalars(select(CustomerClass.id)))
    deep = [deep_cursor_url(app, depth) for depth in (10_000, 10_050, 10_100, 10_150)]
    prefixes = [a.lower() for a in ADJECTIVES] + [f"{a} {n}".lower()[: rng.randint(5, 12)]
                                                for a in ADJECTIVES for n in NOUNS[:3]]
    prefixes += [f"hello{rng.randint(1, 99_999)}" for _ in range(10)] + [f"A00{rng.randint(100, 999)}" for _ in range(10)]
    every = {
        "first page": lambda: "/accounts",
        "filtered page": lambda: (f"/accounts?status=suspended&class={rng.choice(class_ids)}"
                                  f"&balance_min={rng.choice([10, 20, 50])}"),
        "status chip + class": lambda: f"/accounts?status={rng.choice(['active', 'suspended'])}"
                                       f"&class={rng.choice(class_ids)}",
        "prefix search": lambda: f"/accounts?q={rng.choice(prefixes).replace(' ', '+')}",
        "page 10,000 deep": lambda: rng.choice(deep),
        "status counts (own request)": lambda: "/accounts/counts",
        "rare filter (cancelled + exempt)": lambda: "/accounts?status=cancelled&exempt=yes",
        **list_cases(rng, class_ids),
        **search_cases(rng),
    }
    return {name: url for name, url in every.items() if ONLY is None or ONLY in name}


def list_cases(rng, class_ids):
    """The list's sorts by heading (last activity, status; first pages and a page on) and the rare statuses alone
    or with another filter, each in one request (no "keep looking")."""
    return {
        "list: sort last activity, newest": lambda: "/accounts?sort=-activity",
        "list: sort last activity, oldest": lambda: "/accounts?sort=activity",
        "list: sort status, Z to A": lambda: "/accounts?sort=-status",
        "list: sort status + class": lambda: f"/accounts?sort=status&class={rng.choice(class_ids)}",
        "list: status=limited": lambda: "/accounts?status=limited",
        "list: status=cancelled": lambda: "/accounts?status=cancelled",
        "list: limited + class": lambda: f"/accounts?status=limited&class={rng.choice(class_ids)}",
        "list: cancelled + class": lambda: f"/accounts?status=cancelled&class={rng.choice(class_ids)}",
        "list: limited + exempt": lambda: "/accounts?status=limited&exempt=yes",
        "list: limited + balance": lambda: f"/accounts?status=limited&balance_min={rng.choice([10, 20, 50])}",
        "list: cancelled by -balance": lambda: "/accounts?status=cancelled&sort=-balance",
        "list: counts, limited + class": lambda: f"/accounts/counts?status=limited&class={rng.choice(class_ids)}",
    }


def search_cases(rng):
    """The search box's shapes: words inside names (common and rare), two words in any order, part of an
    email, an account number's digits, a common word under another sort or with a rare status, one letter,
    and words whose matches sit together in the name order (an adjective and a noun, one adjective)."""
    kinds = [k.lower() for k in KINDS]
    return {
        "search: common word (~7 %)": lambda: f"/accounts?q={rng.choice(kinds)}",
        "search: inside a word (akery)": lambda: f"/accounts?q={rng.choice(kinds)[1:]}",
        "search: two words, any order": lambda: (f"/accounts?q={rng.choice(kinds)[:4]}+"
                                                 f"{rng.choice(NOUNS).lower()[:3]}"),
        "search: rare (3 words)": lambda: (f"/accounts?q={rng.choice(NOUNS).lower()}+{rng.choice(ADJECTIVES).lower()}"
                                           f"+{rng.choice(kinds)}"),
        "search: part of an email": lambda: f"/accounts?q=llo{rng.randint(1, 999_999)}%40",
        "search: number digits": lambda: f"/accounts?q={rng.randint(1000, 999_999)}",
        "search: common word by -number": lambda: f"/accounts?q={rng.choice(kinds)}&sort=-number",
        "search: common word + cancelled": lambda: f"/accounts?q={rng.choice(kinds)}&status=cancelled",
        "search: one letter": lambda: f"/accounts?q={rng.choice('abcdefghilmnoprstuvw')}",
        "search counts (own request)": lambda: f"/accounts/counts?q={rng.choice(kinds)}",
        # names are "Adjective Noun Kind": these matches sit together in the name order
        "search: adjective + noun (~0.25 %)": lambda: (f"/accounts?q={rng.choice(ADJECTIVES).lower()}+"
                                                       f"{rng.choice(NOUNS).lower()}"),
        "search: one adjective (5 %, clustered)": lambda: f"/accounts?q={rng.choice(ADJECTIVES).lower()}",
    }


def measure(app, iterations, rng):
    """Time each case; return {case: (p50 ms, p95 ms, max ms)}."""
    client = signed_in_client(app)
    headers = {"HX-Request": "true"}
    results = {}
    for name, next_url in cases(app, rng).items():
        for _ in range(5):  # warm up caches and connections
            client.get(next_url(), headers=headers)
        timings = []
        for _ in range(iterations):
            url = next_url()
            started = time.perf_counter()
            response = client.get(url, headers=headers)
            timings.append((time.perf_counter() - started) * 1000)
            if response.status_code != 200:
                raise SystemExit(f"{url} answered {response.status_code}: {response.get_data(as_text=True)[:300]}")
            if name.startswith("list: ") and b"keep-looking-note" in response.get_data():
                raise SystemExit(f"{url} asked to keep looking: not answered in one request")
        timings.sort()
        p95 = timings[max(0, int(len(timings) * 0.95) - 1)]
        results[name] = (statistics.median(timings), p95, timings[-1])
    return results


def measure_http(url, redis_url, iterations, cases_of, log_path):
    """Time each case through gunicorn; return {case: (p50, p95, max, server p50, server p95)} and the settings."""
    from bench_http import ProductionServer, percentile, server_ms, sign_in

    results = {}
    with ProductionServer(url, redis_url, secret=SECRET, log_path=log_path) as server:
        settings = server.settings()
        session = sign_in(server.url, "bench-admin@example.com", "bench")
        headers = {"HX-Request": "true", "HX-Current-URL": server.url + "/accounts"}
        with session.client(server.url) as client:
            for name, next_url in cases_of().items():
                for _ in range(5):  # warm up this worker's templates, caches and connections
                    client.get(next_url(), headers=headers)
                trips, servers = [], []
                for _ in range(iterations):
                    target = next_url()
                    started = time.perf_counter()
                    response = client.get(target, headers=headers)
                    trips.append((time.perf_counter() - started) * 1000)
                    if response.status_code != 200:
                        raise SystemExit(f"{target} answered {response.status_code} over HTTP: {response.text[:300]}")
                    servers.append(server_ms(response))
                trips.sort()
                servers.sort()
                results[name] = (statistics.median(trips), percentile(trips, 0.95), trips[-1],
                                 statistics.median(servers), percentile(servers, 0.95))
    return results, settings


def show_plans(app, rng):
    """Print the plan of each query the main cases send (one request each)."""
    import re

    from sqlalchemy import event

    from portal.extensions import db

    client = signed_in_client(app)
    with app.app_context():
        engine = db.engine
        pg = engine.dialect.name == "postgresql"
    for name, next_url in cases(app, rng).items():
        seen = []

        def listen(conn, cursor, statement, parameters, context, executemany):
            if statement.lstrip().upper().startswith("SELECT") and re.search(r"\bFROM accounts\b", statement):
                seen.append((statement, parameters))

        event.listen(engine, "before_cursor_execute", listen)
        url = next_url()
        client.get(url, headers={"HX-Request": "true"})
        event.remove(engine, "before_cursor_execute", listen)
        say(f"  plans [{name}] {url[:90]}")
        with app.app_context(), db.engine.connect() as conn:
            for statement, parameters in seen:
                say(f"    {' '.join(statement.split())[:160]}")
                rows = conn.exec_driver_sql(("EXPLAIN " if pg else "EXPLAIN QUERY PLAN ") + statement, parameters).all()
                for r in rows:
                    say(f"        {r[-1]}")


def run(db_name, url, args, redis_url):
    say(f"== {db_name}: {url}")
    app = make_app(url, redis_url)
    seed(app, args.accounts)
    sync_indexes(app)
    if args.plans:
        show_plans(app, random.Random(5))
    results = {}
    if "client" in args.via:
        load_before = os.getloadavg()[0]
        results["client"] = measure(app, args.iterations, random.Random(11))
        say(f"  in-process (Flask test client), load average (1 min) before/after: "
            f"{load_before:.2f} / {os.getloadavg()[0]:.2f}")
        say(f"  {'case':<34} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}   ({args.iterations} requests each)")
        for name, (p50, p95, worst) in results["client"].items():
            say(f"  {name:<34} {p50:8.1f} {p95:8.1f} {worst:8.1f}")
    with app.app_context():
        from portal.extensions import db

        db.engine.dispose()
    if "http" in args.via:
        load_before = os.getloadavg()[0]
        http, (workers, threads, _limit) = measure_http(
            url, redis_url, args.iterations, lambda: cases(app, random.Random(11)),
            os.path.join(args.data_dir, f"gunicorn-{db_name}.log"))
        results["http"] = http
        say(f"  over HTTP (gunicorn, {workers} workers x {threads} threads, one kept-alive connection), "
            f"load average (1 min) before/after: {load_before:.2f} / {os.getloadavg()[0]:.2f}")
        say(f"  {'case':<34} {'round trip p50 / p95 / max ms':>30} {'server p50 / p95 ms':>20}")
        for name, (p50, p95, worst, s50, s95) in http.items():
            say(f"  {name:<34} {p50:8.1f} / {p95:7.1f} / {worst:7.1f}   {s50:8.1f} / {s95:7.1f}")
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=1_000_000)
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--iterations", type=int, default=200)
    parser.add_argument("--data-dir", default=os.environ.get("BENCH_DATA_DIR", "/tmp/portal-bench-accounts"))
    parser.add_argument("--reseed", action="store_true", help="drop the seeded data and seed again")
    parser.add_argument("--seed-only", action="store_true", help="seed (and sync indexes), measure nothing")
    parser.add_argument("--plans", action="store_true", help="print the query plan of each shape")
    parser.add_argument("--only", help="measure only the cases whose name contains this text")
    parser.add_argument("--keep-cluster", action="store_true", help="leave the PostgreSQL cluster running")
    parser.add_argument("--via", nargs="+", choices=["client", "http"], default=["client", "http"],
                        help="through Flask's test client in this process, through gunicorn over HTTP, or both")
    args = parser.parse_args(argv)
    global ONLY
    ONLY = args.only
    os.makedirs(args.data_dir, exist_ok=True)
    say(f"bench_account_list: {args.accounts:,} accounts, {datetime.now():%Y-%m-%d %H:%M}, "
        f"{os.cpu_count()} CPUs, python {sys.version.split()[0]}")
    redis = None if args.seed_only else RedisServer()
    redis_url = redis.url if redis else "redis://127.0.0.1:1/0"
    cluster = None
    try:
        if args.db in ("sqlite", "both"):
            path = os.path.join(args.data_dir, f"accounts-{args.accounts}.sqlite3")
            if args.reseed:
                for suffix in ("", "-wal", "-shm"):
                    if os.path.exists(path + suffix):
                        os.remove(path + suffix)
            url = f"sqlite:///{path}"
            if args.seed_only:
                app = make_app(url)
                seed(app, args.accounts)
                sync_indexes(app)
            else:
                run("sqlite", url, args, redis_url)
        if args.db in ("postgresql", "both"):
            cluster = BenchCluster(os.path.join(args.data_dir, "pg")).start()
            name = f"accounts_{args.accounts}"
            if args.reseed:
                import psycopg

                with psycopg.connect(f"host=127.0.0.1 port={cluster.port} user=postgres dbname=postgres",
                                     autocommit=True) as conn:
                    conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            url = cluster.url(name)
            if args.seed_only:
                app = make_app(url)
                seed(app, args.accounts)
                sync_indexes(app)
            else:
                run("postgresql", url, args, redis_url)
    finally:
        if cluster is not None and not args.keep_cluster:
            cluster.stop()
        if redis is not None:
            redis.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
