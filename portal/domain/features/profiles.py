"""The account's public profile: shown to anyone at /p/<account number>, edited by its managers or super admins.

The public page asks the gate as the public (view_public_profile), which allows it in every state but
cancelled: a suspended account's profile stays visible and published. Editing asks edit_profile: account
managers may while the account is active or limited; while it is suspended only super admins may (from
the staff side). A suspension never rewrites the profile.
"""
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from portal.domain import audit
from portal.domain.cancellations.fields import display_phone
from portal.domain.errors import Conflict, DomainError
from portal.domain.features import contact_fields as fields
from portal.domain.features.guard import account_for, confirm_allowed
from portal.domain.gate import may
from portal.domain.parsing import bad_character
from portal.extensions import db
from portal.models import Account, Profile
from portal.timeutil import utcnow

HEADLINE_MAX = 200
BODY_MAX = 5000
NUMBER_MAX = 20  # accounts.number

PROFILE_FIELDS = {
    "headline": fields.text("The headline", HEADLINE_MAX, required=True),
    "body": fields.text("The text", BODY_MAX),
    "website": fields.website,
    "phone": fields.phone,
    "public": fields.checkbox,
}


class ProfileNotFound(DomainError):
    """No public profile at that address: no such account, no profile, or not published (one answer for all)."""

    status_code = 404

    def __init__(self, message="There is no public profile at this address."):
        super().__init__(message)


class ProfileGone(DomainError):
    """The gate refuses the public page (a cancelled account); the message is the gate's."""

    status_code = 410


def public_profile(number):
    """Return (account, profile) for the public page at /p/<number>, asking the gate as the public.

    Args:
        number: the account number from the URL (any text; bad values are simply not found).

    Raises:
        ProfileNotFound: no account with that number, no profile, or the profile is not published.
        ProfileGone: the gate refuses view_public_profile (the account is cancelled); its message says so.
    """
    number = number.strip() if isinstance(number, str) else ""
    if not number or len(number) > NUMBER_MAX or bad_character(number):
        raise ProfileNotFound()
    account = db.session.scalar(select(Account).where(Account.number == number))
    profile = profile_of(account.id) if account is not None else None
    if profile is None or not profile.public:
        raise ProfileNotFound()
    decision = may(None, "view_public_profile", account)
    if not decision:
        raise ProfileGone(decision.message)
    return account, profile


def profile_of(account_id):
    """Return the account's profile, or None if it has none yet."""
    return db.session.scalar(select(Profile).where(Profile.account_id == account_id))


def form_values(profile):
    """Return the edit form's initial values for profile (None: a new, public profile)."""
    if profile is None:
        return {"headline": "", "body": "", "website": "", "phone": "", "public": True}
    return {"headline": profile.headline, "body": profile.body or "", "website": profile.website or "",
            "phone": display_phone(profile.phone), "public": profile.public}


def update_profile(actor, account_id, form, now=None):
    """Save the account's public profile (creating it on first save), audited as profile_updated.

    Args:
        actor: an account manager of the account (their own), or a super admin (any account).
        account_id: the account whose profile it is.
        form: a mapping with headline (required), body, website (http or https), phone, public (checkbox).
        now: the time of the change (default now).

    Returns:
        The names of the fields that changed (empty: nothing to save, nothing written).

    Raises:
        AccountNotFound: no such account.
        PermissionDenied: the gate refuses edit_profile (a manager while the account is suspended, another
            account's manager, a role that may not); nothing is stored.
        ValidationFailed: bad fields; nothing is stored.
        Conflict: someone else created the profile at the same moment; nothing is stored.
    """
    now = now or utcnow()
    account = account_for(actor, "edit_profile", account_id)
    values = fields.read(form, PROFILE_FIELDS)
    profile = profile_of(account.id)
    created = profile is None
    if created:
        profile = Profile(account_id=account.id)
        db.session.add(profile)
    changed = [name for name, value in values.items() if created or getattr(profile, name) != value]
    if not changed:
        return []
    for name in changed:
        setattr(profile, name, values[name])
    profile.updated_by_id = getattr(actor, "id", None)
    profile.updated_at = now
    try:
        confirm_allowed(actor, "edit_profile", account)
    except IntegrityError:
        db.session.rollback()
        raise Conflict("Someone else saved this profile at the same moment. Nothing was changed; "
                       "reload it and try again.") from None
    audit.record("profile_updated", account.id, actor,
                 data={"profile_id": profile.id, "fields": changed, "created": created,
                       "by_role": getattr(actor, "role", None)}, now=now)
    db.session.commit()
    return changed
