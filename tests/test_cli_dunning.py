"""`flask dunning run` goes through the sweeps queue to a real worker and follows the run to its report."""
import threading
from datetime import date

from sqlalchemy import func, select

from portal.domain.billing import ledger
from portal.extensions import db
from portal.models import Account, AuditEvent, User
from tests.conftest import wait_for_queued


def test_the_daily_run_follows_a_worker_to_its_report(app, runner, make, run_worker, redis_server):
    cls = make.customer_class(limit_after_days=15, suspend_after_days=20)
    accounts = [make.account(customer_class_id=cls) for _ in range(3)]
    with app.app_context():
        admin = db.session.get(User, make.user("super_admin").id)
        for account_id, due in zip(accounts, (date(2026, 8, 31), date(2026, 8, 20), date(2026, 9, 10))):
            ledger.add_invoice(admin, account_id, "49.00", due, as_of=date(2026, 8, 1))
    outcome = {}

    def worker_once_queued():
        wait_for_queued(redis_server.url, "sweeps")  # the command has queued the run
        outcome["worker"] = run_worker("sweeps")

    thread = threading.Thread(target=worker_once_queued)
    thread.start()
    result = runner.invoke(args=["dunning", "run", "--as-of", "2026-09-15"])
    thread.join(120)
    assert outcome["worker"].returncode == 0, outcome["worker"].stderr[-2000:]
    assert result.exit_code == 0, result.output
    assert "Daily dunning run #" in result.output and ": done" in result.output
    assert "changed  2" in result.output and "limited: 1" in result.output and "suspended: 1" in result.output
    with app.app_context():
        states = dict(db.session.execute(select(Account.id, Account.status).where(Account.id.in_(accounts))).all())
        assert [states[a] for a in accounts] == ["limited", "suspended", "active"]
        assert db.session.scalar(select(func.count()).select_from(AuditEvent)
                                 .where(AuditEvent.actor_label.like("Daily dunning run #%"),
                                        AuditEvent.account_id.is_not(None))) == 2
    again = runner.invoke(args=["dunning", "run", "--as-of", "2026-09-15"])
    assert again.exit_code != 0 and "2026-09-15" in again.output  # one run per as-of day
