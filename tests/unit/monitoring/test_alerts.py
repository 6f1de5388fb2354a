"""Alert rules, their state changes, and notifiers that never hold a run up for long."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from loopml.errors import InvalidInput
from loopml.monitoring.alerts import (
    FIRING,
    RESOLVED,
    Alert,
    FileNotifier,
    Rule,
    WebhookNotifier,
    transitions,
)
from loopml.monitoring.monitors import Monitor


def _monitor(*rules: str) -> Monitor:
    settings = {"rules": list(rules), "columns": ["age"], "notifiers": [], "task": "regression"}
    return Monitor(1, "watch", "churn", "churn@v1", "churn/1", 60, settings, "me", 0, 0)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("drift_share >> 0.3", "is not METRIC OP NUMBER"),
        ("drift_share > lots", "'lots' is not a number"),
        ("drift_share > nan", "finite number"),
        ("wobble > 1", "unknown metric 'wobble'"),
        ("drift.height > 0.1", "no column 'height'"),
        (3, "is text like"),
    ],
)
def test_a_bad_rule_names_what_is_wrong(text: object, says: str) -> None:
    with pytest.raises(InvalidInput, match=says):
        Rule.parse(text, ["age"])


def test_rules_read_loosely_and_print_one_way() -> None:
    assert str(Rule.parse(" p99_ms>=50.0 ")) == "p99_ms >= 50"
    assert str(Rule.parse("drift.age > 0.25", ["age"])) == "drift.age > 0.25"


def test_a_lasting_condition_is_one_event_and_an_unknown_value_changes_nothing() -> None:
    monitor, states = _monitor("error_rate > 0.1"), {}
    windows = [
        (0, {"error_rate": 0.5}),
        (1, {"error_rate": 0.6}),
        (2, {"error_rate": None}),  # no requests: the alert keeps firing
        (3, {"error_rate": 0.0}),
        (4, {"error_rate": 0.0}),
    ]
    events = transitions(monitor, states, windows, now=99)
    assert [(e.state, e.window_start) for e in events] == [(FIRING, 0), (RESOLVED, 3)]
    assert states == {"error_rate > 0.1": RESOLVED}
    assert events[0].deployment == "churn" and events[0].value == 0.5


def test_the_file_notifier_refuses_paths_it_cannot_write(tmp_path: Path) -> None:
    (tmp_path / "plain").write_text("x")
    with pytest.raises(InvalidInput, match="is a folder"):
        FileNotifier.checked(tmp_path)
    with pytest.raises(InvalidInput, match="is a file, not a folder"):
        FileNotifier.checked(tmp_path / "plain" / "alerts.jsonl")
    made = FileNotifier.checked(tmp_path / "new" / "alerts.jsonl")
    made.send(Alert("watch", "churn", "rows > 1", FIRING, 2.0, 0, "watch: rows > 1 firing", 1))
    assert '"state": "firing"' in (tmp_path / "new" / "alerts.jsonl").read_text()


@pytest.mark.parametrize("url", ["ftp://host/hook", "http://", "http://a b/hook", "hook"])
def test_a_webhook_must_be_an_http_url(url: str) -> None:
    with pytest.raises(InvalidInput, match="is not an http"):
        WebhookNotifier(url)


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join()
    for connection in held:
        connection.close()
    server.close()


def test_waiting_for_a_hook_that_never_answers_is_bounded(
    silent_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    hook = WebhookNotifier(f"http://127.0.0.1:{silent_port}/hook")
    hook.send(Alert("watch", "churn", "rows > 1", FIRING, 2.0, 0, "watch: rows > 1 firing", 1))
    started = time.monotonic()
    with caplog.at_level(logging.ERROR, logger="loopml"):
        hook.wait(timeout=1.0)
    assert time.monotonic() - started < 3
    assert "still not delivered" in caplog.text
