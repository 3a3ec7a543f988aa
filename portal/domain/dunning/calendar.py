"""The dunning schedule as of a date: one pure function decides an account's status, label and next step.

No database here: `evaluate(facts, as_of)` takes what is stored about one account (its state, class,
open invoices, episode start and manual dates) and answers what its record says on that day. The
account page, the list, the CLI, the API and the daily run all ask it, so they never disagree.

The rules (issue "The dunning schedule"):
- an invoice is overdue on day D when it is open and its due date is before D; the account's episode
  lasts while it has overdue invoices (at least the class's least amount) and begins at the due date of
  the oldest one overdue when it started (paying some of them does not move the start);
- the class limits service N days after the episode begins and suspends it M days after (either blank:
  never);
- a shift (a later limitation or suspension date) or a lift (until a date) holds off every restriction
  until its date; on that date the class schedule applies as it would have by then. The later date wins.
"""
from dataclasses import dataclass, field
from datetime import date, timedelta

RANK = {"active": 0, "limited": 1, "suspended": 2}
STATE_OF_RANK = {0: "active", 1: "limited", 2: "suspended"}
SERVICE = {"active": "full", "limited": "limited", "suspended": "suspended", "cancelled": "none"}
AUTOMATIC_SOURCES = ("dunning", "sweep")  # restrictions for non-payment that a payment clears by itself


@dataclass(frozen=True)
class OpenInvoice:
    """An open invoice: what it still owes and when it was due."""

    seq: int
    owed_cents: int
    due_date: date
    amount_cents: int = 0
    paid_cents: int = 0


@dataclass(frozen=True)
class Override:
    """The manual dates of the current episode (any may be None)."""

    episode_start: date
    limitation_date: date | None = None
    suspension_date: date | None = None
    lift_until: date | None = None


@dataclass(frozen=True)
class Facts:
    """What is stored about one account, as the schedule needs it."""

    status: str = "active"
    status_reason: str | None = None
    status_source: str | None = None
    limit_after: int | None = None
    suspend_after: int | None = None
    least_amount_cents: int = 1
    invoices: tuple = ()
    dunning_since: date | None = None
    override: Override | None = None
    exempt: bool = False
    warning_days: int | None = None


@dataclass
class View:
    """What the account's record says on a day."""

    as_of: date
    status: str  # a key of gate.STATE_LABELS
    service: str  # full | limited | suspended | none: what the gate enforces now (the stored state)
    target: str  # active | limited | suspended: what the schedule wants applied on this day
    pending_action: str | None = None  # limitation | suspension | reapply
    pending_date: date | None = None
    episode_start: date | None = None
    overdue: tuple = ()  # the overdue OpenInvoices behind it
    overdue_cents: int = 0
    limitation_on: date | None = None  # effective dates of the steps (after manual dates)
    suspension_on: date | None = None
    class_limitation_on: date | None = None
    class_suspension_on: date | None = None
    lifted_until: date | None = None
    all_paid: bool = False  # a manual non-payment suspension whose invoices are now all paid
    warnings: list = field(default_factory=list)

    @property
    def overdue_seqs(self):
        return [inv.seq for inv in self.overdue]


def overdue_on(facts, as_of):
    """Return (the overdue invoices on as_of, what they owe, whether that is enough to count)."""
    overdue = tuple(sorted((inv for inv in facts.invoices if inv.due_date < as_of and inv.owed_cents > 0),
                           key=lambda inv: (inv.due_date, inv.seq)))
    owed = sum(inv.owed_cents for inv in overdue)
    return overdue, owed, bool(overdue) and owed >= max(1, facts.least_amount_cents)


def episode_start(facts, as_of):
    """The day the current episode began, or None when nothing overdue counts on as_of."""
    overdue, _owed, counts = overdue_on(facts, as_of)
    if not counts:
        return None
    if facts.dunning_since is not None and facts.dunning_since < as_of:
        return facts.dunning_since
    return overdue[0].due_date


def _later(*dates):
    known = [d for d in dates if d is not None]
    return max(known) if known else None


def step_dates(facts, start):
    """Return (class limitation, class suspension, effective limitation, effective suspension) dates.

    A manual date holds off every restriction until it, and the later date wins: a limitation shift
    also holds off the suspension; a suspension shift also holds off the limitation unless the
    limitation has its own manual date.
    """
    class_limit = start + timedelta(days=facts.limit_after) if facts.limit_after is not None else None
    class_suspend = start + timedelta(days=facts.suspend_after) if facts.suspend_after is not None else None
    o = facts.override if facts.override is not None and facts.override.episode_start == start else None
    shift_limit = o.limitation_date if o else None
    shift_suspend = o.suspension_date if o else None
    limit_on = None
    if class_limit is not None:
        limit_on = _later(class_limit, shift_limit) if shift_limit else _later(class_limit, shift_suspend)
    suspend_on = _later(class_suspend, shift_suspend, shift_limit) if class_suspend is not None else None
    return class_limit, class_suspend, limit_on, suspend_on


