"""Continuous training on every store: the lease, stored policies, loops and triggers."""

from __future__ import annotations

import threading
from collections import defaultdict
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import func, select

from loopml.automation import controller, lease, loops
from loopml.automation import policy as policies
from loopml.automation.loops import Fence, Loop
from loopml.automation.policy import Policy
from loopml.automation.triggers import due, initial_cursors
from loopml.core.store import now_ms
from loopml.core.store import schema as db
from loopml.core.workspace import Workspace
from loopml.errors import InvalidInput, InvalidState, NotFound
from tests.e2e.cli import python, together
from tests.loop_world import add_version, apply_policy, files, shifted

HOUR_MS = 3_600_000
NAME = "bc-retrain"
TTL_MS = 500  # the racing processes' lease
HOLD_MS = 1200  # how long a racing process acts once it first holds the lease


def setup(ws: Workspace) -> pd.DataFrame:
    """Write what a policy names into `ws` (no champion: applying does not need one); return
    bc's rows."""
    return files(ws).train


def apply(ws: Workspace, **changes: Any) -> tuple[Policy, str]:
    """Apply policy NAME (a manual one, updated by `changes`); return it and what happened."""
    return apply_policy(ws, NAME, **changes)


def rows(ws: Workspace) -> dict[str, int]:
    """Return how many policies, loops and timeline events the store holds."""
    with ws.store.read() as conn:
        return {
            table.name: conn.execute(select(func.count()).select_from(table)).scalar_one()
            for table in (db.policies, db.loops, db.loop_events)
        }


def started(ws: Workspace, policy: Policy, **kwargs: Any) -> Loop:
    """Start a loop of `policy` directly in the store, as a controller does."""
    trigger = {"kind": "manual", "reason": "a test started it"}
    loop = loops.start(ws, policy, trigger, {"data": "bc@v1"}, {"evaluation_data": "x"}, **kwargs)
    assert loop is not None
    return loop


def fence(ws: Workspace, holder: str = "controller-a") -> Fence:
    """Take the controller lease for `holder` (for a minute) and return its fence."""
    assert lease.acquire(ws, lease.CONTROLLER, holder, ttl_s=60)
    return Fence(lease.CONTROLLER, holder)


# -- the lease ---------------------------------------------------------------------------------


def test_a_lease_is_taken_renewed_refused_and_taken_over_once_expired(ws: Workspace) -> None:
    t0 = now_ms()
    assert lease.current(ws, "controller") is None

    assert lease.acquire(ws, "controller", "a", ttl_s=10, now=t0)
    assert lease.current(ws, "controller") == lease.Holding("controller", "a", 1, t0, t0 + 10_000)

    assert lease.acquire(ws, "controller", "a", ttl_s=10, now=t0 + 5_000)  # renewed
    assert lease.current(ws, "controller") == lease.Holding("controller", "a", 1, t0, t0 + 15_000)

    assert not lease.acquire(ws, "controller", "b", ttl_s=10, now=t0 + 14_999)
    assert lease.current(ws, "controller") == lease.Holding("controller", "a", 1, t0, t0 + 15_000)

    assert lease.acquire(ws, "controller", "b", ttl_s=10, now=t0 + 15_000)  # a's has expired
    taken = lease.Holding("controller", "b", 2, t0 + 15_000, t0 + 25_000)
    assert lease.current(ws, "controller") == taken

    assert not lease.acquire(ws, "controller", "a", ttl_s=10, now=t0 + 16_000)  # a lost it
    assert lease.current(ws, "controller") == taken


def test_a_released_lease_is_free_at_once_and_only_its_holder_releases_it(ws: Workspace) -> None:
    t0 = now_ms()
    assert lease.acquire(ws, "controller", "a", ttl_s=60, now=t0)

    lease.release(ws, "controller", "b")  # not b's to give up
    assert not lease.acquire(ws, "controller", "b", ttl_s=60, now=t0 + 1)

    lease.release(ws, "controller", "a")
    released = lease.current(ws, "controller")
    assert released is not None and released.expires_at == 0  # kept, expired: tokens go on
    assert lease.acquire(ws, "controller", "b", ttl_s=60, now=t0 + 1)
    held = lease.current(ws, "controller")
    assert held is not None
    assert (held.holder, held.token) == ("b", 2)


