"""Who acted, as staff type it in the audit log's actor filter, turned into a condition on audit_events.

audit_events names its actor three ways: actor_user_id (a person; also the maker of an API token that
acted, and the admin who started a bulk run), actor_run_id (the run that acted, and the run's own
started/finished events) and actor_label (the words shown, e.g. "API token ‘sync’ (ak_1a2b) of Ada <…>").
Each condition below leads with an indexed column, so no filter walks the whole table.
"""
import re
from dataclasses import dataclass

from sqlalchemy import and_, func, or_, select

from portal.extensions import db
from portal.models import ApiToken, AuditEvent, SweepRun, User

PEOPLE_MAX = 20
_RUN = re.compile(r"(?:(?:[a-z][a-z -]*?)?\s*#\s*|run\s+)([0-9]{1,10})", re.IGNORECASE | re.ASCII)
_SCHEDULE_WORDS = {"schedule", "the schedule", "scheduler", "scheduled", "scheduled runs"}
_TOKEN_LABEL = re.compile(r"API token ‘(.+?)’.*")
UNKNOWN = ("No person, run or API token matches “{text}”. Type a person's email or name, a run as #12, "
           "“schedule” for the scheduler's runs, or an API token's name or prefix.")


@dataclass
class ResolvedActor:
    """What the typed actor named: the SQL condition and a description, or the problem to show."""

    clause: object = None
    description: str = ""
    problem: str = ""


def _run(number):
    run = db.session.get(SweepRun, number) if number <= 2**31 - 1 else None
    if run is None:
        return ResolvedActor(problem=f"There is no run #{number}.")
    return ResolvedActor(AuditEvent.actor_run_id == run.id, f"Run #{run.id} ({run.kind})")


def _schedule():
    scheduled = select(SweepRun.id).where(SweepRun.trigger == "schedule")
    return ResolvedActor(and_(AuditEvent.actor_run_id.is_not(None), AuditEvent.actor_run_id.in_(scheduled)),
                         "The schedule (every scheduled run)")


def _like_prefix(value):
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _tokens(text):
    label = _TOKEN_LABEL.fullmatch(text)
    name = label.group(1) if label else text
    stmt = select(ApiToken).where(or_(func.lower(ApiToken.name) == name.lower(), ApiToken.prefix == text))
    found = list(db.session.scalars(stmt.order_by(ApiToken.id).limit(PEOPLE_MAX)))
    if not found:
        return None
    # A token acts as its maker (actor_user_id, indexed) and names itself at the start of actor_label.
    clause = or_(*(and_(AuditEvent.actor_user_id.is_not(None), AuditEvent.actor_user_id == t.created_by_id,
                        AuditEvent.actor_label.like(_like_prefix(f"API token ‘{t.name}’ ({t.prefix})"),
                                                    escape="\\"))
                   for t in found))
    names = ", ".join(f"‘{t.name}’ ({t.prefix})" for t in found)
    return ResolvedActor(clause, f"API token {names}")


def _people(text):
    exact = list(db.session.scalars(select(User).where(func.lower(User.email) == text.lower())))
    if not exact:
        pattern = "%" + text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        exact = list(db.session.scalars(
            select(User).where(or_(func.lower(User.name).like(pattern, escape="\\"),
                                   func.lower(User.email).like(pattern, escape="\\")))
            .order_by(User.name, User.id).limit(PEOPLE_MAX + 1)))
    if not exact:
        return None
    if len(exact) > PEOPLE_MAX:
        return ResolvedActor(problem=f"More than {PEOPLE_MAX} people match “{text}”; type more of the name or "
                                     "the whole email.")
    ids = [u.id for u in exact]
    clause = and_(AuditEvent.actor_user_id.is_not(None), AuditEvent.actor_user_id.in_(ids))
    return ResolvedActor(clause, ", ".join(f"{u.name} <{u.email}>" for u in exact))


def resolve_actor(text):
    """Turn what was typed in the actor filter into a condition on audit_events.

    Args:
        text: "#12", "run 12" or a run's label ("Clean-up run #12"); "schedule"; an API token's name,
            prefix or label; a person's email, or part of a name or email (at most PEOPLE_MAX people).

    Returns:
        ResolvedActor with the condition and a description, or with `problem` set when it names nothing.
    """
    text = (text or "").strip()
    run = _RUN.fullmatch(text)
    if run:
        return _run(int(run.group(1)))
    if text.lower() in _SCHEDULE_WORDS:
        return _schedule()
    return _tokens(text) or _people(text) or ResolvedActor(problem=UNKNOWN.format(text=text))
