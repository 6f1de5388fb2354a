"""Fixtures shared by every test: a workspace per backend, and clean state between tests."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fsspec
import pytest

from loopml.core import workspace as workspace_module
from loopml.core.store import Store
from loopml.core.workspace import Workspace
from loopml.testing.stores import postgres_database, truncate_all
from loopml.tracking.current import current_run


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A PostgreSQL database for this test session, migrated once, dropped at the end."""
    with postgres_database() as url:
        Store.open(url).close()
        yield url


@pytest.fixture(scope="session")
def s3_options() -> Iterator[dict[str, Any]]:
    """Storage options for a moto S3 server on a free loopback port, with a bucket made."""
    # Imported here so a test environment without the test extra fails these tests loudly.
    from moto.server import ThreadedMotoServer

    # Its server logs a line per request, which would bury the output of a failing test.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    options: dict[str, Any] = {
        "endpoint_url": f"http://{host}:{port}",
        "key": "testing",
        "secret": "testing",
    }
    fsspec.filesystem("s3", **options).mkdir("loopml-test")  # needs s3fs
    yield options
    server.stop()


@pytest.fixture(params=["sqlite", "postgres"])
def store_uri(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URI of an empty store, once per backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    url: str = request.getfixturevalue("postgres_url")
    truncate_all(url)
    return url


@pytest.fixture
def ws(store_uri: str, tmp_path: Path) -> Workspace:
    """A fresh workspace on each backend, used by the fluent API during the test."""
    root = tmp_path / "project"
    root.mkdir()
    workspace = Workspace.init(root, store_uri=store_uri)
    workspace_module.set_workspace(root)
    return workspace


@pytest.fixture
def sqlite_ws(tmp_path: Path) -> Workspace:
    """A fresh workspace with the default SQLite store."""
    root = tmp_path / "sqlite-project"
    root.mkdir()
    workspace = Workspace.init(root)
    workspace_module.set_workspace(root)
    return workspace


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Keep environment, current run and opened workspaces from leaking between tests."""
    for name in ("LOOPML_HOME", "LOOPML_STORE_URI", "LOOPML_BLOB_URI"):
        monkeypatch.delenv(name, raising=False)
    run_token = current_run.set(None)
    ws_token = workspace_module._current.set(None)
    yield
    run = current_run.get()
    if run is not None and not run.ended:
        run.end()
    current_run.reset(run_token)
    workspace_module._current.reset(ws_token)
    Workspace.close_all()


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[None]:
    """A local 2-CPU Ray cluster for this test session, started once (it takes seconds).

    The Ray executor sees Ray initialized and uses it without starting or stopping it.
    """
    import builtins

    import ray

    with pytest.MonkeyPatch.context() as env:
        # Ray's processes inherit these: no auth token written to ~/.ray, no usage reports.
        env.setenv("RAY_AUTH_MODE", "disabled")
        env.setenv("RAY_USAGE_STATS_ENABLED", "0")
        # Ray wraps builtins.print while connected and leaves its wrapper behind.
        env.setattr(builtins, "print", builtins.print)
        ray.init(num_cpus=2, num_gpus=0, include_dashboard=False, configure_logging=False)
        try:
            yield
        finally:
            ray.shutdown()
