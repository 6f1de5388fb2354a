"""The closed loop, end to end: a real deployment server (with its loop controller), real
traffic whose features shift, the real CLI; no step done by hand.

(a) The drift alert fires, the policy retrains on the newer data version, the new model passes
its gate, the canary completes and `champion` moves. (b) The same with a worse model: the gate
blocks it, and with a gate too lenient to catch it, the canary rolls it back; the champion stays.
"""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
import yaml

from loopml.core.workspace import Workspace, set_workspace
from tests.e2e.cli import (
    LOOPML,
    environment,
    free_port,
    loopml,
    loopml_json,
    one_error_line,
    start_server,
    stop,
)
from tests.loop_world import TARGET, World, add_version, shifted, world

WINDOW = "2s"
ROLLOUT = {"deployment": "bc", "steps": [50, 100], "interval": "1s", "min_requests": 20}


@dataclass
class Live:
    """A workspace whose champion bc/1 serves deployment `bc`, watched by monitor bc-watch,
    with newer (shifted) versions of its data already added."""

    root: Path
    world: World
    url: str
    process: Any

    def apply(self, **changes: Any) -> None:
        """Write and apply policy bc-retrain: a drift trigger, the defaults, `changes`."""
        spec: dict[str, Any] = {
            "name": "bc-retrain",
            "pipeline": "pipeline.py:bc",
            "params": {"data": "bc@latest"},
            "triggers": [{"drift": {"monitor": "bc-watch", "when": "drift_share > 0.3"}}],
            "register_as": "bc",
            "evaluation": {"data": "bc-test@latest", "target": TARGET},
            "gate": "gate.yaml",
            "rollout": ROLLOUT,
            "cooldown": "1h",
        } | changes
        (self.root / "policy.yaml").write_text(yaml.safe_dump(spec), encoding="utf-8")
        loopml("loop", "apply", "policy.yaml", cwd=self.root)

    def finished_loop(self, timeout_s: float = 150) -> dict[str, Any]:
        """Send shifted, labelled traffic until the policy's first loop finishes; return it."""
        rows = shifted(self.world.test)
        stop_sending = threading.Event()
        sender = threading.Thread(target=_send, args=(self.url, rows, stop_sending), daemon=True)
        sender.start()
        try:
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline:
                (state,) = loopml_json("loop", "status", "bc-retrain", cwd=self.root)
                loop = state["loop"]
                if loop is not None and loop["status"] not in ("running", "rolling_out"):
                    return dict(loop)
                time.sleep(1)
        finally:
            stop_sending.set()
            sender.join()
        events = loopml("loop", "events", "bc-retrain", cwd=self.root).stdout
        raise AssertionError(f"the loop did not finish in {timeout_s} s:\n{events}")

    def events(self) -> list[dict[str, Any]]:
        """Return the policy's timeline."""
        return list(loopml_json("loop", "events", "bc-retrain", cwd=self.root))


@pytest.fixture
def live(tmp_path: Path) -> Iterator[Live]:
    root = tmp_path / "loop"
    root.mkdir()
    Workspace.init(root)
    made = world(set_workspace(root))
    # Newer data arrives, measured by a recalibrated instrument (every feature 30 % high).
    add_version(made.ws, "bc", shifted(made.train))
    add_version(made.ws, "bc-test", shifted(made.test))
    port = free_port()
    loopml(
        "deploy",
        "create",
        "bc",
        "--model",
        "bc@champion",
        "--port",
        str(port),
        "--no-serve",
        cwd=root,
    )
    loopml(
        "monitor", "create", "bc-watch", "--deployment", "bc", "--reference", "bc@v1",
        "--window", WINDOW, "--alert", "drift_share > 0.3",
        cwd=root,
    )  # fmt: skip
    yield Live(root, made, "", None)


def serve(live: Live) -> None:
    """Start the deployment's server; with a policy applied, its loop controller runs too."""
    live.process, live.url = start_server(live.root, "deploy", "serve", "bc", port=_port(live))


