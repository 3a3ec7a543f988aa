"""Whether background work can be queued now: the job queue's Redis answers.

Starting a clean-up, a scheduled sweep, a large bulk change or an undo, and resuming a run, do
their work only through the queue. They ask first, and queue their jobs before they commit, so a
run is never stored without its jobs: when Redis cannot be reached they change nothing and say so.
"""
import logging

from portal.domain.errors import DomainError
from portal.extensions import get_redis

log = logging.getLogger(__name__)


class BackgroundUnavailable(DomainError):
    """The job queue (Redis) cannot be reached; nothing was started or changed."""

    status_code = 503

    def __init__(self):
        super().__init__("Background work is unavailable right now: the job queue cannot be reached, so nothing "
                         "was started or changed. Please try again in a few minutes.")


def queue_reachable():
    """True if the job queue's Redis answers a ping."""
    try:
        return bool(get_redis().ping())
    except Exception as exc:  # noqa: BLE001 - any failure to reach it means the same thing here
        log.warning("the job queue's Redis cannot be reached: %s", exc)
        return False


def require_queue():
    """Raise BackgroundUnavailable unless the job queue can be reached.

    Raises:
        BackgroundUnavailable: Redis does not answer.
    """
    if not queue_reachable():
        raise BackgroundUnavailable()