def test_leases_of_different_names_are_independent(ws: Workspace) -> None:
    t0 = now_ms()

    assert lease.acquire(ws, "controller", "a", ttl_s=60, now=t0)
    assert lease.acquire(ws, "reports", "b", ttl_s=60, now=t0)

    assert not lease.acquire(ws, "reports", "a", ttl_s=60, now=t0)
    held = [lease.current(ws, name) for name in ("controller", "reports")]
    assert [h.holder if h else None for h in held] == ["a", "b"]


RACER = """
import time
from pathlib import Path

from loopml.automation import lease
from loopml.core.store import now_ms
from loopml.core.workspace import Workspace

me, ready, others = {me!r}, Path({ready!r}), [Path(p) for p in {others!r}]
ws = Workspace.open(".")
lease.current(ws, "race")  # connected before the race starts
ready.touch()
deadline = time.monotonic() + 60
while not all(p.exists() for p in others) and time.monotonic() < deadline:
    time.sleep(0.01)
first, deadline = None, time.monotonic() + 8
with open({log!r}, "w", encoding="utf-8") as log:
    while time.monotonic() < deadline and (first is None or now_ms() - first < {hold}):
        at = now_ms()
        if lease.acquire(ws, "race", me, ttl_s={ttl} / 1000, now=at):
            first = at if first is None else first
            held = lease.current(ws, "race")
            if held is not None and held.holder == me and held.expires_at == at + {ttl}:
                log.write(f"{{me}} {{held.token}} {{at}} {{at + {ttl}}}\\n")
                log.flush()
        time.sleep(0.05)
# It stops renewing without giving the lease up: the other takes over once it expires.
"""


def test_two_processes_racing_for_a_lease_never_hold_it_at_once(
    ws: Workspace, tmp_path: Path
) -> None:
    holders = ("racer-a", "racer-b")
    ready = {h: str(tmp_path / f"{h}.ready") for h in holders}
    logs = {h: tmp_path / f"{h}.log" for h in holders}

    def race(me: str) -> Any:
        code = RACER.format(
            me=me,
            ready=ready[me],
            others=list(ready.values()),
            log=str(logs[me]),
            hold=HOLD_MS,
            ttl=TTL_MS,
        )
        return python(code, ws.root)

    together(*(lambda h=h: race(h) for h in holders))

    held: dict[str, list[tuple[int, int, int]]] = {}
    for holder, log in logs.items():
        lines = [line.split() for line in log.read_text(encoding="utf-8").splitlines()]
        assert all(line[0] == holder for line in lines)
        held[holder] = [(int(token), int(start), int(end)) for _, token, start, end in lines]
        assert held[holder], f"{holder} never held the lease"  # the other stopped: it took over

    owners: dict[int, set[str]] = defaultdict(set)
    for holder, spans in held.items():
        for token, _, _ in spans:
            owners[token].add(holder)
    assert all(len(who) == 1 for who in owners.values()), owners

    timeline = sorted((start, token, holder) for holder, s in held.items() for token, start, _ in s)
    for (_, token, holder), (_, next_token, next_holder) in pairwise(timeline):
        assert next_token >= token
        if next_holder != holder:
            assert next_token > token  # a takeover counts up

    a, b = held.values()
    clashes = [(x, y) for x in a for y in b if x[1] < y[2] and y[1] < x[2]]
    assert not clashes, f"both held the lease at once: {clashes[:3]}"
    last = lease.current(ws, "race")
    assert last is not None
    assert last.token == max(owners)


# -- stored policies ---------------------------------------------------------------------------


