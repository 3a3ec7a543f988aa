"""Time the sweep preview (dry run) of the enabled rules on an existing database.

    DATABASE_URL=postgresql+psycopg://... .venv/bin/python bench/bench_preview.py [--repeat 5]
    PORTAL_INSTANCE_PATH=/tmp/x .venv/bin/python bench/bench_preview.py     # SQLite in that folder

Seed the database first (`flask demo seed --accounts 1000000`). Prints each timing and the counts;
nothing is changed. Goal: <= 2 s at 1,000,000 accounts.
"""
import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("PORTAL_ENV", "development")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    from portal import create_app
    from portal.domain import sweeps
    from portal.extensions import db

    app = create_app()
    with app.app_context():
        print(f"database: {db.engine.dialect.name} ({db.engine.url.render_as_string(hide_password=True)})")
        timings, result = [], None
        for _ in range(args.repeat):
            started = time.perf_counter()
            result = sweeps.preview()
            timings.append(time.perf_counter() - started)
            db.session.rollback()
        print("timings (s): " + ", ".join(f"{t:.3f}" for t in timings))
        print(f"best {min(timings):.3f} s, median {statistics.median(timings):.3f} s, worst {max(timings):.3f} s")
        print(f"accounts {result['total_accounts']:,}; matched {result['matched']:,}; "
              f"would suspend {result['would_change']:,}; skipped {result['skipped']}")
        for rule in result["rules"]:
            print(f"  rule {rule['name']!r}: {result['per_rule'][rule['id']]:,}")
        print(f"sample: {len(result['sample'])} accounts, e.g. {result['sample'][0]['why'] if result['sample'] else '-'}")


if __name__ == "__main__":
    main()
