"""`flask sweep ...` and `flask scheduler run`: thin click wrappers over portal.domain.sweeps and schedule."""
import sys
import time

import click
from flask import current_app
from flask.cli import with_appcontext

from portal.cli.common import fail as _fail, find_actor, parse_as_of
from portal.domain import runs, sweeps
from portal.domain.errors import DomainError
from portal.domain.gate import REASONS
from portal.domain.runs import pace
from portal.domain.suspension import REACTIVATION_REASONS
from portal.extensions import db

sweep = click.Group("sweep", help="Preview, run, follow, pause, resume, cancel and undo sweeps and other runs "
                                  "(runs go through RQ's sweeps queue).")
scheduler = click.Group("scheduler", help="The recurring sweep's scheduler.")
REASON_CHOICES = click.Choice([sweeps.BY_RULE, *REASONS])


def _echo_preview(result):
    click.echo(f"As of {result['as_of']:%Y-%m-%d %H:%M} UTC, {result['total_accounts']:,} accounts:")
    click.echo(f"  would suspend   {result['would_change']:,}")
    for rule in result["rules"]:
        click.echo(f"    by rule {rule['name']!r}: {result['per_rule'][rule['id']]:,}  ({rule['description']})")
    for reason, count in result["skipped"].items():
        click.echo(f"  left alone      {count:,} ({reason})")


@sweep.command("preview")
@click.option("--as-of", default=None, help="Evaluate the rules at this time (UTC; default now).")
@click.option("--sample", "sample_size", default=20, show_default=True, type=click.IntRange(0, 1000),
              help="How many accounts to list.")
@with_appcontext
def preview_command(as_of, sample_size):
    """Show what a sweep by the enabled rules would do, without changing anything."""
    result = sweeps.preview(as_of=parse_as_of(as_of), sample_size=sample_size)
    if not result["rules"]:
        raise click.ClickException("No rule is enabled: nothing would be swept.")
    _echo_preview(result)
    for row in result["sample"]:
        click.echo(f"  {row['number']}  {row['name']}: {'; '.join(row['why'])}")


@sweep.command("run")
@click.option("--as-of", default=None, help="Evaluate the rules at this time (UTC; default now).")
@click.option("--confirm", "confirm_count", default=None,
              help="The number of accounts to suspend, to confirm without a prompt.")
@click.option("--reason", "reason_category", type=REASON_CHOICES, default=sweeps.BY_RULE, show_default=True,
              help="by_rule: non-payment where a money rule matched, else inactivity.")
@click.option("--note", default="One-time clean-up of inactive and delinquent accounts", show_default=True)
@click.option("--wait/--no-wait", default=True, show_default=True, help="Follow the run until it ends.")
@with_appcontext
def run_command(as_of, confirm_count, reason_category, note, wait):
    """Start the one-time clean-up by the enabled rules and follow its progress."""
    as_of = parse_as_of(as_of)
    result = sweeps.preview(as_of=as_of, sample_size=0)
    _echo_preview(result)
    if result["needs_confirmation"] and confirm_count is None:
        confirm_count = click.prompt(f"Type {result['would_change']} to suspend {result['would_change']:,} accounts",
                                     default="", show_default=False)
    try:
        run = sweeps.start_cleanup(None, reason_category, note, confirm_count=confirm_count, as_of=as_of,
                                   trigger="cli")
    except DomainError as exc:
        _fail(exc)
    click.echo(f"Started clean-up run #{run.id} on the sweeps queue.")
    _follow(run.id, wait)


def _latest_run_id():
    latest = sweeps.list_runs(limit=1)
    if not latest:
        raise click.ClickException("No runs yet.")
    return latest[0]["run"].id


@sweep.command("status")
@click.argument("run_id", required=False)
@with_appcontext
def status_command(run_id):
    """Show a run's progress and report (default: the latest run)."""
    try:
        _report(runs.progress(run_id if run_id is not None else _latest_run_id()))
    except DomainError as exc:
        _fail(exc)


@sweep.command("show")
@click.argument("run_id", required=False)
@with_appcontext
def show_command(run_id):
    """Show a run's progress in accounts (processed of the total, rate, time left) and its report."""
    try:
        _report(runs.progress(run_id if run_id is not None else _latest_run_id()))
    except DomainError as exc:
        _fail(exc)


@sweep.command("follow")
@click.argument("run_id", required=False)
@with_appcontext
def follow_command(run_id):
    """Follow a run until it finishes, is paused or is cancelled (default: the latest run)."""
    try:
        run = runs.get_run(run_id if run_id is not None else _latest_run_id())
    except DomainError as exc:
        _fail(exc)
    _follow(run.id, True)


@sweep.command("undo")
@click.argument("run_id")
@click.option("--reason", "reason_category", type=click.Choice(list(REACTIVATION_REASONS)), required=True,
              help="Why the accounts get their service back.")
@click.option("--note", required=True, help="Why the run is undone.")
@click.option("--wait/--no-wait", default=True, show_default=True)
@with_appcontext
def undo_command(run_id, reason_category, note, wait):
    """Reactivate the accounts a run suspended that are still suspended by it."""
    try:
        run = sweeps.start_undo(None, run_id, reason_category, note, trigger="cli")
    except DomainError as exc:
        _fail(exc)
    click.echo(f"Started undo run #{run.id} of run #{run_id}.")
    _follow(run.id, wait)