def test_apply_creates_then_keeps_then_updates_a_policy(ws: Workspace) -> None:
    setup(ws)

    created, outcome = apply(ws)
    assert outcome == "created"
    assert created.id > 0
    assert created.source == str(ws.root / f"{NAME}.yaml")
    assert policies.get(ws, NAME) == created

    same, outcome = apply(ws)
    assert outcome == "unchanged"
    assert same == created

    updated, outcome = apply(ws, cooldown="2h", approval="manual")
    assert outcome == "updated"
    assert (updated.id, updated.created_at) == (created.id, created.created_at)
    assert (updated.cooldown_s, updated.approval) == (7200.0, "manual")
    assert policies.get(ws, NAME).cooldown_s == 7200.0
    assert [p.name for p in policies.list_all(ws)] == [NAME]
    assert [e.kind for e in loops.events(ws, updated)] == ["policy_created", "policy_updated"]


def test_a_policy_is_stored_with_its_files_relative_to_the_workspace(ws: Workspace) -> None:
    setup(ws)

    stored, _ = apply(
        ws, pipeline=str(ws.root / "pipeline.py") + ":bc", gate=str(ws.root / "gate.yaml")
    )

    assert (stored.pipeline, stored.gate) == ("pipeline.py:bc", "gate.yaml")


def test_triggers_kept_by_a_new_apply_keep_their_cursors(ws: Workspace) -> None:
    train = setup(ws)
    nightly = {"schedule": "0 3 * * *"}
    first, _ = apply(ws, triggers=["manual", {"new_data": "bc"}, nightly])
    assert policies.cursors(ws, first)["new_data bc"] == 1
    assert "schedule 0 3 * * *" in policies.cursors(ws, first)
    add_version(ws, "bc", shifted(train))  # fresh cursors would start at v2

    again, outcome = apply(ws, triggers=[{"new_data": {"dataset": "bc"}}, {"new_data": "bc-test"}])

    assert outcome == "updated"
    assert policies.cursors(ws, again) == {"new_data bc": 1, "new_data bc-test": 1}
    assert [f.values["dataset"] for f in due(ws, again, policies.cursors(ws, again), now_ms())] == [
        "bc@v2"
    ]


@pytest.mark.parametrize(
    ("changes", "error", "named"),
    [
        ({"pipeline": "missing.py:bc"}, NotFound, ["pipeline file missing.py does not exist"]),
        ({"pipeline": "pipeline.py:nope"}, NotFound, ["'nope'"]),
        ({"model": "fit"}, InvalidInput, ["model 'fit' names no step", "prepare, train"]),
        ({"model": "train:weights"}, InvalidInput, ["no output 'weights'"]),
        (
            {"triggers": [{"drift": {"monitor": "bc-watch", "when": "drift_share > 0.3"}}]},
            NotFound,
            ["bc-watch"],
        ),
        ({"triggers": [{"new_data": "bc-more"}]}, NotFound, ["bc-more"]),
        ({"evaluation": {"data": "bc-holdout@v1"}}, NotFound, ["bc-holdout"]),
        ({"params": {"data": "bc@v7"}}, NotFound, ["v7"]),
        ({"gate": "gates/bc.yaml"}, NotFound, ["gate file gates/bc.yaml does not exist"]),
        ({"rollout": {"deployment": "bc-api"}}, NotFound, ["bc-api"]),
    ],
)
def test_apply_refuses_what_names_nothing_and_stores_nothing(
    ws: Workspace, changes: dict[str, Any], error: type[Exception], named: list[str]
) -> None:
    setup(ws)

    with pytest.raises(error) as caught:
        apply(ws, **changes)

    for words in named:
        assert words in str(caught.value)
    assert rows(ws) == {"policies": 0, "loops": 0, "loop_events": 0}


def test_a_refused_update_keeps_the_stored_policy(ws: Workspace) -> None:
    setup(ws)
    stored, _ = apply(ws)

    with pytest.raises(InvalidInput, match="model 'fit' names no step"):
        apply(ws, model="fit", cooldown="5m")

    assert policies.get(ws, NAME) == stored
    assert [e.kind for e in loops.events(ws)] == ["policy_created"]


