"""Micro-batching: concurrent predict calls grouped, predicted once and split back to callers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

import numpy as np
import pandas as pd

from loopml.errors import InvalidInput, InvalidState, LoopMLError
from loopml.registry.signature import dtypes_of

log = logging.getLogger("loopml")


PEAK_WINDOW_S = 1.0  # how long the most callers seen at once is remembered


@dataclass(eq=False)
class _Request:
    """One caller's input, waiting for its own rows of a batch's output."""

    data: Any
    rows: int
    key: Hashable
    arrived: float
    future: asyncio.Future[Any]


class MicroBatcher:
    """Group concurrent predict calls into batches, predict each once, split the output back."""

    def __init__(
        self,
        predict: Callable[[Any], Any],
        *,
        max_batch_size: int = 32,
        max_wait_ms: float = 5.0,
        on_batch: Callable[[int, float], None] | None = None,
    ) -> None:
        if (
            isinstance(max_batch_size, bool)
            or not isinstance(max_batch_size, int)
            or max_batch_size < 1
        ):
            raise InvalidInput(
                f"max_batch_size must be an integer of 1 or more, not {max_batch_size!r}"
            )
        number = isinstance(max_wait_ms, int | float) and not isinstance(max_wait_ms, bool)
        if not number or not math.isfinite(max_wait_ms) or max_wait_ms < 0:
            raise InvalidInput(
                f"max_wait_ms must be a finite number, 0 or more, not {max_wait_ms!r}"
            )
        self.max_batch_size = max_batch_size
        self.max_wait_ms = float(max_wait_ms)
        self._predict = predict
        self._on_batch = on_batch
        self._waiting: list[_Request] = []
        # Callers at once, recently: a batch with that many waits for no one else.
        self._in_flight = 0
        self._peak = 0
        self._peak_at = -math.inf
        self._wakeup = asyncio.Event()
        self._closed = False
        self._worker: asyncio.Task[None] | None = None
        # One thread: batches are predicted one at a time, and the event loop stays free.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="loopml-batch")

    @property
    def closed(self) -> bool:
        """Return True once aclose() has been called."""
        return self._closed

    async def submit(self, data: Any) -> Any:
        """Return the prediction for `data`, predicted in one batch with concurrent calls."""
        if self._closed:
            raise InvalidState("the micro-batcher is closed; submit requests before aclose()")
        rows, key = _describe(data)
        loop = asyncio.get_running_loop()
        if self._worker is None:
            self._worker = loop.create_task(self._run(), name="loopml-micro-batcher")
        now = loop.time()
        self._in_flight += 1
        if self._in_flight >= self._peak or now - self._peak_at > PEAK_WINDOW_S:
            self._peak, self._peak_at = self._in_flight, now
        request = _Request(data, rows, key, now, loop.create_future())
        self._waiting.append(request)
        self._wakeup.set()
        try:
            return await request.future
        finally:
            self._in_flight -= 1

    async def aclose(self) -> None:
        """Stop taking requests, answer every request already submitted, then stop the worker."""
        self._closed = True
        self._wakeup.set()
        if self._worker is not None:
            await self._worker
        self._executor.shutdown(wait=False)

    async def __aenter__(self) -> Self:
        """Return the batcher itself; leaving the block closes it."""
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Close the batcher, draining what was submitted."""
        await self.aclose()

    async def _run(self) -> None:
        """Form and predict batches, one at a time, until closed and nothing is waiting."""
        batch: list[_Request] = []
        try:
            while True:
                self._waiting = [r for r in self._waiting if not r.future.done()]
                if not self._waiting:
                    if self._closed:
                        return
                    self._wakeup.clear()
                    await self._wakeup.wait()
                    continue
                batch = await self._gather()
                await self._answer(batch)
        finally:
            # Anything unanswered here means the task was cancelled (the event loop is closing).
            for request in [*batch, *self._waiting]:
                _settle(request, error=InvalidState("the micro-batcher stopped before answering"))

    async def _gather(self) -> list[_Request]:
        """Wait until the oldest request's batch is full or its wait is over; take that batch.

        A batch also goes at once when it holds as many requests as there were callers at
        once in the last second: a lone caller never waits for a batch that is not coming,
        and sixteen concurrent callers wait only until all sixteen are in.
        """
        loop = asyncio.get_running_loop()
        head = self._waiting[0]
        deadline = head.arrived + self.max_wait_ms / 1000
        while True:
            batch, full = self._select(head)
            remaining = deadline - loop.time()
            if full or self._closed or remaining <= 0 or len(batch) >= self._peak:
                break
            self._wakeup.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await self._wakeup.wait()
        taken = {id(r) for r in batch}
        self._waiting = [r for r in self._waiting if id(r) not in taken]
        return batch

    def _select(self, head: _Request) -> tuple[list[_Request], bool]:
        """Return the waiting requests that can join head's batch now, and whether it is full."""
        batch: list[_Request] = []
        rows = 0
        for request in self._waiting:
            if request.key != head.key or request.future.done():
                continue
            # A request is never split: one larger than max_batch_size runs alone.
            if batch and rows + request.rows > self.max_batch_size:
                return batch, True
            batch.append(request)
            rows += request.rows
        return batch, rows >= self.max_batch_size

    async def _answer(self, batch: list[_Request]) -> None:
        """Predict a batch and give each caller its rows; on failure retry each request alone."""
        batch = [r for r in batch if not r.future.done()]
        if not batch:
            return
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        try:
            output = await loop.run_in_executor(
                self._executor, self._predict_inputs, [r.data for r in batch]
            )
        except Exception as exc:  # noqa: BLE001 - the model's error goes to its callers
            if len(batch) == 1:
                _settle(batch[0], error=exc)
            else:
                # One bad request must fail only its own caller: find it by predicting alone.
                for request in batch:
                    await self._answer_alone(request)
        else:
            try:
                parts = _split(output, batch)
            except LoopMLError as exc:
                for request in batch:
                    _settle(request, error=LoopMLError(str(exc)))
            else:
                for request, part in zip(batch, parts, strict=True):
                    _settle(request, result=part)
        if self._on_batch is not None:
            try:
                self._on_batch(sum(r.rows for r in batch), time.perf_counter() - started)
            except Exception:
                # A metrics hook must not stop the batcher; its error is logged, not hidden.
                log.exception("the micro-batcher's on_batch callback failed")

    async def _answer_alone(self, request: _Request) -> None:
        """Predict one request on its own and settle its caller with the outcome."""
        if request.future.done():
            return
        loop = asyncio.get_running_loop()
        try:
            output = await loop.run_in_executor(self._executor, self._predict, request.data)
            part = _split(output, [request])[0]
        except Exception as exc:  # noqa: BLE001 - the model's error goes to its caller
            _settle(request, error=exc)
        else:
            _settle(request, result=part)

    def _predict_inputs(self, inputs: list[Any]) -> Any:
        """Return the model's output for the inputs combined into one batch (worker thread)."""
        return self._predict(_combine(inputs))


