"""`loopml predict`: a registered model run over a Parquet or CSV file, chunk by chunk."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def predict(
    model: Annotated[
        str,
        typer.Argument(help="models:/NAME@ALIAS, models:/NAME/N, NAME@ALIAS or runs:/RUN/PATH."),
    ],
    input_path: Annotated[
        Path, typer.Option("--input", "-i", help="Rows to predict: a .parquet or .csv file.")
    ],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="File to write: .parquet or .csv.")
    ],
    chunk_rows: Annotated[
        int, typer.Option("--chunk-rows", min=1, help="Rows read and predicted at a time.")
    ] = 50_000,
    executor: Annotated[
        str, typer.Option("--executor", help="local (this process) or ray (chunks as Ray tasks).")
    ] = "local",
    columns: Annotated[
        str | None,
        typer.Option("--columns", help="Input columns to copy beside the predictions: id,day."),
    ] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace OUTPUT if it exists.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Predict every row of a file with a model; write the predictions in the same order."""
    from loopml.cli.output import console, print_json
    from loopml.core.workspace import set_workspace
    from loopml.registry.uris import expand
    from loopml.serving.batch import predict_file

    set_workspace()
    keep = [name.strip() for name in (columns or "").split(",") if name.strip()]
    report = predict_file(
        expand(model),
        input_path,
        output,
        chunk_rows=chunk_rows,
        executor=executor,
        keep_columns=keep,
        overwrite=overwrite,
    )
    if as_json:
        print_json(
            {
                "rows": report.rows,
                "chunks": report.chunks,
                "seconds": report.seconds,
                "output": str(report.output),
            }
        )
        return
    console.print(
        f"Predicted {report.rows} rows in {report.chunks} chunk(s) in {report.seconds:.1f} s; "
        f"wrote {report.output}"
    )
