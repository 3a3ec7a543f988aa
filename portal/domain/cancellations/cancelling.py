"""Cancelling an account (super admins only): final in the portal, refused while invoices are unpaid.

The dialog's "write off 3 invoices, $120.00, and cancel" is one call and one transaction: the chosen
invoices are written off (each audited), then, if nothing is left unpaid, the account is cancelled;
if any step is refused, nothing of it remains.
"""
from sqlalchemy import select, update

from portal.domain import audit, notify
from portal.domain.accounts import load_for_action
from portal.domain.billing.ledger import write_off_in_transaction, write_off_reason
from portal.domain.billing.unpaid import refuse_if_unpaid
from portal.domain.dunning.account_state import moment_of
from portal.domain.errors import Conflict, InvalidTransition, ValidationFailed
from portal.domain.gate import STATE_LABELS
from portal.domain.parsing import InvalidValue, whole_number
from portal.domain.suspension import validate_reason
from portal.extensions import db
from portal.models import Account, CancellationRequest


def _check_confirmation(account, typed):
    if (typed or "").strip().upper() != account.number.upper():
        raise ValidationFailed({"confirm_number": f"Type the account number, {account.number}, to confirm."})


def _seqs(values):
    """The invoice sequence numbers chosen for writing off, as ints."""
    seqs = []
    for value in values or ():
        try:
            seqs.append(whole_number(str(value).strip().lstrip("#"), 1, 2**31 - 1))
        except InvalidValue:
            raise ValidationFailed({"invoices": f"{str(value)[:20]!r} is not an invoice number."}) from None
    return sorted(set(seqs))


def _check_fresh(account, expected_version):
    if expected_version in (None, ""):
        return
    try:
        expected = whole_number(expected_version, 0)
    except InvalidValue:
        expected = None
    if expected != account.version:
        raise Conflict(f"Account {account.number} changed since you opened this form (it is now "
                       f"{STATE_LABELS[account.status]}). Nothing was changed; review it and try again.")


def _set_cancelled(account, category, note, now):
    """Compare-and-set the status to cancelled at the version read; Conflict if the row moved meanwhile."""
    result = db.session.execute(
        update(Account).where(Account.id == account.id, Account.status == account.status,
                              Account.version == account.version)
        .values(version=Account.version + 1, status="cancelled", status_reason=category, status_note=note,
                status_source="manual", status_changed_at=now, suspended_by_run_id=None, dunning_next_on=None)
        .execution_options(synchronize_session=False))
    if result.rowcount != 1:
        number = account.number
        db.session.rollback()
        raise Conflict(f"Account {number} was changed by someone else at the same moment. "
                       "Nothing was changed; reload it and try again.")
    db.session.refresh(account)


def _close_requests(account, actor, note, now):
    """Close the account's open requests as cancelled; return their ids."""
    open_requests = list(db.session.scalars(select(CancellationRequest).where(
        CancellationRequest.account_id == account.id, CancellationRequest.outcome == "open")))
    for request in open_requests:
        request.outcome, request.outcome_note = "cancelled", note
        request.resolved_by_id, request.resolved_at = getattr(actor, "id", None), now
    return [r.id for r in open_requests]


def cancel_account(actor, account_id, reason_category, reason_note, confirm_number, write_off=(),
                   write_off_note=None, expected_version=None, as_of=None):
    """Cancel an account, writing off the chosen open invoices first, all in one transaction.

    Its managers are emailed, its open requests close as cancelled, every sign-in of its people is
    refused with the cancelled message from now on, and the sweeps, the dunning schedule and its
    automated work leave it alone (they act only on active, limited and suspended accounts).

    Args:
        actor: the super admin (a User).
        account_id: the account.
        reason_category: one of gate.REASONS; reason_note: why (up to 500 characters).
        confirm_number: the account number as typed to confirm.
        write_off: sequence numbers of open invoices to write off first (may be empty).
        write_off_note: the reason for the write-offs (required when write_off is not empty).
        expected_version: the account version the form showed (None: no check).
        as_of: the time of the action (default now).

    Returns:
        (Account, written_off): the cancelled account and the invoices written off.

    Raises:
        AccountNotFound, PermissionDenied (not a super admin), ValidationFailed (reason, note, confirmation,
        write-off reason, an invoice not open), InvalidTransition (already cancelled), Conflict,
        UnpaidInvoices (open invoices remain; it lists them).
    """
    now = moment_of(as_of)
    account = load_for_action(actor, "cancel", account_id)
    if account.status == "cancelled":
        raise InvalidTransition(f"Account {account.number} is already cancelled. Nothing was changed.",
                                current_status="cancelled")
    category, note = validate_reason(reason_category, reason_note)
    _check_confirmation(account, confirm_number)
    _check_fresh(account, expected_version)
    seqs = _seqs(write_off)
    reason = write_off_reason(write_off_note) if seqs else None
    written = [write_off_in_transaction(actor, account.id, seq, reason, as_of=now)[0] for seq in seqs]
    db.session.refresh(account)
    refuse_if_unpaid(account, "be cancelled")
    before = account.status
    managers = notify.account_managers(account.id)
    for manager in managers:  # queued while the account still lets its managers receive email
        notify.queue_email(manager, "account_cancelled", f"Your account {account.number} has been cancelled",
                           "account_cancelled.txt", account=account, reason=category, note=note, now=now)
    _set_cancelled(account, category, note, now)
    notify.hold_members_mail(account.id)
    closed = _close_requests(account, actor, note, now)
    audit.record("cancelled", account.id, actor, reason_category=category, reason_note=note, state_before=before,
                 state_after="cancelled", data={"version": account.version, "requests_closed": closed,
                                                "written_off": [inv.seq for inv in written]}, now=now)
    db.session.commit()
    notify.kick_delivery()
    return account, written
