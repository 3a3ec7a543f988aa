"""audit and outbox indexes: the audit log's filters (person, action, reason, date) and the outbox's (kind, recipient)

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 15:51:33

"""
from alembic import op
import sqlalchemy as sa


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.create_index('ix_audit_events_action', ['action', 'id'], unique=False)
        batch_op.create_index('ix_audit_events_actor_user_id', ['actor_user_id', 'id'], unique=False, sqlite_where=sa.text('actor_user_id IS NOT NULL'), postgresql_where=sa.text('actor_user_id IS NOT NULL'))
        batch_op.create_index('ix_audit_events_created_at', ['created_at', 'id'], unique=False)
        batch_op.create_index('ix_audit_events_reason', ['reason_category', 'id'], unique=False, sqlite_where=sa.text('reason_category IS NOT NULL'), postgresql_where=sa.text('reason_category IS NOT NULL'))

    with op.batch_alter_table('outbox_emails', schema=None) as batch_op:
        batch_op.create_index('ix_outbox_emails_kind', ['kind', 'id'], unique=False)
        batch_op.create_index('ix_outbox_emails_to_addr', ['to_addr', 'id'], unique=False)



def downgrade():
    with op.batch_alter_table('outbox_emails', schema=None) as batch_op:
        batch_op.drop_index('ix_outbox_emails_to_addr')
        batch_op.drop_index('ix_outbox_emails_kind')

    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_events_reason', sqlite_where=sa.text('reason_category IS NOT NULL'), postgresql_where=sa.text('reason_category IS NOT NULL'))
        batch_op.drop_index('ix_audit_events_created_at')
        batch_op.drop_index('ix_audit_events_actor_user_id', sqlite_where=sa.text('actor_user_id IS NOT NULL'), postgresql_where=sa.text('actor_user_id IS NOT NULL'))
        batch_op.drop_index('ix_audit_events_action')

