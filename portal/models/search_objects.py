"""Database objects no model declares: SQLite's FTS5 index of accounts (migration 0008) and its shadow tables.

The database keeps them (triggers on accounts), so comparing the models with the database leaves them out.
PostgreSQL's trigram index is declared on the Account model (PostgreSQL only).
"""
SQLITE_SEARCH_TABLES = frozenset({"accounts_search", "accounts_search_data", "accounts_search_idx",
                                  "accounts_search_config", "accounts_search_docsize", "accounts_search_content"})


def include_name(name, type_, parent_names):  # noqa: ARG001  (Alembic's signature)
    """Alembic's filter for autogenerate and `flask db check`: skip the search index's tables."""
    return not (type_ == "table" and name in SQLITE_SEARCH_TABLES)
