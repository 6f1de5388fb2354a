"""`loopml serve`: load a model and run its server on uvicorn, safely by default.

The server binds 127.0.0.1 unless told otherwise, and refuses any other address without a
token: a model behind an open port answers anyone who can reach it.
"""

from __future__ import annotations

import ipaddress
import json
import os
from dataclasses import asdict
from typing import Any

from loopml.core.workspace import workspace
from loopml.errors import InvalidInput
from loopml.serving.app import ModelServer, ServerSettings
from loopml.serving.deployment import DeploymentServer
from loopml.serving.prediction_log import PredictionLog

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
TOKEN_ENV = "LOOPML_SERVE_TOKEN"  # noqa: S105 - the name of the variable, not a token
PREDICTIONS_DIR = "predictions"  # under .loopml/: deployment=NAME/date=YYYY-MM-DD/*.parquet
_CONFIG_ENV = "LOOPML_SERVE_CONFIG"  # how `serve` tells each uvicorn worker what to load


def create_server(uri: str, settings: ServerSettings | None = None) -> ModelServer:
    """Return a server for the model `uri` names (loaded and verified now)."""
    from loopml.registry import api
    from loopml.registry.uris import parse

    ref = parse(uri)
    if ref.run_id is not None:
        loaded, name, version = api.load_model(uri), f"run-{ref.run_id[:8]}", ref.path or "model"
    else:
        # The exact version first: an alias that moves meanwhile cannot mislabel the model.
        record = api.get_model_version(uri)
        loaded, name, version = api.load_model(record.uri), record.name, str(record.version)
    chosen = settings or ServerSettings()
    log = None
    if chosen.log_predictions:
        root = workspace().settings.dir / PREDICTIONS_DIR
        log = PredictionLog(root, name, sample_rate=chosen.log_sample_rate)
    return ModelServer(loaded, name=name, version=version, settings=chosen, log=log)


def create_deployment_server(
    name: str, settings: ServerSettings | None = None, *, poll_s: float | None = None
) -> DeploymentServer:
    """Return the server of deployment `name`, every version it routes to loaded now."""
    ws = workspace()
    chosen = settings or ServerSettings()
    log = None
    if chosen.log_predictions:
        log = PredictionLog(
            ws.settings.dir / PREDICTIONS_DIR, name, sample_rate=chosen.log_sample_rate
        )
    extra = {} if poll_s is None else {"poll_s": poll_s}
    return DeploymentServer(ws, name, chosen, log=log, **extra)


def serve_deployment(
    name: str, *, host: str | None = None, port: int | None = None, settings: ServerSettings
) -> None:
    """Serve deployment `name` (on its recorded address unless told otherwise) until stopped;
    a rollout in progress carries on from its stored step."""
    import uvicorn

    from loopml.deploy.deployments import get

    deployment = get(workspace(), name)
    if port is not None and not 0 < port < 65536:
        raise InvalidInput(f"port must be a whole number within 1..65535, not {port}")
    host = host or deployment.host
    check_bind(host, settings.token)
    server = create_deployment_server(name, settings)
    uvicorn.run(
        server,
        host=host,
        port=port or deployment.port,
        log_level="info",
        timeout_graceful_shutdown=30,
    )


def check_bind(host: str, token: str | None) -> None:
    """Refuse to listen on an address other machines reach unless requests need a token."""
    if token is None and not is_loopback(host):
        raise InvalidInput(
            f"refusing to serve on {host} without authentication: anyone who reaches that "
            f"address could call the model. Pass --auth-token (or set {TOKEN_ENV}), or bind "
            f"{DEFAULT_HOST}"
        )


def is_loopback(host: str) -> bool:
    """Return True if `host` names this machine only (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def serve(
    uri: str,
    *,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    workers: int = 1,
    settings: ServerSettings | None = None,
) -> None:
    """Serve model `uri` until stopped; SIGTERM or Ctrl-C drains requests in flight first."""
    import uvicorn

    chosen = settings or ServerSettings(token=os.environ.get(TOKEN_ENV) or None)
    check_bind(host, chosen.token)
    if not isinstance(workers, int) or workers < 1:
        raise InvalidInput(f"workers must be a whole number of at least 1, not {workers!r}")
    if workers == 1:
        server = create_server(uri, chosen)
        uvicorn.run(server, host=host, port=port, log_level="info", timeout_graceful_shutdown=30)
        return
    # Several workers each load the model: they find what to load in the environment.
    create_server(uri, chosen)  # fail here, once, on a model that does not load
    os.environ[_CONFIG_ENV] = json.dumps({"uri": uri, "settings": asdict(chosen)})
    uvicorn.run(
        "loopml.serving.server:from_environment",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="info",
        timeout_graceful_shutdown=30,
    )


def from_environment() -> Any:
    """Return the server a uvicorn worker should run, as `serve` described it."""
    config = json.loads(os.environ[_CONFIG_ENV])
    return create_server(config["uri"], ServerSettings(**config["settings"]))
