"""`flask demo seed|logins` and `flask outbox-deliver`."""
import click
from flask.cli import with_appcontext

from portal import seed as seed_module
from portal.cli.common import parse_as_of

demo = click.Group("demo", help="Demo data.")


@demo.command("seed")
@click.option("--accounts", "count", default=1000, show_default=True, type=click.IntRange(1, 5_000_000),
              help="How many customer accounts to create.")
@click.option("--seed", "rng_seed", default=42, show_default=True, help="Random seed (same seed, same data).")
@click.option("--as-of", default=None, help="Build the data around this time (UTC; default now).")
@click.option("--if-empty", is_flag=True, help="Seed only an empty database; otherwise say so and succeed.")
@with_appcontext
def demo_seed(count, rng_seed, as_of, if_empty):
    """Fill an empty database with realistic demo data and print the demo logins."""
    import time

    now = parse_as_of(as_of)
    if if_empty and seed_module.has_accounts():
        click.echo("The database already has accounts; no demo data added.")
        return
    started = time.perf_counter()
    with click.progressbar(length=count, label="Seeding accounts", show_pos=True) as bar:
        try:
            seed_module.seed_demo(count, now=now, seed=rng_seed, progress=bar.update)
        except seed_module.SeedRefused as exc:
            raise click.ClickException(str(exc)) from None
    elapsed = time.perf_counter() - started
    click.echo(f"Created {count:,} accounts in {elapsed:.1f} s ({count / elapsed:,.0f} accounts/s).")
    print_logins()


def print_logins():
    """Print the demo sign-ins."""
    click.echo(f"Demo sign-ins (password for all: {seed_module.DEMO_PASSWORD}):")
    for email, _name, role, account_id in seed_module.DEMO_LOGINS:
        where = f"account {account_id}" if account_id else "staff"
        click.echo(f"  {role:<16} {email:<24} ({where})")


@demo.command("logins")
def demo_logins():
    """Print the demo sign-ins."""
    print_logins()


@click.command("outbox-deliver")
@with_appcontext
def outbox_deliver():
    """Send pending outbox emails now (normally an RQ job does this)."""
    from portal.domain.notify import deliver_pending

    sent, failed = deliver_pending()
    click.echo(f"Sent {sent}, failed {failed}.")

