"""The dunning schedule against a small reference model written from the issue's rules (Hypothesis).

Random days, invoices, full and partial payments, shifts, lifts, write-offs and manual suspensions are
driven through the domain (and each day's run through the run engine); every day the account's label and
service must be what the model says. The model follows the rules literally and day by day: it notes
when the episode begins as it happens, and holds a step off while a manual date is ahead of it.
"""
from dataclasses import dataclass, field
from datetime import date, timedelta

import pytest
from hypothesis import HealthCheck, settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test

from portal.domain import runs, suspension
from portal.domain.billing import ledger
from portal.domain.dunning import overrides
from portal.domain.dunning.daily import start_daily_run
from portal.domain.dunning.status import record
from portal.domain.errors import DomainError
from portal.extensions import db
from portal.models import Account, AuditEvent, CustomerClass, Invoice, User

START = date(2026, 8, 1)


@dataclass
class ModelInvoice:
    seq: int
    amount: int
    due: date
    paid: int = 0
    written_off: bool = False

    @property
    def owed(self):
        return 0 if self.written_off else self.amount - self.paid


@dataclass
class Model:
    """The account as the rules describe it."""

    limit_after: int | None
    suspend_after: int | None
    least: int
    today: date = START
    invoices: list = field(default_factory=list)
    status: str = "active"  # active | limited | suspended
    manual: bool = False  # suspended by an admin (a payment does not clear it)
    episode: date | None = None
    limitation_shift: date | None = None
    suspension_shift: date | None = None
    lift_until: date | None = None
    credit: int = 0

    def overdue(self, on=None):
        on = on or self.today
        found = [i for i in self.invoices if i.owed > 0 and i.due < on]
        return found if found and sum(i.owed for i in found) >= self.least else []

    def class_date(self, offset):
        return self.episode + timedelta(days=offset) if self.episode and offset is not None else None

    def held(self, step, on):
        """A manual date ahead of `on` holds the step off (every restriction, for a suspension's or a lift's)."""
        if self.lift_until and on < self.lift_until:
            return True
        if step == "limitation":
            if self.limitation_shift:
                return on < self.limitation_shift
            return bool(self.suspension_shift and on < self.suspension_shift)
        return any(d and on < d for d in (self.limitation_shift, self.suspension_shift))

    def wants(self, on):
        """What the schedule applies on day `on`."""
        if not self.episode:
            return "active"
        suspend_on, limit_on = self.class_date(self.suspend_after), self.class_date(self.limit_after)
        if suspend_on and suspend_on <= on and not self.held("suspension", on):
            return "suspended"
        if limit_on and limit_on <= on and not self.held("limitation", on):
            return "limited"
        return "active"

    def start_day(self):
        """The morning of a day: the episode begins with the first overdue day; then the day's run."""
        overdue = self.overdue()
        if overdue and self.episode is None:
            self.episode = min(i.due for i in overdue)
        rank = {"active": 0, "limited": 1, "suspended": 2}
        wanted = self.wants(self.today)
        if rank[wanted] > rank[self.status]:
            self.status = wanted

    def end_episode_if_settled(self):
        if not self.overdue():
            self.episode = None
            self.limitation_shift = self.suspension_shift = self.lift_until = None
            if self.status != "active" and not self.manual:
                self.status = "active"

    def label(self):
        if self.status == "suspended":
            return "Suspended"
        if not self.episode:
            return "Active"
        suspend_on, limit_on = self.class_date(self.suspend_after), self.class_date(self.limit_after)
        if self.status == "active" and self.lift_until and self.today < self.lift_until:
            return "Suspension delayed" if suspend_on and suspend_on <= self.today else "Service limitation delayed"
        if suspend_on and suspend_on <= self.today:
            return "Suspension delayed"
        if self.status == "limited":
            return "Limited"
        if limit_on and limit_on <= self.today:
            return "Service limitation delayed"
        limit_eff = self._effective_limitation()
        suspend_eff = self._effective_suspension()
        if limit_eff and (not suspend_eff or limit_eff < suspend_eff):
            return "Limitation pending"
        if suspend_eff:
            return "Suspension pending"
        return "Active"

    def _effective_limitation(self):
        """The first day the limitation step is not held off (None: never)."""
        limit_on = self.class_date(self.limit_after)
        if limit_on is None:
            return None
        day = limit_on
        while self.held("limitation", day):
            day += timedelta(days=1)
        return day

    def _effective_suspension(self):
        suspend_on = self.class_date(self.suspend_after)
        if suspend_on is None:
            return None
        day = suspend_on
        while self.held("suspension", day):
            day += timedelta(days=1)
        return day


