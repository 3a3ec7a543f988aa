"""One place that decides full page or fragment, plus htmx response helpers and page context."""
from flask import abort, current_app, has_request_context, make_response, redirect, render_template, request, url_for
from flask_login import current_user
from jinja2_fragments.flask import render_block

from portal.domain.gate import REASONS, STATE_LABELS, banner_for
from portal.domain.money import dollars
from portal.domain.suspension import REASON_LABELS, reasons_for
from portal.web import words
from portal.web.safe_next import safe_next


def is_fragment_request():
    """True for a plain htmx request: HX-Request set, not boosted, not a history restore."""
    return (request.headers.get("HX-Request") == "true"
            and request.headers.get("HX-Boosted") != "true"
            and request.headers.get("HX-History-Restore-Request") != "true")


def render(template, block=None, status=200, headers=None, **context):
    """Render the whole page, or only `block` of it for a plain htmx request; always Vary: HX-Request."""
    if block and is_fragment_request():
        body = render_block(template, block, **context)
    else:
        body = render_template(template, **context)
    response = make_response(body, status)
    response.vary.add("HX-Request")
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response


def redirect_after_post(endpoint_or_url, trigger=None, **values):
    """303 to a page for plain posts; for htmx, HX-Redirect there (or 204 with an HX-Trigger event).

    A URL (starting with "/") must pass safe_next; one that does not goes to the home page instead.
    """
    if endpoint_or_url.startswith("/"):
        url = safe_next(endpoint_or_url) or url_for("home.index")
    else:
        url = url_for(endpoint_or_url, **values)
    if request.headers.get("HX-Request") == "true":
        response = make_response("", 204)
        if trigger:
            response.headers["HX-Trigger"] = trigger
        else:
            response.headers["HX-Redirect"] = url
        return response
    return redirect(url, code=303)


# Staff navigation after "Accounts" ("first": before it); an entry shows once its page exists and the role may see it.
STAFF_NAV = [
    {"endpoint": "overview.index", "label": "Overview", "roles": ("super_admin", "support"), "first": True},
    {"endpoint": "cancellations.index", "label": "Cancellations", "roles": ("super_admin", "support")},
    {"endpoint": "rules.index", "label": "Rules", "roles": ("super_admin",)},
    {"endpoint": "sweeps.index", "label": "Sweeps", "roles": ("super_admin",)},
    {"endpoint": "classes.index", "label": "Classes", "roles": ("super_admin",)},
    {"endpoint": "dunning.upcoming", "label": "Upcoming", "roles": ("super_admin", "support")},
    {"endpoint": "dunning.index", "label": "Dunning", "roles": ("super_admin",)},
    {"endpoint": "effects.index", "label": "Effects", "roles": ("super_admin", "support")},
    {"endpoint": "api_tokens.index", "label": "API tokens", "roles": ("super_admin",)},
    {"endpoint": "webhooks.index", "label": "Webhooks", "roles": ("super_admin",)},
    {"endpoint": "audit_log.index", "label": "Audit log", "roles": ("super_admin", "support")},
    {"endpoint": "outbox.index", "label": "Outbox", "roles": ("super_admin", "support")},
]


# The customers' navigation after "My account"; an entry shows once its page exists and the role may see it.
CUSTOMER_NAV = [
    {"endpoint": "home.my_account", "label": "My account", "roles": ("account_manager",)},
    {"endpoint": "reservations.index", "label": "Reservations", "roles": ("account_manager", "tier_manager", "user")},
    {"endpoint": "campaigns.index", "label": "Campaigns", "roles": ("account_manager",)},
    {"endpoint": "surveys.index", "label": "Surveys", "roles": ("account_manager", "tier_manager")},
    {"endpoint": "ingestion.index", "label": "Data", "roles": ("account_manager",)},
    {"endpoint": "listings.index", "label": "Listings", "roles": ("account_manager", "tier_manager")},
    {"endpoint": "profiles.edit", "label": "Profile", "roles": ("account_manager",)},
    {"endpoint": "social.index", "label": "Social", "roles": ("account_manager", "tier_manager")},
]


def _page_context():
    if not has_request_context():  # emails rendered by jobs and CLI commands
        return {"state_labels": STATE_LABELS, "reasons": REASONS, "reason_labels": REASON_LABELS,
                "billing_contact": current_app.config["BILLING_CONTACT"]}
    user = current_user if current_user.is_authenticated else None
    account = user.account if user is not None and not user.is_staff else None
    return {
        "suspension_banner": banner_for(user, account) if user is not None else None,
        "state_labels": STATE_LABELS,
        "reasons": REASONS,  # the suspension's reasons (choices); reason_labels names every stored reason
        "reason_labels": REASON_LABELS,
        "billing_contact": current_app.config["BILLING_CONTACT"],
        "staff_nav": [item for item in STAFF_NAV if item["endpoint"] in current_app.view_functions],
        "customer_nav": [item for item in CUSTOMER_NAV if item["endpoint"] in current_app.view_functions],
    }


def money(cents):
    """Format cents as dollars."""
    return "" if cents is None else dollars(cents)


def may_open(endpoint):
    """True when the signed-in user's role may open the page of endpoint (the roles its view declares)."""
    view = current_app.view_functions.get(endpoint)
    roles = getattr(view, "allowed_roles", ())
    if roles == "public":
        return True
    return bool(current_user and current_user.is_authenticated and current_user.role in roles)


NUL_MESSAGE = "Your input contains a character that can't be used (a NUL byte). Remove it and try again."


def refuse_nul_bytes():
    """Refuse input holding NUL characters: no field can use one, and PostgreSQL rejects them (a 500 otherwise)."""
    sources = (request.args.items(multi=True), request.form.items(multi=True))
    if "\x00" in request.path or any("\x00" in value for source in sources for _key, value in source):
        abort(400, NUL_MESSAGE)


def init_app(app):
    """Register the context processor, filters and input checks used by every page."""
    app.before_request(refuse_nul_bytes)
    app.context_processor(_page_context)
    app.add_template_global(safe_next, "safe_next")
    app.add_template_global(reasons_for, "reasons_for")  # the reason choices of an action (reactivate has its own)
    app.add_template_filter(money, "money")
    words.init_app(app)  # count, plural and dt (times in the display zone)
    app.add_template_global(may_open, "may_open")
