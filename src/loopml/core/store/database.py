"""The metadata store: one SQLAlchemy engine, short write transactions, migrations on open."""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, inspect, text
from sqlalchemy.exc import ArgumentError, OperationalError

from loopml.errors import InvalidInput, SchemaTooNew, StoreError

# Every revision this code knows, oldest first. A test checks it against Alembic's scripts, so
# opening a store that is already at HEAD never has to import Alembic.
REVISIONS: tuple[str, ...] = (
    "0001",
    "0002",
    "0003",
    "0004",
    "0005",
    "0006",
    "0007",
    "0008",
    "0009",
)
HEAD = REVISIONS[-1]

SQLITE_BUSY_TIMEOUT_MS = 60_000
PG_CONNECT_TIMEOUT_S = 10
_SUPPORTED = ("sqlite", "postgresql")
_WRITE = "loopml_write"
_MIGRATIONS = Path(__file__).with_name("migrations")


class Store:
    """The metadata database: `read()` and `write()` hand out connections inside a transaction."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name

    @classmethod
    def open(cls, uri: str) -> Store:
        """Open the store at `uri`, migrating it to this code's schema if it is older."""
        store = cls(_create_engine(uri))
        try:
            store.migrate()
        except OperationalError as exc:
            store.close()
            where = store.engine.url.render_as_string(hide_password=True)
            raise StoreError(
                f"cannot open the metadata store at {where}: {' '.join(str(exc.orig).split())}; "
                "check that the "
                "server is running and the URI (LOOPML_STORE_URI or .loopml/config.toml) is right"
            ) from exc
        except BaseException:
            store.close()
            raise
        return store

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """Yield a connection in a read transaction."""
        with self.engine.connect() as conn, conn.begin():
            yield conn

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """Yield a connection in a write transaction (BEGIN IMMEDIATE on SQLite)."""
        with self.engine.connect() as plain:
            conn = plain.execution_options(**{_WRITE: True})
            with conn.begin():
                yield conn

    def revision(self) -> str | None:
        """Return the schema revision stored in the database, or None for an empty database."""
        with self.engine.connect() as conn:
            inspector = inspect(conn)
            if not inspector.has_table("alembic_version"):
                if inspector.has_table("experiments") or inspector.has_table("runs"):
                    where = self.engine.url.render_as_string(hide_password=True)
                    raise StoreError(
                        f"the database at {where} has tables but no LoopML schema version; "
                        "it belongs to something else: point LoopML at an empty database"
                    )
                return None
            row = conn.execute(text("SELECT version_num FROM alembic_version")).first()
            return None if row is None else str(row[0])

    def migrate(self) -> None:
        """Bring the schema to HEAD; refuse a database written by a newer LoopML."""
        if self._check_revision():
            return
        with _migration_lock(self):
            if self._check_revision():  # another process migrated while we waited
                return
            from alembic import command
            from alembic.config import Config

            config = Config()
            config.set_main_option("script_location", str(_MIGRATIONS))
            with self.engine.begin() as conn:
                if self.dialect == "postgresql":
                    conn.execute(text("SELECT pg_advisory_xact_lock(74712026)"))
                config.attributes["connection"] = conn
                command.upgrade(config, "head")

    def _check_revision(self) -> bool:
        current = self.revision()
        if current == HEAD:
            return True
        if current is not None and current not in REVISIONS:
            raise SchemaTooNew(
                f"the metadata store at {self.engine.url.render_as_string(hide_password=True)} "
                f"has schema revision {current!r}, newer than this LoopML knows (up to {HEAD!r}); "
                "upgrade LoopML (pip install -U loopml) to use it"
            )
        return False

    def close(self) -> None:
        """Release every pooled connection."""
        self.engine.dispose()


def _create_engine(uri: str) -> Engine:
    unsupported = InvalidInput(
        f"store URI {uri!r} is not supported; use sqlite:///path/to/loopml.db "
        "or postgresql+psycopg://user@host:5432/dbname"
    )
    scheme = uri.split(":", 1)[0].split("+", 1)[0] if "://" in uri else ""
    if scheme not in _SUPPORTED:
        raise unsupported
    try:
        if scheme == "sqlite":
            return _sqlite_engine(uri)
        # Exact float text whatever the server's default (search folds metrics in as text).
        return create_engine(
            uri,
            pool_pre_ping=True,
            connect_args={
                "options": "-c extra_float_digits=3",
                # A server that accepts but never answers fails in seconds, not never.
                "connect_timeout": PG_CONNECT_TIMEOUT_S,
            },
        )
    except ArgumentError as exc:
        raise unsupported from exc
    except ModuleNotFoundError as exc:
        raise InvalidInput(
            f"store URI {uri!r} needs the PostgreSQL driver: pip install 'loopml[postgres]'"
        ) from exc


def _sqlite_engine(uri: str) -> Engine:
    engine = create_engine(uri, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Take transaction control from the driver so BEGIN IMMEDIATE is ours to emit.
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        # WAL is a property of the file, kept once set; setting it again needs a lock that
        # many processes opening the store at once would contend for.
        if cursor.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA case_sensitive_like=ON")  # LIKE as on PostgreSQL; ILIKE ignores case
        # SQLite's lower() folds ASCII only; ILIKE must ignore case in every script, as on
        # PostgreSQL.
        dbapi_conn.create_function("lower", 1, _lower, deterministic=True)
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # A deferred transaction that reads then writes fails at once with "database is
        # locked"; IMMEDIATE takes the write lock up front and waits out the busy timeout.
        immediate = conn.get_execution_options().get(_WRITE, False)
        _retry_locked(lambda: conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN"))

    return engine


def _lower(value: object) -> object:
    return value.lower() if isinstance(value, str) else value


def _retry_locked(begin: Any) -> None:
    """Run `begin`, retrying the lock errors SQLite returns without waiting, until the deadline.

    SQLite waits out the busy timeout itself; a few lock errors come back at once (while a WAL
    file is recovered), so those are retried, but never past one busy timeout in total.
    """
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    pause = 0.005
    while True:
        try:
            begin()
        except OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            if time.monotonic() + pause > deadline:
                raise StoreError(
                    f"the SQLite store stayed locked: {exc.orig}; another process holds a "
                    "long write transaction, or the file is on a network filesystem"
                ) from exc
            time.sleep(pause)
            pause = min(pause * 2, 0.5)
        else:
            return


@contextmanager
def _migration_lock(store: Store) -> Iterator[None]:
    """Serialise first-time migrations between processes sharing one SQLite file."""
    database = store.engine.url.database
    if store.dialect != "sqlite" or not database or database == ":memory:":
        yield  # PostgreSQL takes an advisory lock inside the migration transaction
        return
    fd = os.open(f"{database}.migrate-lock", os.O_CREAT | os.O_RDWR, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def insert_for(conn: Connection, table: Any) -> Any:
    """Return an INSERT for `table` in `conn`'s dialect, so ON CONFLICT clauses are available."""
    return insert_for_dialect(conn.dialect.name)(table)


def insert_for_dialect(dialect: str) -> Any:
    """Return the dialect's `insert` construct (SQLite and PostgreSQL share ON CONFLICT)."""
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert


def now_ms() -> int:
    """Return the current time in integer milliseconds since the epoch."""
    return time.time_ns() // 1_000_000


__all__ = ["HEAD", "REVISIONS", "Store", "insert_for", "insert_for_dialect", "now_ms"]
