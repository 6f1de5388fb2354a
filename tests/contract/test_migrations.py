"""Schema migrations on every store: applied on open, in step with the models, never downgraded."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, text

from loopml.core.store import HEAD, REVISIONS, Store
from loopml.core.store.schema import Base
from loopml.errors import InvalidInput, SchemaTooNew, StoreError
from loopml.testing.stores import postgres_database

MIGRATIONS = Path(__file__).parents[2] / "src" / "loopml" / "core" / "store" / "migrations"


def test_known_revisions_match_the_migration_scripts() -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    scripts = ScriptDirectory.from_config(config)
    chain = [s.revision for s in scripts.walk_revisions()][::-1]
    assert tuple(chain) == REVISIONS
    assert scripts.get_current_head() == HEAD


def test_the_migrated_schema_matches_the_models(store_uri: str) -> None:
    store = Store.open(store_uri)
    try:
        assert store.revision() == HEAD
        with store.engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        assert diff == []
    finally:
        store.close()


def test_a_newer_schema_is_refused(store_uri: str) -> None:
    store = Store.open(store_uri)
    try:
        with store.engine.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
        with pytest.raises(SchemaTooNew, match=r"'9999'.*upgrade LoopML"):
            Store.open(store_uri)
    finally:
        with store.engine.begin() as conn:
            conn.execute(text(f"UPDATE alembic_version SET version_num = '{HEAD}'"))
        store.close()


def test_opening_twice_does_not_migrate_twice(store_uri: str) -> None:
    Store.open(store_uri).close()
    store = Store.open(store_uri)
    try:
        with store.engine.connect() as conn:
            count = conn.execute(text("SELECT count(*) FROM alembic_version")).scalar()
            default = conn.execute(text("SELECT count(*) FROM experiments WHERE id = 0")).scalar()
        assert count == 1 and default == 1
    finally:
        store.close()


@pytest.mark.parametrize("uri", ["mysql://x/y", "nonsense", "sqlite"])
def test_unsupported_store_uris_say_what_works(uri: str) -> None:
    with pytest.raises(InvalidInput, match="postgresql"):
        Store.open(uri)


def test_an_unreachable_server_is_a_clear_error() -> None:
    with pytest.raises(StoreError, match=r"cannot open the metadata store.*server is running"):
        Store.open("postgresql+psycopg://postgres@127.0.0.1:1/none?connect_timeout=2")


def test_a_database_of_something_else_is_refused(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'other.db'}"
    engine = create_engine(uri)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE runs (id INTEGER PRIMARY KEY)"))
    engine.dispose()
    with pytest.raises(StoreError, match="no LoopML schema version"):
        Store.open(uri)


@pytest.fixture(params=["sqlite", "postgres"])
def empty_store_uri(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A store URI with no schema at all, once per backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'fresh.db'}"
        return
    with postgres_database() as url:
        yield url


def test_an_older_store_is_upgraded_on_open_and_keeps_its_data(empty_store_uri: str) -> None:
    engine = create_engine(empty_store_uri)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, REVISIONS[0])
        conn.execute(
            text(
                "INSERT INTO experiments (id, name, lifecycle_stage, created_at, updated_at) "
                "VALUES (7, 'kept', 'active', 1, 1)"
            )
        )
    engine.dispose()
    store = Store.open(empty_store_uri)
    try:
        assert store.revision() == HEAD
        with store.engine.connect() as conn:
            assert (
                conn.execute(text("SELECT name FROM experiments WHERE id = 7")).scalar() == "kept"
            )
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        assert diff == []
    finally:
        store.close()
