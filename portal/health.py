"""Whether the services the portal needs answer: its database, and the Redis of the job queue."""
import logging

from sqlalchemy import text

from portal.domain.background import queue_reachable
from portal.extensions import db

log = logging.getLogger(__name__)


def database_up():
    """True if the database answers a trivial query."""
    try:
        db.session.execute(text("SELECT 1"))
        return True
    except Exception as exc:  # noqa: BLE001 - any failure means it is down for us
        log.warning("the database cannot be reached: %s", exc)
        return False
    finally:
        db.session.rollback()


def report():
    """Return (all_up, {"database": "up"|"down", "redis": "up"|"down"})."""
    services = {"database": database_up(), "redis": queue_reachable()}
    return all(services.values()), {name: "up" if up else "down" for name, up in services.items()}
