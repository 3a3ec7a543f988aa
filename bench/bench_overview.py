"""Benchmark the staff overview's panels on many accounts, on SQLite and on PostgreSQL.

    python bench/bench_overview.py --accounts 1000000 --db sqlite|postgresql|both [--rounds 40]

Builds its own world once under --data-dir (an SQLite file; a database in a private PostgreSQL cluster,
as bench_account_list.py does), 95 days of it through the portal's own domain functions:
`portal.seed.seed_demo` as of the first day (accounts, invoices, reservations, managers), then every day
the daily dunning run, a few suspensions and reactivations by an admin, a one-time clean-up on day 2, a bulk
suspension every 10 days (undone 3 days later every other time) and a scheduled sweep on day 60; each run's
rows are dated on its day afterwards (runs stamp the real time). Most emails are then marked sent, some
failed; cancellation requests are added over the period. Re-running reuses the world.

Then it measures the server time of each panel's own request (Flask test client, HX-Request, a signed-in
super admin: sign-in, the queries and the template), `--rounds` requests each after warm-up, and prints
p50/p95/max per panel and every round's time: as kept (nothing changed since the last request), in a new process
that takes the scheduler's published counts (after a change), counted afresh
(what a process does first), and after a status change before every request (one account suspended, then
reactivated, in turn: the status panel brings its kept counts up to date from that change's audit event).
"""
import argparse
import os
import random
import statistics
import sys
import time
from datetime import date, datetime, timedelta

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bench.bench_account_list import BenchCluster, make_app  # noqa: E402
from tests.services import RedisServer  # noqa: E402

DAYS = 95
NOTE = "Benchmark history"
ADMIN_ACTIONS_PER_DAY = 3  # suspensions, and as many reactivations
BULK_SIZE = 400  # accounts in each bulk suspension (a run at any size: as a large selection is)
NEW_INVOICES_PER_DAY = 2500  # new invoices due each day (for 1M accounts): the dunning steps of the days after
WORLD_VERSION = "2"  # a world built by another version of this script is built again
CANCELLATION_REQUESTS = 3000


def say(message):
    print(message, flush=True)


# ---------------------------------------------------------------- building the world

def _meta(db, key, value=None):
    with db.engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE IF NOT EXISTS bench_meta (key VARCHAR(50) PRIMARY KEY, value TEXT)")
        if value is None:
            return conn.exec_driver_sql(f"SELECT value FROM bench_meta WHERE key = '{key}'").scalar()
        conn.exec_driver_sql(f"DELETE FROM bench_meta WHERE key = '{key}'")
        conn.exec_driver_sql(f"INSERT INTO bench_meta (key, value) VALUES ('{key}', '{value}')")


def build_world(app, accounts, today):
    """Seed and live through DAYS days ending yesterday; skip when already built. Returns the last day."""
    from flask_migrate import upgrade

    from portal.extensions import db
    from portal.seed import seed_demo

    with app.app_context():
        upgrade()
        built = _meta(db, "world")
        if built and _meta(db, "world_version") == WORLD_VERSION:
            say(f"  world already built (through {built})")
            return date.fromisoformat(built)
        if built:
            raise SystemExit("the world there was built by another version of this script: remove it "
                             "(--data-dir, or DROP DATABASE) and run again")
        first = today - timedelta(days=DAYS)
        started = time.perf_counter()
        seed_demo(accounts, now=datetime.combine(first, datetime.min.time()))
        say(f"  seeded {accounts:,} accounts as of {first} in {time.perf_counter() - started:.0f} s")
        _analyze(db)
        rng = random.Random(3)
        bulk_runs = []
        for offset in range(1, DAYS):
            day = first + timedelta(days=offset)
            tick = time.perf_counter()
            _live_one_day(app, rng, day, offset, bulk_runs)
            if offset % 10 == 0 or offset < 4:
                say(f"  day {offset} ({day}) in {time.perf_counter() - tick:.1f} s")
        _settle_outbox(db, today)
        _add_cancellation_requests(db, rng, first, today, accounts)
        _analyze(db)
        last = today - timedelta(days=1)
        _meta(db, "world", last.isoformat())
        _meta(db, "world_version", WORLD_VERSION)
        say(f"  world built in {time.perf_counter() - started:.0f} s")
        return last


def _admin():
    from sqlalchemy import select

    from portal.extensions import db
    from portal.models import User

    return db.session.scalar(select(User).where(User.role == "super_admin").order_by(User.id).limit(1))


