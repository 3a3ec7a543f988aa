"""`flask account suspend|reactivate`: thin click wrappers over portal.domain.suspension."""
import click
from flask.cli import with_appcontext

from portal.cli.common import find_account, find_actor, parse_day
from portal.domain import suspension
from portal.domain.dunning.account_state import moment_of
from portal.domain.errors import DomainError, ValidationFailed
from portal.domain.gate import REASONS, STATE_LABELS

account = click.Group("account", help="Suspend or reactivate one account, with a reason (as a super admin).")


def _change(action, number_or_id, reason, note, actor_email, as_of=None):
    target = find_account(number_or_id)
    before = target.status
    when = moment_of(parse_day(as_of)) if as_of else None
    try:
        changed = getattr(suspension, action)(find_actor(actor_email), target.id, reason, note, now=when)
    except ValidationFailed as exc:
        raise click.ClickException(" ".join(exc.field_errors.values())) from None
    except DomainError as exc:
        raise click.ClickException(exc.message) from None
    click.echo(f"Account {changed.number} ({changed.name}): {STATE_LABELS[before]} -> {STATE_LABELS[changed.status]}.")


def _options(reasons):
    return [
        click.argument("number_or_id"),
        click.option("--reason", "reason", required=True, help=f"Reason category: {', '.join(reasons)}."),
        click.option("--note", required=True, help=f"Why, up to {suspension.NOTE_MAX} characters."),
        click.option("--as", "actor_email", required=True, metavar="EMAIL", help="The super admin acting."),
        click.option("--as-of", "as_of", default=None, metavar="DATE", help="The day taken as today (default today)."),
    ]


def _with_options(command, reasons=REASONS):
    for option in reversed(_options(reasons)):
        command = option(command)
    return command


def _with_reactivation_options(command):
    return _with_options(command, suspension.REACTIVATION_REASONS)


@account.command("suspend")
@_with_options
@with_appcontext
def suspend_command(number_or_id, reason, note, actor_email, as_of):
    """Suspend an account (by number or id) with a reason; its account managers are emailed."""
    _change("suspend", number_or_id, reason, note, actor_email, as_of)


@account.command("reactivate")
@_with_reactivation_options
@with_appcontext
def reactivate_command(number_or_id, reason, note, actor_email, as_of):
    """Reactivate a suspended or limited account (by number or id) with a reason."""
    _change("reactivate", number_or_id, reason, note, actor_email, as_of)


@account.command("cancel")
@_with_options
@with_appcontext
def cancel_command(number_or_id, reason, note, actor_email, as_of):
    """Cancel an account (final); refused, listing the open invoices, while any is unpaid."""
    from portal.domain.cancellations.cancelling import cancel_account
    from portal.domain.errors import UnpaidInvoices

    target = find_account(number_or_id)
    when = moment_of(parse_day(as_of)) if as_of else None
    try:
        cancelled, _written = cancel_account(find_actor(actor_email), target.id, reason, note, target.number,
                                             as_of=when)
    except UnpaidInvoices as exc:
        listed = ", ".join(f"#{i['seq']}" for i in exc.invoices)
        raise click.ClickException(f"{exc.message} (open invoices: {listed}; write them off with "
                                   f"'flask billing write-off {target.number} --invoice SEQ --reason TEXT')") from None
    except ValidationFailed as exc:
        raise click.ClickException(" ".join(exc.field_errors.values())) from None
    except DomainError as exc:
        raise click.ClickException(exc.message) from None
    click.echo(f"Account {cancelled.number} ({cancelled.name}) is cancelled.")
