"""`flask cancellation log|list|retain|import|end-pauses`: thin click wrappers over portal.domain.cancellations."""
import csv
import sys

import click
from flask.cli import with_appcontext

from portal.cli.common import fail, find_account, find_actor, parse_as_of, parse_day
from portal.domain.cancellations import importing, log, requests, retention
from portal.domain.cancellations.choices import (ANSWERS, ATTEMPT_OUTCOMES, CHANNELS, OFFERS, OUTCOMES, REASON_CODES,
                                                 label)
from portal.domain.dunning.account_state import moment_of
from portal.domain.errors import DomainError
from portal.domain.money import dollars
from portal.plurals import count

cancellation = click.Group("cancellation", help="Cancellation requests: log, list, retention, import.")
ACTOR = click.option("--as", "actor_email", required=True, metavar="EMAIL", help="Who acts (support or super admin).")
AS_OF = click.option("--as-of", "as_of", default=None, metavar="DATE", help="The time taken as now (default now).")


def _when(as_of):
    return moment_of(parse_as_of(as_of)) if as_of else None


@cancellation.command("log")
@click.argument("number_or_id")
@click.option("--channel", required=True, type=click.Choice(list(CHANNELS)), help="How the request came in.")
@click.option("--name", required=True, help="The contact's name.")
@click.option("--phone", default="", help="The contact's phone number.")
@click.option("--date", "day", default="", help="The date of the request, YYYY-MM-DD (default today).")
@click.option("--collected", default="", help="Total amount collected, dollars (default: the account's payments).")
@click.option("--months", default="", help="Months in the program (default: since the account began).")
@click.option("--reason-code", required=True, type=click.Choice(list(REASON_CODES)), help="The reason.")
@click.option("--reason", default="", help="The reason in the customer's words.")
@ACTOR
@AS_OF
@with_appcontext
def log_command(number_or_id, channel, name, phone, day, collected, months, reason_code, reason, actor_email, as_of):
    """Log a cancellation request and print its id."""
    target = find_account(number_or_id)
    form = {"channel": channel, "contact_name": name, "phone": phone, "request_date": day, "collected": collected,
            "months": months, "reason_code": reason_code, "reason": reason}
    try:
        request = requests.log_request(find_actor(actor_email), target.id, form, as_of=_when(as_of))
    except DomainError as exc:
        fail(exc)
    click.echo(request.id)


@cancellation.command("list")
@click.option("--csv", "as_csv", is_flag=True, help="Print every request as CSV (the export's columns).")
@click.option("--outcome", default="", help=f"Only this outcome: {', '.join(OUTCOMES)}.")
@with_appcontext
def list_command(as_csv, outcome):
    """List the requests, newest first (one line each, or CSV)."""
    filters = log.parse_log_filters({"outcome": outcome})
    if filters.problems:
        raise click.BadParameter(f"use one of {', '.join(OUTCOMES)}", param_hint="--outcome")
    if as_csv:
        writer = csv.writer(sys.stdout)
        for row in log.csv_rows(filters):
            writer.writerow(row)
        return
    rows, after = log.log_page(filters, 1000)
    for request, account in rows:
        click.echo(f"#{request.id}  {request.request_date}  {account.number}  {request.contact_name}  "
                   f"{label(CHANNELS, request.channel)}  {label(REASON_CODES, request.reason_code)}  "
                   f"{dollars(request.amount_collected_cents)}  {label(OUTCOMES, request.outcome)}")
    if after:
        click.echo("(first 1,000 shown; use --csv for all)")


@cancellation.command("retain")
@click.argument("request_id")
@click.option("--offer", required=True, type=click.Choice(list(OFFERS)), help="The offer made.")
@click.option("--outcome", required=True, type=click.Choice(list(ATTEMPT_OUTCOMES)),
              help="How the request stands after it: open (the attempt failed), retained, paused, withdrawn.")
@click.option("--answer", default=None, type=click.Choice(list(ANSWERS)),
              help="The customer's answer (default: accepted when retained or paused, else declined).")
@click.option("--until", "pause_until", default=None, metavar="DATE", help="For paused: the day the pause ends.")
@click.option("--note", default="", help="A note.")
@ACTOR
@AS_OF
@with_appcontext
def retain_command(request_id, offer, outcome, answer, pause_until, note, actor_email, as_of):
    """Record a retention attempt on a request (super admin)."""
    answer = answer or ("accepted" if outcome in ("retained", "paused") else "declined")
    try:
        retention.record_retention(find_actor(actor_email), request_id, offer, answer, note, outcome=outcome,
                                   pause_until=pause_until, as_of=_when(as_of))
    except DomainError as exc:
        fail(exc)
    click.echo(f"Request #{request_id}: {label(OFFERS, offer)} offered, {label(ANSWERS, answer).lower()}; "
               f"{label(OUTCOMES, outcome).lower()}.")


@cancellation.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("--dry-run", is_flag=True, help="Only say what would be created.")
@ACTOR
@AS_OF
@with_appcontext
def import_command(path, dry_run, actor_email, as_of):
    """Import the old spreadsheet (.xlsx or .csv); rows already imported are skipped."""
    with open(path, "rb") as handle:
        data = handle.read(importing.MAX_BYTES + 1)
    actor = find_actor(actor_email)
    try:
        plan = (importing.plan_import(path, data, as_of=parse_day(as_of)) if dry_run
                else importing.run_import(actor, path, data, as_of=parse_day(as_of)))
    except DomainError as exc:
        fail(exc)
    for row, message in plan.problems:
        click.echo(f"row {row}: {message}")
    verb = "would create" if dry_run else "created"
    click.echo(f"{verb} {len(plan.creates)}; already imported {len(plan.duplicates)}; refused {len(plan.problems)}.")


@cancellation.command("end-pauses")
@AS_OF
@with_appcontext
def end_pauses_command(as_of):
    """Reactivate accounts whose pause has ended (the scheduler does this on every tick)."""
    ended = retention.end_due_pauses(parse_day(as_of))
    click.echo(f"Reactivated {count(len(ended), 'account')}.")
