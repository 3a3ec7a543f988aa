"""API tokens (super admins): create a named token with scopes and an expiry (shown once), see each token's
prefix, last use and log of uses and refusals, and revoke one (with confirmation)."""
from flask import Blueprint, flash, request
from flask_login import current_user

from portal.domain import api_tokens
from portal.domain.errors import InvalidTransition, ValidationFailed
from portal.domain.parsing import record_id
from portal.timeutil import utcnow
from portal.web.access import SUPER_ADMIN, roles_required
from portal.web.helpers import redirect_after_post, render

bp = Blueprint("api_tokens", __name__, url_prefix="/settings/api-tokens")
EVENTS_PAGE = 50


def _index(status=200, form=None, errors=None, new_token=None, new_text=None):
    today = utcnow().date()
    form = form or {"scopes": [], "expires": api_tokens.parse_expiry(None, today).isoformat()}
    return render("api_tokens/index.html", block="tokens" if status != 200 or new_token else None, status=status,
                  rows=[(token, maker, api_tokens.state_of(token)) for token, maker in api_tokens.list_tokens()],
                  scopes=api_tokens.SCOPES, form=form, errors=errors or {}, new_token=new_token, new_text=new_text,
                  max_days=api_tokens.MAX_DAYS)


@bp.route("")
@roles_required(SUPER_ADMIN)
def index():
    """List the API tokens and show the form that creates one."""
    return _index()


@bp.route("", methods=["POST"])
@roles_required(SUPER_ADMIN)
def create():
    """Create a token; its text is shown on this answer only."""
    form = {"name": request.form.get("name", ""), "scopes": request.form.getlist("scopes"),
            "expires": request.form.get("expires", "")}
    try:
        token, text = api_tokens.create_token(current_user._get_current_object(), form["name"], form["scopes"],
                                              form["expires"])
    except ValidationFailed as exc:
        return _index(422, form, exc.field_errors)
    return _index(new_token=token, new_text=text)


def _detail(token_id, status=200, block=None, errors=None, form_error=None):
    token = api_tokens.get_token(token_id)
    before = record_id(request.args.get("before")) if request.args.get("before") else None
    events = api_tokens.events_of(token.id, before_id=before, limit=EVENTS_PAGE + 1)
    return render("api_tokens/detail.html", block=block, status=status, token=token,
                  state=api_tokens.state_of(token), events=events[:EVENTS_PAGE],
                  older=events[EVENTS_PAGE - 1].id if len(events) > EVENTS_PAGE else None, paged=bool(before),
                  scopes=api_tokens.SCOPES, errors=errors or {}, form_error=form_error)


@bp.route("/<int:token_id>")
@roles_required(SUPER_ADMIN)
def detail(token_id):
    """Show one token and its log of uses and refusals, newest first."""
    return _detail(token_id, block="events" if request.args.get("before") else None)


@bp.route("/<int:token_id>/revoke", methods=["POST"])
@roles_required(SUPER_ADMIN)
def revoke(token_id):
    """Revoke the token (the box must be ticked to confirm)."""
    if not request.form.get("confirm"):
        return _detail(token_id, 422, "revoke_form", {"confirm": "Tick the box to confirm the revocation."})
    try:
        token = api_tokens.revoke_token(current_user._get_current_object(), token_id)
    except InvalidTransition as exc:
        return _detail(token_id, 409, "revoke_form", form_error=exc.message)
    flash(f"The token {token.prefix}… ({token.name}) is revoked; requests with it are refused from now on.",
          "success")
    return redirect_after_post("api_tokens.detail", token_id=token.id)