def _live_one_day(app, rng, day, offset, bulk_runs):
    """The day's dunning run, its admin actions, and the runs planned for it."""
    from portal.domain import runs, sweeps
    from portal.domain.dunning import daily

    at = datetime.combine(day, datetime.min.time())
    _new_invoices(rng, day, NEW_INVOICES_PER_DAY * _scale())
    _run_dated(daily.start_daily_run(None, day, trigger="schedule", enqueue=False).id, at + timedelta(hours=2))
    if offset == 2:
        rules = sweeps.enabled_rules()
        run = runs.start_run(None, "cleanup", "suspend", {"type": "rules", "rules": rules}, sweeps.BY_RULE,
                             "One-time clean-up", as_of=at, trigger="cli", enqueue=False)
        _run_dated(run.id, at + timedelta(hours=9))
    if offset == 60:
        rules = sweeps.enabled_rules()
        run = runs.start_run(None, "recurring", "suspend", {"type": "rules", "rules": rules}, sweeps.BY_RULE,
                             "Scheduled sweep", as_of=at, trigger="schedule", period_key=f"bench:{day}",
                             enqueue=False)
        _run_dated(run.id, at + timedelta(hours=3))
    if offset % 10 == 5:
        ids = _pick(rng, "active", BULK_SIZE)
        run = runs.start_run(_admin(), "bulk", "suspend", {"type": "ids", "ids": ids}, "policy_violation",
                             "Bulk suspension", enqueue=False)
        _run_dated(run.id, at + timedelta(hours=14))
        bulk_runs.append((run.id, offset))
    for run_id, done_on in list(bulk_runs):
        if offset == done_on + 3 and done_on % 20 == 5:
            run = runs.start_run(_admin(), "undo", "reactivate", {"type": "undo", "run_id": run_id}, "other",
                                 "Undo of a bulk suspension", undo_of_run_id=run_id, enqueue=False)
            _run_dated(run.id, at + timedelta(hours=16))
    _admin_actions(rng, at)


def _scale():
    from sqlalchemy import func, select

    from portal.extensions import db
    from portal.models import Account

    return (db.session.scalar(select(func.max(Account.id))) or 0) / 1_000_000


def _new_invoices(rng, day, count):
    """Invoices due on `day` for `count` active accounts, looked at by that day's run (set-based: bench data)."""
    from sqlalchemy import func, insert, literal, select, update

    from portal.extensions import db
    from portal.models import Account, Invoice

    ids = _pick(rng, "active", int(count))
    if not ids:
        return
    issued = datetime.combine(day - timedelta(days=14), datetime.min.time())
    next_seq = (select(func.coalesce(func.max(Invoice.seq), 0) + 1).where(Invoice.account_id == Account.id)
                .scalar_subquery())
    db.session.execute(insert(Invoice).from_select(
        ["account_id", "seq", "amount_cents", "paid_cents", "issued_at", "due_date"],
        select(Account.id, next_seq, literal(4900), literal(0), literal(issued), literal(day))
        .where(Account.id.in_(ids))))
    db.session.execute(update(Account).where(Account.id.in_(ids)).values(
        balance_cents=Account.balance_cents + 4900, dunning_next_on=day))
    db.session.commit()


def _pick(rng, status, count):
    from sqlalchemy import func, select

    from portal.extensions import db
    from portal.models import Account

    top = db.session.scalar(select(func.max(Account.id)))
    start = rng.randint(1, max(1, top - 50 * count))
    return list(db.session.scalars(select(Account.id).where(Account.id >= start, Account.status == status)
                                   .order_by(Account.id).limit(count)))


def _admin_actions(rng, at):
    from portal.domain import suspension
    from portal.domain.errors import DomainError

    admin = _admin()
    moments = sorted(at + timedelta(hours=8, minutes=rng.randint(0, 600)) for _ in range(2 * ADMIN_ACTIONS_PER_DAY))
    suspend_ids = _pick(rng, "active", ADMIN_ACTIONS_PER_DAY)
    reactivate_ids = _pick(rng, "suspended", ADMIN_ACTIONS_PER_DAY)
    for i, account_id in enumerate(suspend_ids + reactivate_ids):
        change = suspension.suspend if i < len(suspend_ids) else suspension.reactivate
        try:
            change(admin, account_id, "other", NOTE, now=moments[i])
        except DomainError:
            from portal.extensions import db

            db.session.rollback()


