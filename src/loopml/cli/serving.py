"""`loopml serve`: a model behind the Open Inference Protocol, /invocations and /metrics.

The server options live here as types, so `loopml deploy create|serve` takes the same ones.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from loopml.serving.app import ServerSettings

HostOption = Annotated[
    str, typer.Option("--host", help="Address to bind; other than loopback needs a token.")
]
WorkersOption = Annotated[int, typer.Option("--workers", help="Server processes.")]
BatchOption = Annotated[
    int, typer.Option("--max-batch-size", help="Rows of concurrent requests per model call.")
]
WaitOption = Annotated[
    float, typer.Option("--max-wait-ms", help="How long a batch waits for more requests.")
]
BodyOption = Annotated[
    float, typer.Option("--max-body-mb", help="Largest request body accepted (413 above).")
]
LogOption = Annotated[
    bool, typer.Option("--log/--no-log", help="Log every prediction for monitoring.")
]
SampleOption = Annotated[
    float, typer.Option("--log-sample-rate", help="Share of requests logged (0-1].")
]
ControllerOption = Annotated[
    bool,
    typer.Option(
        "--controller/--no-controller",
        help="Run the loop controller alongside when the workspace has loop policies.",
    ),
]
TokenOption = Annotated[
    str | None,
    typer.Option(
        "--auth-token",
        envvar="LOOPML_SERVE_TOKEN",
        help="Require Authorization: Bearer TOKEN (health probes excepted).",
    ),
]


def settings(
    *,
    max_batch_size: int,
    max_wait_ms: float,
    max_body_mb: float,
    log: bool,
    log_sample_rate: float,
    auth_token: str | None,
) -> ServerSettings:
    """Return the server settings the options describe."""
    from loopml.errors import InvalidInput
    from loopml.serving.app import ServerSettings

    if not max_body_mb > 0:
        raise InvalidInput(f"--max-body-mb must be above 0, not {max_body_mb}")
    if not 0 < log_sample_rate <= 1:
        raise InvalidInput(
            f"--log-sample-rate must be above 0 and at most 1, not {log_sample_rate}"
        )
    return ServerSettings(
        max_batch_size=max_batch_size,
        max_wait_ms=max_wait_ms,
        max_body_bytes=int(max_body_mb * 1024 * 1024),
        token=auth_token or None,
        log_predictions=log,
        log_sample_rate=log_sample_rate,
    )


def serve(
    model: Annotated[
        str,
        typer.Argument(help="models:/NAME@ALIAS, models:/NAME/N, NAME@ALIAS or runs:/RUN/PATH."),
    ],
    host: HostOption = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to listen on.")] = 8080,
    workers: WorkersOption = 1,
    max_batch_size: BatchOption = 1,
    max_wait_ms: WaitOption = 5.0,
    max_body_mb: BodyOption = 32.0,
    log: LogOption = True,
    log_sample_rate: SampleOption = 1.0,
    auth_token: TokenOption = None,
    controller: ControllerOption = True,
) -> None:
    """Serve a registered model over HTTP until stopped (Ctrl-C drains requests in flight).

    When the workspace has loop policies, a loop controller runs alongside (--no-controller
    leaves that to `loopml controller`)."""
    from loopml.automation.controller import background
    from loopml.cli.loop import terminable
    from loopml.core.workspace import set_workspace
    from loopml.registry.uris import expand
    from loopml.serving.server import serve as serve_

    ws = set_workspace()
    chosen = settings(
        max_batch_size=max_batch_size,
        max_wait_ms=max_wait_ms,
        max_body_mb=max_body_mb,
        log=log,
        log_sample_rate=log_sample_rate,
        auth_token=auth_token,
    )
    with background(ws, enabled=controller) as running, terminable(running is not None):
        serve_(expand(model), host=host, port=port, workers=workers, settings=chosen)
