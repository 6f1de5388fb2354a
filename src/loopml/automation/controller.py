"""The loop controller: fires policies' triggers and drives each loop through its steps.

One round (`Controller.tick`) takes or renews the controller lease, then for each policy
either drives its active loop or checks its triggers. A loop's steps:

    train     run the policy's pipeline (the pipeline cache skips steps already done)
    register  add the pipeline's model as a new version, with the run as its lineage
    gate      check it against the champion on the policy's evaluation data
    approval  wait for `loopml loop approve` when the policy asks for a person
    release   start a canary on the deployment (or, with no rollout, move `champion`)
    watch     follow the canary until the deployment's controller promotes or rolls back

Each step's result is stored before the next begins, so a controller killed at any point
resumes where the store says, and a step's side effect is never repeated: a registered
version is found again by its loop tag, a canary already started is recognised.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

from loopml.automation import lease, loops
from loopml.automation import policy as policies
from loopml.automation.loops import Fence, Loop
from loopml.automation.policy import Policy
from loopml.automation.triggers import Firing, due
from loopml.core.store import now_ms
from loopml.core.workspace import Workspace, using
from loopml.errors import InvalidInput, InvalidState, LoopMLError, NotFound
from loopml.tracking.current import current_user

log = logging.getLogger("loopml.automation")
LOOP_TAG = "loopml.loop"  # on a model version: the loop that registered it
LEASE_S = 30.0
POLL_S = 5.0


class Controller:
    """Acts on every policy of a workspace while it holds the controller lease."""

    def __init__(
        self,
        ws: Workspace,
        *,
        holder: str | None = None,
        lease_s: float = LEASE_S,
        poll_s: float = POLL_S,
    ) -> None:
        if lease_s <= 0 or poll_s <= 0:
            raise InvalidInput("the lease and the poll interval must be positive seconds")
        self.ws = ws
        self.holder = holder or lease.new_holder()
        self.lease_s = lease_s
        self.poll_s = poll_s
        self.fence = Fence(lease.CONTROLLER, self.holder)
        self.holding = False
        self._monitor_runs: dict[str, int] = {}

    def tick(self) -> bool:
        """Do one round; return False (doing nothing) while another controller holds the lease."""
        self.holding = lease.acquire(self.ws, lease.CONTROLLER, self.holder, self.lease_s)
        if not self.holding:
            return False
        with self._heartbeat(), using(self.ws):  # the workspace pipelines and gates read
            for policy in policies.list_all(self.ws):
                if not self.holding:
                    break
                try:
                    self._policy(policy)
                except LoopMLError as exc:  # e.g. its monitor was deleted: say so, go on
                    log.warning("policy %s: %s", policy.name, exc)
                except Exception:  # one policy's fault never stops the others
                    log.exception("policy %s: its round failed", policy.name)
        return self.holding

    def run(self, stop: threading.Event) -> None:
        """Do rounds every `poll_s` seconds until `stop` is set; give the lease up then."""
        try:
            while not stop.is_set():
                try:
                    self.tick()
                except Exception:  # the store went away for a moment: the next round retries
                    log.exception("the loop controller's round failed")
                stop.wait(self.poll_s)
        finally:
            self.holding = False
            try:
                lease.release(self.ws, lease.CONTROLLER, self.holder)
            except Exception:  # noqa: BLE001 - the lease expires by itself
                log.warning("could not give the controller lease up; it expires by itself")

    # -- one policy ------------------------------------------------------------------------

    def _policy(self, policy: Policy) -> None:
        loop = loops.active(self.ws, policy)
        if loop is None:
            loop = self._start(policy)
        if loop is not None:
            policy = as_started(policy, loop)  # a re-apply changes the next loop, not this one
        while loop is not None and loop.active and self.holding:
            step, current = loop.step, loop
            try:
                loop = _STEPS[step](self, policy, current)
            except Exception as exc:  # the loop fails with the reason; the controller goes on
                if not isinstance(exc, LoopMLError):
                    log.exception("%s: step %s failed", current.label, step)
                message = " ".join(
                    (
                        str(exc) if isinstance(exc, LoopMLError) else f"{type(exc).__name__}: {exc}"
                    ).split()
                )
                loops.move(
                    self.ws,
                    current,
                    step="done",
                    status="failed",
                    error=message,
                    event=("failed", f"{step} failed: {message}", {"step": step}),
                    fence=self.fence,
                )
                return

    def _start(self, policy: Policy) -> Loop | None:
        """Start a loop if a trigger fired and the policy is not cooling down."""
        now = now_ms()
        if cooling_until(self.ws, policy) > now:
            return None
        self._refresh_monitors(policy, now)
        cursors = policies.cursors(self.ws, policy)
        fired = due(self.ws, policy, cursors, now)
        if not fired:
            return None
        consumed = {**cursors, **{f.trigger: f.cursor for f in fired}}
        try:
            return begin(self.ws, policy, fired, cursors=consumed, fence=self.fence)
        except InvalidState:  # someone started one meanwhile (`loop trigger`): drive it next
            return None

    def _refresh_monitors(self, policy: Policy, now: int) -> None:
        """Bring the monitors the policy's triggers watch up to date (at most once a window,
        or once a minute for longer windows), so drift triggers need no other process."""
        from loopml.monitoring import monitors, windows

        for name in policy.monitors:
            try:
                monitor = monitors.get(self.ws, name)
            except NotFound:
                continue
            if now - self._monitor_runs.get(name, 0) < min(monitor.window_s, 60) * 1000:
                continue
            self._monitor_runs[name] = now
            # A monitor never run starts at the policy's cursors (what triggers can still
            # see), not a day back; after that each run continues from its last window.
            since_s = None
            if not monitors.windows(self.ws, name, limit=1, details=False):
                since_s = max((now - self._oldest_cursor(policy, name)) / 1000, monitor.window_s)
            try:
                windows.run(self.ws, name, since_s=min(since_s, 86400) if since_s else None)
            except LoopMLError as exc:
                log.warning("monitor %s: %s", name, exc)

    def _oldest_cursor(self, policy: Policy, monitor: str) -> int:
        cursors = policies.cursors(self.ws, policy)
        found = [
            int(cursors.get(t.key, 0))
            for t in policy.triggers
            if t.settings.get("monitor") == monitor
        ]
        return min(found, default=0)

    # -- the steps ---------------------------------------------------------------------------

    def _train(self, policy: Policy, loop: Loop) -> Loop | None:
        from loopml.evaluation.gates import Gate
        from loopml.pipelines.loader import load_pipeline
        from loopml.pipelines.runner import run_pipeline

        # What the gate needs, before anything trains or registers: its file, the data, the
        # target column (any of them may have gone since the policy was applied).
        pinned = replace(
            policy, evaluation={**policy.evaluation, "data": loop.details["evaluation_data"]}
        )
        gate = Gate.load(self.ws.root / policy.gate)
        policies.check_evaluation(self.ws, pinned, gate, f"policy {policy.name!r}")
        pipeline = load_pipeline(policy.pipeline, root=self.ws.root)
        again = any(e.kind == "run_started" for e in loops.events(self.ws, policy, loop=loop))

        def started(run_id: str) -> None:
            how = "started again after the controller stopped mid-run" if again else "started"
            loops.record(
                self.ws,
                policy,
                loop,
                "run_started",
                f"pipeline {policy.pipeline} {how} as run {run_id[:8]} ({policy.executor})",
                details={"run_id": run_id, "params": loop.params, "executor": policy.executor},
            )

        result = run_pipeline(
            pipeline, loop.params, executor=policy.executor, progress=False, on_job=started
        )
        cached = sum(s.status == "CACHED" for s in result.steps.values())
        scores = ", ".join(f"{k} {v:.4g}" for k, v in sorted(result.metrics.items()))
        reason = f"run {result.run_id[:8]} finished" + (f": {scores}" if scores else "")
        if cached:
            reason += f" ({cached} of {len(result.steps)} steps from the cache)"
        details = {
            "run_id": result.run_id,
            "metrics": result.metrics,
            "steps": len(result.steps),
            "cached": cached,
            "datasets": loop.details.get("datasets", {}),
        }
        return loops.move(
            self.ws,
            loop,
            step="register",
            run_id=result.run_id,
            event=("run_finished", reason, details),
            fence=self.fence,
        )

    def _register(self, policy: Policy, loop: Loop) -> Loop | None:
        record = _registered_version(self.ws, policy, loop)  # a resumed loop registered it already
        if record is None:
            record = _register_model(self.ws, policy, loop)
        details = {"model": record.uri, "run_id": loop.run_id, "package": record.package_digest}
        return loops.move(
            self.ws,
            loop,
            step="gate",
            model=f"{record.name}/{record.version}",
            event=(
                "registered",
                f"registered {record.uri} from run {(loop.run_id or '')[:8]}",
                details,
            ),
            fence=self.fence,
        )

    def _gate(self, policy: Policy, loop: Loop) -> Loop | None:
        from loopml.evaluation.gates import Gate

        gate = Gate.load(self.ws.root / policy.gate)
        data = loop.details["evaluation_data"]
        result = gate.check(f"models:/{loop.model}", data, target=policy.evaluation["target"])
        details = {
            "model": result.model,
            "dataset": result.dataset,
            "passed": result.passed,
            "evaluation_id": result.evaluation_id,
            "checks": [c.to_dict() for c in result.checks],
        }
        if result.passed:
            return loops.move(
                self.ws,
                loop,
                step="approval",
                event=("gate_passed", result.summary(), details),
                fence=self.fence,
            )
        return loops.move(
            self.ws,
            loop,
            step="done",
            status="blocked",
            error=result.summary(),
            event=("gate_failed", result.summary(), details),
            fence=self.fence,
        )

    def _approval(self, policy: Policy, loop: Loop) -> Loop | None:
        if policy.approval == "none":
            return loops.move(self.ws, loop, step="release", fence=self.fence)
        if loop.status == "waiting":
            return None  # `loopml loop approve` moves it on
        reason = (
            f"models:/{loop.model} passed its gate and waits for a person: "
            f"loopml loop approve {policy.name} (or loopml loop cancel {policy.name})"
        )
        loops.move(
            self.ws,
            loop,
            step="approval",
            status="waiting",
            event=("approval_requested", reason, {"model": f"models:/{loop.model}"}),
            fence=self.fence,
        )
        return None  # `loopml loop approve` moves it on

    def _release(self, policy: Policy, loop: Loop) -> Loop | None:
        from loopml.deploy import deployments, strategies
        from loopml.registry import models

        assert loop.model is not None
        name, _, number = loop.model.partition("/")
        rollout = policy.rollout
        if rollout is None:  # no deployment to canary on: the gate's verdict moves champion
            before = models.get_model(self.ws, name).aliases.get("champion")
            if before != int(number):  # (a controller stopped after moving it: moved already)
                models.set_alias(
                    self.ws,
                    name,
                    "champion",
                    int(number),
                    reason=f"loop {loop.label}: passed its gate",
                    expected=before,
                )
            was = f" (was version {before})" if before not in (None, int(number)) else ""
            done = loops.move(
                self.ws,
                loop,
                step="done",
                status="succeeded",
                event=(
                    "promoted",
                    f"{name}@champion is version {number}{was}",
                    {"model": f"models:/{loop.model}"},
                ),
                fence=self.fence,
            )
            if done is None and before not in (None, int(number)):  # cancelled meanwhile
                models.set_alias(
                    self.ws,
                    name,
                    "champion",
                    before,
                    reason=f"loop {loop.label} was cancelled as it moved champion",
                    expected=int(number),
                )
            return done
        deployment = deployments.get(self.ws, rollout.deployment)
        if deployment.routing.candidate != loop.model:  # not started before a restart
            deployment = strategies.canary(
                self.ws,
                rollout.deployment,
                loop.model,
                steps=rollout.steps,
                interval_s=rollout.interval_s,
                max_error_rate=rollout.max_error_rate,
                max_p99_ms=rollout.max_p99_ms,
                min_metrics=rollout.min_metrics,
                max_metrics=rollout.max_metrics,
                min_requests=rollout.min_requests,
            )
        started = [
            e.id
            for e in deployments.history(self.ws, rollout.deployment, limit=20)
            if e.kind == "canary" and e.routing.candidate == loop.model
        ]
        watch = {
            "deployment": rollout.deployment,
            "since_event": started[-1] if started else 0,
            "deadline": now_ms() + int(rollout.deadline_s * 1000),
        }
        steps = ", ".join(f"{s}%" for s in rollout.steps)
        reason = (
            f"canary of {loop.model} on deployment {rollout.deployment}: {steps}, judged every "
            f"{rollout.interval_s:g}s by the deployment's server"
        )
        watching = loops.move(
            self.ws,
            loop,
            step="watch",
            status="rolling_out",
            details={**loop.details, "rollout": watch},
            event=(
                "rollout_started",
                reason,
                {**rollout.to_dict(), "model": f"models:/{loop.model}"},
            ),
            fence=self.fence,
        )
        if watching is None:  # cancelled (or taken over) as the canary started: no orphan
            _roll_back_canary(self.ws, rollout.deployment, loop, "was cancelled")
        return watching

    def _watch(self, policy: Policy, loop: Loop) -> Loop | None:
        from loopml.deploy import deployments, strategies

        watch: dict[str, Any] = dict(loop.details["rollout"])
        name = str(watch["deployment"])
        seen = int(watch.get("seen") or watch["since_event"])
        news = [e for e in deployments.history(self.ws, name, limit=500) if e.id > seen]
        for event in news:
            if event.kind == "step":
                loops.record(
                    self.ws,
                    policy,
                    loop,
                    "rollout_step",
                    event.reason,
                    details={"deployment": name, "event": event.id, "weight": event.routing.weight},
                )
            elif event.kind == "promoted" and event.routing.stable == loop.model:
                return self._promoted(policy, loop, event.reason, event.id)
            elif event.kind == "rolled_back" and event.routing.stable != loop.model:
                return self._finish(
                    loop, "rolled_back", event.reason, {"deployment": name, "event": event.id}
                )
        deployment = deployments.get(self.ws, name)
        routing = deployment.routing
        if routing.stable == loop.model:  # promoted by a change this round did not list
            return self._promoted(policy, loop, f"{loop.model} is serving {name}", None)
        if routing.candidate != loop.model:
            reason = f"deployment {name} no longer runs {loop.model}: {routing.describe()}"
            return self._finish(loop, "rolled_back", reason, {"deployment": name})
        if now_ms() > int(watch.get("deadline") or 0) > 0:
            reason = (
                f"the canary of {loop.model} had no verdict by its deadline (rollout timeout); "
                f"rolled back. Is deployment {name} served (loopml deploy serve {name})?"
            )
            strategies.rollback(self.ws, name, reason=reason, judged=deployment)
            return self._finish(loop, "rolled_back", reason, {"deployment": name})
        if news:
            watch["seen"] = news[-1].id
            loops.move(
                self.ws,
                loop,
                step="watch",
                status="rolling_out",
                details={**loop.details, "rollout": watch},
                fence=self.fence,
            )
        return None  # the canary goes on; the deployment's server judges it

    def _promoted(self, policy: Policy, loop: Loop, why: str, event: int | None) -> Loop | None:
        from loopml.registry import models

        assert loop.model is not None
        name, _, number = loop.model.partition("/")
        before = models.get_model(self.ws, name).aliases.get("champion")
        if before != int(number):  # the deployment's alias was not `champion`: move it here
            models.set_alias(
                self.ws,
                name,
                "champion",
                int(number),
                reason=f"loop {loop.label}: promoted on its deployment",
                expected=before,
            )
        reason = f"{why}; {name}@champion is version {number}"
        details = {"event": event, "model": f"models:/{loop.model}"}
        return self._finish(loop, "succeeded", reason, details, "promoted")

    def _finish(
        self, loop: Loop, status: str, reason: str, details: dict[str, Any], kind: str | None = None
    ) -> Loop | None:
        return loops.move(
            self.ws,
            loop,
            step="done",
            status=status,
            error="" if status == "succeeded" else reason,
            event=(kind or status, reason, details),
            fence=self.fence,
        )

    @contextmanager
    def _heartbeat(self) -> Iterator[None]:
        """Renew the lease every third of its length while a round runs (a pipeline may
        train for longer than the lease); a lost lease stops the round after its step."""
        done = threading.Event()

        def beat() -> None:
            while not done.wait(self.lease_s / 3):
                try:
                    self.holding = lease.acquire(
                        self.ws, lease.CONTROLLER, self.holder, self.lease_s
                    )
                except Exception:  # noqa: BLE001 - the store hiccuped: try again next beat
                    log.warning("could not renew the controller lease; retrying")
                    continue
                if not self.holding:
                    log.warning("the controller lease was taken over; this controller stands by")
                    return

        thread = threading.Thread(target=beat, name="loopml-lease", daemon=True)
        thread.start()
        try:
            yield
        finally:
            done.set()
            thread.join()


_STEPS: dict[str, Callable[[Controller, Policy, Loop], Loop | None]] = {
    "train": Controller._train,
    "register": Controller._register,
    "gate": Controller._gate,
    "approval": Controller._approval,
    "release": Controller._release,
    "watch": Controller._watch,
}


# -- what people do: start, approve, cancel, look -------------------------------------------


def begin(
    ws: Workspace,
    policy: Policy,
    fired: list[Firing],
    *,
    cursors: dict[str, Any] | None = None,
    fence: Fence | None = None,
) -> Loop | None:
    """Start a loop of `policy` for the triggers that `fired`, with its dataset references
    pinned to the versions they name now (a resumed loop trains on the same data).

    `cursors` are the triggers' cursors after the firing; a new_data trigger's moves up to the
    version the loop trains on whatever started it, so that data does not retrain again.
    """
    from loopml.data.refs import parse_ref

    params, datasets = _pinned(ws, policy.params)
    evaluation, more = _pinned(ws, {"evaluation": policy.evaluation["data"]})
    trigger = {
        "kind": fired[0].kind if len(fired) == 1 else "several",
        "reason": "; ".join(f.reason for f in fired),
        "firings": [f.to_dict() for f in fired],
    }
    moved = dict(policies.cursors(ws, policy) if cursors is None else cursors)
    for pinned in datasets.values():
        ref = parse_ref(pinned)
        key = f"new_data {ref.name}"
        if key in moved and ref.version is not None:
            moved[key] = max(int(moved[key]), ref.version)
    details = {
        "evaluation_data": evaluation["evaluation"],
        "datasets": {**datasets, **more},
        "policy": policy.spec(),
    }
    return loops.start(ws, policy, trigger, params, details, cursors=moved, fence=fence)


def trigger(ws: Workspace, name: str, *, reason: str = "") -> Loop:
    """Start a loop of policy `name` now (a manual trigger ignores the cooldown); the
    controller drives it."""
    policy = policies.get(ws, name)
    why = f"triggered by {current_user()}" + (f": {reason}" if reason else "")
    firing = Firing("manual", "manual", why, {"user": current_user()}, None)
    loop = begin(ws, policy, [firing])
    assert loop is not None
    return loop


def approve(ws: Workspace, name: str) -> Loop:
    """Let policy `name`'s loop that waits for approval go on to its rollout."""
    policy = policies.get(ws, name)
    loop = loops.active(ws, policy)
    if loop is None or loop.status != "waiting":
        where = (
            f"its loop #{loop.number} is {loop.status} at {loop.step}"
            if loop
            else "no loop is active"
        )
        raise InvalidState(f"nothing of policy {name!r} waits for approval: {where}")
    user = current_user()
    moved = loops.move(
        ws,
        loop,
        step="release",
        status="running",
        details={**loop.details, "approved_by": user},
        event=("approved", f"models:/{loop.model} approved by {user}", {"user": user}),
    )
    if moved is None:
        raise InvalidState(f"loop {loop.label} changed meanwhile; see loopml loop status {name}")
    return moved


