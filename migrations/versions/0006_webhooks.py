"""webhooks: the relay's cursor over the audit trail, and where each endpoint's events start

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 14:58:19

"""
from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('webhook_relay',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('cursor_id', sa.Integer(), server_default='0', nullable=False),
    sa.Column('gaps', sa.JSON(), nullable=True),
    sa.Column('updated_at', sa.DateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_webhook_relay'))
    )
    with op.batch_alter_table('webhook_endpoints', schema=None) as batch_op:
        batch_op.add_column(sa.Column('starts_after_event_id', sa.Integer(), server_default='0', nullable=False))


def downgrade():
    with op.batch_alter_table('webhook_endpoints', schema=None) as batch_op:
        batch_op.drop_column('starts_after_event_id')

    op.drop_table('webhook_relay')
