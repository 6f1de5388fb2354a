"""Batch inference: a Parquet or CSV file streamed through a model in chunks, to a new file.

Memory stays bounded by the chunk size (times the tasks in flight with Ray). Output goes to a
temporary file beside `output` that is renamed into place only when every row is written, so
a failed or interrupted run never leaves a partial file at `output`.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections import deque
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, closing, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loopml.core.progress import count_progress
from loopml.errors import AlreadyExists, InvalidInput, NotFound

FORMATS = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv"}
EXECUTORS = ("local", "ray")
PREDICTION = "prediction"
# Chunks submitted to Ray per CPU ahead of the one being written: enough to keep every CPU
# busy while the driver writes, few enough that memory stays a small multiple of a chunk.
IN_FLIGHT_PER_CPU = 2

Advance = Callable[[int], None]


@dataclass(frozen=True)
class PredictReport:
    """What `predict_file` did: rows predicted, chunks, seconds taken and the file written."""

    rows: int
    chunks: int
    seconds: float
    output: Path


def predict_file(
    uri: str,
    input: Path,
    output: Path,
    *,
    chunk_rows: int = 50_000,
    executor: str = "local",
    keep_columns: Sequence[str] = (),
    overwrite: bool = False,
    progress: bool = True,
) -> PredictReport:
    """Predict every row of `input` with model `uri`; write predictions to `output` in order."""
    from loopml.core.workspace import workspace
    from loopml.registry.api import package_of

    started = time.monotonic()
    source, target = _format(input, "input"), _format(output, "output")
    if not input.is_file():
        raise NotFound(f"input file {input} does not exist; pass a .parquet or .csv file")
    if output.exists() and not overwrite:
        raise AlreadyExists(f"{output} exists already; pass --overwrite to replace it")
    if chunk_rows < 1:
        raise InvalidInput(f"chunk_rows is {chunk_rows}; pass a positive number of rows")
    if executor not in EXECUTORS:
        raise InvalidInput(f"executor {executor!r} is unknown; use one of {', '.join(EXECUTORS)}")
    keep = list(dict.fromkeys(keep_columns))
    columns, total = _columns_and_rows(input, source)
    missing = [name for name in keep if name not in columns]
    if missing:
        raise InvalidInput(
            f"column(s) {', '.join(map(repr, missing))} to keep are not in {input}; "
            f"its columns are: {', '.join(columns)}"
        )
    ws = workspace()
    package = package_of(ws, uri)  # pinned: an alias moved mid-run does not mix versions
    signature = package.signature
    wanted = None
    if signature is not None and signature.kind == "dataframe":
        # Only the model's columns and the kept ones are read; a missing one is named by the
        # signature check of the first chunk.
        needed = {*signature.names, *keep}
        wanted = [name for name in columns if name in needed]
    chunks = _read(input, source, chunk_rows, wanted)
    bar: AbstractContextManager[Advance] = (
        count_progress("predicting rows", total) if progress else nullcontext(lambda _rows: None)
    )
    rows = count = 0
    with (
        bar as advance,
        _staged(output, overwrite) as staging,
        _writer(staging, target) as write,
    ):
        if executor == "local":
            from loopml.registry.package import load

            model = load(ws, package)
            results: Generator[tuple[Any, Any]] = (
                (chunk, _predict(model, chunk, start, input)) for chunk, start in _numbered(chunks)
            )
        else:
            results = _on_ray(str(ws.root), package.digest, _numbered(chunks), input)
        with closing(results):  # on failure, Ray tasks still in flight are cancelled now
            for chunk, predictions in results:
                write(_output_frame(chunk, predictions, keep))
                rows, count = rows + len(chunk), count + 1
                advance(len(chunk))
    return PredictReport(rows, count, time.monotonic() - started, output)


def _format(path: Path, what: str) -> str:
    """Return "parquet" or "csv" for `path`'s suffix, or refuse it."""
    found = FORMATS.get(path.suffix.lower())
    if found is None:
        raise InvalidInput(
            f"{what} file {path} has an unknown suffix {path.suffix!r}; "
            f"use one of {', '.join(FORMATS)}"
        )
    return found


def _columns_and_rows(path: Path, source: str) -> tuple[list[str], int | None]:
    """Return the input's column names and, when the format records it, its row count."""
    import pandas as pd
    import pyarrow.parquet as pq

    if source == "parquet":
        file = pq.ParquetFile(path)
        return list(file.schema_arrow.names), file.metadata.num_rows
    return [str(name) for name in pd.read_csv(path, nrows=0).columns], None


def _read(path: Path, source: str, chunk_rows: int, columns: list[str] | None) -> Iterator[Any]:
    """Yield the input as DataFrames of at most `chunk_rows` rows, in file order."""
    import pandas as pd
    import pyarrow.parquet as pq

    if source == "parquet":
        for batch in pq.ParquetFile(path).iter_batches(batch_size=chunk_rows, columns=columns):
            yield batch.to_pandas()
        return
    with pd.read_csv(path, chunksize=chunk_rows, usecols=columns) as reader:
        yield from reader


def _numbered(chunks: Iterator[Any]) -> Iterator[tuple[Any, int]]:
    """Yield each chunk with the position of its first row, indexed from that row on."""
    start = 0
    for chunk in chunks:
        if not len(chunk):
            continue
        chunk.index = range(start, start + len(chunk))
        yield chunk, start
        start += len(chunk)


def _predict(model: Any, chunk: Any, start: int, source: Path) -> Any:
    """Return the model's predictions for one chunk; a refused chunk names its rows."""
    from loopml.registry.signature import enforce

    where = f"rows {start}..{start + len(chunk) - 1} of {source}"
    try:
        signature = model.package.signature
        data = chunk if signature is None else enforce(signature, chunk, extra_columns="drop")
        return model.predict(data)
    except InvalidInput as exc:
        raise InvalidInput(f"{where}: {exc}") from exc
    except Exception as exc:
        exc.add_note(f"while predicting {where}")
        raise


