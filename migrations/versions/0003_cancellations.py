"""cancellations: reason codes, pauses and imported rows on requests; retention attempts

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 12:40:00

"""
from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('cancellation_requests', schema=None) as batch_op:
        batch_op.add_column(sa.Column('reason_code', sa.String(length=30), server_default='other', nullable=False))
        batch_op.add_column(sa.Column('pause_until', sa.Date(), nullable=True))
        batch_op.add_column(sa.Column('import_key', sa.String(length=64), nullable=True))
        batch_op.create_index('ix_cancellation_requests_date', ['request_date', 'id'], unique=False)
        batch_op.create_index('ix_cancellation_requests_import_key', ['import_key'], unique=True)

    op.create_table('retention_attempts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('request_id', sa.Integer(), nullable=False),
    sa.Column('attempted_at', sa.DateTime(), nullable=False),
    sa.Column('offer', sa.String(length=20), nullable=False),
    sa.Column('answer', sa.String(length=20), nullable=False),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('created_by_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['created_by_id'], ['users.id'], name=op.f('fk_retention_attempts_created_by_id_users')),
    sa.ForeignKeyConstraint(['request_id'], ['cancellation_requests.id'],
                            name=op.f('fk_retention_attempts_request_id_cancellation_requests')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_retention_attempts'))
    )
    with op.batch_alter_table('retention_attempts', schema=None) as batch_op:
        batch_op.create_index('ix_retention_attempts_request_id', ['request_id', 'id'], unique=False)


def downgrade():
    with op.batch_alter_table('retention_attempts', schema=None) as batch_op:
        batch_op.drop_index('ix_retention_attempts_request_id')
    op.drop_table('retention_attempts')
    with op.batch_alter_table('cancellation_requests', schema=None) as batch_op:
        batch_op.drop_index('ix_cancellation_requests_import_key')
        batch_op.drop_index('ix_cancellation_requests_date')
        batch_op.drop_column('import_key')
        batch_op.drop_column('pause_until')
        batch_op.drop_column('reason_code')
