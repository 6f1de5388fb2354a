"""`loopml deploy`: a real deployment server following routing changes made from the CLI.

One server runs the whole module; each test changes its routing with the real CLI, sends
traffic over HTTP and reads what the rollout controller decided from the store.
"""

from __future__ import annotations

import random
import re
import signal
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.cli import (
    loopml,
    loopml_json,
    one_error_line,
    python,
    start_server,
    stop,
    together,
)

SETUP = """
    import pandas as pd

    import loopml

    class Sign:
        '''Predicts whether x is positive (flipped: the opposite); broken: fails on one row.'''

        def __init__(self, flip=False, broken=False):
            self.flip, self.broken = flip, broken

        def predict(self, frame):
            if self.broken and len(frame) == 1:
                raise RuntimeError("this version has a bug")
            positive = (frame["x"] > 0).astype(int).to_numpy()
            return 1 - positive if self.flip else positive

    example = pd.DataFrame({"x": [1.0, -1.0], "user": ["a", "b"]})
    for flip, broken in ((False, False), (False, False), (True, False), (False, True)):
        with loopml.start_run():
            loopml.log_model(Sign(flip, broken), name="sign", input_example=example)
    loopml.set_alias("sign", "champion", 1)
"""
GOOD, SAME, FLIPPED, BROKEN = "sign/1", "sign/2", "sign/3", "sign/4"


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("deploy")
    loopml("init", cwd=root)
    python(SETUP, cwd=root)
    return root


@pytest.fixture(scope="module")
def server(workspace: Path) -> Iterator[str]:
    loopml("deploy", "create", "svc", "--model", "sign@champion", "--no-serve", cwd=workspace)
    process, url = start_server(workspace, "deploy", "serve", "svc")
    yield url
    status, output = stop(process)
    assert status in (0, -signal.SIGTERM) and "Application shutdown complete" in output, output


@pytest.fixture(autouse=True)
def _stable_at_start(request: pytest.FixtureRequest, workspace: Path) -> None:
    """Each test on the shared server starts from a deployment with no candidate."""
    if "server" in request.fixturenames:
        url = request.getfixturevalue("server")
        if live(url)["routing"]["candidate"] is not None:
            deploy(url, workspace, "rollback", "svc")


def send(
    url: str, n: int, *, label: bool = True, user: Callable[[int], str] | None = None
) -> Counter[tuple[int, str, str]]:
    """Send `n` one-row requests (with ground truth as feedback); count (status, version, arm)."""
    seen: Counter[tuple[int, str, str]] = Counter()
    with httpx.Client(base_url=url, timeout=30) as client:
        for i in range(n):
            x = random.uniform(-1, 1)
            headers = {"x-user-id": user(i)} if user else {}
            body = {"dataframe_split": {"columns": ["x", "user"], "data": [[x, "u"]]}}
            answer = client.post("/invocations", json=body, headers=headers)
            version = answer.headers["x-model-version"]
            seen[(answer.status_code, version, answer.headers.get("x-deployment-arm", ""))] += 1
            if label and answer.status_code == 200:
                feedback = {"request_id": answer.headers["x-request-id"], "label": int(x > 0)}
                assert client.post("/feedback", json=feedback).status_code == 200
    return seen


