"""The events a webhook announces, and how an audit event becomes one.

An account event is read from the state change its audit event records (state before and after), so
every path that changes an account is announced whatever it calls its action: an admin's suspension, a
sweep's, the dunning run's (set-based), a reactivation, service restored by a payment, a lift, the end of
a pause, a cancellation. A payment and a run's end are read from their actions.
"""
import json
import re

EVENT_TYPES = {
    "account.suspended": "An account was suspended: by a super admin, a sweep or the dunning schedule",
    "account.reactivated": "A suspended or limited account has full service again: reactivated, restored "
                           "by a payment or a write-off, lifted, or its pause ended",
    "account.limited": "The dunning schedule limited an account's service",
    "account.cancelled": "An account was cancelled",
    "payment.recorded": "A payment was recorded against an account",
    "run.finished": "A clean-up, scheduled sweep, bulk change, undo or daily dunning run finished",
}
_STATE_EVENTS = {"suspended": "account.suspended", "limited": "account.limited", "cancelled": "account.cancelled"}
_RESTRICTED = ("suspended", "limited")
_RUN_FINISHED = re.compile(r"run_([a-z_]+)_finished")


def event_type(row):
    """The event type an audit row announces, or None.

    Args:
        row: an object with action, account_id, state_before and state_after (an audit_events row).
    """
    if row.action == "payment_recorded" and row.account_id is not None:
        return "payment.recorded"
    if _RUN_FINISHED.fullmatch(row.action or ""):
        return "run.finished"
    if row.account_id is None or row.state_after is None or row.state_after == row.state_before:
        return None
    if row.state_after in _STATE_EVENTS:
        return _STATE_EVENTS[row.state_after]
    if row.state_after == "active" and row.state_before in _RESTRICTED:
        return "account.reactivated"
    return None


def _iso(moment):
    return moment.replace(microsecond=0).isoformat() + "Z" if moment is not None else None


def _data(kind, row):
    data = row.data if isinstance(row.data, dict) else {}
    if kind == "run.finished":
        counts = {key: data.get(key) for key in ("matched", "changed", "skipped", "skip_reasons")}
        return {"run": {"id": row.actor_run_id, "kind": _RUN_FINISHED.fullmatch(row.action).group(1), **counts}}
    body = {"account": {"number": row.number}, "action": row.action, "actor": row.actor_label,
            "run_id": row.actor_run_id}
    if kind == "payment.recorded":  # a payment changes no state by itself; a restoration is its own event
        body["payment"] = {"id": data.get("payment_id"), "amount_cents": data.get("amount_cents"),
                           "credit_cents": data.get("credit_cents"),
                           "settled": [{"invoice_seq": seq, "amount_cents": cents}
                                       for seq, cents in (data.get("settled") or [])]}
        return body
    body["account"].update(status=row.state_after, previous_status=row.state_before)
    body["reason"] = {"category": row.reason_category, "note": row.reason_note}
    if data.get("cause") is not None:
        body["cause"] = data["cause"]  # service restored by: payment | write_off | invoice
    return body


def payload(kind, row):
    """The JSON body announcing the audit row as an event of type kind (compact, keys sorted: the bytes signed).

    {"id": "evt_<audit id>", "type": kind, "created": "<UTC ISO time of the change>", "data": {...}}
    """
    body = {"id": f"evt_{row.id}", "type": kind, "created": _iso(row.created_at), "data": _data(kind, row)}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
