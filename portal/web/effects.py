"""The effect matrix: what each action does in each state and role, read from the gate's table (staff)."""
from flask import Blueprint, request

from portal.domain import gate
from portal.domain.features import effects
from portal.web.access import roles_required
from portal.web.helpers import render

bp = Blueprint("effects", __name__, url_prefix="/effects")


@bp.route("")
@roles_required("super_admin", "support")
def index():
    """Show, per account state, what each action does for each role (optionally one role or feature)."""
    role, feature = effects.normalise_filters(request.args.get("role"), request.args.get("feature"))
    return render("effects/index.html", block="matrix", sections=effects.matrix(role, feature),
                  role=role, feature=feature, roles=gate.ROLES, role_labels=effects.ROLE_LABELS,
                  features=effects.FEATURES, display_only=effects.display_only_labels())
