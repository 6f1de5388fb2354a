"""`loopml serve`: a model behind the Open Inference Protocol, /invocations and /metrics."""

from __future__ import annotations

from typing import Annotated

import typer


def serve(
    model: Annotated[
        str,
        typer.Argument(help="models:/NAME@ALIAS, models:/NAME/N, NAME@ALIAS or runs:/RUN/PATH."),
    ],
    host: Annotated[
        str, typer.Option("--host", help="Address to bind; other than loopback needs a token.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to listen on.")] = 8080,
    workers: Annotated[int, typer.Option("--workers", help="Server processes.")] = 1,
    max_batch_size: Annotated[
        int, typer.Option("--max-batch-size", help="Rows of concurrent requests per model call.")
    ] = 1,
    max_wait_ms: Annotated[
        float, typer.Option("--max-wait-ms", help="How long a batch waits for more requests.")
    ] = 5.0,
    max_body_mb: Annotated[
        float, typer.Option("--max-body-mb", help="Largest request body accepted (413 above).")
    ] = 32.0,
    log: Annotated[
        bool, typer.Option("--log/--no-log", help="Log every prediction for monitoring.")
    ] = True,
    log_sample_rate: Annotated[
        float, typer.Option("--log-sample-rate", help="Share of requests logged (0-1].")
    ] = 1.0,
    auth_token: Annotated[
        str | None,
        typer.Option(
            "--auth-token",
            envvar="LOOPML_SERVE_TOKEN",
            help="Require Authorization: Bearer TOKEN (health probes excepted).",
        ),
    ] = None,
) -> None:
    """Serve a registered model over HTTP until stopped (Ctrl-C drains requests in flight)."""
    from loopml.core.workspace import set_workspace
    from loopml.registry.uris import expand
    from loopml.serving.app import ServerSettings
    from loopml.serving.server import serve as serve_

    set_workspace()
    settings = ServerSettings(
        max_batch_size=max_batch_size,
        max_wait_ms=max_wait_ms,
        max_body_bytes=int(max_body_mb * 1024 * 1024),
        token=auth_token or None,
        log_predictions=log,
        log_sample_rate=log_sample_rate,
    )
    serve_(expand(model), host=host, port=port, workers=workers, settings=settings)