def test_a_policy_is_deleted_only_once_its_loop_is_over(ws: Workspace) -> None:
    setup(ws)
    apply(ws)
    loop = controller.trigger(ws, NAME, reason="try it")

    with pytest.raises(InvalidState) as caught:
        policies.delete_policy(ws, NAME)

    assert "has an active loop (#1, at train)" in str(caught.value)
    assert f"loopml loop cancel {NAME}" in str(caught.value)
    assert policies.get(ws, NAME).name == NAME
    cancelled = controller.cancel(ws, NAME, reason="not now")
    assert (cancelled.status, cancelled.active) == ("cancelled", False)

    policies.delete_policy(ws, NAME)

    with pytest.raises(NotFound, match=f"no policy '{NAME}'"):
        policies.get(ws, NAME)
    with pytest.raises(NotFound):
        loops.get(ws, loop.id)
    assert rows(ws) == {"policies": 0, "loops": 0, "loop_events": 0}


def test_getting_a_missing_policy_lists_those_there_are(ws: Workspace) -> None:
    with pytest.raises(NotFound, match=r"loopml loop apply"):
        policies.get(ws, "nope")
    setup(ws)
    apply(ws)

    with pytest.raises(NotFound, match=f"no policy 'nope'; policies: {NAME}"):
        policies.get(ws, "nope")


# -- loops -------------------------------------------------------------------------------------


def test_a_second_trigger_while_a_loop_runs_names_the_active_loop(ws: Workspace) -> None:
    setup(ws)
    policy, _ = apply(ws)
    first = controller.trigger(ws, NAME)

    with pytest.raises(InvalidState) as caught:
        controller.trigger(ws, NAME, reason="again")

    assert "has an active loop (#1, running at train)" in str(caught.value)
    assert f"loopml loop cancel {NAME}" in str(caught.value)
    assert loops.of(ws, policy) == [first]
    assert loops.active(ws, policy) == first
    assert (first.number, first.status, first.step) == (1, "running", "train")
    assert first.params == {"data": "bc@v1"}  # the reference pinned when it started
    assert first.details["evaluation_data"] == "bc-test@v1"


def test_loops_started_at_once_from_four_threads_make_one_loop(ws: Workspace) -> None:
    setup(ws)
    policy, _ = apply(ws)
    go = threading.Barrier(4)
    outcomes: list[Loop | Exception] = []
    lock = threading.Lock()

    def start() -> None:
        go.wait()
        try:
            outcome: Loop | Exception = started(ws, policy)
        except InvalidState as exc:
            outcome = exc
        with lock:
            outcomes.append(outcome)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    made = [o for o in outcomes if isinstance(o, Loop)]
    assert len(outcomes) == 4
    assert len(made) == 1, outcomes
    assert all("has an active loop" in str(o) for o in outcomes if not isinstance(o, Loop))
    assert loops.of(ws, policy) == made
    assert rows(ws)["loops"] == 1


def test_a_move_from_a_stale_loop_changes_nothing(ws: Workspace) -> None:
    setup(ws)
    policy, _ = apply(ws)
    loop = started(ws, policy)
    moved = loops.move(
        ws, loop, step="register", run_id="r1", event=("run_finished", "run r1", {"run_id": "r1"})
    )
    assert moved is not None
    assert (moved.step, moved.run_id) == ("register", "r1")

    stale = loops.move(
        ws, loop, step="register", run_id="r2", event=("run_finished", "run r2", {"run_id": "r2"})
    )

    assert stale is None
    assert loops.get(ws, loop.id) == moved
    assert [e.reason for e in loops.events(ws, policy, loop=loop)] == [
        "a test started it",
        "run r1",
    ]


def test_a_move_needs_its_fence_to_hold(ws: Workspace) -> None:
    setup(ws)
    policy, _ = apply(ws)
    loop = started(ws, policy)
    before = rows(ws)
    assert lease.acquire(ws, lease.CONTROLLER, "paused", ttl_s=5, now=now_ms() - 60_000)

    never = loops.move(ws, loop, step="register", fence=Fence(lease.CONTROLLER, "nobody"))
    expired = loops.move(
        ws, loop, step="register", event=("x", "y", {}), fence=Fence(lease.CONTROLLER, "paused")
    )

    assert never is None
    assert expired is None
    assert loops.get(ws, loop.id) == loop
    assert rows(ws) == before
    holding = fence(ws, "controller-b")  # the expired lease is taken over
    moved = loops.move(ws, loop, step="register", event=("x", "y", {}), fence=holding)
    assert moved is not None
    assert moved.step == "register"