def _run_dated(run_id, moment):
    """Process a run here, in this process, then date its rows on `moment` (runs stamp the real time)."""
    from sqlalchemy import func, select, update

    from portal.domain import runs
    from portal.extensions import db
    from portal.models import AuditEvent, OutboxEmail, SweepRun

    outbox_before = db.session.scalar(select(func.max(OutboxEmail.id))) or 0
    runs.process_run(run_id)
    run = db.session.get(SweepRun, run_id, populate_existing=True)
    took = (run.finished_at - run.started_at) if run.finished_at and run.started_at else timedelta(0)
    db.session.execute(update(AuditEvent).where(AuditEvent.actor_run_id == run_id).values(created_at=moment))
    db.session.execute(update(OutboxEmail).where(OutboxEmail.id > outbox_before).values(created_at=moment))
    db.session.execute(update(SweepRun).where(SweepRun.id == run_id).values(
        created_at=moment, started_at=moment, finished_at=moment + took, heartbeat_at=moment + took))
    db.session.commit()


def _settle_outbox(db, today):
    """Emails older than a day were sent; the last 300 of them failed; the recent ones still wait."""
    from sqlalchemy import select, update

    from portal.models import OutboxEmail

    cutoff = datetime.combine(today - timedelta(days=1), datetime.min.time())
    db.session.execute(update(OutboxEmail).where(OutboxEmail.status == "pending", OutboxEmail.created_at < cutoff)
                       .values(status="sent", sent_at=OutboxEmail.created_at, attempts=1))
    failed = list(db.session.scalars(select(OutboxEmail.id).where(OutboxEmail.status == "sent")
                                     .order_by(OutboxEmail.id.desc()).limit(300)))
    db.session.execute(update(OutboxEmail).where(OutboxEmail.id.in_(failed)).values(
        status="failed", sent_at=None, attempts=5, last_error="550 5.1.1 Mailbox unavailable"))
    db.session.commit()


def _add_cancellation_requests(db, rng, first, today, accounts):
    from sqlalchemy import insert

    from portal.domain.cancellations.choices import REASON_CODES
    from portal.models import CancellationRequest

    outcomes = ["open"] * 15 + ["retained"] * 30 + ["paused"] * 10 + ["cancelled"] * 40 + ["withdrawn"] * 5
    rows = []
    for _ in range(CANCELLATION_REQUESTS):
        day = first + timedelta(days=rng.randint(0, DAYS - 1))
        rows.append(dict(account_id=rng.randint(1, accounts), contact_name="Dana Diaz", channel="call",
                         request_date=day, amount_collected_cents=rng.randint(1, 500) * 1000,
                         months_in_program=rng.randint(0, 48), reason_code=rng.choice(list(REASON_CODES)),
                         reason="", created_at=datetime.combine(day, datetime.min.time()),
                         outcome=rng.choice(outcomes)))
    db.session.execute(insert(CancellationRequest), rows)
    db.session.commit()


def _analyze(db):
    if db.engine.dialect.name == "postgresql":
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE")
    else:
        with db.engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE")


def describe_world(app):
    """Print what the world holds, for the record."""
    from sqlalchemy import func, select

    from portal.extensions import db
    from portal.models import Account, AuditEvent, OutboxEmail, SweepRun

    with app.app_context():
        states = dict(db.session.execute(select(Account.status, func.count()).group_by(Account.status)).all())
        events = db.session.scalar(select(func.count()).select_from(AuditEvent))
        emails = dict(db.session.execute(select(OutboxEmail.status, func.count()).group_by(OutboxEmail.status)).all())
        run_kinds = dict(db.session.execute(select(SweepRun.kind, func.count()).group_by(SweepRun.kind)).all())
        say(f"  accounts by status {states}; {events:,} audit events; emails {emails}; runs {run_kinds}")


# ---------------------------------------------------------------- measuring

def signed_in_client(app):
    """Return a test client with the demo super admin signed in (no password round trip)."""
    from portal.web import staff_sessions

    with app.app_context():
        user_key = _admin().get_id()
    client = app.test_client()
    with client.session_transaction() as sess:
        sess["_user_id"] = user_key
        sess["_fresh"] = True
        staff_sessions.start(sess)
    return client


PANELS = ["status", "activity", "runs", "emails", "upcoming", "cancellations"]


def cases():
    """Return {case name: (URL, what to forget before each request: None, or a function of no argument)}."""
    from portal.domain import overview, status_counts

    found = {"page shell (/overview)": ("/overview", None)}
    for panel in PANELS:
        found[panel] = (f"/overview/{panel}", None)
    found["status, counted afresh"] = ("/overview/status", status_counts.forget)
    found["activity, counted afresh"] = ("/overview/activity", overview.forget_activity)
    found["activity 365 days, afresh"] = ("/overview/activity?days=365", overview.forget_activity)
    found["status after a change"] = ("/overview/status", _toggle_an_account())
    found["activity after a change"] = ("/overview/activity", _toggle_an_account())
    found["status, new process"] = ("/overview/status", _new_process(status_counts.forget, status_counts.publish))
    found["activity, new process"] = ("/overview/activity",
                                      _new_process(overview.forget_activity, overview.publish_activity))
    return found


