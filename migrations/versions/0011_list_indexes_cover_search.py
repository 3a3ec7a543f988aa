"""the list's name-order indexes carry name, email and number, and the rare statuses' one status: a walk testing
a search, or a count of limited accounts under another filter, reads index entries, and rows only for matches

A search for a common word in name order walks the name index and tests each entry's name, email and number;
without them in the index every entry read its row (35 ms for 18,000 entries at 1M accounts on SQLite, 59 ms on
PostgreSQL), with them 7 and 15 ms. ix_accounts_rare_status_name holds the limited and cancelled accounts
(about 45,000 of 1,000,000); without status among its columns, telling one from the other read the row: counting
the limited accounts of one class took 24 ms on SQLite, 2 ms with status in the index. Sweeps (active to
suspended) write no entry in the rare index; on SQLite the name index does not change when only status does.

PostgreSQL rebuilds both indexes inside the migration's transaction, holding the accounts table for the build
(about 10 s at 1M accounts on this machine's benchmark data): run it in a quiet window.

Both databases: the new columns follow the existing ones (no part in the order; only read).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02 01:40:00

"""
from alembic import op
import sqlalchemy as sa


revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None

RARE_STATUS_SQL = "status IN ('limited', 'cancelled')"
KEYS = [sa.text('lower(name)'), 'id', 'customer_class_id', 'balance_cents', 'last_activity_at', 'exempt']
SEARCHED = ['name', 'email', 'number']


def _create(name, columns, include, where=None):
    options = {} if where is None else dict(sqlite_where=sa.text(where), postgresql_where=sa.text(where))
    op.create_index(name, 'accounts', columns, unique=False, postgresql_include=include, **options)


def upgrade():
    op.drop_index('ix_accounts_name_lower', table_name='accounts')
    op.drop_index('ix_accounts_rare_status_name', table_name='accounts')
    _create('ix_accounts_name_lower', KEYS + SEARCHED, [])
    _create('ix_accounts_rare_status_name', KEYS + ['status'] + SEARCHED, [], RARE_STATUS_SQL)


def downgrade():
    op.drop_index('ix_accounts_name_lower', table_name='accounts')
    op.drop_index('ix_accounts_rare_status_name', table_name='accounts')
    _create('ix_accounts_name_lower', KEYS, ['name'])
    _create('ix_accounts_rare_status_name', KEYS, ['name'], RARE_STATUS_SQL)