def schedule_target(facts, as_of, start, ignore_lift=False):
    """What the schedule applies on as_of for an episode begun on start: active, limited or suspended."""
    if start is None:
        return "active"
    _cl, _cs, limit_on, suspend_on = step_dates(facts, start)
    o = facts.override if facts.override is not None and facts.override.episode_start == start else None
    if not ignore_lift and o and o.lift_until and as_of < o.lift_until:
        return "active"
    if suspend_on is not None and suspend_on <= as_of:
        return "suspended"
    if limit_on is not None and limit_on <= as_of:
        return "limited"
    return "active"


def _next_step(limit_on, suspend_on, after_rank):
    """The next step after the state of rank after_rank: (action, date) or (None, None)."""
    if after_rank < 1 and limit_on is not None and (suspend_on is None or limit_on < suspend_on):
        return "limitation", limit_on
    if after_rank < 2 and suspend_on is not None:
        return "suspension", suspend_on
    return None, None


def evaluate(facts, as_of):
    """Return the View of one account on as_of (a date), from what is stored.

    Args:
        facts: Facts of the account.
        as_of: the day asked about.
    """
    overdue, owed, counts = overdue_on(facts, as_of)
    start = episode_start(facts, as_of)
    view = View(as_of=as_of, status=facts.status, service=SERVICE.get(facts.status, "none"), target="active",
                episode_start=start, overdue=overdue if counts else (), overdue_cents=owed if counts else 0)
    if facts.status == "cancelled":
        view.status = "cancelled"
        return view
    if start is None:
        view.all_paid = facts.status == "suspended" and facts.status_reason == "non_payment"
        return view
    class_limit, class_suspend, limit_on, suspend_on = step_dates(facts, start)
    view.class_limitation_on, view.class_suspension_on = class_limit, class_suspend
    view.limitation_on, view.suspension_on = limit_on, suspend_on
    view.target = schedule_target(facts, as_of, start) if not facts.exempt else "active"
    rank = max(RANK.get(facts.status, 0), RANK[view.target])
    o = facts.override if facts.override is not None and facts.override.episode_start == start else None
    lifted = bool(o and o.lift_until and as_of < o.lift_until and rank == 0)
    if lifted:
        held = schedule_target(facts, as_of, start, ignore_lift=True)
        view.status = "suspension_delayed" if held == "suspended" else "limitation_delayed"
        view.pending_action, view.pending_date, view.lifted_until = "reapply", o.lift_until, o.lift_until
        return view
    view.pending_action, view.pending_date = _next_step(limit_on, suspend_on, rank)
    view.status = _label(rank, as_of, class_limit, class_suspend, view.pending_action)
    return view


def _label(rank, as_of, class_limit, class_suspend, pending_action):
    """The status label: restricted states, or which step is pending or held off by a manual date."""
    if rank == 2:
        return "suspended"
    if class_suspend is not None and class_suspend <= as_of:
        return "suspension_delayed"
    if rank == 1:
        return "limited"
    if class_limit is not None and class_limit <= as_of:
        return "limitation_delayed"
    if pending_action == "limitation":
        return "limitation_pending"
    if pending_action == "suspension":
        return "suspension_pending"
    return "active"


def warning_due(facts, view):
    """The step to warn about on view.as_of, as (key, action, date), or None.

    With a class warning of K days, the managers are warned once per step date, from K days before it.
    """
    if facts.warning_days is None or view.pending_action not in ("limitation", "suspension"):
        return None
    if view.pending_date is None or view.pending_date <= view.as_of:
        return None
    if view.pending_date - timedelta(days=facts.warning_days) > view.as_of:
        return None
    return f"{view.pending_action}:{view.pending_date.isoformat()}", view.pending_action, view.pending_date


def next_look(facts, as_of):
    """The first day after as_of on which the schedule may change something for the account, or None.

    The daily run looks at an account only on or after this day (accounts.dunning_next_on), so a day
    costs what it changes. Early is always safe (the run finds nothing and plans again); late is not,
    so every day a step, a warning, the end of a lift or a newly overdue invoice may act is considered.
    """
    if facts.status == "cancelled" or not facts.invoices:
        return None
    candidates = []
    for day in _interesting_days(facts, as_of):
        if day > as_of:
            candidates.append(day)
    return min(candidates) if candidates else None


def _interesting_days(facts, as_of):
    start = episode_start(facts, as_of)
    for inv in facts.invoices:
        if inv.owed_cents > 0 and inv.due_date >= as_of:
            yield inv.due_date + timedelta(days=1)  # the day it becomes overdue (a new or larger episode)
    if start is None:
        return
    _cl, _cs, limit_on, suspend_on = step_dates(facts, start)
    o = facts.override if facts.override is not None and facts.override.episode_start == start else None
    if o and o.lift_until:
        yield o.lift_until
    for step in (limit_on, suspend_on):
        if step is None:
            continue
        yield step
        if facts.warning_days is not None:
            yield step - timedelta(days=facts.warning_days)
