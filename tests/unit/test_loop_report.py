"""The HTML report of a policy: its settings, loops, watched monitors, timeline and escaping."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import pytest

from loopml.automation.loops import Event, Loop
from loopml.automation.policy import Policy, Rollout, Trigger
from loopml.automation.report import render_policy
from loopml.monitoring.monitors import Window
from tests.charts import layout, traces

HOSTILE = "<script>alert(1)</script>"
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"
START = int(datetime(2025, 3, 1, 12, 0, tzinfo=UTC).timestamp() * 1000)
MINUTE = 60_000
DRIFT = Trigger("drift", {"monitor": "churn-watch", "when": "drift_share > 0.3"})
ACCURACY = Trigger("performance", {"monitor": "churn-watch", "when": "accuracy < 0.8"})
LATENCY = Trigger("performance", {"monitor": "latency-watch", "when": "p99_ms > 50"})
NIGHTLY = Trigger("schedule", {"cron": "0 3 * * *"})


def row(page: str, first_cell: str) -> tuple[str, list[str]]:
    """Return the class and the cells of the table row that starts with `first_cell`."""
    found = re.search(r'<tr class="([^"]*)"><td>' + re.escape(first_cell) + "</td>(.*?)</tr>", page)
    assert found, f"no row {first_cell!r} in the page"
    return found.group(1), [first_cell, *re.findall(r"<td>(.*?)</td>", found.group(2))]


def table(page: str, heading: str) -> list[tuple[str, list[str]]]:
    """Return the class and cells of every row of the table after `<h2>heading</h2>`."""
    section = page.split(f"<h2>{heading}</h2>", 1)[1].split("</table>", 1)[0]
    return [
        (css, re.findall(r"<td>(.*?)</td>", cells))
        for css, cells in re.findall(r'<tr class="([^"]*)">(.*?)</tr>', section)
    ]


def vertical(page: str, div_id: str) -> dict[str, str]:
    """Return the vertical markers of a chart: label -> where (the x of its line)."""
    shapes = layout(page, div_id).get("shapes", [])
    at = {s["x0"] for s in shapes if s.get("yref") == "paper" and s["x0"] == s["x1"]}
    notes = layout(page, div_id).get("annotations", [])
    return {a["text"]: a["x"] for a in notes if a.get("yref") == "paper" and a["x"] in at}


def horizontal(page: str, div_id: str) -> dict[float, str]:
    """Return the horizontal lines of a chart: their height -> dash style."""
    shapes = layout(page, div_id).get("shapes", [])
    return {s["y0"]: s["line"]["dash"] for s in shapes if s.get("xref") == "x domain"}


def at(minutes: float) -> int:
    return START + int(minutes * MINUTE)


def policy(**changes: Any) -> Policy:
    settings: dict[str, Any] = {
        "name": "churn-retrain",
        "pipeline": "pipelines/churn.py:churn",
        "register_as": "churn-model",
        "gate": "gates/churn.yaml",
        "evaluation": {"data": "churn-holdout@v3", "target": "churned"},
        "triggers": (DRIFT, ACCURACY, LATENCY, NIGHTLY),
        "params": {"data": "churn@latest"},
        "rollout": Rollout("churn-api", steps=(10, 50, 100), interval_s=300.0),
        "cooldown_s": 5400.0,
        "approval": "manual",
        "source": "policies/churn.yaml",
        "user": "ana",
        "updated_at": at(-60),
    }
    return Policy(**(settings | changes))


def loop(number: int, status: str, reason: str, **changes: Any) -> Loop:
    settings: dict[str, Any] = {
        "id": f"{number:032d}",
        "policy": "churn-retrain",
        "number": number,
        "status": status,
        "step": "done",
        "trigger": {"kind": "drift", "reason": reason},
        "params": {},
        "run_id": f"{number}" * 32,
        "model": f"churn-model/{number + 1}",
        "details": {},
        "error": "",
        "user": "ana",
        "started_at": at(number * 2),
        "updated_at": at(number * 2 + 1),
        "finished_at": at(number * 2 + 1),
    }
    return Loop(**(settings | changes))


def event(id: int, number: int | None, kind: str, reason: str, minute: float) -> Event:
    return Event(id, "churn-retrain", None, number, kind, reason, {}, "ana", at(minute))


def window(index: int, rows: int, metrics: dict[str, float | None]) -> Window:
    start = at(index)
    return Window("churn-watch", start, start + MINUTE, rows, True, metrics, {}, start + MINUTE)


LOOPS = [
    loop(1, "succeeded", "nightly schedule 0 3 * * *"),
    loop(2, "blocked", HOSTILE, error="accuracy 0.71 < champion's 0.83"),
    loop(3, "rolling_out", "drift_share 0.42 > 0.3", step="watch", finished_at=None),
]
EVENTS = [
    event(1, None, "policy_created", "policy created from policies/churn.yaml", -60),
    event(2, 1, "triggered", "nightly schedule 0 3 * * *", -1),  # before the first window
    event(3, 1, "run_started", "pipeline started as run 11111111", 2.5),
    event(4, 1, "gate_passed", "accuracy 0.85 >= 0.8", 2.6),
    event(5, 1, "promoted", "churn-model@champion is version 2", 2.75),
    event(6, 2, "triggered", HOSTILE, 4),
    event(7, 2, "gate_failed", "accuracy 0.71 < champion's 0.83", 4.5),
    event(8, 3, "triggered", "drift_share 0.42 > 0.3", 6.25),
    event(9, 3, "rollout_started", "canary of churn-model/4 on churn-api", 6.5),
]
WINDOWS = {
    "churn-watch": [
        window(0, 100, {"drift_share": 0.1, "accuracy": 0.9}),
        window(1, 0, {"drift_share": None, "accuracy": None}),  # no traffic: not drawn
        window(2, 100, {"drift_share": 0.2, "accuracy": 0.85}),
        window(3, 80, {"drift_share": 0.5, "accuracy": None}),  # no labels yet
        window(4, 100, {"drift_share": 0.15, "accuracy": 0.82}),
        window(5, 120, {"drift_share": 0.42, "accuracy": 0.75}),
    ],
    "unwatched": [window(0, 100, {"drift_share": 0.9})],
}


def test_the_report_sums_the_policy_up_and_lists_its_loops_newest_first() -> None:
    page = render_policy(policy(), LOOPS, EVENTS, WINDOWS)

    assert page.startswith("<!doctype html>") and "<script src=" not in page
    assert "<title>LoopML policy churn-retrain</title>" in page
    assert '<p class="summary">Latest loop #3: rolling_out at watch.</p>' in page
    assert row(page, "pipeline")[1][1] == "pipelines/churn.py:churn"
    assert row(page, "register as")[1][1] == "churn-model"
    assert row(page, "gate")[1][1] == "gates/churn.yaml"
    assert row(page, "evaluation data")[1][1] == "churn-holdout@v3 (target churned)"
    assert row(page, "rollout")[1][1] == (
        "canary on deployment churn-api: 10%, 50%, 100%, a step every 5m"
    )
    assert row(page, "cooldown")[1][1] == "1h30m"
    assert row(page, "approval")[1][1] == "manual: loopml loop approve churn-retrain"
    assert row(page, "triggers")[1][1] == (
        "drift churn-watch: drift_share &gt; 0.3; performance churn-watch: accuracy &lt; 0.8; "
        "performance latency-watch: p99_ms &gt; 50; schedule 0 3 * * *"
    )

    loops = table(page, "Loops")
    assert [cells[0] for _, cells in loops] == ["#3", "#2", "#1"]
    assert loops[0] == (
        "",
        ["#3", "rolling_out (watch)", "drift_share 0.42 &gt; 0.3", "churn-model/4", "33333333",
         "2025-03-01 12:06 UTC", "", "", ""],
    )  # fmt: skip
    assert loops[1] == (
        "error",
        ["#2", "blocked", ESCAPED, "churn-model/3", "22222222", "2025-03-01 12:04 UTC",
         "2025-03-01 12:05 UTC", "1m", "accuracy 0.71 &lt; champion&#x27;s 0.83"],
    )  # fmt: skip
    assert loops[2][0] == "passed" and loops[2][1][4] == "11111111"


def test_a_finished_last_loop_colours_the_summary() -> None:
    failed = render_policy(policy(), LOOPS[:2], [], {})
    succeeded = render_policy(policy(), LOOPS[:1], [], {})

    assert (
        '<p class="summary failed">Latest loop #2: blocked: accuracy 0.71 &lt; champion&#x27;s '
        "0.83.</p>"
    ) in failed
    assert '<p class="summary passed">Latest loop #1: succeeded.</p>' in succeeded


def test_text_from_the_store_is_escaped_everywhere() -> None:
    hostile = policy(name="churn-retrain", user=HOSTILE, params={"note": HOSTILE})
    page = render_policy(hostile, LOOPS, EVENTS, WINDOWS)

    assert HOSTILE not in page
    assert row(page, "#2")[1][2] == ESCAPED  # the loop's trigger reason
    assert row(page, "params")[1][1] == f"note={ESCAPED}"
    assert ESCAPED in row(page, "applied")[1][1]
    timeline = table(page, "Timeline")
    assert [cells[3] for _, cells in timeline if cells[2] == "triggered"][1] == ESCAPED
    # Plotly reads hover text as HTML-like text: the reason is escaped for it, then JSON-encoded.
    notes = layout(page, "monitor-0")["annotations"]
    assert next(a["hovertext"] for a in notes if a["text"] == "#2 triggered") == ESCAPED


def test_each_watched_monitor_charts_its_metrics_thresholds_and_loop_events() -> None:
    page = render_policy(policy(), LOOPS, EVENTS, WINDOWS)

    headings = re.findall(r'<section class="chart"><h3>(.*?)</h3>', page)
    assert headings == ["Monitor churn-watch: drift_share, accuracy"]  # not the unwatched one
    drawn = traces(page, "monitor-0")
    assert [t["name"] for t in drawn] == ["drift_share", "accuracy"]
    minutes = ["12:00:00", "12:02:00", "12:03:00", "12:04:00", "12:05:00"]
    assert drawn[0]["x"] == [f"2025-03-01 {m}" for m in minutes]  # the empty window is left out
    assert drawn[0]["y"] == [0.1, 0.2, 0.5, 0.15, 0.42]
    assert drawn[1]["y"] == [0.9, 0.85, None, 0.82, 0.75]
    assert drawn[0]["text"][2] == "80 rows"
    assert horizontal(page, "monitor-0") == {0.3: "dash", 0.8: "dash"}
    notes = [a["text"] for a in layout(page, "monitor-0")["annotations"]]
    assert "drift trigger: drift_share &gt; 0.3" in notes
    assert "performance trigger: accuracy &lt; 0.8" in notes
    # Loop events, at their time: not run_started or rollout_started, nor the trigger of
    # loop #1 that came before the first charted window.
    assert vertical(page, "monitor-0") == {
        "#1 promoted": "2025-03-01 12:02:45",
        "#2 triggered": "2025-03-01 12:04:00",
        "#2 gate_failed": "2025-03-01 12:04:30",
        "#3 triggered": "2025-03-01 12:06:15",
    }
    colours = {s["x0"]: s["line"]["color"] for s in layout(page, "monitor-0")["shapes"]}
    assert colours["2025-03-01 12:02:45"] == "#2ca02c" and colours["2025-03-01 12:04:30"] == (
        "#d62728"
    )
    # The other watched monitor has no windows: said, not drawn.
    assert "<h3>Monitor latency-watch: p99_ms</h3><p>No window with rows yet.</p>" in page
    assert len(re.findall(r"Plotly\.newPlot\(", page)) == 1


def test_a_monitor_whose_watched_metric_has_no_value_says_so() -> None:
    watching = policy(triggers=(ACCURACY,))
    unlabelled = {"churn-watch": [window(0, 100, {"drift_share": 0.1, "accuracy": None})]}
    page = render_policy(watching, [], [], unlabelled)

    assert "<h3>Monitor churn-watch: accuracy</h3><p>No window has a value yet.</p>" in page
    assert "Plotly.newPlot" not in page


def test_the_timeline_lists_every_event_oldest_first_coloured_by_outcome() -> None:
    page = render_policy(policy(), LOOPS, EVENTS[::-1], WINDOWS)  # in any order

    timeline = table(page, "Timeline")
    assert [cells[2] for _, cells in timeline] == [e.kind for e in EVENTS]
    assert timeline[0] == (
        "",
        ["2025-03-01 11:00 UTC", "", "policy_created", "policy created from policies/churn.yaml"],
    )
    assert timeline[4] == (
        "passed",
        ["2025-03-01 12:02 UTC", "#1", "promoted", "churn-model@champion is version 2"],
    )
    classes = {cells[2]: css for css, cells in timeline}
    assert classes["gate_passed"] == "passed" and classes["gate_failed"] == "error"
    assert classes["run_started"] == "" and classes["triggered"] == ""
    assert "tr.passed td {" in page  # green rows have a style


@pytest.mark.parametrize("watched", [True, False])
def test_a_policy_with_no_loops_yet_renders(watched: bool) -> None:
    bare = policy(
        triggers=(DRIFT,) if watched else (NIGHTLY,), rollout=None, cooldown_s=0.0, approval="none"
    )
    page = render_policy(bare, [], [], {})

    assert page.rstrip().endswith("</html>")
    assert (
        "<p>No loops yet: a loop starts when a trigger fires, or now with "
        "<code>loopml loop trigger churn-retrain</code>.</p>"
    ) in page
    assert "<h2>Loops</h2>\n<p>No loops yet.</p>" in page
    assert "<h2>Timeline</h2>\n<p>No events yet.</p>" in page
    assert row(page, "rollout")[1][1] == (
        "none: churn-model@champion moves directly once a model passes its gate"
    )
    assert row(page, "cooldown")[1][1] == "none" and row(page, "approval")[1][1] == "none"
    assert "Plotly.newPlot" not in page
    if watched:
        assert "<h3>Monitor churn-watch: drift_share</h3><p>No window with rows yet.</p>" in page
    else:
        assert "<p>No trigger of this policy watches a monitor.</p>" in page
