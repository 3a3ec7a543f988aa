"""Putting many ticked accounts in a customer class at once, set-based.

One compare-and-set UPDATE moves the accounts whose class differs (bumping their version, as a single
change does), one INSERT writes an audit event per account moved, and each moved account's next look
is planned from its facts, read for all of them in four queries. The few accounts for which the new
class makes a step due today get it applied now, one by one, exactly as `classes.set_class` does.
"""
from collections import defaultdict
from dataclasses import dataclass, field

from sqlalchemy import insert, select, update

from portal.domain import audit
from portal.domain.dunning.account_state import apply_schedule, day_of, moment_of, plan_next_look
from portal.domain.dunning.calendar import RANK, evaluate, next_look, warning_due
from portal.domain.dunning.classes import find_class
from portal.domain.dunning.facts import load_facts
from portal.domain.errors import ValidationFailed
from portal.domain.gate import require
from portal.domain.parsing import record_id
from portal.extensions import db
from portal.plurals import count
from portal.models import Account, AuditEvent, CustomerClass

MAX_TICKED = 1_000
SAMPLE_SIZE = 10


@dataclass
class ClassOutcome:
    """What a bulk class change did: the accounts moved, those already in the class, the class (None: none)."""

    class_name: str | None
    changed_ids: list = field(default_factory=list)
    unchanged: int = 0
    applied: int = 0  # accounts the new class limited or suspended at once

    @property
    def summary(self):
        n = len(self.changed_ids)
        where = f"the class {self.class_name!r}" if self.class_name else "no class"
        text = f"Put {count(n, 'account')} in {where}"
        if self.unchanged:
            text += f"; {self.unchanged:,} {'was' if self.unchanged == 1 else 'were'} already there"
        if self.applied:
            text += f"; the new schedule applied a due step to {self.applied:,} at once"
        return text + "."


def ticked_ids(ids):
    """The ticked account ids, parsed and deduplicated.

    Raises:
        ValidationFailed: field_errors["selection"]: a value that is not an id, none ticked, or too many.
    """
    parsed = [record_id(i) for i in ids]
    if None in parsed:
        raise ValidationFailed({"selection": "The selection holds a value that is not an account id. Nothing was "
                                             "changed; tick the accounts again."})
    clean = sorted(set(parsed))
    if not clean:
        raise ValidationFailed({"selection": "Tick at least one account to put in a class."})
    if len(clean) > MAX_TICKED:
        raise ValidationFailed({"selection": f"Tick at most {MAX_TICKED:,} accounts at a time."})
    return clean


def preview_set_class(actor, ids):
    """What a bulk class change would touch: dict(count, sample [(id, number, name, class name)], ids).

    Raises:
        PermissionDenied, ValidationFailed (see ticked_ids).
    """
    require(actor, "set_class", None)
    clean = ticked_ids(ids)
    rows = db.session.execute(select(Account.id, Account.number, Account.name, CustomerClass.name.label("cls"))
                              .outerjoin(CustomerClass, CustomerClass.id == Account.customer_class_id)
                              .where(Account.id.in_(clean)).order_by(Account.name, Account.id)).all()
    return {"count": len(rows), "sample": rows[:SAMPLE_SIZE], "ids": [r.id for r in rows]}


def set_class_bulk(actor, ids, class_name_or_id, as_of=None):
    """Put the ticked accounts in a class (None or "": no class); each moved account's schedule follows.

    Args:
        actor: the super admin.
        ids: the ticked account ids (text or ints).
        class_name_or_id: the class, by name or id; empty for no class.
        as_of: the day of the change (default today).

    Returns:
        ClassOutcome.

    Raises:
        PermissionDenied, ValidationFailed (selection), ClassNotFound.
    """
    require(actor, "set_class", None)
    clean = ticked_ids(ids)
    cls = find_class(class_name_or_id) if str(class_name_or_id or "").strip() else None
    target = cls.id if cls else None
    now, day = moment_of(as_of), day_of(as_of)
    names = {c.id: c.name for c in db.session.scalars(select(CustomerClass))}
    before = dict(db.session.execute(select(Account.id, Account.customer_class_id).where(Account.id.in_(clean))).all())
    moved = sorted(db.session.scalars(
        update(Account).where(Account.id.in_(clean), Account.customer_class_id.is_distinct_from(target))
        .values(customer_class_id=target, version=Account.version + 1)
        .returning(Account.id).execution_options(synchronize_session=False)))
    outcome = ClassOutcome(cls.name if cls else None, moved, len(before) - len(moved))
    if moved:
        label = audit.actor_label(actor)
        db.session.execute(insert(AuditEvent), [
            dict(created_at=now, account_id=aid, actor_user_id=getattr(actor, "id", None), actor_label=label,
                 action="class_set", data={"before": names.get(before.get(aid)), "after": outcome.class_name})
            for aid in moved])
        outcome.applied = _plan(moved, day, actor, now)
    db.session.commit()
    return outcome


def _plan(account_ids, day, actor, now):
    """Plan the moved accounts' next looks (one UPDATE per day); apply a step due today. Returns how many."""
    by_day, due = defaultdict(list), []
    for aid, (row, facts) in load_facts(account_ids).items():
        view = evaluate(facts, day)
        if row.status != "cancelled" and RANK.get(row.status, 0) < RANK[view.target]:
            due.append(aid)
            continue
        warning = warning_due(facts, view)
        by_day[day if warning and warning[0] != row.dunning_warned else next_look(facts, day)].append(aid)
    for next_day, ids in by_day.items():
        db.session.execute(update(Account).where(Account.id.in_(ids)).values(dunning_next_on=next_day)
                           .execution_options(synchronize_session=False))
    applied = 0
    for aid in due:  # few: a class with shorter offsets than the old one
        account = db.session.get(Account, aid, populate_existing=True)
        before = account.status
        applied += apply_schedule(account, day, actor, now) != before
        plan_next_look(account, day)
    return applied
