"""Demo data: realistic accounts, people, invoices and reservations, inserted in bulk.

Rows are generated in Python (deterministic for a given seed) and written with Core multi-row
inserts in batches, never as ORM objects one by one.
"""
import random
from datetime import datetime, timedelta

from sqlalchemy import func, insert, select, update

from portal.domain.auth import hash_password, new_session_token
from portal.extensions import db
from portal.models import Account, CustomerClass, Invoice, Reservation, SuspensionRule, SweepSchedule, User
from portal.seed_features import DemoAccount, seed_features
from portal.timeutil import utcnow

DEMO_PASSWORD = "portal-demo-2026"
DEMO_LOGINS = [
    ("admin@example.com", "Ada Admin", "super_admin", None),
    ("support@example.com", "Sam Support", "support", None),
    ("manager@example.com", "Mia Manager", "account_manager", 1),
    ("tier@example.com", "Theo Tier", "tier_manager", 1),
    ("user@example.com", "Uma User", "user", 1),
    ("manager2@example.com", "Max Manager", "account_manager", 2),
    ("user2@example.com", "Una User", "user", 2),
]
CLASSES = [("Standard", "Monthly plan", 15, 20), ("Premium", "Annual plan, longer grace", 30, 45),
           ("Trial", "Trial accounts", 7, 10)]
ADJECTIVES = ["Blue", "Golden", "Quiet", "Harbor", "Maple", "Silver", "Urban", "Cedar", "Sunny", "Olive", "Copper",
              "North", "Little", "Grand", "Wild", "Rustic", "Royal", "Green", "Coastal", "Velvet"]
NOUNS = ["Oak", "River", "Lantern", "Garden", "Table", "Fork", "Spoon", "Anchor", "Pine", "Bay", "Hill", "Market",
         "Bridge", "Stone", "Meadow", "Harvest", "Bell", "Crown", "Vine", "Fox"]
KINDS = ["Bistro", "Cafe", "Kitchen", "Grill", "Trattoria", "Brasserie", "Diner", "Tavern", "Bakery", "Eatery",
         "Salon", "Spa", "Studio", "Clinic", "Barbers"]
FIRST = ["Alex", "Jordan", "Casey", "Riley", "Morgan", "Taylor", "Jamie", "Avery", "Quinn", "Drew", "Robin", "Sky"]
LAST = ["Nguyen", "Garcia", "Smith", "Kowalski", "Okafor", "Rossi", "Schmidt", "Haddad", "Silva", "Tanaka"]
BATCH = 5000


class SeedRefused(RuntimeError):
    """The database already holds accounts; seeding would mix demo data into them."""


def _account_profile(rng, idx, now):
    """Return (created_at, last_activity_at, reservation times, invoice plan) for one account."""
    created = now - timedelta(days=rng.randint(30, 4 * 365), minutes=rng.randint(0, 1439))
    roll = rng.random()
    if idx <= 2:
        roll = 0.0  # the demo logins' accounts are healthy and busy
    if roll < 0.66:  # active: reservations over the last two years, last one recent
        last = now - timedelta(days=rng.randint(0, 60), minutes=rng.randint(0, 1439))
    elif roll < 0.88:  # inactive for more than a year
        last = now - timedelta(days=rng.randint(400, 3 * 365))
    elif roll < 0.95:  # inactive for a few months
        last = now - timedelta(days=rng.randint(90, 330))
    else:  # never made a reservation
        last = None
    if last is not None and last < created:
        created = last - timedelta(days=rng.randint(1, 200))
    times = []
    if last is not None:
        span_start = max(created, last - timedelta(days=730))
        span = max(1, int((last - span_start).total_seconds()))
        times = sorted(span_start + timedelta(seconds=rng.randint(0, span)) for _ in range(rng.randint(1, 7)))
        times[-1] = last
    overdue = rng.random() < (0.0 if idx <= 2 else 0.16)
    return created, last, times, overdue


