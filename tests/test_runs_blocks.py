"""A run started without a total counts its selection block by block and has chunks only where it selects."""
from datetime import datetime

from sqlalchemy import select

from portal.domain import runs
from portal.extensions import db
from portal.models import Account, SweepRunChunk, User

AS_OF = datetime(2026, 11, 1, 12, 0)


def _rules(months):
    return {"type": "rules", "rules": [{"id": 1, "name": f"Inactive {months}+ months", "enabled": True,
                                        "inactivity_months": months, "min_balance_cents": None,
                                        "overdue_days": None}]}


def _population(make, old_positions, size=12):
    """`size` accounts, recently active but for those at old_positions (inactive for years)."""
    old, recent = datetime(2023, 1, 1), datetime(2026, 10, 1)
    ids = [make.account(name=f"Shop {i}", created_at=old, last_activity_at=old if i in old_positions else recent)
           for i in range(size)]
    admin = make.user("super_admin")
    return ids, admin


def _start(admin, selection, total=None):
    return runs.start_run(db.session.get(User, admin.id), "recurring", "suspend", selection, "inactivity",
                          "Dormant shops", as_of=AS_OF, chunk_size=3, enqueue=False, total=total)


def _chunks(run_id):
    return [tuple(r) for r in db.session.execute(select(SweepRunChunk.lo, SweepRunChunk.hi)
                                                 .where(SweepRunChunk.run_id == run_id).order_by(SweepRunChunk.id))]


def test_chunks_only_where_the_selection_has_accounts_and_the_total_from_the_same_count(ctx, make):
    ids, admin = _population(make, old_positions={1, 7, 8})
    run = _start(admin, _rules(12))
    lo = ids[0]
    assert _chunks(run.id) == [(lo, lo + 3), (lo + 6, lo + 9)]  # the blocks of 3 ids holding shops 1 and 7, 8
    assert runs.progress(run.id)["total"] == 3
    result = runs.process_run(run.id, worker_name="test", poll=0)
    assert result["status"] == "done" and result["changed"] == 3 and result["processed"] == 3
    suspended = set(db.session.scalars(select(Account.id).where(Account.suspended_by_run_id == run.id)))
    assert suspended == {ids[1], ids[7], ids[8]}


def test_a_run_that_selects_nothing_has_no_chunk(ctx, make):
    _ids, admin = _population(make, old_positions=set())
    run = _start(admin, _rules(12))
    assert _chunks(run.id) == [] and runs.progress(run.id)["total"] == 0
    result = runs.process_run(run.id, worker_name="test", poll=0)
    assert result["status"] == "done" and result["changed"] == 0 and result["chunks"] == 0


def _is_postgresql():
    return db.engine.dialect.name == "postgresql"


def test_a_run_given_its_total_covers_the_whole_id_range_in_chunks_sized_by_the_total(ctx, make):
    """One selected account of 12: one chunk on SQLite; on PostgreSQL four (two per connection of a worker)."""
    ids, admin = _population(make, old_positions={1})
    run = _start(admin, _rules(12), total=1)
    lo = ids[0]
    if _is_postgresql():
        assert _chunks(run.id) == [(lo + i, lo + i + 3) for i in range(0, 12, 3)]
    else:
        assert _chunks(run.id) == [(lo, lo + 12)]
    assert runs.process_run(run.id, worker_name="test", poll=0)["changed"] == 1


def test_a_given_total_makes_chunks_of_about_chunk_size_selected_accounts(ctx, make):
    """12 ids, 9 selected, chunk_size 3: three chunks of 4 ids on SQLite; a multiple of the connections (4) on
    PostgreSQL. Every id is in exactly one chunk whatever the count said."""
    ids, admin = _population(make, old_positions={0, 1, 2, 4, 5, 7, 8, 10, 11})
    run = _start(admin, _rules(12), total=9)
    lo = ids[0]
    expected = [(lo + i, lo + i + 3) for i in range(0, 12, 3)] if _is_postgresql() else \
        [(lo + i, lo + i + 4) for i in range(0, 12, 4)]
    assert _chunks(run.id) == expected
    result = runs.process_run(run.id, worker_name="test", poll=0)
    assert result["status"] == "done" and result["changed"] == 9


def test_counted_blocks_are_joined_into_chunks_of_about_chunk_size_selected_accounts(ctx, make):
    """Blocks of 3 ids holding one selected account each are joined, up to chunk_size (3) selected a chunk on
    SQLite, up to 2 on PostgreSQL (7 shared over at least four chunks); a block with none is never joined over."""
    ids, admin = _population(make, old_positions={0, 3, 6, 9, 12, 15, 21}, size=24)
    run = _start(admin, _rules(12), total=None)
    lo = ids[0]
    chunks = _chunks(run.id)
    if _is_postgresql():  # 7 selected: at most 2 a chunk
        assert chunks == [(lo, lo + 6), (lo + 6, lo + 12), (lo + 12, lo + 18), (lo + 21, lo + 24)]
    else:  # at most 3 a chunk; the empty block 18-20 ends a chunk
        assert chunks == [(lo, lo + 9), (lo + 9, lo + 18), (lo + 21, lo + 24)]
    assert runs.progress(run.id)["total"] == 7
    result = runs.process_run(run.id, worker_name="test", poll=0)
    assert result["status"] == "done" and result["changed"] == 7