def wait_for(check: Callable[[], Any], what: str, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found := check():
            return found
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def live(url: str) -> dict[str, Any]:
    """Return the running server's routing and live numbers."""
    return httpx.get(f"{url}/deployment").json()  # type: ignore[no-any-return]


def deploy(url: str, root: Path, *args: str) -> int:
    """Run `loopml deploy ARGS` and wait until the server serves the routing it wrote."""
    printed = loopml("deploy", *args, cwd=root).stdout
    revision = int(re.search(r"\(revision (\d+)\)", printed)[1])  # type: ignore[index]
    wait_for(lambda: live(url)["revision"] >= revision, f"revision {revision} to be served")
    return revision


def history(root: Path) -> list[dict[str, Any]]:
    return loopml_json("deploy", "history", "svc", cwd=root)  # type: ignore[no-any-return]


def champion(root: Path) -> int:
    found = loopml_json("models", "versions", "sign", cwd=root)
    return next(v["version"] for v in found if "champion" in v["aliases"])


def test_a_failing_canary_is_rolled_back_with_its_numbers(server: str, workspace: Path) -> None:
    stable = live(server)["routing"]["stable"]
    deploy(
        server, workspace, "canary", "svc", "--model", BROKEN, "--steps", "50,100",
        "--interval", "1s", "--min-requests", "10",
    )  # fmt: skip
    seen = send(server, 40)
    assert any(status == 500 and version == BROKEN for status, version, _ in seen), seen
    wait_for(lambda: live(server)["routing"]["candidate"] is None, "the rollback")
    event = history(workspace)[-1]
    assert event["kind"] == "rolled_back"
    assert "error rate" in event["reason"] and event["details"]["candidate"]["errors"] > 0
    assert event["details"]["candidate"]["version"] == BROKEN
    assert set(send(server, 10)) == {(200, stable, "")}  # all traffic back on the stable one
    loopml("deploy", "history", "svc", "--html", "rollout.html", cwd=workspace)
    report = (workspace / "rollout.html").read_text(encoding="utf-8")
    assert "Traffic to the candidate" in report and "Error rate at each analysis" in report
    assert "rolled_back" in report and "<script" in report and "<script src" not in report


def test_a_healthy_canary_steps_up_and_is_promoted(server: str, workspace: Path) -> None:
    candidate = SAME if live(server)["routing"]["stable"] != SAME else GOOD
    deploy(
        server, workspace, "canary", "svc", "--model", candidate, "--steps", "50,100",
        "--interval", "1s", "--min-requests", "10", "--min-metric", "accuracy=0.9",
        "--max-p99-ms", "5000",
    )  # fmt: skip

    def promoted() -> bool:
        send(server, 12)
        return bool(live(server)["routing"]["stable"] == candidate)

    wait_for(promoted, "the promotion", timeout=60)
    events = history(workspace)
    assert [e["kind"] for e in events][-2:] == ["step", "promoted"], events
    assert events[-1]["details"]["candidate"]["accuracy"] >= 0.9
    assert champion(workspace) == int(candidate.rsplit("/", 1)[1])  # the alias followed


def test_ab_test_is_sticky_and_judged(server: str, workspace: Path) -> None:
    a = live(server)["routing"]["stable"]
    deploy(
        server, workspace, "ab", "svc", "--a", a, "--b", FLIPPED, "--sticky", "header:x-user-id",
        "--interval", "1s",
    )  # fmt: skip
    seen = send(server, 120, user=lambda i: f"user-{i % 12}")
    assert {arm for _, _, arm in seen} == {"a", "b"}, seen
    for user in (f"user-{i}" for i in range(12)):  # one user, one arm, every time
        answers = send(server, 3, label=False, user=lambda _, u=user: u)
        assert len(answers) == 1, (user, answers)

    def judged() -> dict[str, Any] | None:
        found = [e for e in history(workspace) if e["kind"] == "ab_result"]
        return found[-1] if found else None

    result = wait_for(judged, "an A/B result in the history")["details"]
    accuracy = result["comparisons"][0]
    assert accuracy["metric"] == "accuracy" and accuracy["p_value"] < 0.01
    assert result["winner"] == "a"  # the flipped model is always wrong
    assert "a is better" in loopml("deploy", "status", "svc", cwd=workspace).stdout


def test_shadow_answers_are_compared_never_returned(server: str, workspace: Path) -> None:
    primary = live(server)["routing"]["stable"]
    deploy(server, workspace, "shadow", "svc", "--model", FLIPPED, "--interval", "1s")
    assert set(send(server, 20)) == {(200, primary, "")}
    shadow = wait_for(
        lambda: (s := live(server)["shadow"])["compared"] >= 20 and s, "the shadow comparisons"
    )
    assert shadow["agreement"] == 0.0  # the flipped model never agrees
    result = wait_for(
        lambda: [e for e in history(workspace) if e["kind"] == "shadow_result"],
        "a shadow result in the history",
    )
    assert result[-1]["details"]["compared"] >= 1


def test_blue_green_preview_switch_and_rollback(server: str, workspace: Path) -> None:
    active = live(server)["routing"]["stable"]
    deploy(server, workspace, "bluegreen", "svc", "--model", FLIPPED)
    body = {"dataframe_split": {"columns": ["x", "user"], "data": [[0.5, "u"]]}}
    preview = httpx.post(f"{server}/preview/invocations", json=body)
    assert preview.headers["x-model-version"] == FLIPPED and preview.json()["predictions"] == [0]
    assert httpx.get(f"{server}/preview/v2/models/sign").json()["versions"] == ["3"]
    assert httpx.get(f"{server}/v2/models/sign").json()["versions"] != ["3"]
    assert set(send(server, 5)) == {(200, active, "")}
    deploy(server, workspace, "switch", "svc")
    assert set(send(server, 5)) == {(200, FLIPPED, "")}
    assert champion(workspace) == 3
    deploy(server, workspace, "rollback", "svc")
    assert set(send(server, 5)) == {(200, active, "")}
    assert champion(workspace) == int(active.rsplit("/", 1)[1])


def test_a_restarted_server_resumes_the_rollout(workspace: Path) -> None:
    loopml("deploy", "create", "resume", "--model", GOOD, "--no-serve", cwd=workspace)
    loopml(
        "deploy", "canary", "resume", "--model", SAME, "--steps", "20,60,100",
        "--interval", "1s", "--min-requests", "5", cwd=workspace,
    )  # fmt: skip

    def routing_after_traffic(url: str) -> dict[str, Any]:
        send(url, 6)
        return live(url)["routing"]  # type: ignore[no-any-return]

    process, url = start_server(workspace, "deploy", "serve", "resume")
    wait_for(lambda: routing_after_traffic(url)["weight"] == 60, "the second step")
    stop(process)
    process, url = start_server(workspace, "deploy", "serve", "resume")
    try:
        assert live(url)["routing"]["weight"] >= 60  # where it stood, not the first step
        promoted = lambda: routing_after_traffic(url)["stable"] == SAME  # noqa: E731
        wait_for(promoted, "the promotion after the restart", timeout=60)
    finally:
        stop(process)
    kinds = [e["kind"] for e in loopml_json("deploy", "history", "resume", cwd=workspace)]
    assert kinds == ["created", "canary", "step", "step", "promoted"], kinds


def test_bad_deploy_commands_fail_with_one_line(workspace: Path) -> None:
    loopml("deploy", "create", "busy", "--model", GOOD, "--no-serve", cwd=workspace)
    loopml("deploy", "canary", "busy", "--model", SAME, cwd=workspace)
    cases = {
        ("deploy", "status", "nope"): "no deployment 'nope'",
        ("deploy", "create", "x", "--model", "sign/99", "--no-serve"): "no version 99",
        ("deploy", "create", "x", "--model", GOOD, "--host", "0.0.0.0"): "without authentication",
        ("deploy", "canary", "busy", "--model", FLIPPED): "busy",
        ("deploy", "canary", "busy", "--model", SAME, "--steps", "10,x"): "--steps",
        ("deploy", "switch", "busy"): "no preview",
    }
    lines = together(
        *(
            lambda args=args: one_error_line(loopml(*args, cwd=workspace, expect=1))
            for args in cases
        )
    )
    for (args, expected), line in zip(cases.items(), lines, strict=True):
        assert expected in line, (args, line)
    kinds = [e["kind"] for e in loopml_json("deploy", "history", "busy", cwd=workspace)]
    assert kinds == ["created", "canary"]  # the refused commands left no trace


def test_deployment_server_answers_bad_requests_with_4xx(server: str) -> None:
    missing = httpx.post(f"{server}/v2/models/sign/versions/77/infer", json={"inputs": []})
    assert missing.status_code == 404 and "not served by deployment 'svc'" in missing.text
    body = {"dataframe_split": {"columns": ["user"], "data": [["u"]]}}
    assert httpx.post(f"{server}/invocations", json=body).status_code == 400
    assert httpx.post(f"{server}/feedback", content=b"{").status_code == 400
    assert httpx.post(f"{server}/invocations", content=b"not json").status_code in (400, 415)
    named = httpx.get(f"{server}/v2/models/svc").json()  # the deployment's name works too
    assert named["name"] == "sign"
    metrics = httpx.get(f"{server}/metrics").text
    assert 'loopml_deployment_weight{deployment="svc"' in metrics
