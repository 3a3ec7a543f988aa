"""Webhook endpoints (super admins): a URL, the events it receives, its signing secret, enabled or not.

The URL must be http(s) and its host must resolve only to public addresses (portal.domain.egress) unless
WEBHOOK_ALLOW_PRIVATE is set; it is checked here when saved and again before every delivery. The secret
(`whsec_` and 43 URL-safe characters) is kept in clear, since the portal signs with it, and shown once:
when the endpoint is created and when the secret is rolled. An endpoint receives the events that happen
after it was created (or enabled again); while disabled, nothing is queued or sent for it.
"""
import secrets

from sqlalchemy import func, select, update

from portal.domain import audit, egress
from portal.domain.errors import DomainError, InvalidTransition, PermissionDenied, ValidationFailed
from portal.domain.gate import STAFF_ONLY_MESSAGE
from portal.domain.parsing import InvalidValue, clean_text, record_id
from portal.domain.webhooks.events import EVENT_TYPES
from portal.domain.webhooks.jobs import forget_endpoints, kick
from portal.domain.webhooks.settings import setting
from portal.extensions import db
from portal.models import AuditEvent, WebhookEndpoint
from portal.timeutil import utcnow

URL_MAX = 2000
DESCRIPTION_MAX = 200
SECRET_START = "whsec_"
URL_MESSAGES = {
    egress.EMPTY: "Enter the address that receives the events, starting with https:// or http://.",
    egress.TOO_LONG: f"Keep the address to {URL_MAX} characters.",
    egress.NOT_A_URL: "That is not a web address; enter one like https://billing.example.com/portal-events.",
    egress.SCHEME: "The address must start with https:// or http://.",
    egress.NO_HOST: "The address needs a host name, like https://billing.example.com/portal-events.",
    egress.CREDENTIALS: "Leave user names and passwords out of the address; the signature authenticates "
                        "the portal to the receiver.",
    egress.NOT_FOUND: "The host {host} could not be found.",
    egress.PRIVATE: "The address points inside a private network (a private, loopback or link-local "
                    "address), which the portal does not send to.",
}


class EndpointNotFound(DomainError):
    """No webhook endpoint with that id."""

    status_code = 404

    def __init__(self):
        super().__init__("No such webhook endpoint.")


def require_super_admin(actor):
    """Refuse anyone but an enabled super admin (endpoints belong to no account: the gate has no row)."""
    if getattr(actor, "role", None) != "super_admin" or getattr(actor, "disabled", False):
        raise PermissionDenied(STAFF_ONLY_MESSAGE)


def url_problem(exc):
    """The message for an egress.AddressRefused."""
    return URL_MESSAGES[exc.kind].format(host=exc.host)


def check_url(url):
    """Return the URL, stripped, if deliveries may go there (see the module's docstring).

    Raises:
        ValidationFailed(url): not http(s), no such host, or an address refused.
    """
    try:
        text = clean_text(url, "The address")
        egress.resolve(text, setting("WEBHOOK_ALLOW_PRIVATE"), URL_MAX)
    except InvalidValue as exc:
        raise ValidationFailed({"url": exc.message}) from None
    except egress.AddressRefused as exc:
        raise ValidationFailed({"url": url_problem(exc)}) from None
    return text


def parse_events(value):
    """Return the event types named in value (a list, or text separated by commas or spaces), in EVENT_TYPES order.

    Raises:
        ValidationFailed(events): none, or one that does not exist.
    """
    items = value if isinstance(value, (list, tuple, set)) else str(value or "").replace(",", " ").split()
    names = {str(item).strip() for item in items if str(item).strip()}
    unknown = sorted(names - set(EVENT_TYPES))
    if unknown:
        raise ValidationFailed({"events": f"Unknown event {unknown[0][:40]!r}; choose from "
                                          f"{', '.join(EVENT_TYPES)}."})
    if not names:
        raise ValidationFailed({"events": "Choose at least one event."})
    return [kind for kind in EVENT_TYPES if kind in names]


def _description(value):
    try:
        text = clean_text(value, "The description")
    except InvalidValue as exc:
        raise ValidationFailed({"description": exc.message}) from None
    if len(text) > DESCRIPTION_MAX:
        raise ValidationFailed({"description": f"Keep the description to {DESCRIPTION_MAX} characters (it has "
                                               f"{len(text)})."})
    return text or None


def _validated(url, events, description):
    errors, values = {}, {}
    for field, read in (("url", lambda: check_url(url)), ("events", lambda: parse_events(events)),
                        ("description", lambda: _description(description))):
        try:
            values[field] = read()
        except ValidationFailed as exc:
            errors.update(exc.field_errors)
    if errors:
        raise ValidationFailed(errors)
    return values


def _last_event_id():
    return db.session.scalar(select(func.max(AuditEvent.id))) or 0


