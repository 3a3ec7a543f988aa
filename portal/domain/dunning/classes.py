"""Customer classes: when an overdue account is limited and suspended, the least amount that counts, warnings.

Changing a class's offsets changes the schedule of every account in it, so the accounts of the class
with open invoices are looked at by the next daily run (set-based: one UPDATE).
"""
from sqlalchemy import func, select, update

from portal.domain import audit
from portal.domain.dunning.account_state import apply_schedule, day_of, lock_account, moment_of, plan_next_look
from portal.domain.errors import Conflict, DomainError, ValidationFailed
from portal.domain.gate import require
from portal.domain.money import dollars, parse_amount
from portal.domain.parsing import InvalidValue, record_id, whole_number
from portal.extensions import db
from portal.models import Account, CustomerClass, Invoice
from portal.plurals import count, plural

NAME_MAX = 100
MAX_DAYS = 3650


class ClassNotFound(DomainError):
    """No such customer class."""

    status_code = 404

    def __init__(self, name=None):
        super().__init__(f"No customer class named {name!r}." if name else "Customer class not found.")


def list_classes():
    """Every class with how many accounts use it, by name: [(CustomerClass, count)]."""
    counts = dict(db.session.execute(select(Account.customer_class_id, func.count())
                                     .where(Account.customer_class_id.is_not(None))
                                     .group_by(Account.customer_class_id)).all())
    classes = db.session.scalars(select(CustomerClass).order_by(func.lower(CustomerClass.name)))
    return [(c, int(counts.get(c.id, 0))) for c in classes]


def class_choices():
    """Every class as (id, name), by name: for a form's choices (no counting, unlike list_classes)."""
    return db.session.execute(select(CustomerClass.id, CustomerClass.name)
                              .order_by(func.lower(CustomerClass.name))).all()


def find_class(name_or_id):
    """Return a class by name (any case) or id, or raise ClassNotFound."""
    text = str(name_or_id or "").strip()
    found = db.session.scalar(select(CustomerClass).where(func.lower(CustomerClass.name) == text.lower()))
    if found is None and record_id(text) is not None:
        found = db.session.get(CustomerClass, record_id(text))
    if found is None:
        raise ClassNotFound(text)
    return found


def _days(errors, form, field, label):
    raw = str(form.get(field) if form.get(field) is not None else "").strip()
    if raw == "":
        return None
    try:
        return whole_number(raw, 0, MAX_DAYS, f"Enter the {label} as a whole number of days from 0 to {MAX_DAYS}, "
                                              "or leave it blank.")
    except InvalidValue as exc:
        errors[field] = exc.message
        return None


def parse_class(form):
    """Validate a class form: name, limit_after_days, suspend_after_days, least_amount, warning_days.

    Raises:
        ValidationFailed: per field (negative or non-numeric offsets, a suspension before the limitation, ...).
    """
    errors = {}
    name = str(form.get("name") or "").strip()
    if not name:
        errors["name"] = "Give the class a name."
    elif len(name) > NAME_MAX:
        errors["name"] = f"Keep the name to {NAME_MAX} characters."
    limit = _days(errors, form, "limit_after_days", "days before service is limited")
    suspend = _days(errors, form, "suspend_after_days", "days before the account is suspended")
    warning = _days(errors, form, "warning_days", "warning")
    if limit is not None and suspend is not None and suspend < limit:
        errors["suspend_after_days"] = (f"The suspension ({suspend} days) cannot come before the limitation "
                                        f"({limit} days).")
    least = 1
    raw_least = str(form.get("least_amount") or "").strip()
    if raw_least:
        try:
            least = parse_amount(raw_least, "least_amount")
        except ValidationFailed as exc:
            errors.update(exc.field_errors)
    if errors:
        raise ValidationFailed(errors)
    return dict(name=name, description=(str(form.get("description") or "").strip()[:500] or None),
                limit_after_days=limit, suspend_after_days=suspend, least_amount_cents=least, warning_days=warning)


def _unique_name(name, except_id=None):
    query = select(CustomerClass.id).where(func.lower(CustomerClass.name) == name.lower())
    if except_id is not None:
        query = query.where(CustomerClass.id != except_id)
    if db.session.scalar(query) is not None:
        raise ValidationFailed({"name": f"A class named {name!r} already exists."})


def create_class(actor, form, now=None):
    """Create a class from form values (see parse_class); audited."""
    require(actor, "manage_classes", None)
    values = parse_class(form)
    _unique_name(values["name"])
    now = moment_of(now)
    cls = CustomerClass(**values, created_at=now, updated_at=now)
    db.session.add(cls)
    db.session.flush()
    audit.record("class_created", None, actor, data=describe(cls), now=now)
    db.session.commit()
    return cls


def update_class(actor, class_id, form, now=None):
    """Change a class; its accounts with open invoices are looked at by the next daily run."""
    require(actor, "manage_classes", None)
    cls = db.session.get(CustomerClass, class_id)
    if cls is None:
        raise ClassNotFound()
    values = parse_class(form)
    _unique_name(values["name"], except_id=cls.id)
    now = moment_of(now)
    before = describe(cls)
    for key, value in values.items():
        setattr(cls, key, value)
    cls.updated_at = now
    has_open = select(Invoice.id).where(Invoice.account_id == Account.id, Invoice.paid_at.is_(None),
                                        Invoice.written_off_at.is_(None)).exists()
    db.session.execute(update(Account).where(Account.customer_class_id == cls.id, has_open)
                       .values(dunning_next_on=now.date()).execution_options(synchronize_session=False))
    audit.record("class_updated", None, actor, data={"before": before, "after": describe(cls)}, now=now)
    db.session.commit()
    return cls


def delete_class(actor, class_id, now=None):
    """Delete a class no account uses.

    Raises:
        ClassNotFound; Conflict: accounts still use it (the count says how many).
    """
    require(actor, "manage_classes", None)
    cls = db.session.get(CustomerClass, class_id)
    if cls is None:
        raise ClassNotFound()
    used = db.session.scalar(select(func.count()).select_from(Account).where(Account.customer_class_id == cls.id))
    if used:
        raise Conflict(f"{count(used, 'account')} {plural(used, 'uses', 'use')} the class {cls.name!r}; move them to "
                       "another class first. Nothing was deleted.", count=used)
    audit.record("class_deleted", None, actor, data=describe(cls), now=moment_of(now))
    db.session.delete(cls)
    db.session.commit()


def set_class(actor, account_id, class_name_or_id, as_of=None):
    """Put an account in a class (None or "": no class); its schedule follows at once."""
    from portal.models import Account as AccountModel

    account = db.session.get(AccountModel, account_id)
    if account is None:
        from portal.domain.errors import AccountNotFound

        raise AccountNotFound()
    require(actor, "set_class", account)
    cls = find_class(class_name_or_id) if str(class_name_or_id or "").strip() else None
    now, day = moment_of(as_of), day_of(as_of)
    account = lock_account(account.id)
    before = account.customer_class.name if account.customer_class else None
    account.customer_class_id = cls.id if cls else None
    db.session.flush()
    db.session.refresh(account)
    audit.record("class_set", account.id, actor, data={"before": before, "after": cls.name if cls else None}, now=now)
    apply_schedule(account, day, actor, now)  # a class with shorter offsets can make a step due today
    plan_next_look(account, day)
    db.session.commit()
    return account


def describe(cls):
    """A class's settings as JSON-able data."""
    return {"name": cls.name, "limit_after_days": cls.limit_after_days, "suspend_after_days": cls.suspend_after_days,
            "least_amount": dollars(cls.least_amount_cents or 1), "warning_days": cls.warning_days}
