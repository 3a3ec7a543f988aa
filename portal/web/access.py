"""Role checks on the server, declared on every view."""
from functools import wraps

from flask import abort
from flask_login import current_user, login_required

from portal.models.accounts import CUSTOMER_ROLES, ROLES, STAFF_ROLES

STAFF = STAFF_ROLES
CUSTOMERS = CUSTOMER_ROLES
EVERYONE = ROLES
SUPER_ADMIN = ("super_admin",)


def roles_required(*roles):
    """Allow the view only to signed-in users with one of roles (403 otherwise); records them on the view."""
    allowed = tuple(r for group in roles for r in ((group,) if isinstance(group, str) else group))
    unknown = set(allowed) - set(ROLES)
    if unknown:
        raise ValueError(f"unknown roles {unknown}")

    def decorator(view):
        @wraps(view)
        @login_required
        def wrapped(*args, **kwargs):
            if current_user.role not in allowed:
                abort(403)
            return view(*args, **kwargs)

        wrapped.allowed_roles = allowed
        return wrapped

    return decorator


def public(view):
    """Mark a view as open to everyone (sign-in page, health check)."""
    view.allowed_roles = "public"
    return view


def bearer_api(view):
    """Mark a view as a bearer-token API endpoint: no session, no CSRF token, no sign-in redirect.

    The view authenticates the Authorization header itself (an ingestion key, an API token) and answers
    401 without one; a session cookie alone is never enough, so another site cannot drive it.
    """
    from portal.extensions import csrf

    view.allowed_roles = "bearer"
    csrf.exempt(view)
    return view
