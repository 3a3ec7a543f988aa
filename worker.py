"""Run an RQ worker inside the portal's app context.

    python worker.py [--burst] [--with-scheduler] [queues...]

The app is built once; each job runs in a fresh app context with its own database connections
(connections are never shared across the fork).
"""
import argparse
import sys

from rq import Worker

from portal import create_app
from portal.config import ConfigError
from portal.extensions import QUEUE_DEFAULT, QUEUE_MAIL, QUEUE_SWEEPS, db, get_redis


class PortalWorker(Worker):
    """A forking worker that gives every job an app context and fresh DB connections."""

    flask_app = None
    # An idle worker that lost Redis tries again at most this many seconds apart (RQ's default grows to 60 s),
    # so queued work resumes within seconds of Redis coming back.
    max_connection_wait_time = 5.0

    def perform_job(self, job, queue):
        with self.flask_app.app_context():
            db.engine.dispose(close=False)
            try:
                return super().perform_job(job, queue)
            finally:
                db.session.remove()


def _preload_jobs():
    """Import the jobs and the domain modules they call once, before any fork: every work horse inherits them,
    so a job's first start does not pay the imports (a sweep's run engine, its selections, the dunning run)."""
    import portal.jobs  # noqa: F401
    from portal.domain import notify, runs, webhooks  # noqa: F401
    from portal.domain.account_search import conditions  # noqa: F401  (registers the list filter's selection)
    from portal.domain.dunning import daily  # noqa: F401  (registers the dunning run's selection and chunks)
    from portal.domain.features import campaigns, social  # noqa: F401


def main(argv=None):
    """Parse arguments and run the worker until stopped (or until the queues are empty with --burst)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("queues", nargs="*", default=[QUEUE_DEFAULT, QUEUE_MAIL])
    parser.add_argument("--burst", action="store_true", help="stop when the queues are empty")
    parser.add_argument("--with-scheduler", action="store_true", help="also run RQ's scheduler")
    parser.add_argument("--name", default=None)
    args = parser.parse_args(argv)
    try:
        app = create_app()
    except ConfigError as exc:
        sys.stderr.write(f"worker: {exc}\n")
        return 2
    PortalWorker.flask_app = app
    _preload_jobs()
    with app.app_context():
        connection = get_redis()
        if QUEUE_SWEEPS in args.queues:  # the database is the truth: pick up runs a killed worker left
            from portal.domain.runs import enqueue_unfinished

            enqueue_unfinished(stale_only=False)
    worker = PortalWorker(args.queues, connection=connection, name=args.name)
    worker.work(burst=args.burst, with_scheduler=args.with_scheduler, logging_level="INFO")
    return 0


if __name__ == "__main__":
    sys.exit(main())
