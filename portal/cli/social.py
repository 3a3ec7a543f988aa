"""`flask social poll|list`: thin click wrappers over portal.domain.features.social."""
import click
from flask.cli import with_appcontext

from portal.cli.common import find_account, parse_as_of
from portal.domain.features import social as social_domain
from portal.domain.features import social_profiles
from portal.plurals import count

social = click.Group("social", help="The social monitor: poll the connected feeds.")


def _when(moment):
    return moment.strftime("%Y-%m-%d %H:%M") if moment else "-"


@social.command("poll")
@click.option("--as-of", "as_of", default=None, metavar="DATE", help="The time taken as now (default now).")
@with_appcontext
def poll_command(as_of):
    """Poll the feeds that are due now (what the scheduled job does) and say what each imported."""
    result = social_domain.poll_due(now=parse_as_of(as_of))
    for summary in result["summaries"]:
        click.echo(f"account #{summary['account_id']}: summary of {count(summary['posts'], 'held post')} "
                   f"sent to {count(summary['emails'], 'manager')}")
    for item in result["profiles"]:
        if item["status"] == "taken":
            click.echo(f"profile #{item['id']}: polled by another worker at the same time")
        elif item["status"] == "imported":
            click.echo(f"profile #{item['id']} {item['handle']}: {count(item['new'], 'new post')}"
                       + (f", {item['skipped']} without content skipped" if item["skipped"] else "")
                       + f"; alerts {item['alerts']}")
        else:
            click.echo(f"profile #{item['id']} {item['handle']}: {item['status']}: {item['error']}")
    click.echo(f"Polled {count(result['polled'], 'profile')}; {count(result['imported'], 'new post')}.")


@social.command("list")
@click.argument("number")
@with_appcontext
def list_command(number):
    """List an account's connected social profiles with their last and next poll."""
    account = find_account(number)
    profiles = social_profiles.list_profiles(account.id)
    if not profiles:
        click.echo(f"No social profile connected in {account.number}.")
    for profile in profiles:
        error = f"  last error ({profile.failures} in a row): {profile.last_error}" if profile.last_error else ""
        next_poll = _when(profile.next_poll_at) if profile.next_poll_at else "now"
        click.echo(f"#{profile.id}  {profile.network}  {profile.handle}  {profile.feed_url}  "
                   f"last poll {_when(profile.last_polled_at)}  next poll {next_poll}{error}")