def _output_frame(chunk: Any, predictions: Any, keep: list[str]) -> Any:
    """Return the kept input columns of `chunk` beside its predictions, as one DataFrame."""
    import numpy as np
    import pandas as pd

    named: dict[str, Any]
    if isinstance(predictions, pd.DataFrame):
        named = {f"{PREDICTION}.{c}": predictions.iloc[:, i] for i, c in enumerate(predictions)}
    elif isinstance(predictions, Mapping):
        named = {f"{PREDICTION}.{key}": value for key, value in predictions.items()}
    else:
        array = np.asarray(predictions)
        if array.ndim == 2 and array.shape[1] == 1:
            array = array[:, 0]
        if array.ndim == 2:
            named = {f"{PREDICTION}.{i}": array[:, i] for i in range(array.shape[1])}
        else:
            named = {PREDICTION: array}
    frame = chunk[keep].reset_index(drop=True) if keep else pd.DataFrame()
    for name, values in named.items():
        column = values.to_numpy() if isinstance(values, pd.Series | pd.Index) else values
        if len(column) != len(chunk):
            raise InvalidInput(
                f"the model returned {len(column)} predictions for {len(chunk)} rows; "
                "batch prediction needs one prediction per row"
            )
        if name in frame:
            raise InvalidInput(f"kept column {name!r} clashes with a prediction column; rename it")
        frame[name] = column
    return frame


@contextmanager
def _staged(output: Path, overwrite: bool) -> Iterator[Path]:
    """Yield a temporary path beside `output`, moved onto `output` once the block succeeds."""
    output.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{output.name}.", suffix=".tmp", dir=output.parent)
    os.close(fd)
    staging = Path(name)
    try:
        yield staging
        with staging.open("rb+") as written:  # on disk before it takes the output's name
            os.fsync(written.fileno())
        if overwrite:
            staging.replace(output)
        else:
            taken = f"{output} was created while predicting; pass --overwrite to replace it"
            try:  # a link fails if `output` appeared meanwhile, where a rename would replace it
                os.link(staging, output)
            except FileExistsError:
                raise AlreadyExists(taken) from None
            except OSError:  # a file system without hard links: check, then rename
                if output.exists():
                    raise AlreadyExists(taken) from None
                staging.replace(output)
    finally:
        staging.unlink(missing_ok=True)


@contextmanager
def _writer(path: Path, target: str) -> Iterator[Callable[[Any], None]]:
    """Yield `write(frame)`, appending DataFrames with the same columns to a Parquet or CSV."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if target == "csv":
        with path.open("w", newline="", encoding="utf-8") as handle:
            first = [True]

            def write_csv(frame: Any) -> None:
                frame.to_csv(handle, header=first[0], index=False)
                first[0] = False

            yield write_csv
        return
    writers: list[pq.ParquetWriter] = []

    def write_parquet(frame: Any) -> None:
        table = pa.Table.from_pandas(frame, preserve_index=False)
        if not writers:
            writers.append(pq.ParquetWriter(path, table.schema))
        schema = writers[0].schema
        if not table.schema.equals(schema, check_metadata=False):
            try:
                table = table.cast(schema)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise InvalidInput(
                    f"the output's columns changed type between chunks ({schema} became "
                    f"{table.schema}): {exc}; pass a larger --chunk-rows or fix the input's types"
                ) from exc
        writers[0].write_table(table)

    try:
        yield write_parquet
    finally:
        for writer in writers:
            writer.close()
    if not writers:  # an input with no rows: an empty file with no columns
        pq.write_table(pa.table({}), path)


def _on_ray(
    root: str, digest: str, chunks: Iterator[tuple[Any, int]], source: Path
) -> Generator[tuple[Any, Any]]:
    """Yield (chunk, predictions) in input order, each chunk predicted as a Ray task."""
    import ray

    from loopml.pipelines.executors.ray import RayExecutor

    executor = RayExecutor()
    capacity = executor.start()
    try:
        remote = ray.remote(_predict_shard).options(num_cpus=1, name="loopml-predict")
        limit = max(2, int(capacity.cpu * IN_FLIGHT_PER_CPU))
        pending: deque[tuple[Any, Any]] = deque()
        exhausted = False
        while pending or not exhausted:
            while not exhausted and len(pending) < limit:
                item = next(chunks, None)
                if item is None:
                    exhausted = True
                else:
                    chunk, start = item
                    pending.append((chunk, remote.remote(root, digest, chunk, start, str(source))))
            if pending:
                chunk, ref = pending.popleft()
                error, predictions = ray.get(ref)
                if error is not None:
                    raise InvalidInput(error)
                yield chunk, predictions
    finally:
        for _, ref in pending:  # stopped early: nothing more to compute
            ray.cancel(ref)
        executor.close()


def _predict_shard(
    root: str, digest: str, chunk: Any, start: int, source: str
) -> tuple[str | None, Any]:
    """Predict one chunk in a Ray worker with the model loaded from the workspace at `root`.

    Return (None, predictions), or (message, None) when the chunk fails the signature.
    """
    from loopml.core.workspace import Workspace
    from loopml.registry.package import load, read_package

    ws = Workspace.open(root)
    model = load(ws, read_package(ws, digest))  # files verified against the manifest
    try:
        return None, _predict(model, chunk, start, Path(source))
    except InvalidInput as exc:
        # Returned, not raised: Ray would wrap it with the worker's traceback.
        return str(exc), None
