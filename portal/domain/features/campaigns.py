"""(being written)"""


def enqueue_due(now):  # replaced by the feature's own
    return None


def plan_requests(account, records, now):
    """Add, in the caller's transaction, the survey requests the account's running campaigns ask for.

    Args:
        account: the Account the records belong to.
        records: the IngestionRecord rows just inserted (flushed, so they have ids).
        now: the time of ingestion.

    Returns:
        How many survey requests were planned.
    """
    return 0  # replaced by the campaigns feature