def cancel(ws: Workspace, name: str, *, reason: str = "") -> Loop:
    """End policy `name`'s active loop; a canary it started is rolled back."""
    policy = policies.get(ws, name)
    loop = loops.active(ws, policy)
    if loop is None:
        raise InvalidState(f"policy {name!r} has no active loop to cancel")
    why = f"cancelled by {current_user()}" + (f": {reason}" if reason else "")
    rollout = as_started(policy, loop).rollout
    if rollout is not None:
        _roll_back_canary(ws, rollout.deployment, loop, why)
    moved = loops.move(
        ws, loop, step="done", status="cancelled", error=why, event=("cancelled", why, {})
    )
    if moved is None:
        raise InvalidState(f"loop {loop.label} changed meanwhile; see loopml loop status {name}")
    return moved


def as_started(policy: Policy, loop: Loop) -> Policy:
    """Return `policy` as it was when `loop` started (what the loop runs with to its end)."""
    spec = loop.details.get("policy")
    if spec is None:
        return policy
    return replace(
        policies.parse(spec),
        id=policy.id,
        source=policy.source,
        user=policy.user,
        created_at=policy.created_at,
        updated_at=policy.updated_at,
    )


def _roll_back_canary(ws: Workspace, deployment: str, loop: Loop, why: str) -> None:
    """Roll back the canary of the loop's model on `deployment`, if one is on."""
    from loopml.deploy import deployments, strategies

    try:
        current = deployments.get(ws, deployment)
    except NotFound:
        return
    if current.routing.candidate == loop.model:
        strategies.rollback(ws, deployment, reason=f"loop {loop.label} {why}", judged=current)