def test_a_start_needs_its_fence_to_hold_and_consumes_nothing_without_it(ws: Workspace) -> None:
    setup(ws)
    policy, _ = apply(ws, triggers=[{"new_data": "bc"}])
    cursors = policies.cursors(ws, policy)

    lost = loops.start(
        ws,
        policy,
        {"kind": "new_data", "reason": "new data"},
        {},
        {},
        cursors={"new_data bc": 9},
        fence=Fence(lease.CONTROLLER, "nobody"),
    )

    assert lost is None
    assert loops.active(ws, policy) is None
    assert policies.cursors(ws, policy) == cursors
    assert rows(ws)["loops"] == 0


def test_a_finished_loop_is_no_longer_active_and_another_may_start(ws: Workspace) -> None:
    setup(ws)
    policy, _ = apply(ws)
    first = started(ws, policy)

    done = loops.move(ws, first, step="done", status="succeeded", fence=fence(ws))

    assert done is not None
    assert not done.active
    assert done.finished_at is not None
    assert done.finished_at >= done.started_at
    assert loops.active(ws, policy) is None
    second = controller.trigger(ws, NAME)
    assert second.number == 2
    assert [loop.number for loop in loops.of(ws, policy)] == [2, 1]
    assert loops.find(ws, policy, 1) == done
    assert loops.of(ws, policy, limit=1) == [second]


def test_a_failed_loop_keeps_its_error(ws: Workspace) -> None:
    setup(ws)
    policy, _ = apply(ws)
    loop = started(ws, policy)

    failed = loops.move(
        ws,
        loop,
        step="done",
        status="failed",
        error="train failed: out of memory",
        event=("failed", "train failed: out of memory", {"step": "train"}),
    )

    assert failed is not None
    assert (failed.status, failed.error, failed.active) == (
        "failed",
        "train failed: out of memory",
        False,
    )
    assert loops.active(ws, policy) is None


def test_timeline_events_come_in_order_with_their_details(ws: Workspace) -> None:
    setup(ws)
    policy, _ = apply(ws)
    loop = started(ws, policy)
    loops.record(ws, policy, loop, "run_started", "run r1 started", details={"run_id": "r1"})
    moved = loops.move(
        ws,
        loop,
        step="register",
        run_id="r1",
        event=("run_finished", "run r1 finished", {"run_id": "r1", "metrics": {"f1": 0.97}}),
    )
    assert moved is not None
    loops.move(
        ws,
        moved,
        step="gate",
        model="bc/2",
        event=(
            "registered",
            "registered models:/bc/2",
            {"model": "models:/bc/2", "nan": float("nan")},
        ),
    )
    loops.record(ws, policy, None, "note", "between loops")

    timeline = loops.events(ws, policy)

    assert [e.kind for e in timeline] == [
        "policy_created",
        "triggered",
        "run_started",
        "run_finished",
        "registered",
        "note",
    ]
    assert [e.id for e in timeline] == sorted(e.id for e in timeline)
    assert [e.loop for e in timeline] == [None, 1, 1, 1, 1, None]
    assert {e.policy for e in timeline} == {NAME}
    assert timeline[1].details == {"kind": "manual", "reason": "a test started it"}
    assert timeline[3].details == {"run_id": "r1", "metrics": {"f1": 0.97}}
    assert timeline[4].details == {"model": "models:/bc/2", "nan": None}  # NaN stored as null
    assert all(e.created_at > 0 and e.user for e in timeline)
    assert [e.kind for e in loops.events(ws, policy, loop=loop)] == [
        "triggered",
        "run_started",
        "run_finished",
        "registered",
    ]
    assert [e.kind for e in loops.events(ws, policy, limit=2)] == ["registered", "note"]
    assert loops.get(ws, loop.id).model == "bc/2"


# -- triggers ----------------------------------------------------------------------------------


