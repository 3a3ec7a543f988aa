"""`flask account create|show|shift|lift|set-class`, `flask class ...`, `flask billing ...`, `flask dunning ...`.

Thin click wrappers over portal.domain: every command takes --as-of DATE (default today: the day the
action is taken as), the changing ones --as EMAIL (and --reason/--note where the action needs a reason),
so operators can script the dunning process and replay its calendar day by day. A refused command exits
non-zero with the domain's message.
"""
import json

import click
from flask.cli import with_appcontext

from portal import plurals
from portal.cli.accounts import account
from portal.cli.common import fail, find_account, find_actor, parse_day
from portal.domain.errors import DomainError
from portal.domain.suspension import DUNNING_OVERRIDE_REASONS

class_group = click.Group("class", help="Customer classes: when overdue accounts are limited and suspended.")
billing = click.Group("billing", help="Invoices, payments and write-offs.")
dunning = click.Group("dunning", help="The daily dunning evaluation (runs on the sweeps queue).")


AS_OF = click.option("--as-of", "as_of", default=None, metavar="DATE", help="The day taken as today (default today).")
ACTOR = click.option("--as", "actor_email", required=True, metavar="EMAIL", help="The super admin acting.")
REASON = click.option("--reason", "reason", default="promise_to_pay", show_default=True,
                      type=click.Choice(list(DUNNING_OVERRIDE_REASONS)), help="Reason category.")
NOTE = click.option("--note", required=True, help="Why, up to 500 characters.")


# ---------------------------------------------------------------- accounts

@account.command("create")
@click.argument("name")
@click.option("--email", required=True, help="The account's email address.")
@click.option("--class", "class_name", default=None, help="Its customer class (by name).")
@ACTOR
@AS_OF
@with_appcontext
def create_command(name, email, class_name, actor_email, as_of):
    """Create an account and print its number."""
    from portal.domain.onboarding import create_account

    try:
        created = create_account(find_actor(actor_email), name, email, class_name, as_of=parse_day(as_of))
    except DomainError as exc:
        fail(exc)
    click.echo(created.number)


@account.command("show")
@click.argument("number_or_id")
@AS_OF
@click.option("--json", "as_json", is_flag=True, help="Print the record as JSON.")
@with_appcontext
def show_command(number_or_id, as_of, as_json):
    """Show what an account's record says on a day (nothing is changed)."""
    from portal.domain.dunning.status import record

    data = record(find_account(number_or_id), parse_day(as_of))
    if as_json:
        click.echo(json.dumps(data, sort_keys=True))
        return
    click.echo(f"{data['number']}  {data['label']}  (service: {data['service']}, as of {data['as_of']})")
    if data["pending_action"]:
        click.echo(f"  next: {data['pending_action']} on {data['pending_date']}")
    if data["overdue_invoices"]:
        click.echo(f"  overdue invoices: {', '.join(f'#{s}' for s in data['overdue_invoices'])} "
                   f"(${data['overdue_cents'] / 100:,.2f}, since {data['episode_start']})")
    if data["all_paid"]:
        click.echo("  everything overdue is paid; this manual suspension stays until an admin reactivates it")


@account.command("shift")
@click.argument("number_or_id")
@click.option("--limitation-date", default=None, metavar="DATE", help="The new limitation date.")
@click.option("--suspension-date", default=None, metavar="DATE", help="The new suspension date.")
@REASON
@NOTE
@ACTOR
@AS_OF
@with_appcontext
def shift_command(number_or_id, limitation_date, suspension_date, reason, note, actor_email, as_of):
    """Move an approaching limitation and/or suspension to a later date."""
    from portal.domain.dunning.overrides import shift

    target = find_account(number_or_id)
    try:
        view = shift(find_actor(actor_email), target.id, parse_day(limitation_date, "--limitation-date"),
                     parse_day(suspension_date, "--suspension-date"), reason, note, as_of=parse_day(as_of))
    except DomainError as exc:
        fail(exc)
    _echo_after(target.number, view)


@account.command("lift")
@click.argument("number_or_id")
@click.option("--until", required=True, metavar="DATE", help="Full service until this date.")
@REASON
@NOTE
@ACTOR
@AS_OF
@with_appcontext
def lift_command(number_or_id, until, reason, note, actor_email, as_of):
    """Lift an applied non-payment limitation or suspension until a date."""
    from portal.domain.dunning.overrides import lift

    target = find_account(number_or_id)
    try:
        view = lift(find_actor(actor_email), target.id, parse_day(until, "--until"), reason, note,
                    as_of=parse_day(as_of))
    except DomainError as exc:
        fail(exc)
    _echo_after(target.number, view)


@account.command("set-class")
@click.argument("number_or_id")
@click.argument("class_name")
@ACTOR
@AS_OF
@with_appcontext
def set_class_command(number_or_id, class_name, actor_email, as_of):
    """Put an account in a customer class."""
    from portal.domain.dunning.classes import set_class

    target = find_account(number_or_id)
    try:
        set_class(find_actor(actor_email), target.id, class_name, as_of=parse_day(as_of))
    except DomainError as exc:
        fail(exc)
    click.echo(f"Account {target.number} is now in class {class_name!r}.")


def _echo_after(number, view):
    from portal.domain.gate import STATE_LABELS

    line = f"Account {number}: {STATE_LABELS[view.status]}"
    if view.pending_action:
        line += f"; next: {view.pending_action} on {view.pending_date.isoformat()}"
    click.echo(line + ".")


# ---------------------------------------------------------------- classes

