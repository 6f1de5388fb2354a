"""Micro-batching: concurrent callers share batches and each gets exactly its own rows."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import numpy as np
import pandas as pd
import pytest

from loopml.errors import InvalidInput, InvalidState, LoopMLError
from loopml.serving.batching import MicroBatcher


class FakeModel:
    """A model whose prediction of each row is its `x` doubled, carrying the row's id along."""

    def __init__(self, *, poison: float | None = None, delay: float = 0.0) -> None:
        self.batch_sizes: list[int] = []
        self.column_sets: list[tuple[str, ...]] = []
        self.poison = poison
        self.delay = delay
        self._lock = threading.Lock()

    def predict(self, data: Any) -> Any:
        with self._lock:
            self.batch_sizes.append(len(data))
        if self.delay:
            time.sleep(self.delay)
        if isinstance(data, pd.DataFrame):
            self.column_sets.append(tuple(data.columns))
            if self.poison is not None and (data["x"] == self.poison).any():
                raise ValueError(f"cannot predict x={self.poison}")
            return pd.DataFrame({"id": data["id"].to_numpy(), "y": data["x"].to_numpy() * 2})
        if self.poison is not None and (data[:, 1] == self.poison).any():
            raise ValueError(f"cannot predict x={self.poison}")
        return np.column_stack([data[:, 0], data[:, 1] * 2])


def frame(i: int, rows: int = 1) -> pd.DataFrame:
    return pd.DataFrame({"id": [i] * rows, "x": [float(i)] * rows})


def array(i: int, rows: int = 1) -> np.ndarray:
    return np.array([[float(i), float(i)]] * rows)


async def submit_all(batcher: MicroBatcher, inputs: list[Any]) -> list[Any]:
    return await asyncio.gather(*(batcher.submit(x) for x in inputs), return_exceptions=True)


def test_200_concurrent_dataframe_callers_each_get_their_own_prediction() -> None:
    model = FakeModel()

    async def main() -> list[Any]:
        async with MicroBatcher(model.predict, max_batch_size=16, max_wait_ms=20) as batcher:
            return await submit_all(batcher, [frame(i) for i in range(200)])

    results = asyncio.run(main())

    for i, result in enumerate(results):
        assert isinstance(result, pd.DataFrame)
        assert result["id"].tolist() == [i]
        assert result["y"].tolist() == [2.0 * i]
        assert result.index.tolist() == [0]  # the index its own one-row input had
    assert sum(model.batch_sizes) == 200
    assert max(model.batch_sizes) <= 16
    assert max(model.batch_sizes) > 1


def test_200_concurrent_array_callers_each_get_their_own_prediction() -> None:
    model = FakeModel()

    async def main() -> list[Any]:
        async with MicroBatcher(model.predict, max_batch_size=32, max_wait_ms=20) as batcher:
            return await submit_all(batcher, [array(i) for i in range(200)])

    results = asyncio.run(main())

    for i, result in enumerate(results):
        assert isinstance(result, np.ndarray)
        assert result.tolist() == [[float(i), 2.0 * i]]
    assert sum(model.batch_sizes) == 200
    assert max(model.batch_sizes) <= 32
    assert max(model.batch_sizes) > 1


def test_multi_row_requests_keep_their_rows_and_an_oversized_one_runs_alone() -> None:
    model = FakeModel()
    sizes = [1 + i % 3 for i in range(60)] + [10]

    async def main() -> list[Any]:
        async with MicroBatcher(model.predict, max_batch_size=4, max_wait_ms=20) as batcher:
            return await submit_all(batcher, [array(i, n) for i, n in enumerate(sizes)])

    results = asyncio.run(main())

    for i, (result, n) in enumerate(zip(results, sizes, strict=True)):
        assert result.tolist() == [[float(i), 2.0 * i]] * n
    assert 10 in model.batch_sizes  # never split, never joined
    assert all(size <= 4 for size in model.batch_sizes if size != 10)
    assert sum(model.batch_sizes) == sum(sizes)


