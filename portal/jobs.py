"""RQ entry points: a few lines each; they run inside the worker's app context and call the domain."""
from portal.domain import notify
from portal.plurals import count


class DeliveryIncomplete(RuntimeError):
    """Some emails could not be sent; RQ retries the job."""


def deliver_outbox():
    """Send pending outbox emails; raise if any failed so RQ retries later."""
    sent, failed = notify.deliver_pending()
    if failed:
        raise DeliveryIncomplete(f"{count(failed, 'email')} could not be sent; {sent:,} sent. Will retry.")
    return {"sent": sent}


def process_run(run_id):
    """Work on a sweep, bulk, undo or dunning run's chunks (several of these jobs may share one run)."""
    from portal.domain import runs
    from portal.domain.dunning import daily  # noqa: F401  (registers the dunning run's selection and chunks)

    from rq import get_current_job

    job = get_current_job()
    if not runs.wait_for_run(run_id):  # queued just before its start committed, and the commit failed
        return {"id": run_id, "status": "not started"}
    return runs.process_run(run_id, worker_name=getattr(job, "worker_name", None))


def send_campaigns(now=None):
    """Send the due survey requests of every running campaign (paused accounts send nothing)."""
    from portal.domain.features import campaigns

    return campaigns.send_due(now=now)


def poll_social_feeds(now=None):
    """Import new posts from the connected social feeds that are due a poll."""
    from portal.domain.features import social

    return social.poll_due(now=now)


def send_webhooks():
    """Turn new audit events into webhook deliveries and send the due ones (failures retried with back-off)."""
    from portal.domain import webhooks

    return webhooks.run()
