"""The schema comes from the migrations, and the migrations agree with the models (both databases)."""
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import downgrade, upgrade
from sqlalchemy import Column, Integer, MetaData, Table, inspect

from portal.extensions import db
from portal.models.search_objects import include_name

# SQLite cannot reflect expression indexes (lower(name)); PostgreSQL compares them.
pytestmark = [pytest.mark.filterwarnings("ignore:.*expression-based index"),
              pytest.mark.filterwarnings("ignore:autogenerate skipping")]

EXPECTED_TABLES = {
    "accounts", "users", "customer_classes", "invoices", "payments", "reservations", "suspension_rules",
    "sweep_runs", "sweep_schedules", "schedule_overrides", "audit_events", "outbox_emails",
    "cancellation_requests", "campaigns", "surveys", "listings", "profiles", "social_posts",
    "ingestion_records",
}


def _differences(connection, metadata):
    context = MigrationContext.configure(connection, opts={"compare_type": True, "include_name": include_name})
    return compare_metadata(context, metadata)


def test_migrated_schema_has_every_table_of_the_model(ctx):
    tables = set(inspect(db.engine).get_table_names())
    assert EXPECTED_TABLES <= tables
    assert set(db.metadata.tables) <= tables
    assert "alembic_version" in tables


def test_autogenerate_finds_no_difference_between_models_and_migrations(ctx):
    with db.engine.connect() as conn:
        assert _differences(conn, db.metadata) == []


def test_flask_db_check_reports_no_new_operations(app, runner):
    result = runner.invoke(args=["db", "check"])
    assert result.exit_code == 0, result.output


def test_flask_db_check_fails_when_a_model_is_not_migrated(app, runner):
    table = Table("not_migrated_yet", db.metadata, Column("id", Integer, primary_key=True))
    try:
        result = runner.invoke(args=["db", "check"])
    finally:
        db.metadata.remove(table)
    assert result.exit_code != 0


def test_the_comparison_notices_a_model_the_migrations_lack(ctx):
    """Guard the guard: a table only in the models shows up as a difference."""
    extended = MetaData()
    for table in db.metadata.tables.values():
        table.to_metadata(extended)
    Table("not_migrated_yet", extended, Column("id", Integer, primary_key=True))
    with db.engine.connect() as conn:
        diffs = _differences(conn, extended)
    assert [d[0] for d in diffs] == ["add_table"]
    assert diffs[0][1].name == "not_migrated_yet"


def test_partial_index_on_open_invoices_exists(ctx):
    indexes = {ix["name"] for ix in inspect(db.engine).get_indexes("invoices")}
    assert "ix_invoices_open_due" in indexes


@pytest.mark.slow
def test_downgrade_to_base_and_upgrade_again(ctx):
    downgrade(revision="base")
    assert set(inspect(db.engine).get_table_names()) <= {"alembic_version"}
    upgrade()
    assert EXPECTED_TABLES <= set(inspect(db.engine).get_table_names())
    with db.engine.connect() as conn:
        assert _differences(conn, db.metadata) == []
