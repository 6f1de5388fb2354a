"""Throw-away metadata stores for tests: a SQLite file, or a fresh PostgreSQL database."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager

DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
POSTGRES_ENV = "LOOPML_TEST_POSTGRES_URL"


def postgres_admin_url() -> str:
    """Return the URL of the PostgreSQL database tests may create other databases from."""
    return os.environ.get(POSTGRES_ENV, DEFAULT_POSTGRES_URL)


@contextmanager
def postgres_database(admin_url: str | None = None) -> Iterator[str]:
    """Create an empty PostgreSQL database, yield its URL, and drop it afterwards.

    Raises (never skips) when the server cannot be reached: a contract suite that silently
    skipped its PostgreSQL half would prove nothing.
    """
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    admin = make_url(admin_url or postgres_admin_url())
    name = f"loopml_test_{secrets.token_hex(6)}"
    engine = create_engine(admin, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            yield admin.set(database=name).render_as_string(hide_password=False)
        finally:
            with engine.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        engine.dispose()


def truncate_all(url: str) -> None:
    """Empty every LoopML table of the store at `url`, keeping its schema and Default experiment."""
    from sqlalchemy import create_engine, text

    from loopml.core.store import schema

    tables = ", ".join(t.name for t in schema.Base.metadata.sorted_tables)
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
            conn.execute(
                text(
                    "INSERT INTO experiments (id, name, lifecycle_stage, created_at, updated_at) "
                    "VALUES (0, 'Default', 'active', 0, 0)"
                )
            )
    finally:
        engine.dispose()
