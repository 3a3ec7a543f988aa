"""The `flask ...` commands: registered, documented, and answering bad input with a message."""
from datetime import datetime

import click
import pytest

from portal.cli import COMMANDS, parse_as_of
from portal.seed import DEMO_LOGINS, DEMO_PASSWORD


def _walk(command, path=()):
    path = (*path, command.name)
    yield path, command
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            yield from _walk(sub, path)


ALL_COMMANDS = [item for command in COMMANDS for item in _walk(command)]


def test_portal_commands_are_registered(app, runner):
    result = runner.invoke(args=["--help"])
    assert result.exit_code == 0
    for command in COMMANDS:
        assert command.name in app.cli.commands
        assert command.name in result.output
    assert "db" in app.cli.commands  # Flask-Migrate


@pytest.mark.parametrize("path, command", ALL_COMMANDS, ids=[" ".join(p) for p, _ in ALL_COMMANDS])
def test_every_command_explains_itself(runner, path, command):
    assert (command.help or "").strip(), f"flask {' '.join(path)} has no help text"
    result = runner.invoke(args=[*path, "--help"])
    assert result.exit_code == 0
    first_line = " ".join(command.help.strip().splitlines()[0].split())
    assert first_line in " ".join(result.output.split())  # help text is wrapped to the terminal


def test_demo_logins_prints_every_login_and_the_password(runner):
    result = runner.invoke(args=["demo", "logins"])
    assert result.exit_code == 0
    assert DEMO_PASSWORD in result.output
    for email, _name, role, account_id in DEMO_LOGINS:
        line = next(line for line in result.output.splitlines() if email in line)
        assert role in line
        assert (f"account {account_id}" if account_id else "staff") in line


def test_outbox_deliver_with_nothing_pending(runner):
    result = runner.invoke(args=["outbox-deliver"])
    assert result.exit_code == 0, result.output
    assert "Sent 0, failed 0." in result.output


def test_unknown_command_is_refused(runner):
    result = runner.invoke(args=["demo", "sed"])
    assert result.exit_code == 2
    assert "No such command 'sed'" in result.output


@pytest.mark.parametrize("value, expected", [
    ("2026-11-22", datetime(2026, 11, 22)),
    ("2026-11-22T08:30", datetime(2026, 11, 22, 8, 30)),
    ("2026-11-22T08:30:00+00:00", datetime(2026, 11, 22, 8, 30)),
    (None, None),
])
def test_as_of_accepts_iso_dates(value, expected):
    assert parse_as_of(value) == expected


def test_as_of_refuses_anything_else():
    with pytest.raises(click.BadParameter, match="ISO date"):
        parse_as_of("22/11/2026")