@sweep.command("pause")
@click.argument("run_id")
@click.option("--as", "as_email", required=True, help="Email of the super admin pausing it (audited).")
@with_appcontext
def pause_command(run_id, as_email):
    """Pause a running run: its workers stop after the chunk in hand (resume it later)."""
    try:
        run = runs.pause_run(find_actor(as_email), run_id)
    except DomainError as exc:
        _fail(exc)
    click.echo(f"Paused run #{run.id}: {runs.progress(run.id)['summary']}")
    click.echo(f"Resume it with: flask sweep resume {run.id} --as {as_email}")


@sweep.command("resume")
@click.argument("run_id")
@click.option("--as", "as_email", default=None, help="Email of the super admin resuming it (audited; default: "
                                                       "the system).")
@click.option("--wait/--no-wait", default=True, show_default=True)
@with_appcontext
def resume_command(run_id, as_email, wait):
    """Queue a paused, failed or stalled run again (chunks already done are not redone)."""
    try:
        run = runs.resume_run(find_actor(as_email) if as_email else None, run_id)
    except DomainError as exc:
        _fail(exc)
    click.echo(f"Resumed run #{run.id}.")
    _follow(run.id, wait)


@sweep.command("cancel")
@click.argument("run_id")
@click.option("--as", "as_email", required=True, help="Email of the super admin cancelling it (audited).")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@with_appcontext
def cancel_command(run_id, as_email, yes):
    """Cancel a run: it stops after the chunk in hand and keeps what it finished (undo it to reverse that)."""
    try:
        actor = find_actor(as_email)
        state = runs.progress(run_id)
        if not yes:
            click.confirm(f"Cancel run #{state['id']} ({state['summary']})? What it finished stays done",
                          abort=True)
        run = runs.cancel_run(actor, run_id)
    except DomainError as exc:
        _fail(exc)
    click.echo(f"Cancelled run #{run.id}: {runs.progress(run.id)['summary']}")


def _follow(run_id, wait, poll=0.5):
    """Show progress in accounts until the run ends (or is paused), then its report."""
    if not wait:
        click.echo(f"Follow it with: flask sweep follow {run_id}")
        return
    state = runs.progress(run_id)
    hinted, started = False, time.monotonic()
    interactive = sys.stdout.isatty()
    length = max(state["total"] or state["chunks"], 1)
    with click.progressbar(length=length, label=f"Run #{run_id}", show_percent=True, show_eta=False,
                           item_show_func=lambda _item: _line(state) if interactive else None) as bar:
        shown, said = 0, None
        while not state["finished"] and not (state["status"] == "paused" and not state["stopping"]):
            time.sleep(poll)
            db.session.rollback()  # see the workers' commits
            state = runs.progress(run_id)
            done = min(round(state["done_fraction"] * length), length)
            if done != shown:
                bar.update(done - shown)
                shown = done
            if not interactive and _line(state) != said and state["processed"]:  # a log: one line per step
                said = _line(state)
                click.echo(f"  {said}")
            if not hinted and state["status"] == "queued" and time.monotonic() - started > 10:
                click.echo("\nWaiting for a sweep worker: start one with `python worker.py sweeps`.", err=True)
                hinted = True
        if state["status"] == "done":
            bar.update(length - shown)
    _report(state)
    if state["status"] == "failed":
        raise click.ClickException(f"Run #{run_id} failed: {state['error']}. Resume it with "
                                   f"`flask sweep resume {run_id}`.")
    if state["status"] == "paused":
        click.echo(f"Run #{run_id} is paused. Resume it with `flask sweep resume {run_id} --as EMAIL`.")


def _line(state):
    """The progress line: accounts processed of the total, the rate and the time left."""
    return f"{state['summary']} {state['changed']:,} {_verb(state)} so far."


def _verb(state):
    return {"suspend": "suspended", "reactivate": "reactivated"}.get(state["action"], "changed")


def _report(state):
    verb = _verb(state)
    click.echo(f"{state['label']}: {state['status']}")
    click.echo(f"  {state['summary']}")
    total = f" of {state['total']:,}" if state["total"] is not None and state["status"] != "done" else ""
    click.echo(f"  processed {state['processed']:,}{total}")
    if state["rate"]:
        click.echo(f"  rate     {state['rate']:,.0f} accounts/s")
    if state["eta_s"] is not None:
        click.echo(f"  left     about {pace.duration_text(state['eta_s'])}")
    click.echo(f"  matched  {state['matched']:,}")
    click.echo(f"  {verb:<8} {state['changed']:,}")
    click.echo(f"  skipped  {state['skipped']:,}")
    for reason, count in state["skip_reasons"].items():
        click.echo(f"    {reason}: {count:,}")
    if state["duration_s"] is not None:
        click.echo(f"  duration {state['duration_s']:.1f} s")
    click.echo(f"  chunks   {state['chunks_done']}/{state['chunks']}")
    if state["error"]:
        click.echo(f"  error    {state['error']}")


@scheduler.command("run")
@click.option("--interval", type=click.FloatRange(min=0.1), default=None,
              help="Seconds between ticks (default SCHEDULER_TICK_SECONDS).")
@click.option("--once", is_flag=True, help="Tick once and exit.")
@with_appcontext
def scheduler_run(interval, once):
    """Start due sweeps (once per period), plan the next slot in RQ, re-queue stalled runs."""
    from portal import scheduler as scheduler_module

    app = current_app._get_current_object()
    scheduler_module.run(app, interval=interval, once=once, echo=click.echo)
