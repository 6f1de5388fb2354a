"""A deployment's server in-process: what it loads, and what it does when a version will not."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

import loopml
from loopml.core.workspace import Workspace
from loopml.deploy import deployments, strategies
from loopml.errors import LoopMLError
from loopml.serving.app import ServerSettings
from loopml.serving.deployment import DeploymentServer

EXAMPLE = pd.DataFrame({"x": [1.0, -1.0]})


class Sign:
    """Predicts whether x is positive."""

    def predict(self, frame: pd.DataFrame) -> Any:
        return (frame["x"] > 0).astype(int).to_numpy()


def _explode() -> None:
    raise RuntimeError("this model cannot be unpickled")


class Unloadable(Sign):
    """Predicts like Sign, but fails when loaded back (as a model with a broken pickle)."""

    def __reduce__(self) -> Any:
        return (_explode, ())


@pytest.fixture
def reg(sqlite_ws: Workspace) -> Workspace:
    for model in (Sign(), Unloadable()):
        with loopml.start_run():
            loopml.log_model(model, name="m", input_example=EXAMPLE)
    return sqlite_ws


def _post(server: DeploymentServer, path: str, body: Any) -> httpx.Response:
    async def call() -> httpx.Response:
        transport = httpx.ASGITransport(app=server)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.post(path, json=body)

    return asyncio.run(call())


def test_a_candidate_that_does_not_load_is_rolled_back_and_the_stable_serves(
    reg: Workspace,
) -> None:
    deployments.create(reg, "d", "m/1", host="127.0.0.1", port=8080)
    strategies.canary(reg, "d", "m/2")
    server = DeploymentServer(reg, "d", ServerSettings(log_predictions=False))
    stored = deployments.get(reg, "d")
    assert stored.routing.candidate is None and stored.routing.stable == "m/1"
    event = deployments.history(reg, "d")[-1]
    assert event.kind == "rolled_back"
    assert "model m/2 could not be loaded" in event.reason
    assert "cannot be unpickled" in event.details["error"]
    answer = _post(server, "/invocations", {"dataframe_records": [{"x": 2.0}]})
    assert answer.status_code == 200 and answer.headers["x-model-version"] == "m/1"


def test_a_stable_version_that_does_not_load_stops_the_start_with_one_line(
    reg: Workspace,
) -> None:
    deployments.create(reg, "d", "m/2", host="127.0.0.1", port=8080)
    with pytest.raises(LoopMLError, match=r"model m/2 could not be loaded \(RuntimeError"):
        DeploymentServer(reg, "d", ServerSettings(log_predictions=False))


def test_feedback_labels_the_primary_and_its_shadow(reg: Workspace) -> None:
    with loopml.start_run():
        loopml.log_model(Sign(), name="m", input_example=EXAMPLE)  # m/3
    deployments.create(reg, "d", "m/1", host="127.0.0.1", port=8080)
    strategies.shadow(reg, "d", "m/3")
    server = DeploymentServer(reg, "d", ServerSettings(log_predictions=False))

    async def run() -> None:
        transport = httpx.ASGITransport(app=server)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            for x in np.linspace(-1, 1, 10):
                answer = await client.post("/invocations", json={"dataframe_records": [{"x": x}]})
                assert answer.headers["x-model-version"] == "m/1"
                assert server._shadow is not None
                await server._shadow.aclose()  # the copy has been answered
                label = {"request_id": answer.headers["x-request-id"], "label": int(x > 0)}
                assert (await client.post("/feedback", json=label)).json()["matched_live"] == 1

    asyncio.run(run())
    since = deployments.get(reg, "d").updated_at
    for version in ("m/1", "m/3"):
        window = server.traffic.window(version, since)
        assert (window.requests, window.labelled, window.metric("accuracy")) == (10, 10, 1.0)
