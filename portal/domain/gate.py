"""The one gate: every feature asks `may(actor, action, account)`.

Suspension is an overlay, never a mutation. Nothing about an account's users, campaigns, listings or
profile is rewritten when it is restricted; the gate reads the account's state and answers. Every
(state x role x action) rule lives in TABLE below, built from the plain lists that follow.
"""
from dataclasses import dataclass

from flask import current_app, has_app_context

from portal.domain.errors import PermissionDenied

# The states stored in accounts.status, which the gate reads. The dunning schedule derives the
# "pending" and "delayed" states for display (STATE_LABELS); service follows the stored state until
# the scheduled date, so those never reach the gate.
STATES = ("active", "limited", "suspended", "cancelled")
STATE_LABELS = {
    "active": "Active",
    "limitation_pending": "Limitation pending",
    "limitation_delayed": "Service limitation delayed",
    "limited": "Limited",
    "suspension_pending": "Suspension pending",
    "suspension_delayed": "Suspension delayed",
    "suspended": "Suspended",
    "cancelled": "Cancelled",
}

REASONS = {
    "non_payment": "Non-payment",
    "inactivity": "Inactivity",
    "customer_request": "Customer request",
    "policy_violation": "Policy violation",
    "other": "Other",
}

# Roles: staff, customers, and "system" for automated work (campaign runner, ingestion, social monitor).
ROLES = ("super_admin", "support", "account_manager", "tier_manager", "user", "system", "public")

# What each role may do on an active account (role permissions, before any state overlay).
ROLE_ACTIONS = {
    "super_admin": {
        "use_portal", "login", "view_account", "view_invoices", "edit_profile", "suspend", "reactivate",
        "cancel", "write_off", "shift", "lift", "set_exempt", "manage_rules", "run_sweep",
        "log_cancellation_request", "record_retention", "export_accounts", "add_invoice", "record_payment",
        "manage_classes", "set_class", "create_account", "create_key", "revoke_key", "manage_api_tokens",
        "resend_email",
    },
    "support": {"use_portal", "login", "view_account", "view_invoices", "log_cancellation_request",
                "export_accounts"},
    "account_manager": {
        "use_portal", "login", "view_account", "view_invoices", "receive_email", "book_reservation",
        "edit_settings", "edit_profile", "edit_listing", "publish_listing", "send_survey", "send_reminder",
        "act_on_post", "manage_campaigns", "import_data", "create_key", "revoke_key", "manage_listings",
    },
    "tier_manager": {
        "use_portal", "login", "view_account", "receive_email", "book_reservation", "edit_listing",
        "send_survey", "send_reminder", "act_on_post",
    },
    "user": {"use_portal", "login", "view_account", "receive_email", "book_reservation"},
    "system": {"run_campaign", "ingest_data", "import_posts", "send_alert", "send_notification"},
    "public": {"view_public_profile"},
}

STAFF_ONLY_MESSAGE = "Only a super admin can do this."
NOT_ALLOWED_MESSAGE = "Your role does not allow this action."

# Messages shown to customers. {billing_contact} comes from configuration; {reason} from the reason.
MEMBER_SUSPENDED = ("Your account has been temporarily suspended. "
                    "Please contact your account administrator for details.")
MANAGER_READ_ONLY = ("Your account is suspended, so this can't be changed right now. "
                     "To reactivate your account, please contact {billing_contact}.")
BOOKING_SUSPENDED = ("Your account is suspended, so new reservations can't be made right now. "
                     "To reactivate your account and book again, please contact {billing_contact}.")
BOOKING_LIMITED = ("Service on your account is limited because of overdue invoices, so new reservations "
                   "can't be made. Paying the overdue invoices restores service at once; "
                   "questions: {billing_contact}.")
LIMITED_FEATURE = ("Service on your account is limited because of overdue invoices. "
                   "Paying them restores this at once; questions: {billing_contact}.")
CANCELLED = "This account has been cancelled. Please contact {billing_contact} if you believe this is a mistake."
UNKNOWN_STATE = "This account is not available right now. Please contact {billing_contact}."
PAUSED = "Paused while the account is suspended."
PAUSED_LIMITED = "Paused while the account's service is limited."
STOPPED_CANCELLED = "Stopped: the account has been cancelled."

SUSPENSION_BANNERS = {
    "non_payment": "Your account has been suspended for non-payment of dues.",
    "inactivity": "Your account has been suspended because it has been inactive.",
    "customer_request": "Your account has been suspended at your request.",
    "policy_violation": "Your account has been suspended for a violation of our terms of service.",
    "other": "Your account has been suspended.",
}

# import_data is a manager's own CSV upload (keyed ingestion through the endpoint is the system's ingest_data);
# create_key makes an ingestion key (super admins too, for scripts); revoke_key stays allowed while suspended:
# taking a leaked key away must always be possible.
# State overlays: for each state, per role, the actions refused and with what message.
# An action not listed is allowed if the role allows it (ROLE_ACTIONS).
_CUSTOMER_WRITE_ACTIONS = ("book_reservation", "edit_settings", "edit_profile", "edit_listing",
                           "publish_listing", "send_survey", "send_reminder", "act_on_post",
                           "manage_campaigns", "import_data", "manage_listings", "create_key")
