"""What an account's record says about the dunning schedule: status, label, pending step, the next 30 days."""
from datetime import timedelta

from portal.domain.dunning.account_state import day_of, live_override
from portal.domain.dunning.calendar import evaluate
from portal.domain.dunning.facts import account_facts
from portal.domain.gate import STATE_LABELS


def record(account, as_of=None, facts=None):
    """The account's dunning record on as_of (default today), as JSON-able data (the CLI's and API's shape).

    Keys: number, status, label, pending_action (limitation | suspension | reapply | None), pending_date,
    overdue_invoices (sequence numbers), service (full | limited | suspended | none), and more detail.
    facts: the account's Facts if the caller holds them (a change in this transaction); None: read them.
    """
    day = day_of(as_of)
    facts = facts if facts is not None else account_facts(account)
    view = evaluate(facts, day)
    return {
        "number": account.number,
        "status": view.status,
        "label": STATE_LABELS[view.status],
        "pending_action": view.pending_action,
        "pending_date": view.pending_date.isoformat() if view.pending_date else None,
        "overdue_invoices": view.overdue_seqs,
        "service": view.service,
        "as_of": day.isoformat(),
        "stored_status": account.status,
        "episode_start": view.episode_start.isoformat() if view.episode_start else None,
        "overdue_cents": view.overdue_cents,
        "customer_class": account.customer_class.name if account.customer_class else None,
        "all_paid": view.all_paid,
    }


def card(account, as_of=None, days=30):
    """What the account page's dunning card shows: the View, the manual dates and the next `days` days."""
    day = day_of(as_of)
    facts = account_facts(account)
    view = evaluate(facts, day)
    return {"view": view, "label": STATE_LABELS[view.status], "override": live_override(account.id),
            "upcoming": next_days(facts, day, days), "cls": account.customer_class}


def next_days(facts, day, days=30):
    """The days of the next `days` on which the schedule changes something: [(date, label, what)].

    Assumes nothing is paid meanwhile: it is what will happen, not a promise.
    """
    changes = []
    previous = evaluate(facts, day)
    for offset in range(1, days + 1):
        current = evaluate(facts, day + timedelta(days=offset))
        if current.status != previous.status or current.target != previous.target:
            what = {"limited": "service limited", "suspended": "suspended"}.get(current.target, "full service")
            changes.append((current.as_of, STATE_LABELS[current.status], what))
        previous = current
    return changes


def list_labels(rows, as_of=None):
    """{account id: status key} for list rows that owe something (the others show their stored state).

    Four queries for a page of any size (calendar.evaluate on each row that has open invoices), so the
    list shows the same words as the account page, the CLI and the API.
    """
    from portal.domain.dunning.facts import load_facts

    owing = [row.id for row in rows if (row.balance_cents or 0) > 0 and row.status != "cancelled"]
    if not owing:
        return {}
    day = day_of(as_of)
    return {aid: evaluate(facts, day).status for aid, (_row, facts) in load_facts(owing).items()}
