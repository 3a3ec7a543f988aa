"""Benchmark demo seeding (`flask demo seed`) on a fresh, migrated database.

    python bench/bench_seed.py --accounts 100000 [--db sqlite|postgresql|both] [--repeat 1]

Each run migrates an empty database (SQLite file in a temp folder; PostgreSQL: a throwaway cluster
started the way tests/services.py does), then times portal.seed.seed_demo — the function the CLI
command calls — and prints accounts/s and the rows written. Nothing is left behind.
"""
import argparse
import os
import shutil
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from sqlalchemy import func, select  # noqa: E402

from tests.services import PostgresCluster, ServiceUnavailable  # noqa: E402

TABLES = ("accounts", "users", "invoices", "reservations")


def _app(database_url):
    from portal import create_app

    return create_app({"ENV_NAME": "development", "SECRET_KEY": "bench", "SQLALCHEMY_DATABASE_URI": database_url,
                       "REDIS_URL": "redis://127.0.0.1:1/0"})


def run_once(database_url, accounts):
    """Migrate database_url, seed it, and return (seconds, {table: rows})."""
    import logging

    from flask_migrate import upgrade

    from portal.extensions import db
    from portal.seed import seed_demo

    app = _app(database_url)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    with app.app_context():
        upgrade()
        started = time.perf_counter()
        seed_demo(accounts)
        elapsed = time.perf_counter() - started
        rows = {name: db.session.scalar(select(func.count()).select_from(db.metadata.tables[name]))
                for name in TABLES}
        db.session.remove()
        db.engine.dispose()
    return elapsed, rows


def report(backend, accounts, elapsed, rows):
    detail = ", ".join(f"{rows[t]:,} {t}" for t in TABLES)
    print(f"{backend:<10} {accounts:>9,} accounts in {elapsed:6.1f} s = {accounts / elapsed:>8,.0f} accounts/s "
          f"({detail})", flush=True)


def bench_sqlite(accounts, repeat, row_trigger=False):
    """With row_trigger, each round also seeds with the search index's row trigger left on (the baseline the
    seed's pause of it is measured against), alternating, and prints both and their ratio."""
    import portal.seed

    paused = portal.seed._pause_search_trigger
    for _ in range(repeat):
        times = {}
        for label in (("paused", "row trigger") if row_trigger else ("paused",)):
            folder = tempfile.mkdtemp(prefix="bench-seed-")
            portal.seed._pause_search_trigger = paused if label == "paused" else (lambda conn: None)
            try:
                elapsed, rows = run_once(f"sqlite:///{folder}/portal.sqlite3", accounts)
            finally:
                portal.seed._pause_search_trigger = paused
                shutil.rmtree(folder, ignore_errors=True)
            times[label] = elapsed
            report("sqlite" if label == "paused" else "sqlite+row", accounts, elapsed, rows)
        if row_trigger:
            print(f"  row trigger / paused = {times['row trigger'] / times['paused']:.2f}x "
                  f"(load {os.getloadavg()[0]:.1f})", flush=True)


def bench_postgresql(accounts, repeat):
    try:
        cluster = PostgresCluster()
    except ServiceUnavailable as exc:
        print(f"postgresql skipped: {exc}")
        return
    try:
        for n in range(repeat):
            url = cluster.create_database(f"bench_seed_{n}")
            elapsed, rows = run_once(url, accounts)
            report("postgresql", accounts, elapsed, rows)
    finally:
        cluster.stop()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="sqlite")
    parser.add_argument("--repeat", type=int, default=1, help="runs per database (each on a fresh one)")
    parser.add_argument("--row-trigger", action="store_true",
                        help="SQLite: also seed with the search index's row trigger left on, in the same rounds")
    args = parser.parse_args(argv)
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs", flush=True)
    if args.db in ("sqlite", "both"):
        bench_sqlite(args.accounts, args.repeat, args.row_trigger)
    if args.db in ("postgresql", "both"):
        bench_postgresql(args.accounts, args.repeat)
    return 0


if __name__ == "__main__":
    sys.exit(main())
