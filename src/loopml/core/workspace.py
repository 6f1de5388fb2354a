"""A workspace: the metadata store, the blob store and the journals under one `.loopml/`."""

from __future__ import annotations

import atexit
import fcntl
import logging
import os
import shutil
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from loopml import config
from loopml.core import journal, plugins
from loopml.core.blobs import ContentStore, storage_from_uri
from loopml.errors import AlreadyExists

if TYPE_CHECKING:
    from loopml.core.store import Store

T = TypeVar("T")
log = logging.getLogger("loopml")


class Workspace:
    """An opened workspace; one per folder per process, shared by every thread."""

    # One engine, one background writer and one journal replay per workspace per process:
    # opening is cached here, by folder, rather than repeated on every API call.
    _open: ClassVar[dict[Path, Workspace]] = {}
    _open_lock: ClassVar[threading.Lock] = threading.Lock()
    _hooks_installed: ClassVar[bool] = False
    _default: ClassVar[Workspace | None] = None

    def __init__(self, settings: config.Settings, blobs: ContentStore) -> None:
        self.settings = settings
        self.blobs = blobs
        # The store is opened on first use: importing SQLAlchemy costs a few hundred
        # milliseconds that commands working only on files (`data status`) never pay.
        self._store: Store | None = None
        self._store_opening: Future[Store] | None = None
        self._store_lock = threading.Lock()
        self._components: dict[str, Any] = {}
        self._components_lock = threading.Lock()

    @property
    def store(self) -> Store:
        """Return the metadata store, opening (and migrating) it on first use."""
        store = self._store
        if store is not None:
            return store
        with self._store_lock:
            if self._store is None:
                opening, self._store_opening = self._store_opening, None
                self._store = opening.result() if opening else _open_store(self.settings)
            return self._store

    def open_store_in_background(self) -> None:
        """Start opening the store on another thread, so the import overlaps file work."""
        with self._store_lock:
            if self._store is not None or self._store_opening is not None:
                return
            opening: Future[Store] = Future()
            self._store_opening = opening

        def run() -> None:
            try:
                opening.set_result(_open_store(self.settings))
            except BaseException as exc:  # noqa: BLE001 - re-raised in the thread that uses it
                opening.set_exception(exc)

        threading.Thread(target=run, name="loopml-open-store", daemon=True).start()

    @property
    def root(self) -> Path:
        """Return the folder that holds `.loopml/`."""
        return self.settings.root

    @property
    def journal_dir(self) -> Path:
        """Return the folder of metric journals."""
        return self.settings.journal_dir

    @classmethod
    def init(
        cls, path: Path | str = ".", *, store_uri: str | None = None, blob_uri: str | None = None
    ) -> Workspace:
        """Create `.loopml/` in `path` and open it; refuse if one is already there."""
        root = Path(path).expanduser().resolve()
        if (root / config.DIRNAME).is_dir():
            raise AlreadyExists(
                f"{root / config.DIRNAME} already exists; it is a workspace already "
                "(delete the folder first to start over)"
            )
        try:
            (root / config.DIRNAME).mkdir(parents=True)
        except FileExistsError as exc:
            raise AlreadyExists(f"{root / config.DIRNAME} already exists") from exc
        try:
            (root / config.DIRNAME / "blobs").mkdir()
            (root / config.DIRNAME / "journal").mkdir()
            config.write_config(root, store_uri=store_uri, blob_uri=blob_uri)
            ws = cls.open(root)
        except BaseException:
            # Leave nothing half-made behind, so the corrected command can simply be re-run.
            shutil.rmtree(root / config.DIRNAME, ignore_errors=True)
            raise
        try:
            ws.store  # noqa: B018 - create the store now: a wrong URI must fail `init`
        except BaseException:
            ws.close()
            shutil.rmtree(root / config.DIRNAME, ignore_errors=True)
            raise
        return ws

    @classmethod
    def open(cls, path: Path | str | None = None, *, create: bool = False) -> Workspace:
        """Open the workspace at or above `path` (default: the current folder, or LOOPML_HOME).

        With `create`, make one in the current folder when none is found.
        """
        start = Path(path).expanduser().resolve() if path is not None else None
        if create and config.find_root(start) is None:
            where = start or Path.cwd()
            log.warning("LoopML: no workspace found; creating one in %s", where / config.DIRNAME)
            try:
                return cls.init(where)
            except AlreadyExists:  # another process made it a moment ago: use theirs
                pass
        root = config.require_root(start)
        with cls._open_lock:
            ws = cls._open.get(root)
            if ws is None:
                cls._install_process_hooks()
                ws = cls._open[root] = cls._load(root)
        return ws

    @classmethod
    def _load(cls, root: Path) -> Workspace:
        settings = config.load_settings(root)
        ws = cls(settings, ContentStore(storage_from_uri(settings.blob_uri)))
        try:
            if journal.has_journals(settings.journal_dir):
                for reference in plugins.JOURNAL_REPLAY:
                    plugins.resolve(reference)(ws)
        except BaseException:
            ws._close_store()
            raise
        return ws

    @classmethod
    def _install_process_hooks(cls) -> None:
        if cls._hooks_installed:
            return
        cls._hooks_installed = True
        # Flush and end what is still open when the interpreter exits.
        atexit.register(cls.close_all)
        os.register_at_fork(after_in_child=cls._after_fork_in_child)

    @classmethod
    def _after_fork_in_child(cls) -> None:
        """A forked child must not share the parent's connections, writer thread or runs."""
        for ws in cls._open.values():
            if ws._store is not None:
                ws._store.engine.dispose(close=False)
            for component in ws._components.values():
                hook = getattr(component, "after_fork_in_child", None)
                if hook is not None:
                    hook()

    @classmethod
    def set_default(cls, ws: Workspace | None) -> None:
        """Make `ws` the workspace of fluent calls in every thread of this process."""
        cls._default = ws

    @classmethod
    def default(cls) -> Workspace | None:
        """Return the process's default workspace, if one was set and is still open."""
        ws = cls._default
        return ws if ws is not None and cls._open.get(ws.root) is ws else None

    @contextmanager
    def blob_lock(self, *, exclusive: bool = False) -> Iterator[None]:
        """Hold the workspace's blob lock: shared while storing blobs that rows will point
        at, exclusive while garbage collection decides what nothing points at.

        It is a file lock, so it orders processes on this machine only.
        """
        fd = os.open(self.settings.dir / "blobs.lock", os.O_CREAT | os.O_RDWR, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            yield
        finally:
            os.close(fd)

    def component(self, key: str, factory: Callable[[Workspace], T]) -> T:
        """Return this workspace's `key` component, making it with `factory` the first time."""
        with self._components_lock:
            if key not in self._components:
                self._components[key] = factory(self)
            return self._components[key]  # type: ignore[no-any-return]

    def close(self) -> None:
        """Close components and the store, and forget this workspace in the process cache."""
        with self._components_lock:
            components, self._components = self._components, {}
        for component in components.values():
            close = getattr(component, "close", None)
            if close is not None:
                close()
        self._close_store()
        with self._open_lock:
            if self._open.get(self.root) is self:
                del self._open[self.root]

    def _close_store(self) -> None:
        with self._store_lock:
            store, self._store = self._store, None
            opening, self._store_opening = self._store_opening, None
        # A store still opening on its thread is left to it (never waited for: a server that
        # accepts but never answers would hang the exit); one that finished is closed.
        if store is None and opening is not None and opening.done() and not opening.exception():
            store = opening.result()
        if store is not None:
            store.close()

    @classmethod
    def close_all(cls) -> None:
        """Close every workspace this process opened (tests and interpreter exit)."""
        with cls._open_lock:
            opened = list(cls._open.values())
        cls._default = None
        for ws in opened:
            ws.close()

    def __repr__(self) -> str:
        return f"Workspace({str(self.root)!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        # Sent to a worker process (a dataset version a step reads): it opens the same folder.
        return (Workspace.open, (str(self.root),))


def _open_store(settings: config.Settings) -> Store:
    from loopml.core.store import Store, schema

    del schema  # imported with the store: every user of the store needs the tables
    return Store.open(settings.store_uri)


_current: ContextVar[Workspace | None] = ContextVar("loopml_workspace", default=None)


def set_workspace(path: Path | str | None = None) -> Workspace:
    """Use the workspace at or above `path` for API calls in this process, and return it.

    It applies to every thread; `use_workspace` narrows the choice to one context.
    """
    ws = Workspace.open(path)
    Workspace.set_default(ws)
    return ws


def use_workspace(path: Path | str | None = None) -> Workspace:
    """Use the workspace at or above `path` for API calls in this context only."""
    ws = Workspace.open(path)
    _current.set(ws)
    return ws


@contextmanager
def using(ws: Workspace) -> Iterator[Workspace]:
    """Use `ws` for API calls in this context until the block ends (then what was before)."""
    token = _current.set(ws)
    try:
        yield ws
    finally:
        _current.reset(token)


def workspace() -> Workspace:
    """Return the workspace of API calls: this context's, the process's, or the cwd's.

    With no workspace above the current folder, one is created here (logged as a warning), so
    a script works with zero setup; the CLI instead refuses and says to run `loopml init`.
    """
    ws = _current.get() or Workspace.default()
    return ws if ws is not None else Workspace.open(create=True)
