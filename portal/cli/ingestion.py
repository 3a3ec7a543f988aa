"""`flask ingestion key create|list|revoke`: thin click wrappers over portal.domain.features.ingestion_keys."""
import click
from flask.cli import with_appcontext

from portal.cli.common import fail, find_account, find_actor
from portal.domain.errors import DomainError
from portal.domain.features import ingestion_keys
from portal.domain.parsing import record_id

ingestion = click.Group("ingestion", help="Data ingestion: keys for the ingestion endpoint.")
key_group = click.Group("key", help="Ingestion keys: create (printed once), list, revoke.")
ingestion.add_command(key_group)
ACTOR = click.option("--as", "actor_email", required=True, metavar="EMAIL",
                     help="Who acts: an account manager of the account (or a super admin, if the gate allows it).")


@key_group.command("create")
@click.argument("number")
@click.option("--name", required=True, help="What the key is for, e.g. 'Till in the shop'.")
@ACTOR
@with_appcontext
def create_command(number, name, actor_email):
    """Create an ingestion key for an account and print it (the only time it is shown)."""
    account = find_account(number)
    actor = find_actor(actor_email)
    try:
        key, text = ingestion_keys.create_key(actor, account.id, name)
    except DomainError as exc:
        fail(exc)
    click.echo(f"Created key #{key.id} {key.name!r} for {account.number}. It is shown only now; keep it safe:",
               err=True)
    click.echo(text)


def _minute(moment):
    return moment.isoformat(sep=" ", timespec="minutes")


@key_group.command("list")
@click.argument("number")
@with_appcontext
def list_command(number):
    """List an account's ingestion keys: id, prefix, name, created, last used, revoked."""
    account = find_account(number)
    keys = ingestion_keys.list_keys(account.id)
    if not keys:
        click.echo(f"No ingestion key in {account.number}.")
    for key in keys:
        used = _minute(key.last_used_at) if key.last_used_at else "never"
        state = f"revoked {_minute(key.revoked_at)}" if key.revoked_at else "active"
        click.echo(f"#{key.id}  {key.prefix}…  {key.name}  created {_minute(key.created_at)}  last used {used}  "
                   f"{state}")


@key_group.command("revoke")
@click.argument("key_id")
@ACTOR
@with_appcontext
def revoke_command(key_id, actor_email):
    """Revoke an ingestion key: the endpoint refuses it from the next request on."""
    actor = find_actor(actor_email)
    if record_id(key_id) is None:
        raise click.BadParameter("use a key id (a whole number, see 'flask ingestion key list')", param_hint="KEY_ID")
    try:
        key = ingestion_keys.revoke_key(actor, key_id)
    except DomainError as exc:
        fail(exc)
    click.echo(f"Revoked key #{key.id} {key.prefix}… {key.name!r}.")
