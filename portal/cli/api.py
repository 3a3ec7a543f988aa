"""`flask api-token ...` (create, list, revoke, prune) and `flask api openapi` (print, write or check the document)."""
import click
from flask.cli import with_appcontext

from portal.cli.common import fail, find_actor
from portal.domain import api_tokens
from portal.domain.errors import DomainError


@click.group("api-token")
def api_token():
    """API tokens for the JSON API (/api/v1)."""


@api_token.command("create")
@click.argument("name")
@click.option("--scopes", required=True, help="Comma-separated: " + ", ".join(api_tokens.SCOPES) + ".")
@click.option("--as", "actor_email", required=True, metavar="EMAIL", help="The super admin the token acts for.")
@click.option("--expires", default=None, metavar="DATE",
              help=f"The day it stops working (default {api_tokens.DEFAULT_DAYS} days from today).")
@with_appcontext
def create_command(name, scopes, actor_email, expires):
    """Create a token and print it once (alone on standard output, for scripts)."""
    try:
        token, text = api_tokens.create_token(find_actor(actor_email), name, scopes, expires)
    except DomainError as exc:
        fail(exc)
    click.echo(text)
    click.echo(f"Token {token.prefix}… ({token.name}) created with {', '.join(token.scope_list)}; it expires on "
               f"{token.expires_at:%Y-%m-%d}. It is shown only now.", err=True)


@api_token.command("list")
@with_appcontext
def list_command():
    """List the tokens: prefix, name, scopes, state, expiry and last use."""
    rows = api_tokens.list_tokens()
    if not rows:
        click.echo("No API token yet.")
    for token, maker in rows:
        used = f"{token.last_used_at:%Y-%m-%d %H:%M}" if token.last_used_at else "never"
        click.echo(f"{token.prefix}…  {token.name}  [{', '.join(token.scope_list)}]  {api_tokens.state_of(token)}  "
                   f"expires {token.expires_at:%Y-%m-%d}  last used {used}  by {maker.email if maker else '?'}")


@api_token.command("revoke")
@click.argument("prefix")
@click.option("--as", "actor_email", required=True, metavar="EMAIL", help="The super admin revoking it.")
@with_appcontext
def revoke_command(prefix, actor_email):
    """Revoke the token whose prefix (as listed, e.g. ak_1a2b3c4d) is given."""
    found = api_tokens.find_by_prefix(prefix.rstrip("…").strip())
    if not found:
        raise click.ClickException(f"No API token with the prefix {prefix!r}.")
    if len(found) > 1:
        raise click.ClickException(f"{len(found)} tokens share the prefix {prefix!r}; revoke them on the API "
                                   "tokens page.")
    try:
        token = api_tokens.revoke_token(find_actor(actor_email), found[0].id)
    except DomainError as exc:
        fail(exc)
    click.echo(f"Token {token.prefix}… ({token.name}) revoked.")


@api_token.command("prune")
@click.option("--days", default=api_tokens.EVENTS_KEPT_DAYS, show_default=True, type=click.IntRange(1, 3650),
              help="Keep the tokens' logs this many days.")
@with_appcontext
def prune_command(days):
    """Delete old log lines of the tokens, and idempotency keys older than 24 hours."""
    from portal.api import idempotency

    events = api_tokens.prune_events(days)
    keys = idempotency.prune()
    click.echo(f"Deleted {events} logged requests older than {days} days and {keys} idempotency keys.")


@click.group("api")
def api_group():
    """The JSON API's OpenAPI document."""


@api_group.command("openapi")
@click.option("--write", "write", is_flag=True, help="Write it to docs/openapi.json (the checked-in copy).")
@click.option("--check", "check", is_flag=True, help="Exit 1 if docs/openapi.json differs from the code's document.")
@with_appcontext
def openapi_command(write, check):
    """Print the OpenAPI document generated from the code (or write or check the checked-in copy)."""
    from portal.api import docs

    text = docs.document_text()
    if write:
        click.echo(f"Wrote {docs.write_document()}.")
    elif check:
        try:
            with open(docs.CHECKED_IN, encoding="utf-8") as checked_in:
                same = checked_in.read() == text
        except FileNotFoundError:
            same = False
        if not same:
            raise click.ClickException("docs/openapi.json differs from the API's code: run "
                                       "'flask api openapi --write' and commit it.")
        click.echo("docs/openapi.json matches the code.")
    else:
        click.echo(text, nl=False)