class DunningMachine(RuleBasedStateMachine):
    """Drive one account through the domain and compare it with the Model every day."""

    @initialize(limit_after=st.one_of(st.none(), st.integers(0, 12)), extra=st.one_of(st.none(), st.integers(0, 10)),
                least=st.sampled_from([1, 1, 500]))
    def setup(self, limit_after, extra, least):
        suspend_after = None if extra is None else (limit_after or 0) + extra
        # each example lives on days of its own: the daily run is unique per day across the database
        self.model = Model(limit_after, suspend_after, least, today=START + timedelta(days=200 * DunningMachine.counter))
        cls = CustomerClass(name=f"Model class {id(self)}-{DunningMachine.counter}", limit_after_days=limit_after,
                            suspend_after_days=suspend_after, least_amount_cents=least)
        DunningMachine.counter += 1
        db.session.add(cls)
        db.session.flush()
        account = Account(number=f"M{DunningMachine.counter:07d}", name="Model account", email="model@example.test",
                          customer_class_id=cls.id, settings={}, version=1)
        db.session.add(account)
        db.session.commit()
        self.account_id = account.id
        self.admin = db.session.get(User, DunningMachine.admin_id)
        self._morning()

    counter = 0
    admin_id = None

    def _morning(self):
        self.model.start_day()
        run = start_daily_run(None, self.model.today, enqueue=False)
        runs.process_run(run.id, worker_name="model", poll=0)
        db.session.expire_all()

    @rule(days=st.integers(1, 6))
    def wait(self, days):
        for _ in range(days):
            self.model.today += timedelta(days=1)
            self._morning()

    @rule(amount=st.sampled_from([300, 1000, 4900]), due_in=st.integers(-3, 12))
    def invoice(self, amount, due_in):
        due = self.model.today + timedelta(days=due_in)
        if self.model.overdue() and self.model.episode is None:
            return
        invoice = ledger.add_invoice(self.admin, self.account_id, amount, due, as_of=self.model.today)
        from_credit = min(self.model.credit, amount)  # money paid beyond what was owed settles the next invoice
        self.model.credit -= from_credit
        self.model.invoices.append(ModelInvoice(invoice.seq, amount, due, paid=from_credit))
        self.model.start_day()  # a backdated invoice can make a step due at once: it applies at once

    @rule(share=st.sampled_from([0.3, 0.5, 1.0, 2.0]), named=st.booleans())
    def pay(self, share, named):
        owed = sum(i.owed for i in self.model.invoices)
        if owed == 0:
            return
        cents = max(1, int(owed * share))
        target = next((i for i in self.model.invoices if i.owed > 0), None) if named else None
        ledger.record_payment(self.admin, self.account_id, cents, invoice_seq=target.seq if target else None,
                              as_of=self.model.today)
        order = ([target] if target else []) + sorted((i for i in self.model.invoices if i is not target),
                                                      key=lambda i: (i.due, i.seq))
        left = cents
        for inv in order:
            take = min(left, inv.owed)
            inv.paid += take
            left -= take
        self.model.credit += left
        self.model.end_episode_if_settled()

    @rule()
    def pay_the_oldest_in_full(self):
        open_ = sorted((i for i in self.model.invoices if i.owed > 0), key=lambda i: (i.due, i.seq))
        if not open_:
            return
        ledger.record_payment(self.admin, self.account_id, open_[0].owed, as_of=self.model.today)
        open_[0].paid = open_[0].amount
        self.model.end_episode_if_settled()

    @rule()
    def write_off_oldest(self):
        open_ = sorted((i for i in self.model.invoices if i.owed > 0), key=lambda i: (i.due, i.seq))
        if not open_:
            return
        ledger.write_off(self.admin, self.account_id, open_[0].seq, "Model write-off", as_of=self.model.today)
        open_[0].written_off = True
        self.model.end_episode_if_settled()

    @rule(step=st.sampled_from(["limitation", "suspension"]), days=st.integers(1, 15))
    def shift(self, step, days):
        m = self.model
        new = m.today + timedelta(days=days)
        offset = m.limit_after if step == "limitation" else m.suspend_after
        class_on = m.class_date(offset)
        happened = (step == "limitation" and m.status != "active") or m.status == "suspended"
        lifted = bool(m.lift_until and m.today < m.lift_until)  # a lifted step has happened: change the lift
        valid = m.episode and class_on is not None and not happened and new > class_on and not lifted
        kwargs = {f"{step}_date": new}
        try:
            overrides.shift(self.admin, self.account_id, reason_note="model", as_of=m.today, **kwargs)
        except DomainError:
            assert not valid, f"refused a valid shift of the {step} to {new}"
            return
        assert valid, f"accepted a shift of the {step} to {new} that the rules refuse"
        setattr(m, f"{step}_shift", new)

    @rule(days=st.integers(1, 40))
    def lift(self, days):
        m = self.model
        until = m.today + timedelta(days=days)
        lifted = bool(m.lift_until and m.today < m.lift_until)  # its date can be changed while in force
        by_schedule = m.status == "limited" or (m.status == "suspended" and not m.manual)
        valid = bool(m.episode) and (by_schedule or lifted) and days <= 30
        try:
            overrides.lift(self.admin, self.account_id, until, reason_note="model", as_of=m.today)
        except DomainError:
            assert not valid, f"refused a valid lift until {until}"
            return
        assert valid, f"accepted a lift until {until} that the rules refuse"
        m.lift_until, m.status, m.manual = until, "active", False

    @rule()
    def suspend_by_hand(self):
        if self.model.status == "suspended":
            return
        suspension.suspend(self.admin, self.account_id, "non_payment", "Model: by hand")
        self.model.status, self.model.manual = "suspended", True

    @invariant()
    def agrees_with_the_model(self):
        if not hasattr(self, "model"):
            return
        account = db.session.get(Account, self.account_id)
        rec = record(account, self.model.today)
        expected_service = {"active": "full", "limited": "limited", "suspended": "suspended"}[self.model.status]
        assert (rec["label"], rec["service"]) == (self.model.label(), expected_service), \
            f"on {self.model.today}: {rec} vs model {self.model}"
        assert account.balance_cents == sum(i.owed for i in self.model.invoices)