def _new_process(forget, publish):
    """Before each request: a change, then nothing kept, as in a web process started after the scheduler's last
    tick published its counts (portal.domain.shared_figures); the tick itself publishes before the first round
    and every tenth (ticks come every 30 s; the changes since it are stepped over, as a web process would)."""
    toggle, rounds = _toggle_an_account(), []

    def before_request():
        if len(rounds) % 10 == 0:
            publish()
        rounds.append(1)
        toggle()
        forget()

    return before_request


def _toggle_an_account():
    """Suspend one active account, then reactivate it, in turn (an even number of rounds leaves it as it was)."""
    from sqlalchemy import select

    from portal.domain import suspension
    from portal.extensions import db
    from portal.models import Account

    state = {}

    def toggle():
        if "id" not in state:
            state["id"] = db.session.scalar(select(Account.id).where(Account.status == "active").limit(1))
        account = db.session.get(Account, state["id"])
        change = suspension.suspend if account.status == "active" else suspension.reactivate
        change(_admin(), state["id"], "other", NOTE)
        db.session.remove()

    return toggle


def measure(app, rounds):
    """Time each case; return {case: (p50 ms, p95 ms, max ms)}."""
    client = signed_in_client(app)
    headers = {"HX-Request": "true"}
    results = {}
    for name, (url, forget) in cases().items():
        for _ in range(3):  # warm up caches and connections
            client.get(url, headers=headers)
        timings = []
        for _ in range(rounds):
            if forget:
                with app.app_context():
                    forget()
            started = time.perf_counter()
            response = client.get(url, headers=headers)
            timings.append((time.perf_counter() - started) * 1000)
            if response.status_code != 200:
                raise SystemExit(f"{url} answered {response.status_code}: {response.get_data(as_text=True)[:300]}")
        in_order = list(timings)
        timings.sort()
        p95 = timings[max(0, int(len(timings) * 0.95) - 1)]
        results[name] = (statistics.median(timings), p95, timings[-1])
        say(f"  {name:<28} {results[name][0]:8.1f} {p95:8.1f} {timings[-1]:8.1f}   load {os.getloadavg()[0]:.2f}")
        say("    every round, ms: " + " ".join(f"{t:.1f}" for t in in_order))
    return results


def run(db_name, url, args, redis_url):
    say(f"== {db_name}: {url}")
    app = make_app(url, redis_url)
    build_world(app, args.accounts, date.today())
    describe_world(app)
    if args.seed_only:
        return None
    load_before = os.getloadavg()
    say(f"  {'case':<28} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}   ({args.rounds} requests each)")
    results = measure(app, args.rounds)
    load_after = os.getloadavg()
    say(f"  load average (1/5/15 min) before: {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}, "
        f"after: {load_after[0]:.2f} {load_after[1]:.2f} {load_after[2]:.2f}")
    with app.app_context():
        from portal.extensions import db

        db.engine.dispose()
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=1_000_000)
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--data-dir", default=os.environ.get("BENCH_DATA_DIR", "/tmp/portal-bench-overview"))
    parser.add_argument("--seed-only", action="store_true", help="build the world, measure nothing")
    parser.add_argument("--keep-cluster", action="store_true", help="leave the PostgreSQL cluster running")
    args = parser.parse_args(argv)
    os.makedirs(args.data_dir, exist_ok=True)
    say(f"bench_overview: {args.accounts:,} accounts, {datetime.now():%Y-%m-%d %H:%M}, "
        f"{os.cpu_count()} CPUs, python {sys.version.split()[0]}")
    redis = RedisServer()
    cluster = None
    try:
        if args.db in ("sqlite", "both"):
            run("sqlite", f"sqlite:///{os.path.join(args.data_dir, f'overview-{args.accounts}.sqlite3')}", args,
                redis.url)
        if args.db in ("postgresql", "both"):
            cluster = BenchCluster(os.path.join(args.data_dir, "pg")).start()
            run("postgresql", cluster.url(f"overview_{args.accounts}"), args, redis.url)
    finally:
        if cluster is not None and not args.keep_cluster:
            cluster.stop()
        redis.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
