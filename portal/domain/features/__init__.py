"""What an account does, each feature asking the gate (portal.domain.gate.may) before it acts.

    ingestion  keys, the CSV upload and the endpoint's records (refused while suspended: nothing inserted)
    campaigns  automated campaigns and the job that sends their due survey requests through the outbox
    surveys    surveys and reminders sent by hand
    listings   listings and their directory connections (kept untouched; editing refused while suspended)
    profiles   the public profile (visible while suspended; only super admins edit it then)
    social     the social monitor: feeds polled by a job, alerts (held while suspended, one summary after)
    ticks      the scheduler's part: queue the campaign and feed jobs
    effects    the effect matrix, read from the gate's table
"""
