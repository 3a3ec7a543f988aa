"""Creating customer accounts (numbered A0000001, A0000002, ...)."""
from email_validator import EmailNotValidError, validate_email
from sqlalchemy import func, select

from portal.domain import audit
from portal.domain.dunning.account_state import moment_of
from portal.domain.dunning.classes import ClassNotFound, find_class
from portal.domain.errors import ValidationFailed
from portal.domain.gate import require
from portal.extensions import db
from portal.models import Account

NAME_MAX = 200


def create_account(actor, name, email, class_name=None, as_of=None):
    """Create an active account and return it (its number is the next free one).

    Raises:
        PermissionDenied: the actor is not a super admin.
        ValidationFailed: name missing or too long, email not an address, unknown class.
    """
    require(actor, "create_account", None)
    errors = {}
    name = (name or "").strip()
    if not name:
        errors["name"] = "Give the account a name."
    elif len(name) > NAME_MAX:
        errors["name"] = f"Keep the name to {NAME_MAX} characters."
    try:
        email = validate_email((email or "").strip(), check_deliverability=False).normalized
    except EmailNotValidError:
        errors["email"] = "Enter the account's email address, like billing@example.com."
    cls = None
    if class_name:
        try:
            cls = find_class(class_name)
        except ClassNotFound as exc:
            errors["class"] = exc.message
    if errors:
        raise ValidationFailed(errors)
    now = moment_of(as_of)
    next_id = (db.session.scalar(select(func.max(Account.id))) or 0) + 1
    account = Account(number=f"A{next_id:07d}", name=name, email=email, status="active",
                      customer_class_id=cls.id if cls else None, created_at=now, settings={}, version=1)
    db.session.add(account)
    db.session.flush()
    if account.id != next_id:  # the id sequence ran ahead (PostgreSQL): number the account by its own id
        account.number = f"A{account.id:07d}"
    audit.record("account_created", account.id, actor, state_after="active",
                 data={"class": cls.name if cls else None}, now=now)
    db.session.commit()
    return account