_SYSTEM_ACTIONS_PAUSED = ("run_campaign", "ingest_data", "send_alert", "send_notification")

OVERLAYS = {
    "active": {},
    "limited": {
        "account_manager": {"book_reservation": BOOKING_LIMITED, "send_survey": LIMITED_FEATURE,
                            "send_reminder": LIMITED_FEATURE, "manage_campaigns": LIMITED_FEATURE,
                            "import_data": LIMITED_FEATURE},
        "tier_manager": {"book_reservation": BOOKING_LIMITED, "send_survey": LIMITED_FEATURE,
                         "send_reminder": LIMITED_FEATURE},
        "user": {"book_reservation": BOOKING_LIMITED},
        "system": {"run_campaign": PAUSED_LIMITED, "ingest_data": PAUSED_LIMITED},
    },
    "suspended": {
        "account_manager": dict({a: MANAGER_READ_ONLY for a in _CUSTOMER_WRITE_ACTIONS},
                                book_reservation=BOOKING_SUSPENDED),
        "tier_manager": {a: MEMBER_SUSPENDED for a in ROLE_ACTIONS["tier_manager"]},
        "user": {a: MEMBER_SUSPENDED for a in ROLE_ACTIONS["user"]},
        "system": {a: PAUSED for a in _SYSTEM_ACTIONS_PAUSED},
    },
    "cancelled": {
        "account_manager": {a: CANCELLED for a in ROLE_ACTIONS["account_manager"]},
        "tier_manager": {a: CANCELLED for a in ROLE_ACTIONS["tier_manager"]},
        "user": {a: CANCELLED for a in ROLE_ACTIONS["user"]},
        "system": {a: STOPPED_CANCELLED for a in ROLE_ACTIONS["system"]},
        "public": {"view_public_profile": "This profile is no longer available."},
    },
}

ACTIONS = tuple(sorted(set().union(*ROLE_ACTIONS.values())))


@dataclass(frozen=True)
class Decision:
    """The gate's answer: allowed or not, and the message to show when not."""

    allowed: bool
    message: str = ""

    def __bool__(self):
        return self.allowed


# Actions only a super admin has (a customer's own actions that super admins share, such as edit_profile, are not).
_SUPER_ADMIN_ONLY = ROLE_ACTIONS["super_admin"] - set().union(
    *(actions for role, actions in ROLE_ACTIONS.items() if role != "super_admin"))


def _build_table():
    """Expand ROLE_ACTIONS and OVERLAYS into {(state, role, action): message or None}."""
    table = {}
    for state in STATES:
        for role in ROLES:
            overlay = OVERLAYS[state].get(role, {})
            for action in ACTIONS:
                if action not in ROLE_ACTIONS[role]:
                    staff_action = action in _SUPER_ADMIN_ONLY
                    table[(state, role, action)] = STAFF_ONLY_MESSAGE if staff_action else NOT_ALLOWED_MESSAGE
                else:
                    table[(state, role, action)] = overlay.get(action)
    return table


TABLE = _build_table()


def _billing_contact():
    if has_app_context():
        return current_app.config.get("BILLING_CONTACT", "billing")
    return "billing"


def _role_of(actor):
    if actor is None:
        return "public"
    if isinstance(actor, str):
        return actor
    return actor.role


def may(actor, action, account):
    """Decide whether actor may do action on account, reading the account's current state.

    Args:
        actor: a User, a role name ("system", "public"), or None for the public.
        action: one of ACTIONS.
        account: the Account acted on, or None for actions outside any account (staff pages).

    Returns:
        Decision(allowed, message); the message is ready to show to the actor.

    Raises:
        ValueError: action is not one of ACTIONS (a programming error, not a refusal).
    """
    role = _role_of(actor)
    if action not in ACTIONS:
        raise ValueError(f"unknown gate action {action!r}")
    if role not in ROLES:
        return Decision(False, NOT_ALLOWED_MESSAGE)
    if role in ("account_manager", "tier_manager", "user"):
        if account is None or getattr(actor, "account_id", None) != account.id:
            return Decision(False, NOT_ALLOWED_MESSAGE)
    if getattr(actor, "disabled", False):
        return Decision(False, "This sign-in has been disabled.")
    state = account.status if account is not None else "active"
    message = TABLE.get((state, role, action), UNKNOWN_STATE)  # an unknown state refuses, never crashes
    if message is None:
        return Decision(True)
    return Decision(False, message.format(billing_contact=_billing_contact()))


def require(actor, action, account):
    """Ask the gate and raise if it refuses; the domain functions' way of calling may().

    Raises:
        PermissionDenied: the gate refused; its message says why and what to do.
    """
    decision = may(actor, action, account)
    if not decision:
        raise PermissionDenied(decision.message)
    return decision


def banner_for(actor, account):
    """Return the suspension banner shown on every page to an account manager, or None."""
    if account is None or _role_of(actor) != "account_manager" or account.status != "suspended":
        return None
    lead = SUSPENSION_BANNERS.get(account.status_reason or "other", SUSPENSION_BANNERS["other"])
    return f"{lead} To reactivate your account, please contact {_billing_contact()}."