def test_a_schedule_fires_once_its_next_slot_is_past_the_cursor(ws: Workspace) -> None:
    nightly = policies.parse(
        {
            "name": NAME,
            "pipeline": "pipeline.py:bc",
            "triggers": [{"schedule": "0 * * * *"}, "manual"],
            "register_as": "bc",
            "evaluation": "bc-test@latest",
            "gate": "gate.yaml",
        }
    )
    now = int(datetime(2025, 3, 1, 12, 30, tzinfo=UTC).timestamp() * 1000)
    key = "schedule 0 * * * *"

    (fired,) = due(ws, nightly, {key: now - HOUR_MS}, now)
    quiet = due(ws, nightly, {key: now}, now)

    assert fired.trigger == key
    assert fired.kind == "schedule"
    assert fired.values["due_at"] == int(datetime(2025, 3, 1, 12, 0, tzinfo=UTC).timestamp() * 1000)
    assert "2025-03-01 12:00 UTC" in fired.reason
    assert fired.cursor == now  # slots missed meanwhile fire once
    assert quiet == []
    assert due(ws, nightly, {key: fired.cursor}, now + 30 * 60_000 - 1) == []
    assert len(due(ws, nightly, {key: fired.cursor}, now + 30 * 60_000)) == 1  # at 13:00


def test_a_schedule_missed_for_hours_fires_once(ws: Workspace) -> None:
    hourly = policies.parse(
        {
            "name": NAME,
            "pipeline": "pipeline.py:bc",
            "triggers": [{"schedule": "0 * * * *"}],
            "register_as": "bc",
            "evaluation": "bc-test@latest",
            "gate": "gate.yaml",
        }
    )
    now = int(datetime(2025, 3, 1, 12, 30, tzinfo=UTC).timestamp() * 1000)

    (fired,) = due(ws, hourly, {"schedule 0 * * * *": now - 10 * HOUR_MS}, now)

    assert fired.values["due_at"] == now - 9 * HOUR_MS - 30 * 60_000  # the first slot missed
    assert fired.cursor == now  # consuming it skips the other eight
    assert due(ws, hourly, {"schedule 0 * * * *": fired.cursor}, now) == []


def test_new_data_fires_on_a_new_version_and_a_loop_consumes_it(ws: Workspace) -> None:
    train = setup(ws)
    policy, _ = apply(ws, triggers=[{"new_data": "bc"}, {"schedule": "0 3 * * *"}])
    cursors = policies.cursors(ws, policy)
    assert cursors["new_data bc"] == 1
    assert initial_cursors(ws, policy, 0)["new_data bc"] == 1
    assert due(ws, policy, cursors, now_ms()) == []

    add_version(ws, "bc", shifted(train))
    fired = due(ws, policy, cursors, now_ms())

    assert [(f.trigger, f.kind, f.cursor) for f in fired] == [("new_data bc", "new_data", 2)]
    assert fired[0].values == {"dataset": "bc@v2", "previous": 1}
    assert "bc@v2" in fired[0].reason
    assert "v1" in fired[0].reason

    consumed = {**cursors, **{f.trigger: f.cursor for f in fired}}
    loop = controller.begin(ws, policy, fired, cursors=consumed, fence=fence(ws))

    assert loop is not None
    assert policies.cursors(ws, policy) == consumed
    assert policies.cursors(ws, policy)["schedule 0 3 * * *"] == cursors["schedule 0 3 * * *"]
    assert due(ws, policy, policies.cursors(ws, policy), now_ms()) == []
    assert loop.trigger["kind"] == "new_data"
    assert loop.trigger["firings"] == [fired[0].to_dict()]
    assert loop.params == {"data": "bc@v2"}  # trained on the version that fired it


def test_a_new_data_trigger_on_a_dataset_deleted_later_stays_quiet(ws: Workspace) -> None:
    setup(ws)
    policy = policies.parse(
        {
            "name": NAME,
            "pipeline": "pipeline.py:bc",
            "triggers": [{"new_data": "bc-gone"}],
            "register_as": "bc",
            "evaluation": "bc-test@latest",
            "gate": "gate.yaml",
        }
    )

    assert initial_cursors(ws, policy, now_ms()) == {"new_data bc-gone": 0}
    assert due(ws, policy, {"new_data bc-gone": 0}, now_ms()) == []
