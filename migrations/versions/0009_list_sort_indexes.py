"""list sort indexes: last activity and status sort orders, and the rare statuses (limited, cancelled) by name

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01 18:20:00

"""
from alembic import op
import sqlalchemy as sa


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

ACTIVITY_SORT_SQL = "coalesce(last_activity_at, '1900-01-01 00:00:00.000001')"
RARE_STATUS_SQL = "status IN ('limited', 'cancelled')"


def upgrade():
    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.create_index('ix_accounts_activity_sort', [sa.text(ACTIVITY_SORT_SQL), 'id'], unique=False)
        batch_op.create_index('ix_accounts_status_id', ['status', 'id'], unique=False)
        batch_op.create_index('ix_accounts_rare_status_name',
                              [sa.text('lower(name)'), 'id', 'customer_class_id', 'balance_cents', 'last_activity_at',
                               'exempt'], unique=False, postgresql_include=['name'],
                              sqlite_where=sa.text(RARE_STATUS_SQL), postgresql_where=sa.text(RARE_STATUS_SQL))


def downgrade():
    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.drop_index('ix_accounts_rare_status_name')
        batch_op.drop_index('ix_accounts_status_id')
        batch_op.drop_index('ix_accounts_activity_sort')
