"""account search, past the first letter: a second trigram index over what follows a name's first character

A word that starts many names ("maple" in "Maple Bay Bakery") matches accounts that sit together in the name
order, where walking that order tests thousands of other names before it reaches them. Each account that
matches a word w either has a name starting with w (a range of the name index) or contains w somewhere after the
name's first character: substr(name, 2) || ' ' || email || ' ' || number, indexed here. The list reads the
first from the name index and the second, usually few, from this index (portal.domain.account_search.words).

SQLite: an FTS5 table (trigram tokenizer, no positions) over a view of that text, kept in step by the search
triggers of migration 0008, rewritten here to keep both tables. PostgreSQL: a GIN trigram index on
lower(((substr(name, 2) || ' ') || email) || ' ') || number).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02 01:30:00

"""
from alembic import op


revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None

REST = "substr({t}.name, 2) || ' ' || {t}.email || ' ' || {t}.number"
_INSERT_0008 = "INSERT INTO accounts_search (rowid, name, email, number) VALUES (new.id, new.name, new.email, new.number); "
_DELETE_0008 = ("INSERT INTO accounts_search (accounts_search, rowid, name, email, number) "
                "VALUES ('delete', old.id, old.name, old.email, old.number); ")
_INSERT_REST = f"INSERT INTO accounts_search_rest (rowid, rest) VALUES (new.id, {REST.format(t='new')}); "
_DELETE_REST = (f"INSERT INTO accounts_search_rest (accounts_search_rest, rowid, rest) "
                f"VALUES ('delete', old.id, {REST.format(t='old')}); ")
_TRIGGERS = ["DROP TRIGGER IF EXISTS accounts_search_insert", "DROP TRIGGER IF EXISTS accounts_search_delete",
             "DROP TRIGGER IF EXISTS accounts_search_update"]


def _triggers(with_rest):
    insert = _INSERT_0008 + (_INSERT_REST if with_rest else "")
    delete = _DELETE_0008 + (_DELETE_REST if with_rest else "")
    return _TRIGGERS + [
        f"CREATE TRIGGER accounts_search_insert AFTER INSERT ON accounts BEGIN {insert}END",
        f"CREATE TRIGGER accounts_search_delete AFTER DELETE ON accounts BEGIN {delete}END",
        # only these columns: a sweep rewriting status never touches either index
        f"CREATE TRIGGER accounts_search_update AFTER UPDATE OF name, email, number ON accounts BEGIN "
        f"{delete}{insert}END",
    ]


SQLITE_UP = [
    f"CREATE VIEW accounts_search_rest_source AS SELECT id, {REST.format(t='accounts')} AS rest FROM accounts",
    "CREATE VIRTUAL TABLE accounts_search_rest USING fts5(rest, content='accounts_search_rest_source', "
    "content_rowid='id', tokenize='trigram', detail=none, columnsize=0)",
    *_triggers(with_rest=True),
    "INSERT INTO accounts_search_rest (accounts_search_rest) VALUES ('rebuild')",  # the accounts already there
]
SQLITE_DOWN = [*_triggers(with_rest=False), "DROP TABLE IF EXISTS accounts_search_rest",
               "DROP VIEW IF EXISTS accounts_search_rest_source"]

POSTGRESQL_UP = [
    # the expression is the one portal.models.accounts declares (SEARCH_REST_SQL)
    "CREATE INDEX ix_accounts_search_rest_trgm ON accounts USING gin "
    "(lower((((substr(name, 2) || ' ') || email) || ' ') || number) gin_trgm_ops)",
]
POSTGRESQL_DOWN = ["DROP INDEX IF EXISTS ix_accounts_search_rest_trgm"]


def _run(statements):
    for statement in statements:
        op.execute(statement)


def upgrade():
    _run(POSTGRESQL_UP if op.get_bind().dialect.name == "postgresql" else SQLITE_UP)


def downgrade():
    _run(POSTGRESQL_DOWN if op.get_bind().dialect.name == "postgresql" else SQLITE_DOWN)
