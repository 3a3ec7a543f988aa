"""RQ entry points: a few lines each; they run inside the worker's app context and call the domain."""
from portal.domain import notify


class DeliveryIncomplete(RuntimeError):
    """Some emails could not be sent; RQ retries the job."""


def deliver_outbox():
    """Send pending outbox emails; raise if any failed so RQ retries later."""
    sent, failed = notify.deliver_pending()
    if failed:
        raise DeliveryIncomplete(f"{failed} email(s) could not be sent; {sent} sent. Will retry.")
    return {"sent": sent}
