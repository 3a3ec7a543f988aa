"""Reading accounts as an actor may see them."""
from portal.domain.errors import AccountNotFound
from portal.domain.parsing import record_id
from portal.extensions import db
from portal.models import Account


def get_account(actor, account_id):
    """Return the account if the actor may see it.

    Args:
        actor: the signed-in User.
        account_id: the account's id (any value; bad ones are simply not found).

    Raises:
        AccountNotFound: no such account, or it belongs to another customer (same answer, so ids
            of other customers' accounts cannot be probed).
    """
    account_id = record_id(account_id)
    if account_id is None:
        raise AccountNotFound()
    if not actor.is_staff and actor.account_id != account_id:
        raise AccountNotFound()
    account = db.session.get(Account, account_id)
    if account is None:
        raise AccountNotFound()
    return account


def load_for_action(actor, action, account_id):
    """Return the account read fresh from the database, if the gate lets actor do action on it.

    Args:
        actor: the User acting.
        action: a gate action (suspend, reactivate, set_exempt, ...).
        account_id: the account's id (bad values are simply not found).

    Raises:
        AccountNotFound: no such account.
        PermissionDenied: the gate refuses the action; its message says why.
    """
    from portal.domain.gate import require

    account_id = record_id(account_id)
    account = db.session.get(Account, account_id, populate_existing=True) if account_id is not None else None
    if account is None:
        raise AccountNotFound()
    require(actor, action, account)
    return account
