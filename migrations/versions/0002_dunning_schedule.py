"""dunning schedule: class amounts and warnings, partial payments, episodes, manual dates, the daily run's time

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01 11:40:00

"""
from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

NEXT_ON = sa.text("dunning_next_on IS NOT NULL")
LIVE = sa.text("ended_at IS NULL")


def upgrade():
    with op.batch_alter_table('customer_classes', schema=None) as batch_op:
        batch_op.add_column(sa.Column('least_amount_cents', sa.BigInteger(), server_default='1', nullable=False))
        batch_op.add_column(sa.Column('warning_days', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('created_at', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('updated_at', sa.DateTime(), nullable=True))

    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('credit_cents', sa.BigInteger(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('dunning_since', sa.Date(), nullable=True))
        batch_op.add_column(sa.Column('dunning_next_on', sa.Date(), nullable=True))
        batch_op.add_column(sa.Column('dunning_warned', sa.String(length=30), nullable=True))
        batch_op.create_index('ix_accounts_dunning_next_on', ['dunning_next_on', 'id'], unique=False,
                              sqlite_where=NEXT_ON, postgresql_where=NEXT_ON)

    with op.batch_alter_table('invoices', schema=None) as batch_op:
        batch_op.add_column(sa.Column('paid_cents', sa.BigInteger(), server_default='0', nullable=False))

    with op.batch_alter_table('payments', schema=None) as batch_op:
        batch_op.add_column(sa.Column('reference', sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column('recorded_by_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('credit_cents', sa.BigInteger(), server_default='0', nullable=False))
        batch_op.create_foreign_key(batch_op.f('fk_payments_recorded_by_id_users'), 'users', ['recorded_by_id'],
                                    ['id'])

    # The first version's overrides table was never written to: it is replaced by one row per episode.
    with op.batch_alter_table('schedule_overrides', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_schedule_overrides_account_id'))
    op.drop_table('schedule_overrides')
    op.create_table('schedule_overrides',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('episode_start', sa.Date(), nullable=False),
    sa.Column('limitation_date', sa.Date(), nullable=True),
    sa.Column('suspension_date', sa.Date(), nullable=True),
    sa.Column('lift_until', sa.Date(), nullable=True),
    sa.Column('reason_category', sa.String(length=30), nullable=True),
    sa.Column('reason_note', sa.Text(), nullable=True),
    sa.Column('created_by_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.Column('ended_at', sa.DateTime(), nullable=True),
    sa.Column('end_reason', sa.String(length=30), nullable=True),
    sa.Column('version', sa.Integer(), server_default='1', nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_schedule_overrides_account_id_accounts')),
    sa.ForeignKeyConstraint(['created_by_id'], ['users.id'], name=op.f('fk_schedule_overrides_created_by_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_schedule_overrides'))
    )
    with op.batch_alter_table('schedule_overrides', schema=None) as batch_op:
        batch_op.create_index('ix_schedule_overrides_account_id', ['account_id', 'id'], unique=False)
        batch_op.create_index('ix_schedule_overrides_live', ['account_id'], unique=True,
                              sqlite_where=LIVE, postgresql_where=LIVE)

    op.create_table('dunning_schedules',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('enabled', sa.Boolean(), server_default=sa.true(), nullable=False),
    sa.Column('time_of_day', sa.String(length=5), server_default='02:00', nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.Column('updated_by_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['updated_by_id'], ['users.id'], name=op.f('fk_dunning_schedules_updated_by_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_dunning_schedules'))
    )
    # Accounts with open invoices are looked at by the first daily run (which then plans each one's next day).
    op.execute("UPDATE accounts SET dunning_next_on = CURRENT_DATE WHERE EXISTS (SELECT 1 FROM invoices "
               "WHERE invoices.account_id = accounts.id AND paid_at IS NULL AND written_off_at IS NULL)")


def downgrade():
    op.drop_table('dunning_schedules')
    with op.batch_alter_table('schedule_overrides', schema=None) as batch_op:
        batch_op.drop_index('ix_schedule_overrides_live')
        batch_op.drop_index('ix_schedule_overrides_account_id')
    op.drop_table('schedule_overrides')
    op.create_table('schedule_overrides',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=10), nullable=False),
    sa.Column('stage', sa.String(length=10), nullable=False),
    sa.Column('until', sa.Date(), nullable=False),
    sa.Column('reason', sa.String(length=500), nullable=False),
    sa.Column('created_by_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('cancelled_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_schedule_overrides_account_id_accounts')),
    sa.ForeignKeyConstraint(['created_by_id'], ['users.id'], name=op.f('fk_schedule_overrides_created_by_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_schedule_overrides'))
    )
    with op.batch_alter_table('schedule_overrides', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_schedule_overrides_account_id'), ['account_id'], unique=False)
    with op.batch_alter_table('payments', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_payments_recorded_by_id_users'), type_='foreignkey')
        batch_op.drop_column('credit_cents')
        batch_op.drop_column('recorded_by_id')
        batch_op.drop_column('reference')
    with op.batch_alter_table('invoices', schema=None) as batch_op:
        batch_op.drop_column('paid_cents')
    op.drop_index('ix_accounts_dunning_next_on', table_name='accounts')
    # never a table copy: SQLite drops the columns in place (a copy would lose the lower(name) and lower(email)
    # indexes, which it cannot reflect)
    with op.batch_alter_table('accounts', schema=None, recreate='never') as batch_op:
        batch_op.drop_column('dunning_warned')
        batch_op.drop_column('dunning_next_on')
        batch_op.drop_column('dunning_since')
        batch_op.drop_column('credit_cents')
    with op.batch_alter_table('customer_classes', schema=None) as batch_op:
        batch_op.drop_column('updated_at')
        batch_op.drop_column('created_at')
        batch_op.drop_column('warning_days')
        batch_op.drop_column('least_amount_cents')
