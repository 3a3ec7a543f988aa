"""What the account page's dunning card and billing forms show, and which of their actions fit the account now.

The domain decides every change when it is posted; the actions here only choose which buttons to show
(the same conditions the domain checks, so a button is not offered for a change that would be refused).
"""
from portal.domain.billing import open_invoices
from portal.domain.dunning import status
from portal.domain.dunning.calendar import RANK
from portal.domain.dunning.classes import class_choices
from portal.domain.gate import may


def shiftable_steps(account, view):
    """The steps a shift may still move: those the class has and that have not happened (nor are due today)."""
    if account.status == "cancelled" or view.episode_start is None or view.lifted_until is not None:
        return []
    rank = max(RANK.get(account.status, 0), RANK[view.target])
    return [step for step, on, happened in (("limitation", view.class_limitation_on, rank >= 1),
                                            ("suspension", view.class_suspension_on, rank >= 2))
            if on is not None and not happened]


def _actions(account, view, override):
    """The manual-date actions that fit the account on the card's day: reschedule, change_status, cancel_dates."""
    actions = []
    if account.status == "cancelled" or view.episode_start is None:
        return actions
    if shiftable_steps(account, view):
        actions.append("reschedule")
    by_schedule = account.status == "limited" or (account.status == "suspended" and account.status_source == "dunning")
    if by_schedule or view.lifted_until is not None:
        actions.append("change_status")
    if override is not None:
        actions.append("cancel_dates")
    return actions


def dunning_context(actor, account, as_of=None):
    """The card's context: `dunning` (the domain's card, its live manual dates and actions) and the class choices."""
    card = status.card(account, as_of)
    view, override = card["view"], card["override"]
    if override is not None and override.episode_start != view.episode_start:
        override = None  # an earlier episode's dates: they no longer apply
    card.update(override=override, actions=_actions(account, view, override) if may(actor, "shift", account) else [],
                shiftable=shiftable_steps(account, view))
    can_set_class = bool(may(actor, "set_class", account))
    return {"dunning": card,
            "class_choices": class_choices() if can_set_class else None}


def billing_context(actor, account):
    """The billing card's context: the invoices, and the open ones a payment may name (super admin)."""
    invoices = open_invoices(account.id, include_paid=True)
    can_bill = bool(may(actor, "record_payment", account))
    return {"invoices": invoices, "can_bill": can_bill,
            "payable": [inv for inv in invoices if inv.is_open] if can_bill else []}