def test_dataframes_with_different_columns_or_arrays_of_different_kinds_never_share_a_batch() -> (
    None
):
    model = FakeModel()
    other = [frame(i).assign(extra=i) for i in range(100, 110)]
    ints = [np.array([[i, i]]) for i in range(200, 210)]

    async def main() -> tuple[list[Any], list[Any]]:
        async with MicroBatcher(model.predict, max_batch_size=64, max_wait_ms=20) as batcher:
            frames = await submit_all(batcher, [frame(i) for i in range(10)] + other)
            arrays = await submit_all(batcher, [array(i) for i in range(10)] + ints)
            return frames, arrays

    frames, arrays = asyncio.run(main())

    assert [f["id"].tolist() for f in frames] == [[i] for i in [*range(10), *range(100, 110)]]
    assert set(model.column_sets) == {("id", "x"), ("id", "x", "extra")}
    assert [a.tolist() for a in arrays[10:]] == [[[i, 2 * i]] for i in range(200, 210)]
    assert arrays[10][0].dtype.kind == "i"  # not upcast by sharing a batch with floats
    assert model.batch_sizes == [10, 10, 10, 10]


def test_a_lone_request_is_answered_after_the_wait() -> None:
    model = FakeModel()

    async def main() -> tuple[Any, float]:
        async with MicroBatcher(model.predict, max_batch_size=32, max_wait_ms=50) as batcher:
            started = time.perf_counter()
            result = await batcher.submit(array(7))
            return result, time.perf_counter() - started

    result, seconds = asyncio.run(main())

    assert result.tolist() == [[7.0, 14.0]]
    assert seconds < 1.0
    assert model.batch_sizes == [1]


@pytest.mark.parametrize("settings", [{"max_batch_size": 1}, {"max_wait_ms": 0}])
def test_batch_size_one_or_no_wait_predicts_without_waiting_for_company(
    settings: dict[str, Any],
) -> None:
    model = FakeModel()

    async def main() -> list[Any]:
        # A long default wait would show if a lone request were held back.
        kwargs: dict[str, Any] = {"max_wait_ms": 10_000, **settings}
        async with MicroBatcher(model.predict, **kwargs) as batcher:
            return [await asyncio.wait_for(batcher.submit(frame(i)), 5) for i in range(5)]

    results = asyncio.run(main())

    assert [r["y"].tolist() for r in results] == [[2.0 * i] for i in range(5)]
    assert model.batch_sizes == [1, 1, 1, 1, 1]


def test_a_poisoned_row_fails_only_its_own_caller() -> None:
    model = FakeModel(poison=13.0)

    async def main() -> list[Any]:
        async with MicroBatcher(model.predict, max_batch_size=64, max_wait_ms=20) as batcher:
            return await submit_all(batcher, [frame(i) for i in range(30)])

    results = asyncio.run(main())

    assert isinstance(results[13], ValueError)
    assert "cannot predict x=13.0" in str(results[13])
    for i, result in enumerate(results):
        if i != 13:
            assert result["y"].tolist() == [2.0 * i]
    assert model.batch_sizes[0] == 30  # tried together first, then one by one


def test_an_output_of_the_wrong_length_fails_every_caller_of_the_batch() -> None:
    async def main() -> list[Any]:
        predict = lambda data: np.zeros(len(data) - 1)  # noqa: E731
        async with MicroBatcher(predict, max_batch_size=64, max_wait_ms=20) as batcher:
            return await submit_all(batcher, [array(i) for i in range(10)])

    results = asyncio.run(main())

    for result in results:
        assert isinstance(result, LoopMLError)
        assert "returned 9 rows for a batch of 10 input rows" in str(result)


def test_an_output_that_cannot_be_split_is_refused() -> None:
    async def main() -> Any:
        async with MicroBatcher(lambda data: {"y": 1}) as batcher:
            return await submit_all(batcher, [array(1)])

    [result] = asyncio.run(main())

    assert isinstance(result, LoopMLError)
    assert "predict returned dict" in str(result)


