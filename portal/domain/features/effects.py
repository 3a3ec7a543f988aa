"""The effect matrix: what each action does for each role in each account state, asked of the gate itself.

Nothing here decides anything. Every cell comes from `portal.domain.gate.may()` for a stand-in actor and
account in that state, so the page shows what the code does and cannot drift from it. This module only adds
the words people read: a plain label per action and the feature it belongs to.
"""
from dataclasses import dataclass
from types import SimpleNamespace

from portal.domain import gate
from portal.models.accounts import ROLE_LABELS as PEOPLE_ROLE_LABELS

# The features, in the order the page shows them.
FEATURES = {
    "access": "Sign-in and account pages",
    "reservations": "Reservations",
    "campaigns": "Campaigns",
    "surveys": "Surveys and reminders",
    "ingestion": "Data ingestion",
    "listings": "Listings",
    "profile": "Public profile",
    "social": "Social monitor",
    "email": "Email",
    "staff": "Staff actions",
}

# Every gate action: (plain label, feature). tests/test_effects.py fails if a gate action has none.
ACTION_LABELS = {
    "login": ("Sign in", "access"),
    "use_portal": ("Use the portal's pages", "access"),
    "view_account": ("See the account", "access"),
    "view_invoices": ("See invoices", "access"),
    "edit_settings": ("Change the account's settings", "access"),
    "book_reservation": ("Book a reservation", "reservations"),
    "manage_campaigns": ("Create, pause or end a campaign", "campaigns"),
    "run_campaign": ("Send a campaign's due surveys (automated)", "campaigns"),
    "send_survey": ("Send a survey by hand", "surveys"),
    "send_reminder": ("Send a reminder by hand", "surveys"),
    "import_data": ("Upload customers' visits (CSV)", "ingestion"),
    "ingest_data": ("Take in visits through the ingestion endpoint (automated)", "ingestion"),
    "create_key": ("Create an ingestion key", "ingestion"),
    "revoke_key": ("Revoke an ingestion key", "ingestion"),
    "edit_listing": ("Edit a listing", "listings"),
    "publish_listing": ("Publish a listing", "listings"),
    "manage_listings": ("Add a listing, connect or disconnect a directory", "listings"),
    "edit_profile": ("Edit the public profile", "profile"),
    "view_public_profile": ("See the public profile", "profile"),
    "import_posts": ("Import posts from connected feeds (automated)", "social"),
    "send_alert": ("Email an alert about a new post (automated)", "social"),
    "act_on_post": ("Reply to, flag or hide a post", "social"),
    "receive_email": ("Receive email notifications", "email"),
    "send_notification": ("Send email notifications to people (automated)", "email"),
    "suspend": ("Suspend an account", "staff"),
    "reactivate": ("Reactivate an account", "staff"),
    "cancel": ("Cancel an account", "staff"),
    "write_off": ("Write off invoices", "staff"),
    "shift": ("Shift a limitation or suspension to a later date", "staff"),
    "lift": ("Lift a restriction until a date", "staff"),
    "set_exempt": ("Exempt an account from sweeps and dunning", "staff"),
    "manage_rules": ("Edit suspension rules and the sweep schedule", "staff"),
    "run_sweep": ("Run a sweep", "staff"),
    "log_cancellation_request": ("Log a cancellation request", "staff"),
    "record_retention": ("Record a retention attempt", "staff"),
    "export_accounts": ("Export accounts (CSV)", "staff"),
    "add_invoice": ("Add an invoice", "staff"),
    "record_payment": ("Record a payment", "staff"),
    "manage_classes": ("Edit customer classes", "staff"),
    "set_class": ("Change an account's customer class", "staff"),
    "create_account": ("Create an account", "staff"),
    "manage_api_tokens": ("Create and revoke API tokens", "staff"),
    "resend_email": ("Send a failed email again", "staff"),
}