def cooling_until(ws: Workspace, policy: Policy) -> int:
    """Return when the policy's cooldown ends (epoch ms; 0 when no loop ever started)."""
    last = loops.of(ws, policy, limit=1)
    if not last or not policy.cooldown_s:
        return 0
    return last[0].started_at + int(policy.cooldown_s * 1000)


def status(ws: Workspace, policy: Policy) -> dict[str, Any]:
    """Return where policy `policy` stands: its active or last loop, its cooldown, the
    triggers that would fire now, and who holds the controller lease."""
    now = now_ms()
    recent = loops.of(ws, policy, limit=1)
    pending = due(ws, policy, policies.cursors(ws, policy), now)
    holding = lease.current(ws, lease.CONTROLLER)
    until = cooling_until(ws, policy)
    return {
        "policy": policy.name,
        "problems": problems(ws, policy),
        "loop": recent[0].to_dict() if recent else None,
        "cooling_until": until if until > now else None,
        "pending": [f.to_dict() for f in pending],
        "controller": (
            holding.holder if holding is not None and holding.expires_at > now else None
        ),
    }


def problems(ws: Workspace, policy: Policy) -> list[str]:
    """Return what the policy names that is gone since it was applied (its loops would fail
    on it, or its triggers never fire)."""
    from loopml.deploy import deployments
    from loopml.monitoring import monitors

    found = []
    for name in policy.monitors:
        try:
            monitors.get(ws, name)
        except NotFound:
            found.append(f"monitor {name} was deleted: its triggers cannot fire")
    if policy.rollout is not None:
        try:
            deployments.get(ws, policy.rollout.deployment)
        except NotFound:
            found.append(f"deployment {policy.rollout.deployment} was deleted: loops will fail")
    if not (ws.root / policy.gate).is_file():
        found.append(f"gate file {policy.gate} is gone: loops will fail")
    return found


