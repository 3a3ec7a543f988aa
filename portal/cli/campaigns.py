"""`flask campaign list|send-due|pause|resume|end`: thin click wrappers over portal.domain.features.campaigns."""
import click
from flask.cli import with_appcontext

from portal.cli.common import fail, find_account, find_actor, parse_as_of
from portal.domain.dunning.account_state import moment_of
from portal.domain.errors import DomainError
from portal.domain.features import campaigns as campaigns_domain
from portal.domain.parsing import record_id
from portal.plurals import count

campaign = click.Group("campaign", help="Campaigns: list them and send what is due.")
ACTOR = click.option("--as", "actor_email", required=True, metavar="EMAIL", help="The account manager acting.")


@campaign.command("list")
@click.argument("number")
@with_appcontext
def list_command(number):
    """List an account's campaigns: state, survey, delay, daily limit, waiting and sent today."""
    account = find_account(number)
    rows = campaigns_domain.list_campaigns(account.id)
    if not rows:
        click.echo(f"No campaign in {account.number}.")
    for item, subject, pending, sent_today in rows:
        held = f"  [{item.held_reason}]" if item.held_reason else ""
        click.echo(f"#{item.id}  {item.name}  {campaigns_domain.STATES.get(item.state, item.state)}{held}  "
                   f"sends {subject or '-'!r} {item.delay_hours} h after a visit, at most {item.daily_limit:,} a day  "
                   f"waiting {pending}  sent today {sent_today}")


@campaign.command("send-due")
@click.option("--as-of", "as_of", default=None, metavar="DATE", help="The time taken as now (default now).")
@with_appcontext
def send_due_command(as_of):
    """Send the due survey requests of every running campaign now (what the scheduled job does)."""
    totals = campaigns_domain.send_due(now=moment_of(parse_as_of(as_of)) if as_of else None)
    click.echo(f"Sent {count(totals['sent'], 'survey request')} for {count(totals['campaigns'], 'campaign')}; "
               f"{totals['held']} held by the account's state.")


def _change(campaign_id, actor_email, action):
    actor = find_actor(actor_email)
    if record_id(campaign_id) is None:
        raise click.BadParameter("use a campaign id (a whole number)", param_hint="ID")
    try:
        changed = campaigns_domain.change_state(actor, campaign_id, action)
    except DomainError as exc:
        fail(exc)
    click.echo(f"Campaign #{changed.id} {changed.name!r} is now {campaigns_domain.STATES[changed.state].lower()}.")


@campaign.command("pause")
@click.argument("campaign_id", metavar="ID")
@ACTOR
@with_appcontext
def pause_command(campaign_id, actor_email):
    """Pause a running campaign."""
    _change(campaign_id, actor_email, "pause")


@campaign.command("resume")
@click.argument("campaign_id", metavar="ID")
@ACTOR
@with_appcontext
def resume_command(campaign_id, actor_email):
    """Resume a paused campaign."""
    _change(campaign_id, actor_email, "resume")


@campaign.command("end")
@click.argument("campaign_id", metavar="ID")
@ACTOR
@with_appcontext
def end_command(campaign_id, actor_email):
    """End a campaign for good (its waiting requests are cancelled)."""
    _change(campaign_id, actor_email, "end")
