"""Per-connection database settings."""
import sqlite3

from sqlalchemy import event
from sqlalchemy.engine import Engine

_registered = False


def _sqlite_pragmas(dbapi_connection, connection_record):  # noqa: ARG001
    if isinstance(dbapi_connection, sqlite3.Connection):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        # Read the file through a memory map: the account list walks an index and reads each row it
        # checks; without a syscall per page that walk is about a third faster (BENCHMARKS.md).
        cursor.execute("PRAGMA mmap_size=268435456")
        # A large clean-up grows the write-ahead log to hundreds of MB; cut the file back to 64 MB when
        # a writer starts the log over after a complete checkpoint.
        cursor.execute("PRAGMA journal_size_limit=67108864")
        cursor.close()


def init_engine_events(app):
    """Turn on SQLite foreign keys and WAL with a busy timeout, so web and workers share the file."""
    global _registered
    if not app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        return
    options = app.config.setdefault("SQLALCHEMY_ENGINE_OPTIONS", {})
    options.setdefault("connect_args", {}).setdefault("timeout", 30)
    if not _registered:
        event.listen(Engine, "connect", _sqlite_pragmas)
        _registered = True
