"""Reading accounts as an actor may see them."""
from portal.domain.errors import AccountNotFound
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
    try:
        account_id = int(account_id)
    except (TypeError, ValueError):
        raise AccountNotFound() from None
    if not actor.is_staff and actor.account_id != account_id:
        raise AccountNotFound()
    account = db.session.get(Account, account_id)
    if account is None:
        raise AccountNotFound()
    return account
