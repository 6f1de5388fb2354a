"""The metadata store: schema, migrations and transactions on SQLite or PostgreSQL."""

from loopml.core.store.database import HEAD, REVISIONS, Store, insert_for, now_ms

__all__ = ["HEAD", "REVISIONS", "Store", "insert_for", "now_ms"]
