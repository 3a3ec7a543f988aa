"""`flask ...` commands: thin click wrappers over the same domain functions the pages call.

    common    --as-of values, finding accounts and people, domain errors as exit 1
    demo      demo data and sending the outbox by hand
    accounts  suspend, reactivate, create, show, shift, lift, set-class
    sweeps    preview, run, follow, undo and resume runs; the scheduler
    dunning   customer classes, billing (invoices, payments, write-offs) and the daily dunning run
    cancellations  cancellation requests: log, list, retention, import, pauses ending
    ingestion, campaigns, social  ingestion keys, campaign sends, social feed polls
    api       API tokens (create, list, revoke, prune) and the OpenAPI document
"""
from portal.cli.accounts import account
from portal.cli.api import api_group, api_token
from portal.cli.cancellations import cancellation
from portal.cli.common import parse_as_of  # noqa: F401  (the one --as-of format)
from portal.cli.demo import demo, outbox_deliver
from portal.cli.dunning import billing, class_group, dunning
from portal.cli.campaigns import campaign
from portal.cli.ingestion import ingestion
from portal.cli.social import social
from portal.cli.sweeps import scheduler, sweep

COMMANDS = [demo, outbox_deliver, account, sweep, scheduler, class_group, billing, dunning, cancellation, ingestion,
            campaign, social, api_token, api_group]