@contextmanager
def background(
    ws: Workspace, *, enabled: bool = True, poll_s: float = POLL_S
) -> Iterator[Controller | None]:
    """Run a controller in a thread for the duration of the block when `ws` has policies
    (what `loopml serve` and `loopml deploy serve` do); yield it, or None without policies."""
    if not enabled or not policies.exist(ws):
        yield None
        return
    controller = Controller(ws, poll_s=poll_s)
    stop = threading.Event()
    thread = threading.Thread(
        target=controller.run, args=(stop,), name="loopml-controller", daemon=True
    )
    thread.start()
    try:
        yield controller
    finally:
        stop.set()
        thread.join(timeout=5)


def _registered_version(ws: Workspace, policy: Policy, loop: Loop) -> Any:
    from loopml.registry import models

    try:
        found = models.versions(ws, policy.register_as)
    except NotFound:
        return None
    return next((v for v in found if v.tags.get(LOOP_TAG) == loop.id), None)


def _register_model(ws: Workspace, policy: Policy, loop: Loop) -> Any:
    """Store the pipeline run's model output and register it as the next version."""
    from loopml.evaluation.scoring import read_table
    from loopml.pipelines import records
    from loopml.pipelines.task import load
    from loopml.registry import models
    from loopml.registry.package import save_package

    assert loop.run_id is not None
    step, _, output = policy.model.partition(":")
    found = [s for s in records.steps_of(ws, loop.run_id) if s.node == step]
    if not found:
        raise NotFound(f"run {loop.run_id[:8]} has no step {step!r}; check the policy's model")
    outputs = {v.name: v.stored for v in found[0].outputs}
    stored = outputs.get(output) if output else next(iter(outputs.values()), None)
    if stored is None or stored.digest is None:
        raise InvalidInput(f"step {step!r} of run {loop.run_id[:8]} returned no model")
    model = load(ws.blobs, stored, ())
    frame = read_table(ws, loop.details["evaluation_data"]).frame
    columns = getattr(model, "feature_names_in_", None)
    if columns is not None:
        example = frame[list(columns)].head(5)
    else:
        target = policy.evaluation["target"]
        example = frame.drop(columns=[target] if target in frame.columns else []).head(5)
    with ws.blob_lock():
        package = save_package(ws, model, input_example=example)
        return models.register_version(
            ws,
            policy.register_as,
            package.digest,
            package.flavor,
            run_id=loop.run_id,
            source=f"pipeline run {loop.run_id}, step {step}",
            description=f"trained by loop {loop.label}: {loop.trigger['reason']}",
            tags={LOOP_TAG: loop.id, "loopml.policy": policy.name},
        )


def _pinned(ws: Workspace, params: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """Return `params` with every dataset reference (`churn@latest`, `churn@prod`) pinned
    to the exact version it names now, and the pins made."""
    from loopml.data import versions

    pinned, pins = dict(params), {}
    for key, value in params.items():
        if isinstance(value, str) and "@" in value and "/" not in value:
            try:
                exact = versions.get(ws, value).ref
            except (NotFound, InvalidInput):
                continue  # not a dataset reference: the pipeline reads it as it is
            pinned[key] = exact
            pins[value] = exact
    return pinned, pins
