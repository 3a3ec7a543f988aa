"""The scheduler's part in the features: queue the campaign job, the feed polls and the webhook job (failures
never stop a tick)."""
import logging

from portal.extensions import db

log = logging.getLogger(__name__)


def tick(now):
    """Queue the due campaign sends, feed polls and webhook deliveries; return what was queued, by feature."""
    from portal.domain import webhooks
    from portal.domain.features import campaigns, social

    result = {}
    for name, start in (("campaigns", campaigns.enqueue_due), ("social", social.enqueue_polls),
                        ("webhooks", webhooks.enqueue_due)):
        try:
            result[name] = start(now)
        except Exception:  # noqa: BLE001 - logged; the next tick tries again, the rest of the tick goes on
            db.session.rollback()
            log.exception("the %s job could not be queued", name)
            result[name] = None
    return result
