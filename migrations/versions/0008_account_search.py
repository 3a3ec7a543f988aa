"""account search: find accounts by any part of their name, email or number (3+ characters), kept by the database

SQLite: an FTS5 table with the trigram tokenizer over accounts' name, email and number (external content, no
positions: detail=none, columnsize=0, about 60 MB at 1,000,000 accounts), kept in step by triggers on insert,
delete and an update of those columns. PostgreSQL: pg_trgm and one GIN trigram index over
lower(name || ' ' || email || ' ' || number), the expression the search's LIKE tests.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 18:05:00

"""
from alembic import op


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

SQLITE_UP = [
    "CREATE VIRTUAL TABLE accounts_search USING fts5(name, email, number, content='accounts', content_rowid='id', "
    "tokenize='trigram', detail=none, columnsize=0)",
    # the database keeps the index in step, whoever writes accounts (the portal, a bulk seed, a shell)
    "CREATE TRIGGER accounts_search_insert AFTER INSERT ON accounts BEGIN "
    "INSERT INTO accounts_search (rowid, name, email, number) VALUES (new.id, new.name, new.email, new.number); "
    "END",
    "CREATE TRIGGER accounts_search_delete AFTER DELETE ON accounts BEGIN "
    "INSERT INTO accounts_search (accounts_search, rowid, name, email, number) "
    "VALUES ('delete', old.id, old.name, old.email, old.number); "
    "END",
    # only these columns: a sweep rewriting status never touches the index
    "CREATE TRIGGER accounts_search_update AFTER UPDATE OF name, email, number ON accounts BEGIN "
    "INSERT INTO accounts_search (accounts_search, rowid, name, email, number) "
    "VALUES ('delete', old.id, old.name, old.email, old.number); "
    "INSERT INTO accounts_search (rowid, name, email, number) VALUES (new.id, new.name, new.email, new.number); "
    "END",
    "INSERT INTO accounts_search (accounts_search) VALUES ('rebuild')",  # the accounts already there
]
SQLITE_DOWN = ["DROP TRIGGER IF EXISTS accounts_search_update", "DROP TRIGGER IF EXISTS accounts_search_delete",
               "DROP TRIGGER IF EXISTS accounts_search_insert", "DROP TABLE IF EXISTS accounts_search"]

POSTGRESQL_UP = [
    "CREATE EXTENSION IF NOT EXISTS pg_trgm",
    # builds from the rows already there; the expression is the one portal.models.accounts declares
    "CREATE INDEX ix_accounts_search_trgm ON accounts USING gin "
    "(lower((((name || ' ') || email) || ' ') || number) gin_trgm_ops)",
]
POSTGRESQL_DOWN = ["DROP INDEX IF EXISTS ix_accounts_search_trgm"]  # pg_trgm stays: other objects may use it


def _run(statements):
    for statement in statements:
        op.execute(statement)


def upgrade():
    _run(POSTGRESQL_UP if op.get_bind().dialect.name == "postgresql" else SQLITE_UP)


def downgrade():
    _run(POSTGRESQL_DOWN if op.get_bind().dialect.name == "postgresql" else SQLITE_DOWN)