def test_drift_retrains_gates_canaries_and_moves_the_champion(live: Live) -> None:
    live.apply()
    serve(live)
    try:
        loop = live.finished_loop()
    finally:
        _, output = stop(live.process)
    assert loop["status"] == "succeeded", (loop, output)
    (state,) = loopml_json("loop", "status", "bc-retrain", cwd=live.root)
    assert state["controller"] is None  # the server's controller gave its lease up on SIGTERM
    kinds = [e["kind"] for e in live.events()]
    assert kinds[:6] == [
        "policy_created", "triggered", "run_started", "run_finished", "registered", "gate_passed",
    ]  # fmt: skip
    assert kinds[6] == "rollout_started"
    assert "rollout_step" in kinds
    assert kinds[-1] == "promoted"
    events = {e["kind"]: e for e in live.events()}
    fired = events["triggered"]["details"]["firings"][0]
    assert fired["kind"] == "drift" and fired["metric"] == "drift_share" and fired["value"] > 0.3
    # Retrained on the newer data version, pinned when the trigger fired.
    assert loop["params"]["data"] == "bc@v2"
    assert events["run_finished"]["details"]["datasets"] == {
        "bc@latest": "bc@v2",
        "bc-test@latest": "bc-test@v2",
    }
    assert loop["model"] == "bc/2"
    assert events["gate_passed"]["details"]["dataset"] == "bc-test@v2"
    model = loopml_json("models", "show", "bc@champion", cwd=live.root)["version"]
    assert model["version"] == 2
    assert model["run_id"] == loop["run_id"]  # lineage: the version points at the loop's run
    deployment = loopml_json("deploy", "status", "bc", cwd=live.root)
    assert deployment["routing"]["stable"] == "bc/2"
    timeline = loopml("loop", "events", "bc-retrain", cwd=live.root).stdout
    assert "promoted" in timeline and "bc@champion is version 2" in timeline
    report = live.root / "loop.html"
    loopml("loop", "report", "bc-retrain", "--html", str(report), cwd=live.root)
    assert "bc-watch" in report.read_text(encoding="utf-8")


def test_a_worse_model_is_blocked_by_the_gate(live: Live) -> None:
    live.apply(params={"data": "bc@latest", "quality": "bad"})
    serve(live)
    try:
        loop = live.finished_loop()
    finally:
        stop(live.process)
    assert loop["status"] == "blocked"
    assert "f1" in loop["error"]
    kinds = [e["kind"] for e in live.events()]
    assert kinds[-1] == "gate_failed" and "rollout_started" not in kinds
    assert loopml_json("models", "show", "bc@champion", cwd=live.root)["version"]["version"] == 1
    deployment = loopml_json("deploy", "status", "bc", cwd=live.root)
    assert deployment["routing"]["stable"] == "bc/1"
    assert deployment["routing"]["candidate"] is None


def test_a_worse_model_past_a_lenient_gate_is_rolled_back_by_the_canary(live: Live) -> None:
    lenient = {"target": TARGET, "checks": [{"threshold": {"metric": "f1", "min": 0.5}}]}
    (live.root / "lenient.yaml").write_text(yaml.safe_dump(lenient), encoding="utf-8")
    rollout = ROLLOUT | {"min_metrics": {"accuracy": 0.9}, "min_requests": 40}
    live.apply(params={"data": "bc@latest", "quality": "bad"}, gate="lenient.yaml", rollout=rollout)
    serve(live)
    try:
        loop = live.finished_loop()
    finally:
        stop(live.process)
    assert loop["status"] == "rolled_back", loop
    kinds = [e["kind"] for e in live.events()]
    assert "gate_passed" in kinds and "rollout_started" in kinds and kinds[-1] == "rolled_back"
    assert "accuracy" in loop["error"]
    assert loopml_json("models", "show", "bc@champion", cwd=live.root)["version"]["version"] == 1
    assert loopml_json("deploy", "status", "bc", cwd=live.root)["routing"]["stable"] == "bc/1"