def new_secret():
    """A new signing secret."""
    return SECRET_START + secrets.token_urlsafe(32)


def create_endpoint(actor, url, events, description=None, now=None):
    """Register an endpoint; it receives the chosen events from now on, signed with a new secret.

    Args:
        actor: the super admin (a User).
        url: where to POST the events (see check_url).
        events: the event types (see parse_events).
        description: what receives them, up to 200 characters (optional).
        now: the time of creation (default now).

    Returns:
        (WebhookEndpoint, secret): the secret, to show once.

    Raises:
        PermissionDenied: not a super admin.
        ValidationFailed: url, events or description (field_errors names each).
    """
    require_super_admin(actor)
    now = now or utcnow()
    values = _validated(url, events, description)
    secret = new_secret()
    endpoint = WebhookEndpoint(url=values["url"], events=" ".join(values["events"]), description=values["description"],
                               secret=secret, enabled=True, created_by_id=actor.id, created_at=now,
                               starts_after_event_id=_last_event_id())
    db.session.add(endpoint)
    db.session.flush()
    audit.record("webhook_endpoint_created", None, actor, now=now,
                 data={"endpoint_id": endpoint.id, "url": endpoint.url, "events": values["events"]})
    db.session.commit()
    forget_endpoints()
    return endpoint, secret


def get_endpoint(endpoint_id):
    """Return the endpoint with this id (any value; bad ones are not found).

    Raises:
        EndpointNotFound.
    """
    endpoint_id = record_id(endpoint_id)
    endpoint = db.session.get(WebhookEndpoint, endpoint_id) if endpoint_id is not None else None
    if endpoint is None:
        raise EndpointNotFound()
    return endpoint


def list_endpoints(limit=200):
    """Return the endpoints, newest first."""
    return list(db.session.scalars(select(WebhookEndpoint).order_by(WebhookEndpoint.id.desc()).limit(limit)))


def update_endpoint(actor, endpoint_id, url, events, description=None, now=None):
    """Change an endpoint's URL, events and description (deliveries already queued keep their body).

    Raises:
        PermissionDenied, EndpointNotFound, ValidationFailed (url, events, description).
    """
    require_super_admin(actor)
    now = now or utcnow()
    endpoint = get_endpoint(endpoint_id)
    values = _validated(url, events, description)
    before = {"url": endpoint.url, "events": endpoint.event_list, "description": endpoint.description}
    endpoint.url, endpoint.events = values["url"], " ".join(values["events"])
    endpoint.description, endpoint.updated_at = values["description"], now
    audit.record("webhook_endpoint_updated", None, actor, now=now,
                 data={"endpoint_id": endpoint.id, "before": before,
                       "after": {"url": endpoint.url, "events": values["events"],
                                 "description": endpoint.description}})
    db.session.commit()
    return endpoint


def set_enabled(actor, endpoint_id, enabled, now=None):
    """Enable or disable an endpoint. Enabled again, it receives the events from then on.

    Deliveries already queued wait while it is disabled (none is lost) and go out once it is enabled.

    Raises:
        PermissionDenied, EndpointNotFound, InvalidTransition (it already is; nothing changes).
    """
    require_super_admin(actor)
    now = now or utcnow()
    endpoint = get_endpoint(endpoint_id)
    values = {"enabled": bool(enabled)}
    if enabled:
        values["starts_after_event_id"] = _last_event_id()
    done = db.session.execute(update(WebhookEndpoint)
                              .where(WebhookEndpoint.id == endpoint.id, WebhookEndpoint.enabled.is_(not enabled))
                              .values(updated_at=now, **values).execution_options(synchronize_session=False))
    if done.rowcount != 1:
        db.session.rollback()
        raise InvalidTransition(f"The endpoint is already {'enabled' if enabled else 'disabled'}; nothing changed.")
    audit.record("webhook_endpoint_enabled" if enabled else "webhook_endpoint_disabled", None, actor, now=now,
                 data={"endpoint_id": endpoint.id, "url": endpoint.url})
    db.session.commit()
    forget_endpoints()
    if enabled:
        kick(now)  # what waited while it was disabled goes out now
    db.session.refresh(endpoint)
    return endpoint


def roll_secret(actor, endpoint_id, now=None):
    """Give the endpoint a new secret at once: every delivery from now on, retries included, is signed with it.

    Returns:
        (WebhookEndpoint, secret): the new secret, to show once.

    Raises:
        PermissionDenied, EndpointNotFound.
    """
    require_super_admin(actor)
    now = now or utcnow()
    endpoint = get_endpoint(endpoint_id)
    secret = new_secret()
    endpoint.secret, endpoint.updated_at = secret, now
    audit.record("webhook_secret_rolled", None, actor, now=now, data={"endpoint_id": endpoint.id, "url": endpoint.url})
    db.session.commit()
    return endpoint, secret