def _describe(data: Any) -> tuple[int, Hashable]:
    """Return the row count of an input and the key of the batches it may share."""
    if isinstance(data, pd.DataFrame):
        rows = len(data)
        # Same columns and dtypes, so concatenation never renames, reorders or upcasts anything.
        key: Hashable = ("dataframe", tuple(data.columns), tuple(dtypes_of(data)))
    elif isinstance(data, np.ndarray) and data.ndim >= 1:
        rows = data.shape[0]
        key = ("ndarray", data.shape[1:], data.dtype.kind)
    else:
        raise InvalidInput(
            f"micro-batching takes a pandas DataFrame or a numpy array of rows, "
            f"not {type(data).__name__}; convert the request's input to one first"
        )
    if rows == 0:
        raise InvalidInput("the input has no rows; send at least one row to predict")
    return rows, key


def _combine(inputs: list[Any]) -> Any:
    """Return the inputs of one batch as one DataFrame or array (a lone input as it is)."""
    if len(inputs) == 1:
        return inputs[0]
    if isinstance(inputs[0], pd.DataFrame):
        return pd.concat(inputs, ignore_index=True)
    return np.concatenate(inputs)


def _split(output: Any, batch: list[_Request]) -> list[Any]:
    """Return each request's own rows of a batch's output, in batch order."""
    rows = sum(r.rows for r in batch)
    if isinstance(output, pd.DataFrame | pd.Series | list | tuple):
        length = len(output)
    elif isinstance(output, np.ndarray) and output.ndim >= 1:
        length = output.shape[0]
    else:
        raise LoopMLError(
            f"predict returned {type(output).__name__}; a batched model must return a numpy "
            f"array, list, pandas Series or DataFrame with one prediction per input row"
        )
    if length != rows:
        raise LoopMLError(
            f"predict returned {length} rows for a batch of {rows} input rows; a batched "
            f"model must return exactly one prediction per input row"
        )
    if len(batch) == 1:
        return [output]
    parts: list[Any] = []
    start = 0
    for request in batch:
        stop = start + request.rows
        if isinstance(output, pd.DataFrame | pd.Series):
            part = output.iloc[start:stop]
            # The caller sees the index its own input had, as if it had been predicted alone.
            if isinstance(request.data, pd.DataFrame):
                part = part.set_axis(request.data.index)
            else:
                part = part.reset_index(drop=True)
        else:
            part = output[start:stop]
        parts.append(part)
        start = stop
    return parts


def _settle(request: _Request, *, result: Any = None, error: BaseException | None = None) -> None:
    """Give a request's caller its result or error, unless the caller has gone."""
    if request.future.done():
        return
    if error is not None:
        request.future.set_exception(error)
    else:
        request.future.set_result(result)


__all__ = ["MicroBatcher"]
