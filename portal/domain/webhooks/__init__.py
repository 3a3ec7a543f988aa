"""Webhooks out: signed HTTP POSTs to the URLs an operator registers, for the events they choose.

    events     the event types and how an audit event becomes one (its JSON body)
    endpoints  register, enable or disable an endpoint, roll its secret (super admins)
    relay      turn new audit events into delivery rows (the outbox), once per endpoint and event
    delivery   send the due deliveries, signed, with retries and back-off; the log; "send again"
    signing    the Portal-Signature header (HMAC-SHA256 over "{timestamp}.{body}", the Stripe scheme)
    jobs       the scheduler's tick and the kick after a change queue one job: relay, then send

How an event becomes a delivery (why a relay). Every change the portal announces already writes its audit
event in its own transaction (portal.domain.audit.record, and the run engine's and the dunning run's
set-based INSERT ... SELECT of thousands of rows per chunk). The relay reads the append-only audit_events
table by an id cursor and inserts one webhook_deliveries row per subscribed endpoint with event_id = the
audit event's id. So:
- nothing is lost: an event exists exactly when its change committed (same transaction), and the relay
  reaches it later whatever crashed in between; the relay's reading and the cursor it moves commit
  together;
- nothing is announced twice: the unique (endpoint_id, event_id) makes writing a delivery again a no-op
  (INSERT ... ON CONFLICT DO NOTHING), whatever the cursor says after a crash or a restore;
- the domain functions and the run engine (chunk.py, daily_sql.py) stay as they are: no webhook code in
  each change, no second INSERT ... SELECT per chunk to keep in step with the first.
The cost is a delay (the next job: a kick right after a change, or the scheduler's tick each minute) and
one subtlety: on PostgreSQL ids are taken when rows are inserted but become visible when their transaction
commits, so a reader can see id 11 before id 10 (a long chunk still running). The relay notes such ids as
gaps and looks for them again on every run until they appear or WEBHOOK_GAP_SECONDS have passed since it
first saw the gap (a rolled-back transaction's ids never appear). SQLite has one writer at a time, so its
ids become visible in order.

Deliveries are at least once on the wire: a worker that dies after the receiver answered but before the
result is stored sends that delivery again. Receivers dedupe by the event id (`Portal-Event-Id`, and "id"
in the body), as with Stripe.
"""
from portal.domain.webhooks.delivery import (deliver_due, deliveries_of, get_delivery, resend,  # noqa: F401
                                             status_counts)
from portal.domain.webhooks.endpoints import (EndpointNotFound, check_url, create_endpoint,  # noqa: F401
                                              get_endpoint, list_endpoints, roll_secret, set_enabled,
                                              update_endpoint)
from portal.domain.webhooks.events import EVENT_TYPES  # noqa: F401
from portal.domain.webhooks.jobs import enqueue_due, kick, run  # noqa: F401
from portal.domain.webhooks.signing import SIGNATURE_HEADER, sign, verify  # noqa: F401