def test_the_schedule_follows_the_rules_day_by_day(ctx, make):
    DunningMachine.admin_id = make.user("super_admin").id
    run_state_machine_as_test(DunningMachine, settings=settings(
        max_examples=60, stateful_step_count=25, deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much]))


def test_twenty_cycles_of_suspend_reactivate_and_of_lift_reapply_leave_one_consistent_state(ctx, make):
    admin = db.session.get(User, make.user("super_admin").id)
    cls = make.customer_class(limit_after_days=0, suspend_after_days=0)
    account_id = make.account(customer_class_id=cls)
    ledger.add_invoice(admin, account_id, "10.00", START, as_of=START)
    today = START + timedelta(days=1)
    run = start_daily_run(None, today, enqueue=False)
    runs.process_run(run.id, worker_name="t", poll=0)
    for cycle in range(20):  # the schedule suspended it: lift for a day, and the next run re-applies
        overrides.lift(admin, account_id, today + timedelta(days=1), reason_note=f"cycle {cycle}", as_of=today)
        assert db.session.get(Account, account_id).status == "active"
        today += timedelta(days=1)
        run = start_daily_run(None, today, enqueue=False)
        runs.process_run(run.id, worker_name="t", poll=0)
        db.session.expire_all()
        assert db.session.get(Account, account_id).status == "suspended"
    for cycle in range(20):
        suspension.reactivate(admin, account_id, "other", f"cycle {cycle}")
        suspension.suspend(admin, account_id, "non_payment", f"cycle {cycle}")
    account = db.session.get(Account, account_id)
    events = db.session.scalars(db.select(AuditEvent.action).where(AuditEvent.account_id == account_id)
                                .order_by(AuditEvent.id)).all()
    assert events.count("lifted") == 20 and events.count("suspended") == 1 + 20 + 20
    assert events.count("reactivated") == 20
    assert record(account, today)["label"] == "Suspended"
    assert db.session.scalar(db.select(db.func.count()).select_from(Invoice)
                             .where(Invoice.account_id == account_id)) == 1
    assert account.balance_cents == 1000