def test_aclose_answers_everything_submitted_then_refuses_more() -> None:
    model = FakeModel(delay=0.02)
    seen: list[int] = []

    async def main() -> tuple[list[Any], MicroBatcher]:
        batcher = MicroBatcher(
            model.predict, max_batch_size=8, max_wait_ms=1000, on_batch=lambda n, s: seen.append(n)
        )
        tasks = [asyncio.create_task(batcher.submit(array(i))) for i in range(50)]
        await asyncio.sleep(0)  # every request is submitted, none answered yet
        await batcher.aclose()
        assert all(task.done() for task in tasks)
        with pytest.raises(InvalidState, match="closed"):
            await batcher.submit(array(1))
        return [task.result() for task in tasks], batcher

    results, batcher = asyncio.run(main())

    assert [r.tolist() for r in results] == [[[float(i), 2.0 * i]] for i in range(50)]
    assert batcher.closed
    assert sum(seen) == 50
    assert seen == model.batch_sizes


@pytest.mark.parametrize(
    "settings",
    [
        {"max_batch_size": 0},
        {"max_batch_size": -3},
        {"max_batch_size": 2.5},
        {"max_batch_size": True},
        {"max_wait_ms": -1},
        {"max_wait_ms": float("nan")},
        {"max_wait_ms": float("inf")},
        {"max_wait_ms": "5"},
    ],
)
def test_bad_settings_are_refused(settings: dict[str, Any]) -> None:
    name = next(iter(settings))
    with pytest.raises(InvalidInput, match=name):
        MicroBatcher(FakeModel().predict, **settings)


@pytest.mark.parametrize(
    "data", [[[1.0, 2.0]], np.float64(3.0), np.zeros((0, 2)), pd.DataFrame({"x": []})]
)
def test_inputs_that_are_not_rows_are_refused(data: Any) -> None:
    async def main() -> None:
        async with MicroBatcher(FakeModel().predict) as batcher:
            await batcher.submit(data)

    with pytest.raises(InvalidInput, match=r"DataFrame or a numpy array|no rows"):
        asyncio.run(main())


def test_a_caller_that_gives_up_does_not_disturb_the_others() -> None:
    model = FakeModel()

    async def main() -> list[Any]:
        async with MicroBatcher(model.predict, max_batch_size=64, max_wait_ms=50) as batcher:
            tasks = [asyncio.create_task(batcher.submit(array(i))) for i in range(5)]
            await asyncio.sleep(0)
            tasks[2].cancel()
            return await asyncio.gather(*tasks, return_exceptions=True)

    results = asyncio.run(main())

    assert isinstance(results[2], asyncio.CancelledError)
    assert [results[i].tolist() for i in (0, 1, 3, 4)] == [[[i, 2.0 * i]] for i in (0, 1, 3, 4)]
    assert model.batch_sizes == [4]


def test_a_lone_request_does_not_wait_for_a_batch_that_is_not_coming() -> None:
    async def main() -> list[int]:
        async with MicroBatcher(
            lambda frame: frame["x"].to_numpy(), max_batch_size=32, max_wait_ms=60_000
        ) as batcher:
            frame = pd.DataFrame({"x": [7]})
            # Far less than the 60 s wait: after a quiet spell a request goes at once.
            return list(await asyncio.wait_for(batcher.submit(frame), timeout=20))

    assert asyncio.run(main()) == [7]


def test_a_batch_waits_for_as_many_callers_as_came_at_once_recently() -> None:
    sizes: list[int] = []

    async def main() -> None:
        async with MicroBatcher(
            lambda frame: frame["x"].to_numpy(),
            max_batch_size=32,
            max_wait_ms=60_000,
            on_batch=lambda rows, seconds: sizes.append(rows),
        ) as batcher:

            async def call(x: int, delay: float) -> list[int]:
                await asyncio.sleep(delay)
                return list(await batcher.submit(pd.DataFrame({"x": [x]})))

            # Eight callers at once, then eight arriving one by one: the second batch waits
            # for all eight (and no longer: far less than its 60 s limit).
            assert await asyncio.gather(*(call(i, 0) for i in range(8))) == [[i] for i in range(8)]
            staggered = asyncio.gather(*(call(i, i * 0.01) for i in range(8)))
            assert await asyncio.wait_for(staggered, timeout=20) == [[i] for i in range(8)]
            # One caller at a time (after the remembered second): each goes alone at once.
            await asyncio.sleep(1.1)
            for i in range(3):
                assert await asyncio.wait_for(call(i, 0), timeout=20) == [i]

    asyncio.run(main())
    assert sizes == [8, 8, 1, 1, 1]