def _invoices_for(rng, account_id, created, now, overdue):
    """Return invoice rows (monthly, most paid; the overdue ones unpaid) and the open balance."""
    rows, balance = [], 0
    count = rng.randint(1, 5)
    for seq in range(1, count + 1):
        due = (now - timedelta(days=30 * (count - seq) + rng.randint(5, 25))).date()
        if due < created.date():
            due = created.date() + timedelta(days=30 * seq)
        amount = rng.choice([900, 1900, 2900, 4900, 9900, 14900])
        unpaid = overdue and seq > count - rng.randint(1, 3)
        paid_at = None if unpaid or due > now.date() else datetime.combine(due, datetime.min.time()) - timedelta(days=2)
        if paid_at is None:
            balance += amount
        rows.append(dict(account_id=account_id, seq=seq, amount_cents=amount, due_date=due,
                         issued_at=datetime.combine(due, datetime.min.time()) - timedelta(days=14), paid_at=paid_at))
    return rows, balance


def _flush(conn, table, rows):
    if rows:
        conn.execute(insert(table), rows)
        rows.clear()


def has_accounts():
    """Return whether the database holds any account."""
    return db.session.scalar(select(Account.id).limit(1)) is not None


def seed_reference_data(now):
    """Create customer classes, the default rules and the default schedule if missing."""
    if db.session.scalar(select(func.count()).select_from(CustomerClass)) == 0:
        for name, desc, limit_days, suspend_days in CLASSES:
            db.session.add(CustomerClass(name=name, description=desc, limit_after_days=limit_days,
                                         suspend_after_days=suspend_days))
    if db.session.scalar(select(func.count()).select_from(SuspensionRule)) == 0:
        db.session.add(SuspensionRule(name="Inactive 12+ months", inactivity_months=12, created_at=now, updated_at=now))
        db.session.add(SuspensionRule(name="Balance over $5 unpaid 30+ days", min_balance_cents=500, overdue_days=30,
                                      created_at=now, updated_at=now))
    if db.session.scalar(select(func.count()).select_from(SweepSchedule)) == 0:
        db.session.add(SweepSchedule(mode="monthly", day_of_month=1, time_of_day="03:00", updated_at=now))
    db.session.commit()


def seed_demo(accounts=1000, now=None, seed=42, progress=None):
    """Fill an empty database with demo data; return the number of accounts created.

    Args:
        accounts: how many customer accounts.
        now: the "as of" time the data is built around (default now).
        seed: the random seed (same seed, same data).
        progress: optional callable(n) told how many accounts were just written.

    Raises:
        SeedRefused: accounts already exist.
    """
    now = now or utcnow()
    if has_accounts():
        raise SeedRefused("The database already has accounts; demo data goes only into an empty database.")
    rng = random.Random(seed)
    seed_reference_data(now)
    class_ids = list(db.session.scalars(select(CustomerClass.id).order_by(CustomerClass.id)))
    shared_hash = hash_password(DEMO_PASSWORD)
    conn = db.session.connection()
    search_trigger = _pause_search_trigger(conn)
    acc_rows, inv_rows, res_rows, user_rows = [], [], [], []
    for idx in range(1, accounts + 1):
        created, last, times, overdue = _account_profile(rng, idx, now)
        invoices, balance = _invoices_for(rng, idx, created, now, overdue)
        name = f"{rng.choice(ADJECTIVES)} {rng.choice(NOUNS)} {rng.choice(KINDS)}"
        slug = name.lower().replace(" ", "-")
        contact = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
        acc_rows.append(dict(id=idx, number=f"A{idx:07d}", name=name, email=f"hello{idx}@{slug}.example",
                             status="active", customer_class_id=rng.choice(class_ids), balance_cents=balance,
                             created_at=created, last_activity_at=last, contact_name=contact,
                             contact_phone=f"+1 555 {rng.randint(100, 999)} {rng.randint(1000, 9999)}",
                             settings={"timezone": "UTC", "reminders": rng.choice([True, False])}, version=1,
                             exempt=False))
        inv_rows.extend(invoices)
        res_rows.extend(dict(account_id=idx, created_at=t, starts_at=t + timedelta(days=rng.randint(0, 20)),
                             party_size=rng.randint(1, 8)) for t in times)
        if idx > 2 and idx % 10 == 0:
            user_rows.append(dict(email=f"manager{idx}@customers.example", name=contact, role="account_manager",
                                  account_id=idx, password_hash=shared_hash, session_token=new_session_token(),
                                  created_at=created))
        if len(acc_rows) >= BATCH:
            _write(conn, acc_rows, inv_rows, res_rows, user_rows)
            if progress:
                progress(BATCH)
    written = len(acc_rows)
    _write(conn, acc_rows, inv_rows, res_rows, user_rows)
    if progress and written:
        progress(written)
    _resume_search_trigger(conn, search_trigger)
    _seed_people_and_features(conn, shared_hash, now, min(accounts, 2))
    _plan_first_dunning_look(conn, now)
    db.session.commit()
    _fix_sequences()
    return accounts


