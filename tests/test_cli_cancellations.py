"""`flask cancellation ...`, `flask billing write-off` and `flask account cancel`: the whole process from a shell."""
import csv
import io
from datetime import date

from sqlalchemy import func, select

from portal.extensions import db
from portal.models import Account, AuditEvent, CancellationRequest, Invoice, RetentionAttempt
from portal.timeutil import utcnow


def read(app, fn):
    with app.app_context():
        value = fn()
        db.session.remove()
        return value


def number_of(app, account_id):
    return read(app, lambda: db.session.get(Account, account_id).number)


def test_log_retain_write_off_and_cancel_from_the_shell(app, runner, world, make):
    make.invoice(world.account, amount_cents=7000, due_date=date(2026, 9, 1))
    make.invoice(world.account, amount_cents=5000, due_date=date(2026, 10, 1))
    number = number_of(app, world.account)
    result = runner.invoke(args=["cancellation", "log", number, "--channel", "call", "--name", "Dana Diaz",
                                 "--phone", "201-555-0123", "--date", "2026-11-28", "--collected", "1200",
                                 "--months", "10", "--reason-code", "too_expensive", "--reason", "Budget cut.",
                                 "--as", world.support.email])
    assert result.exit_code == 0, result.output
    request_id = int(result.output.strip())
    request = read(app, lambda: db.session.get(CancellationRequest, request_id))
    assert (request.phone, request.amount_collected_cents) == ("+12015550123", 120000)

    result = runner.invoke(args=["cancellation", "retain", str(request_id), "--offer", "discount", "--outcome",
                                 "open", "--note", "Wants 50% off.", "--as", world.support.email])
    assert result.exit_code == 1 and "Only a super admin" in result.output
    result = runner.invoke(args=["cancellation", "retain", str(request_id), "--offer", "discount", "--outcome",
                                 "open", "--note", "Wants 50% off.", "--as", world.admin.email])
    assert result.exit_code == 0, result.output
    assert read(app, lambda: db.session.scalar(select(RetentionAttempt.answer))) == "declined"

    result = runner.invoke(args=["account", "cancel", number, "--reason", "customer_request", "--note",
                                 "Leaving.", "--as", world.admin.email])
    assert result.exit_code == 1
    assert "open invoices: #1, #2" in result.output
    assert read(app, lambda: db.session.get(Account, world.account).status) == "active"

    for seq in ("1", "2"):
        result = runner.invoke(args=["billing", "write-off", number, "--invoice", seq, "--reason", "Goodwill.",
                                     "--as", world.admin.email])
        assert result.exit_code == 0, result.output
    result = runner.invoke(args=["billing", "write-off", number, "--invoice", "1", "--reason", "Again.",
                                 "--as", world.admin.email])
    assert result.exit_code == 1 and "no open invoice #1" in result.output
    result = runner.invoke(args=["account", "cancel", number, "--reason", "customer_request", "--note",
                                 "Leaving.", "--as", world.admin.email])
    assert result.exit_code == 0, result.output
    assert f"Account {number}" in result.output and "cancelled" in result.output
    assert read(app, lambda: db.session.get(CancellationRequest, request_id).outcome) == "cancelled"
    result = runner.invoke(args=["account", "cancel", number, "--reason", "customer_request", "--note",
                                 "Leaving.", "--as", world.admin.email])
    assert result.exit_code == 1 and "already cancelled" in result.output

    result = runner.invoke(args=["cancellation", "list", "--csv"])
    assert result.exit_code == 0, result.output
    rows = list(csv.reader(io.StringIO(result.output)))
    assert rows[0][:6] == ["Name", "Phone", "Date of cancellation", "Total amount collected", "Months in program",
                           "Reason"]
    assert rows[1][:10] == ["Dana Diaz", "(201) 555-0123", "2026-11-28", "$1,200.00", "10",
                            "Too expensive: Budget cut.", number, "Call", "Cancelled",
                            f"{utcnow():%Y-%m-%d} Discount, Declined: Wants 50% off."]
    result = runner.invoke(args=["cancellation", "list"])
    assert f"#{request_id}" in result.output and "Cancelled" in result.output


def test_bad_input_from_the_shell_changes_nothing(app, runner, world):
    number = number_of(app, world.account)
    count = lambda: read(app, lambda: db.session.scalar(select(func.count()).select_from(CancellationRequest)))  # noqa: E731
    base = ["cancellation", "log", number, "--channel", "call", "--reason-code", "other", "--reason", "x",
            "--as", world.support.email]
    for extra, message in ((["--name", "Dana", "--phone", "12"], "phone number"),
                           (["--name", "Dana", "--date", "2199-01-01"], "future"),
                           (["--name", "Dana", "--collected", "-3"], "negative"),
                           (["--name", "Dana", "--months", "many"], "whole number"),
                           (["--name", " "], "contact's name")):
        result = runner.invoke(args=base + extra)
        assert result.exit_code == 1, (extra, result.output)
        assert message in result.output
    result = runner.invoke(args=["cancellation", "log", "NOPE", "--channel", "call", "--name", "D",
                                 "--reason-code", "other", "--as", world.support.email])
    assert result.exit_code == 1 and "No account" in result.output
    assert count() == 0
    assert read(app, lambda: db.session.scalar(select(func.count()).select_from(AuditEvent))) == 0
    assert read(app, lambda: db.session.scalar(select(func.count()).select_from(Invoice))) == 0


def test_import_from_the_shell_twice_creates_once(app, runner, world, tmp_path):
    number = number_of(app, world.account)
    sheet = tmp_path / "old.csv"
    sheet.write_text(f"Account #,Name,Phone,Date of Cancellation,Total Amount Collected,Months in Program,Reason\n"
                     f"{number},Dana Diaz,201-555-0123,11/02/2025,$300.00,6,Too expensive\n"
                     f"NOPE1,Bob,,2025-11-03,10,1,Other\n")
    first = runner.invoke(args=["cancellation", "import", str(sheet), "--as", world.support.email])
    assert first.exit_code == 0, first.output
    assert "row 3: unknown account 'NOPE1'" in first.output and "created 1;" in first.output
    again = runner.invoke(args=["cancellation", "import", str(sheet), "--as", world.support.email])
    assert "created 0; already imported 1" in again.output


def test_a_write_off_reason_with_an_unusable_character_is_refused_from_the_shell(app, runner, world, make):
    make.invoice(world.account, seq=1)
    number = read(app, lambda: db.session.get(Account, world.account).number)
    result = runner.invoke(args=["billing", "write-off", number, "--invoice", "1", "--reason", "Goodwill\x00.",
                                 "--as", world.admin.email])
    assert result.exit_code == 1 and "U+0000" in result.output
    assert read(app, lambda: db.session.scalar(select(Invoice.written_off_at).where(
        Invoice.account_id == world.account))) is None
