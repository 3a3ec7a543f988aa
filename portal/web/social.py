"""Customers' social monitor: connected feeds, imported posts, reply/flag/hide (the gate decides)."""
from flask import Blueprint, flash, request
from flask_login import current_user

from portal.domain.errors import PermissionDenied, ValidationFailed
from portal.domain.features import social_posts, social_profiles
from portal.domain.gate import may
from portal.domain.parsing import record_id
from portal.web.access import roles_required
from portal.web.helpers import is_fragment_request, redirect_after_post, render

bp = Blueprint("social", __name__, url_prefix="/social")

MANAGERS = ("account_manager", "tier_manager")


def _page(status=200, block=None, form=None, errors=None, refusal=None, post_errors=None, post_notes=None):
    """The social page: profiles, the connect form and a page of posts (or one of its blocks)."""
    account = current_user.account
    state = request.args.get("state", "all")
    state = state if state in social_posts.FILTERS else "all"
    posts, next_before = social_posts.list_posts(account.id, state, record_id(request.args.get("before")))
    return render("social/index.html", block=block, status=status, account=account,
                  profiles=social_profiles.list_profiles(account.id), posts=posts, next_before=next_before,
                  state=state, filters=social_posts.FILTERS, networks=social_profiles.NETWORKS,
                  settings=may(current_user, "edit_settings", account),
                  acting=may(current_user, "act_on_post", account),
                  form=form or {}, errors=errors or {}, refusal=refusal, refused_in=block if refusal else None,
                  post_errors=post_errors or {}, post_notes=post_notes or {})


@bp.route("")
@roles_required(MANAGERS)
def index():
    """List the connected profiles and the imported posts, newest first (the list alone for htmx)."""
    return _page(block="posts")


@bp.route("/profiles", methods=["POST"])
@roles_required("account_manager")
def connect():
    """Connect a social profile's feed, unless the gate refuses."""
    form = request.form.to_dict()
    try:
        social_profiles.connect_profile(current_user, form.get("network"), form.get("handle"), form.get("feed_url"))
    except ValidationFailed as exc:
        return _page(422, "connect_form", form, exc.field_errors)
    except PermissionDenied as exc:
        return _page(422, "connect_form", form, refusal=exc.message)
    flash("The profile is connected; its posts are imported at the next poll.", "success")
    return redirect_after_post("social.index")


@bp.route("/profiles/<int:social_profile_id>/disconnect", methods=["POST"])
@roles_required("account_manager")
def disconnect(social_profile_id):
    """Disconnect a social profile (its posts stay), unless the gate refuses."""
    try:
        details = social_profiles.disconnect_profile(current_user, social_profile_id)
    except PermissionDenied as exc:
        return _page(422, "profiles", refusal=exc.message)
    flash(f"{details['handle']} is disconnected; its posts stay here.", "success")
    return redirect_after_post("social.index")


def _row(post, status=200, errors=None, notes=None, headers=None):
    """One post's row of the list, for htmx."""
    return render("social/index.html", block="post_row", status=status, headers=headers, post=post,
                  networks=social_profiles.NETWORKS, acting=may(current_user, "act_on_post", current_user.account),
                  post_errors=errors or {}, post_notes=notes or {})


def _act(post_id, action):
    """Apply one action to a post: its row again for htmx, else a flash and a redirect to the list."""
    try:
        post = social_posts.act_on_post(current_user, post_id, action, request.form.get("note"))
    except (ValidationFailed, PermissionDenied) as exc:
        post = social_posts.get_post(current_user, post_id)
        errors = {post.id: exc.field_errors.get("note") if isinstance(exc, ValidationFailed) else exc.message}
        notes = {post.id: request.form.get("note", "")}
        if is_fragment_request():
            return _row(post, 422, errors, notes)
        return _page(422, post_errors=errors, post_notes=notes)
    if is_fragment_request():
        return _row(post, headers={"HX-Trigger": "social-post-updated"})
    flash(f"The post is {social_posts.ACTIONS[action]}.", "success")
    return redirect_after_post("social.index")


@bp.route("/posts/<int:post_id>/reply", methods=["POST"])
@roles_required(MANAGERS)
def reply(post_id):
    """Record a reply to a post."""
    return _act(post_id, "reply")


@bp.route("/posts/<int:post_id>/flag", methods=["POST"])
@roles_required(MANAGERS)
def flag(post_id):
    """Flag a post for attention."""
    return _act(post_id, "flag")


@bp.route("/posts/<int:post_id>/hide", methods=["POST"])
@roles_required(MANAGERS)
def hide(post_id):
    """Hide a post from the list."""
    return _act(post_id, "hide")
