"""features: ingestion keys and records, surveys, campaigns and their history, survey requests, listing
connections, profiles, social profiles and posts

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 14:21:08

"""
from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('social_profiles',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('network', sa.String(length=30), nullable=False),
    sa.Column('handle', sa.String(length=100), nullable=False),
    sa.Column('feed_url', sa.String(length=500), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('last_polled_at', sa.DateTime(), nullable=True),
    sa.Column('last_success_at', sa.DateTime(), nullable=True),
    sa.Column('last_error', sa.String(length=500), nullable=True),
    sa.Column('failures', sa.Integer(), server_default='0', nullable=False),
    sa.Column('next_poll_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_social_profiles_account_id_accounts')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_social_profiles'))
    )
    with op.batch_alter_table('social_profiles', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_social_profiles_account_id'), ['account_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_social_profiles_next_poll_at'), ['next_poll_at'], unique=False)

    op.create_table('ingestion_keys',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('prefix', sa.String(length=16), nullable=False),
    sa.Column('digest', sa.String(length=64), nullable=False),
    sa.Column('created_by_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('last_used_at', sa.DateTime(), nullable=True),
    sa.Column('revoked_at', sa.DateTime(), nullable=True),
    sa.Column('revoked_by_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_ingestion_keys_account_id_accounts')),
    sa.ForeignKeyConstraint(['created_by_id'], ['users.id'], name=op.f('fk_ingestion_keys_created_by_id_users')),
    sa.ForeignKeyConstraint(['revoked_by_id'], ['users.id'], name=op.f('fk_ingestion_keys_revoked_by_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ingestion_keys')),
    sa.UniqueConstraint('digest', name=op.f('uq_ingestion_keys_digest'))
    )
    with op.batch_alter_table('ingestion_keys', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_ingestion_keys_account_id'), ['account_id'], unique=False)

    op.create_table('listing_connections',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('listing_id', sa.Integer(), nullable=False),
    sa.Column('directory', sa.String(length=100), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('external_ref', sa.String(length=200), nullable=True),
    sa.Column('connected_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['listing_id'], ['listings.id'], name=op.f('fk_listing_connections_listing_id_listings')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_listing_connections'))
    )
    with op.batch_alter_table('listing_connections', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_listing_connections_listing_id'), ['listing_id'], unique=False)

    op.create_table('campaign_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('campaign_id', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(), nullable=False),
    sa.Column('kind', sa.String(length=30), nullable=False),
    sa.Column('message', sa.String(length=500), nullable=False),
    sa.Column('count', sa.Integer(), nullable=True),
    sa.Column('actor_label', sa.String(length=255), nullable=True),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'], name=op.f('fk_campaign_events_campaign_id_campaigns')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_campaign_events'))
    )
    with op.batch_alter_table('campaign_events', schema=None) as batch_op:
        batch_op.create_index('ix_campaign_events_campaign', ['campaign_id', 'id'], unique=False)

    op.create_table('survey_requests',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('survey_id', sa.Integer(), nullable=True),
    sa.Column('campaign_id', sa.Integer(), nullable=True),
    sa.Column('ingestion_record_id', sa.Integer(), nullable=True),
    sa.Column('kind', sa.String(length=10), nullable=False),
    sa.Column('manual', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.Column('recipient_name', sa.String(length=200), nullable=True),
    sa.Column('recipient_email', sa.String(length=255), nullable=False),
    sa.Column('due_at', sa.DateTime(), nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('sent_at', sa.DateTime(), nullable=True),
    sa.Column('outbox_email_id', sa.Integer(), nullable=True),
    sa.Column('created_by_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_survey_requests_account_id_accounts')),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'], name=op.f('fk_survey_requests_campaign_id_campaigns')),
    sa.ForeignKeyConstraint(['created_by_id'], ['users.id'], name=op.f('fk_survey_requests_created_by_id_users')),
    sa.ForeignKeyConstraint(['ingestion_record_id'], ['ingestion_records.id'], name=op.f('fk_survey_requests_ingestion_record_id_ingestion_records')),
    sa.ForeignKeyConstraint(['survey_id'], ['surveys.id'], name=op.f('fk_survey_requests_survey_id_surveys')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_survey_requests')),
    sa.UniqueConstraint('campaign_id', 'ingestion_record_id', name='uq_survey_requests_campaign_record')
    )
    with op.batch_alter_table('survey_requests', schema=None) as batch_op:
        batch_op.create_index('ix_survey_requests_account', ['account_id', 'id'], unique=False)
        batch_op.create_index('ix_survey_requests_due', ['status', 'due_at', 'id'], unique=False)

    with op.batch_alter_table('campaigns', schema=None) as batch_op:
        batch_op.add_column(sa.Column('survey_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('delay_hours', sa.Integer(), server_default='24', nullable=False))
        batch_op.add_column(sa.Column('daily_limit', sa.Integer(), server_default='100', nullable=False))
        batch_op.add_column(sa.Column('held_reason', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('created_by_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('updated_at', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('ended_at', sa.DateTime(), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_campaigns_survey_id_surveys'), 'surveys', ['survey_id'], ['id'])
        batch_op.create_foreign_key(batch_op.f('fk_campaigns_created_by_id_users'), 'users', ['created_by_id'], ['id'])

    with op.batch_alter_table('ingestion_records', schema=None) as batch_op:
        batch_op.add_column(sa.Column('external_id', sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column('customer_name', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('customer_email', sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column('visited_at', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('key_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('created_by_id', sa.Integer(), nullable=True))
        batch_op.drop_index(batch_op.f('ix_ingestion_records_account_id'))
        batch_op.create_index('ix_ingestion_records_account_created', ['account_id', 'created_at', 'id'], unique=False)
        batch_op.create_unique_constraint('uq_ingestion_records_account_external', ['account_id', 'external_id'])
        batch_op.create_foreign_key(batch_op.f('fk_ingestion_records_key_id_ingestion_keys'), 'ingestion_keys', ['key_id'], ['id'])
        batch_op.create_foreign_key(batch_op.f('fk_ingestion_records_created_by_id_users'), 'users', ['created_by_id'], ['id'])
    op.execute("UPDATE ingestion_records SET external_id = 'row-' || id WHERE external_id IS NULL")
    with op.batch_alter_table('ingestion_records', schema=None) as batch_op:
        batch_op.alter_column('external_id', existing_type=sa.String(length=100), nullable=False)

    # each listing's one directory name becomes its first connection
    op.execute("INSERT INTO listing_connections (listing_id, directory, status, connected_at) "
               "SELECT id, connection, 'connected', updated_at FROM listings WHERE connection IS NOT NULL")
    with op.batch_alter_table('listings', schema=None) as batch_op:
        batch_op.add_column(sa.Column('address', sa.String(length=300), nullable=True))
        batch_op.add_column(sa.Column('phone', sa.String(length=50), nullable=True))
        batch_op.add_column(sa.Column('description', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('published_at', sa.DateTime(), nullable=True))
        batch_op.drop_column('connection')

    with op.batch_alter_table('profiles', schema=None) as batch_op:
        batch_op.add_column(sa.Column('website', sa.String(length=300), nullable=True))
        batch_op.add_column(sa.Column('phone', sa.String(length=50), nullable=True))
        batch_op.add_column(sa.Column('updated_by_id', sa.Integer(), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_profiles_updated_by_id_users'), 'users', ['updated_by_id'], ['id'])

    with op.batch_alter_table('social_posts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('social_profile_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('external_id', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('author', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('url', sa.String(length=500), nullable=True))
        batch_op.add_column(sa.Column('posted_at', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('alert_state', sa.String(length=12), server_default='none', nullable=False))
        batch_op.add_column(sa.Column('action_note', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('acted_by_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('acted_at', sa.DateTime(), nullable=True))
        batch_op.create_index('ix_social_posts_alert_state', ['alert_state', 'account_id'], unique=False)
        batch_op.create_unique_constraint('uq_social_posts_profile_external', ['social_profile_id', 'external_id'])
        batch_op.create_foreign_key(batch_op.f('fk_social_posts_social_profile_id_social_profiles'), 'social_profiles', ['social_profile_id'], ['id'])
        batch_op.create_foreign_key(batch_op.f('fk_social_posts_acted_by_id_users'), 'users', ['acted_by_id'], ['id'])

    with op.batch_alter_table('surveys', schema=None) as batch_op:
        batch_op.add_column(sa.Column('body', sa.Text(), nullable=True))
        batch_op.drop_column('manual')
        batch_op.drop_column('sent_at')



def downgrade():
    with op.batch_alter_table('surveys', schema=None) as batch_op:
        batch_op.add_column(sa.Column('sent_at', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('manual', sa.Boolean(), server_default=sa.true(), nullable=False))
        batch_op.drop_column('body')

    with op.batch_alter_table('social_posts', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_social_posts_acted_by_id_users'), type_='foreignkey')
        batch_op.drop_constraint(batch_op.f('fk_social_posts_social_profile_id_social_profiles'), type_='foreignkey')
        batch_op.drop_constraint('uq_social_posts_profile_external', type_='unique')
        batch_op.drop_index('ix_social_posts_alert_state')
        batch_op.drop_column('acted_at')
        batch_op.drop_column('acted_by_id')
        batch_op.drop_column('action_note')
        batch_op.drop_column('alert_state')
        batch_op.drop_column('posted_at')
        batch_op.drop_column('url')
        batch_op.drop_column('author')
        batch_op.drop_column('external_id')
        batch_op.drop_column('social_profile_id')

    with op.batch_alter_table('profiles', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_profiles_updated_by_id_users'), type_='foreignkey')
        batch_op.drop_column('updated_by_id')
        batch_op.drop_column('phone')
        batch_op.drop_column('website')

    with op.batch_alter_table('listings', schema=None) as batch_op:
        batch_op.add_column(sa.Column('connection', sa.String(length=100), nullable=True))
        batch_op.drop_column('published_at')
        batch_op.drop_column('description')
        batch_op.drop_column('phone')
        batch_op.drop_column('address')
    op.execute("UPDATE listings SET connection = (SELECT MIN(directory) FROM listing_connections c "
               "WHERE c.listing_id = listings.id)")

    with op.batch_alter_table('ingestion_records', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_ingestion_records_created_by_id_users'), type_='foreignkey')
        batch_op.drop_constraint(batch_op.f('fk_ingestion_records_key_id_ingestion_keys'), type_='foreignkey')
        batch_op.drop_constraint('uq_ingestion_records_account_external', type_='unique')
        batch_op.drop_index('ix_ingestion_records_account_created')
        batch_op.create_index(batch_op.f('ix_ingestion_records_account_id'), ['account_id'], unique=False)
        batch_op.drop_column('created_by_id')
        batch_op.drop_column('key_id')
        batch_op.drop_column('visited_at')
        batch_op.drop_column('customer_email')
        batch_op.drop_column('customer_name')
        batch_op.drop_column('external_id')

    with op.batch_alter_table('campaigns', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_campaigns_created_by_id_users'), type_='foreignkey')
        batch_op.drop_constraint(batch_op.f('fk_campaigns_survey_id_surveys'), type_='foreignkey')
        batch_op.drop_column('ended_at')
        batch_op.drop_column('updated_at')
        batch_op.drop_column('created_by_id')
        batch_op.drop_column('held_reason')
        batch_op.drop_column('daily_limit')
        batch_op.drop_column('delay_hours')
        batch_op.drop_column('survey_id')

    with op.batch_alter_table('survey_requests', schema=None) as batch_op:
        batch_op.drop_index('ix_survey_requests_due')
        batch_op.drop_index('ix_survey_requests_account')

    op.drop_table('survey_requests')
    with op.batch_alter_table('campaign_events', schema=None) as batch_op:
        batch_op.drop_index('ix_campaign_events_campaign')

    op.drop_table('campaign_events')
    with op.batch_alter_table('listing_connections', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_listing_connections_listing_id'))

    op.drop_table('listing_connections')
    with op.batch_alter_table('ingestion_keys', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_ingestion_keys_account_id'))

    op.drop_table('ingestion_keys')
    with op.batch_alter_table('social_profiles', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_social_profiles_next_poll_at'))
        batch_op.drop_index(batch_op.f('ix_social_profiles_account_id'))

    op.drop_table('social_profiles')