def _pause_search_trigger(conn):
    """On SQLite, drop the trigger that indexes each new account for search (migration 0008) for the bulk load,
    and return its SQL; None elsewhere. Indexing row by row made the seed's inserts several times slower than
    indexing them all at once afterwards. Same transaction: if the seed fails, the trigger is back with the
    rollback."""
    if conn.dialect.name != "sqlite":
        return None
    sql = conn.exec_driver_sql("SELECT sql FROM sqlite_master WHERE type = 'trigger' "
                               "AND name = 'accounts_search_insert'").scalar()
    if sql:
        conn.exec_driver_sql("DROP TRIGGER accounts_search_insert")
    return sql


def _resume_search_trigger(conn, sql):
    """Put the search trigger back and index every account in one pass (FTS5's rebuild of its external content)."""
    if sql:
        conn.exec_driver_sql(sql)
        conn.exec_driver_sql("INSERT INTO accounts_search (accounts_search) VALUES ('rebuild')")


def _plan_first_dunning_look(conn, now):
    """Accounts with open invoices are looked at by the first daily dunning run (which plans each one's next)."""
    has_open = (select(Invoice.id).where(Invoice.account_id == Account.id, Invoice.paid_at.is_(None),
                                         Invoice.written_off_at.is_(None)).exists())
    conn.execute(update(Account).where(has_open).values(dunning_next_on=now.date()))


def _write(conn, acc_rows, inv_rows, res_rows, user_rows):
    _flush(conn, Account.__table__, acc_rows)
    _flush(conn, Invoice.__table__, inv_rows)
    _flush(conn, Reservation.__table__, res_rows)
    _flush(conn, User.__table__, user_rows)


def _seed_people_and_features(conn, shared_hash, now, demo_accounts):
    """Create the demo logins, and a few of each gated feature in the first accounts (portal.seed_features)."""
    logins = [dict(email=email, name=name, role=role, account_id=account_id, password_hash=shared_hash,
                   session_token=new_session_token(), created_at=now)
              for email, name, role, account_id in DEMO_LOGINS if account_id is None or account_id <= demo_accounts]
    users = User.__table__
    ids = conn.execute(insert(users).returning(users.c.id, sort_by_parameter_order=True), logins).scalars().all()
    managers = {}
    for login, user_id in zip(logins, ids):
        if login["role"] == "account_manager":
            managers.setdefault(login["account_id"], (user_id, f"{login['name']} <{login['email']}>"))
    rows = conn.execute(select(Account.id, Account.number, Account.name, Account.contact_phone)
                        .where(Account.id <= demo_accounts).order_by(Account.id)).all()
    seed_features(conn, now, [DemoAccount(id_, number, name, phone, *managers.get(id_, (None, "System")))
                              for id_, number, name, phone in rows])


def _fix_sequences():
    """Move PostgreSQL id sequences past the explicitly inserted account ids."""
    if db.engine.dialect.name != "postgresql":
        return
    with db.engine.begin() as conn:
        conn.exec_driver_sql("SELECT setval(pg_get_serial_sequence('accounts', 'id'), "
                             "COALESCE((SELECT MAX(id) FROM accounts), 1))")