def test_a_person_triggers_approves_and_follows_a_loop_from_the_cli(live: Live) -> None:
    root = live.root
    live.apply(triggers=["manual"], rollout=None, approval="manual")
    loopml("loop", "trigger", "bc-retrain", "--reason", "labels arrived", cwd=root)
    again = one_error_line(loopml("loop", "trigger", "bc-retrain", cwd=root, expect=1))
    assert "has an active loop (#1, running at train)" in again
    acted = loopml("controller", "--once", cwd=root).stdout
    assert "approval_requested" in acted and "loopml loop approve bc-retrain" in acted
    status = loopml("loop", "status", cwd=root).stdout
    assert "waits for approval" in status and "bc/2" in status
    (state,) = loopml_json("loop", "status", "bc-retrain", cwd=root)
    assert state["controller"] is None  # --once gave the lease up
    loopml("loop", "approve", "bc-retrain", cwd=root)
    twice = one_error_line(loopml("loop", "approve", "bc-retrain", cwd=root, expect=1))
    assert "nothing of policy 'bc-retrain' waits for approval" in twice
    loopml("controller", "--once", cwd=root)
    (state,) = loopml_json("loop", "status", "bc-retrain", cwd=root)
    assert state["loop"]["status"] == "succeeded"
    assert loopml_json("models", "show", "bc@champion", cwd=root)["version"]["version"] == 2
    timeline = loopml("loop", "events", "bc-retrain", "--loop", "1", cwd=root).stdout
    for kind in ("triggered", "approval_requested", "approved", "promoted"):
        assert kind in timeline
    assert "labels arrived" in timeline
    nothing = one_error_line(loopml("loop", "cancel", "bc-retrain", cwd=root, expect=1))
    assert "no active loop" in nothing
    loopml("loop", "delete", "bc-retrain", cwd=root)
    assert loopml_json("loop", "list", cwd=root) == []


def test_a_controller_stopped_by_sigterm_gives_its_lease_up(live: Live) -> None:
    live.apply(triggers=["manual"], rollout=None)
    process = subprocess.Popen(
        [str(LOOPML), "controller", "--poll", "0.2s", "--lease", "60s"],
        cwd=live.root,
        env=environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while loopml_json("loop", "status", "bc-retrain", cwd=live.root)[0]["controller"] is None:
            assert time.monotonic() < deadline and process.poll() is None, "no controller"
            time.sleep(0.2)
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=60)
    assert process.returncode == 128 + signal.SIGTERM, output
    assert "Traceback" not in output
    (state,) = loopml_json("loop", "status", "bc-retrain", cwd=live.root)
    assert state["controller"] is None  # another may act at once, not a lease later


def test_bad_commands_answer_with_one_line(live: Live) -> None:
    root = live.root
    (root / "broken.yaml").write_text("name: x\npipeline: [", encoding="utf-8")
    cases = {
        ("loop", "apply", "missing.yaml"): "does not exist",
        ("loop", "apply", "broken.yaml"): "not valid YAML",
        ("loop", "status", "nope"): "no policy 'nope'",
        ("loop", "trigger", "nope"): "no policy 'nope'",
        ("loop", "approve", "nope"): "no policy 'nope'",
    }
    for args, expected in cases.items():
        line = one_error_line(loopml(*args, cwd=root, expect=1))
        assert expected in line, (args, line)
    (root / "elsewhere.yaml").write_text(
        yaml.safe_dump(
            {
                "name": "elsewhere",
                "pipeline": "pipeline.py:bc",
                "triggers": ["manual"],
                "register_as": "bc",
                "evaluation": {"data": "bc-test@latest"},
                "gate": "gate.yaml",
                "rollout": {"deployment": "nowhere"},
            }
        ),
        encoding="utf-8",
    )
    line = one_error_line(loopml("loop", "apply", "elsewhere.yaml", cwd=root, expect=1))
    assert "nowhere" in line
    assert loopml_json("loop", "status", cwd=root) == []  # nothing stored


def _port(live: Live) -> int:
    return int(loopml_json("deploy", "status", "bc", cwd=live.root)["port"])


def _send(url: str, rows: pd.DataFrame, stop_sending: threading.Event) -> None:
    """Send `rows` one request each with their label as feedback, over and over, until told."""
    features = rows.drop(columns=TARGET).to_dict("records")
    labels = rows[TARGET].tolist()
    with httpx.Client(base_url=url, timeout=10) as client:
        while not stop_sending.is_set():
            for row, label in zip(features, labels, strict=True):
                if stop_sending.is_set():
                    return
                answer = client.post("/invocations", json={"dataframe_records": [row]})
                if answer.status_code != 200:
                    continue
                feedback = {"request_id": answer.headers["x-request-id"], "label": int(label)}
                client.post("/feedback", json=feedback)
                time.sleep(0.005)