@class_group.command("create")
@click.argument("name")
@click.option("--limit-after", default=None, help="Days after the episode begins until service is limited.")
@click.option("--suspend-after", default=None, help="Days after the episode begins until the account is suspended.")
@click.option("--least-amount", default=None, help="The least overdue amount that counts (dollars; default 0.01).")
@click.option("--warning-days", default=None, help="Warn the managers this many days before each step.")
@click.option("--as", "actor_email", default=None, metavar="EMAIL", help="The super admin acting (default: system).")
@AS_OF
@with_appcontext
def class_create_command(name, limit_after, suspend_after, least_amount, warning_days, actor_email, as_of):
    """Create a customer class."""
    from portal.domain.dunning.classes import create_class

    try:
        cls = create_class(_actor(actor_email), {"name": name, "limit_after_days": limit_after,
                                               "suspend_after_days": suspend_after, "least_amount": least_amount,
                                               "warning_days": warning_days}, now=parse_day(as_of))
    except DomainError as exc:
        fail(exc)
    click.echo(f"Created class {cls.name!r}.")


@class_group.command("list")
@with_appcontext
def class_list_command():
    """List the customer classes with their schedules."""
    from portal.domain.dunning.classes import list_classes

    for cls, count in list_classes():
        limit = f"{cls.limit_after_days} days" if cls.limit_after_days is not None else "never"
        suspend = f"{cls.suspend_after_days} days" if cls.suspend_after_days is not None else "never"
        click.echo(f"{cls.name}: limit after {limit}, suspend after {suspend}, least amount "
                   f"${(cls.least_amount_cents or 1) / 100:,.2f}; {plurals.count(count, 'account')}")


# ---------------------------------------------------------------- billing

@billing.command("invoice")
@click.argument("number_or_id")
@click.option("--amount", required=True, help="Dollars, like 120.00.")
@click.option("--due", required=True, metavar="DATE", help="The due date.")
@click.option("--as", "actor_email", default=None, metavar="EMAIL", help="The super admin acting.")
@AS_OF
@with_appcontext
def invoice_command(number_or_id, amount, due, actor_email, as_of):
    """Add an invoice to an account and print its sequence number."""
    from portal.domain.billing.ledger import add_invoice

    target = find_account(number_or_id)
    try:
        invoice = add_invoice(_actor(actor_email), target.id, amount, due, as_of=parse_day(as_of))
    except DomainError as exc:
        fail(exc)
    click.echo(invoice.seq)


@billing.command("pay")
@click.argument("number_or_id")
@click.option("--amount", required=True, help="Dollars, like 120.00.")
@click.option("--invoice", "invoice_seq", default=None, help="The invoice's sequence number (default oldest first).")
@click.option("--as", "actor_email", default=None, metavar="EMAIL", help="The super admin acting.")
@AS_OF
@with_appcontext
def pay_command(number_or_id, amount, invoice_seq, actor_email, as_of):
    """Record a payment; it clears an automatic non-payment restriction once nothing is overdue."""
    from portal.domain.billing.ledger import record_payment

    target = find_account(number_or_id)
    try:
        outcome = record_payment(_actor(actor_email), target.id, amount, invoice_seq, as_of=parse_day(as_of))
    except DomainError as exc:
        fail(exc)
    click.echo(outcome.message)


@billing.command("write-off")
@click.argument("number_or_id")
@click.option("--invoice", "invoice_seq", required=True, help="The invoice's sequence number.")
@click.option("--reason", required=True, help="Why it is written off.")
@click.option("--as", "actor_email", default=None, metavar="EMAIL", help="The super admin acting.")
@AS_OF
@with_appcontext
def write_off_command(number_or_id, invoice_seq, reason, actor_email, as_of):
    """Write off an open invoice with a reason."""
    from portal.domain.billing.ledger import write_off

    target = find_account(number_or_id)
    try:
        invoice, restored = write_off(_actor(actor_email), target.id, invoice_seq, reason, as_of=parse_day(as_of))
    except DomainError as exc:
        fail(exc)
    click.echo(f"Invoice #{invoice.seq} written off." + (" Service is restored." if restored else ""))


def _actor(email):
    """The acting super admin; without --as, the first super admin (for scripts of the billing system)."""
    if email:
        return find_actor(email)
    from sqlalchemy import select

    from portal.extensions import db
    from portal.models import User

    admin = db.session.scalar(select(User).where(User.role == "super_admin", User.disabled.is_(False))
                              .order_by(User.id).limit(1))
    if admin is None:
        raise click.ClickException("No super admin exists; pass --as EMAIL.")
    return admin


# ---------------------------------------------------------------- the daily run

@dunning.command("run")
@AS_OF
@click.option("--wait/--no-wait", default=True, show_default=True, help="Follow the run until it ends.")
@with_appcontext
def dunning_run_command(as_of, wait):
    """Start the day's dunning evaluation on the sweeps queue and follow it to its report."""
    from portal.cli.sweeps import _follow
    from portal.domain.dunning.daily import start_daily_run

    try:
        run = start_daily_run(None, parse_day(as_of), trigger="cli")
    except DomainError as exc:
        fail(exc)
    click.echo(f"Started dunning run #{run.id} for {run.as_of:%Y-%m-%d} on the sweeps queue.")
    _follow(run.id, wait)


@dunning.command("preview")
@AS_OF
@with_appcontext
def dunning_preview_command(as_of):
    """Show what the day's run would change, per step, with a sample."""
    from portal.domain.dunning.daily import preview

    result = preview(parse_day(as_of))
    click.echo(f"As of {result['day']}: {result['looked_at']:,} accounts due a look.")
    if not result["steps"]:
        click.echo("  nothing would change")
    for step, count in sorted(result["steps"].items()):
        click.echo(f"  {step}: {count:,}")
    for item in result["sample"]:
        click.echo(f"  {item['number']}  {item['name']}: {item['change']} (invoices "
                   f"{', '.join(f'#{s}' for s in item['invoices'])})")