ROLE_LABELS = dict(PEOPLE_ROLE_LABELS, system="System (automated work)", public="Public (not signed in)")

ALLOWED, REFUSED_BY_STATE, NOT_THIS_ROLE = "allowed", "state", "role"


@dataclass(frozen=True)
class Effect:
    """One cell: allowed, or the message the gate shows; `kind` says whether the state or the role refuses."""

    role: str
    allowed: bool
    message: str
    kind: str


@dataclass(frozen=True)
class Row:
    """One action's cells, one per role shown."""

    action: str
    label: str
    cells: tuple


@dataclass(frozen=True)
class Group:
    """The rows of one feature."""

    feature: str
    label: str
    rows: tuple


@dataclass(frozen=True)
class Section:
    """One account state: its label, how many actions it refuses that Active allows, and its groups."""

    state: str
    label: str
    paused: int
    groups: tuple


def _stand_in(role, account):
    """An actor of role acting on account, in the shape may() reads (the public is None, automated work "system")."""
    if role == "public":
        return None
    if role == "system":
        return "system"
    return SimpleNamespace(role=role, account_id=account.id, disabled=False)


def effect(state, role, action):
    """Ask the gate what action does for role on an account in state.

    Args:
        state: one of gate.STATES (a stored account status).
        role: one of gate.ROLES.
        action: one of gate.ACTIONS.

    Returns:
        Effect, with the gate's message as may() formats it (the billing contact filled in).
    """
    account = SimpleNamespace(id=0, status=state)
    decision = gate.may(_stand_in(role, account), action, account)
    if decision.allowed:
        return Effect(role, True, "", ALLOWED)
    kind = REFUSED_BY_STATE if action in gate.ROLE_ACTIONS.get(role, ()) else NOT_THIS_ROLE
    return Effect(role, False, decision.message, kind)


def normalise_filters(role=None, feature=None):
    """Return (role, feature) with anything unknown or empty turned into None (show all)."""
    return (role if role in gate.ROLES else None, feature if feature in FEATURES else None)


def _label_of(action):
    """(label, feature) of an action; one the gate has gained without a label still shows, under "other"."""
    return ACTION_LABELS.get(action, (action, "other"))


def _ordered_actions():
    """The gate's actions in the order of ACTION_LABELS (the way people read them), unlabelled ones last."""
    order = {action: i for i, action in enumerate(ACTION_LABELS)}
    return sorted(gate.ACTIONS, key=lambda a: (order.get(a, len(order)), a))


def _actions_by_feature(feature):
    for key, label in (*FEATURES.items(), ("other", "Other actions")):
        if feature is not None and key != feature:
            continue
        actions = tuple(a for a in _ordered_actions() if _label_of(a)[1] == key)
        if actions:
            yield key, label, actions


def matrix(role=None, feature=None):
    """Build the effect matrix from the gate: one Section per state, rows grouped by feature.

    Args:
        role: show only this role's column (None: every role).
        feature: show only this feature's actions (None: every feature).

    Returns:
        A tuple of Section, in the order of gate.STATES.
    """
    role, feature = normalise_filters(role, feature)
    roles = (role,) if role else gate.ROLES
    sections = []
    for state in gate.STATES:
        groups, paused = [], 0
        for key, label, actions in _actions_by_feature(feature):
            rows = []
            for action in actions:
                cells = tuple(effect(state, r, action) for r in roles)
                paused += sum(1 for c in cells if c.kind == REFUSED_BY_STATE)
                rows.append(Row(action, _label_of(action)[0], cells))
            groups.append(Group(key, label, tuple(rows)))
        sections.append(Section(state, gate.STATE_LABELS.get(state, state), paused, tuple(groups)))
    return tuple(sections)


def display_only_labels():
    """The dunning schedule's labels that are not stored states (pending, delayed): the gate never sees them."""
    return tuple(label for key, label in gate.STATE_LABELS.items() if key not in gate.STATES)
