"""Continuous-training policies: what to train, when, and how the model reaches production.

A policy is a YAML file a person applies with `loopml loop apply`. Applying checks everything
it names against the workspace (the pipeline and its model step, the monitors, datasets, gate
file and deployment) so that a mistake is refused then, not at 3 a.m. when a trigger fires.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from sqlalchemy import RowMapping, delete, insert, select, update
from sqlalchemy.exc import IntegrityError as SQLIntegrityError

from loopml.core.durations import seconds
from loopml.core.store import now_ms
from loopml.core.store import schema as db
from loopml.core.workspace import Workspace
from loopml.errors import InvalidInput, InvalidState, NotFound
from loopml.registry.uris import check_name
from loopml.tracking.current import current_user

_P = db.policies
_L = db.loops
_E = db.loop_events
KEYS = (
    "name",
    "pipeline",
    "params",
    "triggers",
    "model",
    "register_as",
    "evaluation",
    "gate",
    "rollout",
    "cooldown",
    "approval",
    "executor",
)
TRIGGERS = ("schedule", "drift", "performance", "new_data", "manual")
APPROVALS = ("none", "manual")
EXECUTORS = ("local", "ray")
ROLLOUT_KEYS = (
    "deployment",
    "strategy",
    "steps",
    "interval",
    "min_requests",
    "max_error_rate",
    "max_p99_ms",
    "min_metrics",
    "max_metrics",
    "timeout",
)
DEFAULT_COOLDOWN_S = 3600.0
MAX_DURATION_S = {"cooldown": 366 * 86400.0, "interval": 7 * 86400.0, "timeout": 366 * 86400.0}


@dataclass(frozen=True)
class Trigger:
    """One reason to start a loop: `schedule`, `drift`, `performance`, `new_data`, `manual`."""

    kind: str
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """Return what names this trigger's cursor (the same trigger keeps it across applies)."""
        if self.kind == "schedule":
            return f"schedule {self.settings['cron']}"
        if self.kind in ("drift", "performance"):
            return f"{self.kind} {self.settings['monitor']}: {self.settings['when']}"
        if self.kind == "new_data":
            return f"new_data {self.settings['dataset']}"
        return "manual"

    def to_dict(self) -> dict[str, Any]:
        """Return the trigger as the policy file writes it."""
        if self.kind == "schedule":
            return {"schedule": self.settings["cron"]}
        if self.kind == "manual":
            return {"manual": {}}
        return {self.kind: dict(self.settings)}


@dataclass(frozen=True)
class Rollout:
    """How a model that passed its gate reaches the deployment: a canary's settings."""

    deployment: str
    steps: tuple[int, ...] = (10, 50, 100)
    interval_s: float = 300.0
    min_requests: int = 50
    max_error_rate: float = 0.01
    max_p99_ms: float | None = None
    min_metrics: dict[str, float] = field(default_factory=dict)
    max_metrics: dict[str, float] = field(default_factory=dict)
    timeout_s: float | None = None  # None: three times the steps' intervals, at least an hour

    @property
    def deadline_s(self) -> float:
        """Return how long a canary may go without a verdict before the loop rolls it back."""
        if self.timeout_s is not None:
            return self.timeout_s
        return max(3600.0, 3 * len(self.steps) * self.interval_s)

    def to_dict(self) -> dict[str, Any]:
        """Return the rollout as stored (durations in seconds)."""
        return {
            "deployment": self.deployment,
            "strategy": "canary",
            "steps": list(self.steps),
            "interval": self.interval_s,
            "min_requests": self.min_requests,
            "max_error_rate": self.max_error_rate,
            "max_p99_ms": self.max_p99_ms,
            "min_metrics": dict(self.min_metrics),
            "max_metrics": dict(self.max_metrics),
            "timeout": self.timeout_s,
        }


@dataclass(frozen=True)
class Policy:
    """A checked policy (and, once applied, its place in the store)."""

    name: str
    pipeline: str  # FILE.py:FUNCTION (relative to the workspace root) or MODULE:FUNCTION
    register_as: str
    gate: str  # the gate file (relative to the workspace root)
    evaluation: dict[str, Any]  # {"data": REF, "target": COLUMN or None}
    triggers: tuple[Trigger, ...]
    params: dict[str, Any] = field(default_factory=dict)
    model: str = "train"  # STEP or STEP:OUTPUT: the pipeline output that is the model
    rollout: Rollout | None = None
    cooldown_s: float = DEFAULT_COOLDOWN_S
    approval: str = "none"
    executor: str = "local"
    id: int = 0
    source: str = ""
    user: str = ""
    created_at: int = 0
    updated_at: int = 0

    @property
    def monitors(self) -> list[str]:
        """Return the monitors its drift and performance triggers watch."""
        found = [t.settings["monitor"] for t in self.triggers if "monitor" in t.settings]
        return list(dict.fromkeys(found))

    def spec(self) -> dict[str, Any]:
        """Return the policy as a policy file would write it (what the store keeps)."""
        return {
            "name": self.name,
            "pipeline": self.pipeline,
            "params": self.params,
            "triggers": [t.to_dict() for t in self.triggers],
            "model": self.model,
            "register_as": self.register_as,
            "evaluation": self.evaluation,
            "gate": self.gate,
            "rollout": self.rollout.to_dict() if self.rollout else None,
            "cooldown": self.cooldown_s,
            "approval": self.approval,
            "executor": self.executor,
        }

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-able dict: the spec and where it came from."""
        return {
            **self.spec(),
            "source": self.source,
            "user": self.user,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


def parse(data: object, *, where: str = "the policy") -> Policy:
    """Return the policy `data` (a policy file's mapping) describes; InvalidInput naming the
    key that is wrong otherwise. Nothing in the workspace is looked at (see `check`)."""
    if not isinstance(data, dict):
        raise InvalidInput(f"{where} is a mapping with keys {', '.join(KEYS)}, not {data!r}")
    unknown = sorted(set(map(str, data)) - set(KEYS))
    if unknown:
        raise InvalidInput(f"{where}: unknown key(s) {', '.join(unknown)}; keys: {', '.join(KEYS)}")
    for key in ("name", "pipeline", "triggers", "register_as", "gate", "evaluation"):
        if data.get(key) in (None, "", []):
            raise InvalidInput(f"{where} needs {key!r}: {_HINTS[key]}")
    name = check_name(data["name"], "policy name")
    where = f"policy {name!r}"
    pipeline = _text(data["pipeline"], "pipeline", where)
    if ":" not in pipeline:
        raise InvalidInput(f"{where}: pipeline {pipeline!r} is not FILE.py:FUNCTION")
    params = data.get("params") or {}
    if not isinstance(params, dict) or not all(isinstance(k, str) for k in params):
        raise InvalidInput(f"{where}: params is a mapping of name: value, not {params!r}")
    model = _text(data.get("model", "train"), "model", where)
    triggers = data["triggers"]
    if not isinstance(triggers, list):
        raise InvalidInput(f"{where}: triggers is a list, e.g. [{{schedule: '0 3 * * *'}}]")
    parsed = tuple(_trigger(item, i, where) for i, item in enumerate(triggers))
    keys = [t.key for t in parsed]
    if len(set(keys)) != len(keys):
        raise InvalidInput(f"{where}: a trigger is listed twice ({', '.join(keys)})")
    approval = data.get("approval", "none")
    if approval not in APPROVALS:
        raise InvalidInput(f"{where}: approval is 'none' or 'manual', not {approval!r}")
    executor = data.get("executor", "local")
    if executor not in EXECUTORS:
        raise InvalidInput(f"{where}: executor is 'local' or 'ray', not {executor!r}")
    return Policy(
        name=name,
        pipeline=pipeline,
        register_as=check_name(data["register_as"], f"{where}: register_as"),
        gate=_text(data["gate"], "gate", where),
        evaluation=_evaluation(data["evaluation"], where),
        triggers=parsed,
        params=dict(params),
        model=model,
        rollout=_rollout(data.get("rollout"), where),
        cooldown_s=_cooldown(data.get("cooldown", DEFAULT_COOLDOWN_S), where),
        approval=str(approval),
        executor=str(executor),
    )


def load(path: str | Path) -> Policy:
    """Return the policy in the YAML file at `path`."""
    import yaml

    file = Path(path)
    if not file.is_file():
        raise NotFound(f"policy file {file} does not exist")
    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise InvalidInput(
            f"policy file {file} is not valid YAML: {' '.join(str(exc).split())}"
        ) from None
    return replace(parse(data, where=f"policy file {file}"), source=str(file))


def check(ws: Workspace, policy: Policy) -> Policy:
    """Check what `policy` names against the workspace; return it with its files' paths
    made relative to the workspace root. InvalidInput or NotFound name the first problem."""
    from loopml.data import versions
    from loopml.deploy import deployments
    from loopml.evaluation.gates import Gate
    from loopml.monitoring import monitors
    from loopml.monitoring.alerts import Rule
    from loopml.pipelines.loader import load_pipeline

    where = f"policy {policy.name!r}"
    pipeline_ref = _rooted(ws, policy.pipeline.rpartition(":")[0], "pipeline file")
    pipeline_ref = f"{pipeline_ref}:{policy.pipeline.rpartition(':')[2]}"
    pipeline = load_pipeline(pipeline_ref, root=ws.root)
    bound = pipeline.bind(policy.params)
    graph = pipeline.build(bound, lambda ref: versions.get(ws, ref))
    step, _, output = policy.model.partition(":")
    node = graph.nodes.get(step)
    if node is None:
        raise InvalidInput(
            f"{where}: model {policy.model!r} names no step of {policy.pipeline}; its steps: "
            f"{', '.join(graph.nodes)} (model: STEP or STEP:OUTPUT)"
        )
    outputs = tuple(o.name for o in node.step.outputs)
    if output and output not in outputs:
        raise InvalidInput(f"{where}: step {step!r} has no output {output!r}; it has {outputs}")
    if not output and len(outputs) > 1:
        raise InvalidInput(f"{where}: step {step!r} has outputs {outputs}; model: {step}:OUTPUT")
    for trigger in policy.triggers:
        if trigger.kind in ("drift", "performance"):
            monitor = monitors.get(ws, trigger.settings["monitor"])
            try:
                Rule.parse(trigger.settings["when"], monitor.columns)
            except InvalidInput as exc:
                raise InvalidInput(f"{where}, trigger {trigger.key}: {exc}") from None
        elif trigger.kind == "new_data":
            try:
                versions.get(ws, trigger.settings["dataset"])
            except NotFound as exc:
                raise NotFound(f"{where}, trigger {trigger.key}: {exc}") from None
    gate = _rooted(ws, policy.gate, "gate file")
    check_evaluation(ws, policy, Gate.load(ws.root / gate), where)
    if policy.rollout is not None:
        deployments.get(ws, policy.rollout.deployment)
    return replace(policy, pipeline=pipeline_ref, gate=gate)


def check_evaluation(ws: Workspace, policy: Policy, gate: Any, where: str) -> None:
    """Check the policy's evaluation data exists and holds the target the gate scores."""
    from loopml.evaluation.scoring import read_table

    try:
        table = read_table(ws, policy.evaluation["data"])
    except (NotFound, InvalidInput) as exc:
        raise type(exc)(f"{where}, evaluation data: {exc}") from None
    target = policy.evaluation["target"] or gate.target
    if target is None:
        raise InvalidInput(
            f"{where}: name the column the gate scores against (evaluation: {{data: ..., "
            "target: COLUMN}}, or target: in the gate file)"
        )
    if target not in table.frame.columns:
        raise InvalidInput(
            f"{where}: evaluation data {table.label} has no target column {target!r}; its "
            f"columns: {', '.join(map(str, table.frame.columns[:20]))}"
        )


def apply(ws: Workspace, policy: Policy) -> tuple[Policy, str]:
    """Check and store `policy` (a new one, or the new text of one); return it and what
    happened: "created", "updated" or "unchanged". Triggers it already had keep their place."""
    from loopml.automation.triggers import initial_cursors

    checked = check(ws, policy)
    spec = json.dumps(checked.spec(), sort_keys=True, allow_nan=False)
    now = now_ms()
    with ws.store.write() as conn:
        row = conn.execute(select(_P).where(_P.c.name == checked.name)).mappings().first()
        if row is None:
            cursors = initial_cursors(ws, checked, now)
            try:
                conn.execute(
                    insert(_P).values(
                        name=checked.name,
                        spec=spec,
                        source=checked.source,
                        cursors=json.dumps(cursors),
                        user=current_user(),
                        created_at=now,
                        updated_at=now,
                    )
                )
            except SQLIntegrityError:
                raise InvalidState(
                    f"policy {checked.name!r} was applied by someone else meanwhile; apply again"
                ) from None
            outcome = "created"
        elif json.loads(row["spec"]) == json.loads(spec) and row["source"] == checked.source:
            outcome = "unchanged"
        else:
            kept = json.loads(row["cursors"])
            fresh = initial_cursors(ws, checked, now)
            cursors = {k: kept.get(k, v) for k, v in fresh.items()}
            conn.execute(
                update(_P)
                .where(_P.c.id == row["id"])
                .values(
                    spec=spec,
                    source=checked.source,
                    cursors=json.dumps(cursors),
                    user=current_user(),
                    updated_at=now,
                )
            )
            outcome = "updated"
    stored = get(ws, checked.name)
    if outcome != "unchanged":
        from loopml.automation import loops

        loops.record(
            ws, stored, None, f"policy_{outcome}", f"policy {outcome} from {_from(stored)}"
        )
    return stored, outcome


def get(ws: Workspace, name: str) -> Policy:
    """Return stored policy `name`, or NotFound listing those there are."""
    with ws.store.read() as conn:
        row = conn.execute(select(_P).where(_P.c.name == name)).mappings().first()
        known = [] if row else conn.execute(select(_P.c.name).order_by(_P.c.name)).scalars().all()
    if row is None:
        listed = ", ".join(known) if known else "none yet (loopml loop apply POLICY.yaml)"
        raise NotFound(f"no policy {name!r}; policies: {listed}")
    return from_row(row)


def list_all(ws: Workspace) -> list[Policy]:
    """Return every stored policy, by name."""
    with ws.store.read() as conn:
        rows = conn.execute(select(_P).order_by(_P.c.name)).mappings().all()
    return [from_row(row) for row in rows]


def exist(ws: Workspace) -> bool:
    """Return True if any policy is stored (so a controller has work)."""
    with ws.store.read() as conn:
        return conn.execute(select(_P.c.id).limit(1)).first() is not None


def delete_policy(ws: Workspace, name: str) -> None:
    """Delete policy `name` with its loops and timeline; refused while a loop is active."""
    policy = get(ws, name)
    with ws.store.write() as conn:
        active = conn.execute(
            select(_L.c.number, _L.c.step).where(_L.c.active == policy.id)
        ).first()
        if active is not None:
            raise InvalidState(
                f"policy {name!r} has an active loop (#{active.number}, at {active.step}); "
                f"cancel it first (loopml loop cancel {name})"
            )
        conn.execute(delete(_E).where(_E.c.policy_id == policy.id))
        conn.execute(delete(_L).where(_L.c.policy_id == policy.id))
        conn.execute(delete(_P).where(_P.c.id == policy.id))


def cursors(ws: Workspace, policy: Policy) -> dict[str, Any]:
    """Return what each of the policy's triggers has consumed so far."""
    with ws.store.read() as conn:
        text = conn.execute(select(_P.c.cursors).where(_P.c.id == policy.id)).scalar()
    if text is None:
        raise NotFound(f"policy {policy.name!r} was deleted")
    return dict(json.loads(text))


def from_row(row: RowMapping) -> Policy:
    """Return the policy a `policies` row holds."""
    parsed = parse(json.loads(row["spec"]))
    return replace(
        parsed,
        id=row["id"],
        source=row["source"],
        user=row["user"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


_HINTS = {
    "name": "a name for it, like churn-retrain",
    "pipeline": "the training pipeline, like pipelines/churn.py:churn",
    "triggers": "a list of what starts a loop: schedule, drift, performance, new_data, manual",
    "register_as": "the registered model a new version is added to, like churn-model",
    "gate": "the gate file a new model must pass, like gates/churn.yaml",
    "evaluation": "the data the gate scores on, like {data: churn-holdout@latest, target: y}",
}


def _text(value: object, key: str, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(f"{where}: {key} is text, not {value!r}")
    return value.strip()


def _trigger(item: object, index: int, where: str) -> Trigger:
    if item == "manual":
        return Trigger("manual")
    if not isinstance(item, dict) or len(item) != 1:
        raise InvalidInput(
            f"{where}: trigger {index + 1} is one 'kind: settings' pair ({', '.join(TRIGGERS)}), "
            f"like {{drift: {{monitor: churn, when: 'drift_share > 0.3'}}}}; not {item!r}"
        )
    ((kind, settings),) = item.items()
    here = f"{where}, trigger {index + 1} ({kind})"
    if kind == "schedule":
        return _schedule(settings, here)
    if kind in ("drift", "performance"):
        return _monitor_trigger(kind, settings, here)
    if kind == "new_data":
        return _new_data(settings, here)
    if kind == "manual":
        if settings not in (None, {}):
            raise InvalidInput(f"{here}: manual takes no settings; write - manual")
        return Trigger("manual")
    raise InvalidInput(f"{where}: unknown trigger {kind!r}; triggers: {', '.join(TRIGGERS)}")


def _schedule(settings: object, here: str) -> Trigger:
    from croniter import croniter

    if isinstance(settings, dict) and set(settings) != {"cron"}:
        raise InvalidInput(f"{here}: a schedule is a cron string, or {{cron: '0 3 * * *'}}")
    cron = settings.get("cron") if isinstance(settings, dict) else settings
    if not isinstance(cron, str) or len(cron.split()) != 5 or not croniter.is_valid(cron):
        raise InvalidInput(
            f"{here}: {cron!r} is not a cron expression like '0 3 * * *' (minute hour day "
            "month weekday)"
        )
    return Trigger("schedule", {"cron": " ".join(cron.split())})


def _monitor_trigger(kind: str, settings: object, here: str) -> Trigger:
    from loopml.monitoring.alerts import Rule

    if not isinstance(settings, dict) or set(settings) != {"monitor", "when"}:
        raise InvalidInput(
            f"{here}: give a monitor and a rule, like {{monitor: churn, when: "
            f"'{'drift_share > 0.3' if kind == 'drift' else 'accuracy < 0.8'}'}}"
        )
    monitor = check_name(settings["monitor"], f"{here}: monitor")
    try:
        rule = Rule.parse(settings["when"])
    except InvalidInput as exc:
        raise InvalidInput(f"{here}: {exc}") from None
    drift = rule.metric in _DRIFT or rule.metric.startswith("drift.")
    if drift != (kind == "drift"):
        other = "drift" if drift else "performance"
        raise InvalidInput(
            f"{here}: {rule.metric} is a {other} metric; list it under {other} (drift "
            f"metrics: {', '.join(sorted(_DRIFT))}, drift.COLUMN)"
        )
    return Trigger(kind, {"monitor": monitor, "when": str(rule)})  # one spelling per rule


def _new_data(settings: object, here: str) -> Trigger:
    from loopml.data.refs import check_name as check_dataset

    if isinstance(settings, dict) and set(settings) != {"dataset"}:
        raise InvalidInput(f"{here}: new_data names a dataset, like {{dataset: churn}}")
    dataset = settings.get("dataset") if isinstance(settings, dict) else settings
    try:
        return Trigger("new_data", {"dataset": check_dataset(dataset)})
    except InvalidInput as exc:
        raise InvalidInput(f"{here}: {exc}") from None


# What a drift trigger watches; every other monitor metric (accuracy, rmse, error rate,
# latency) is for a performance trigger.
_DRIFT = {
    "drift_share",
    "drifted_columns",
    "dataset_drift",
    "prediction_drift",
    "prediction_drifted",
}


def _evaluation(value: object, where: str) -> dict[str, Any]:
    if isinstance(value, str):
        value = {"data": value}
    if not isinstance(value, dict) or not str(value.get("data") or "").strip():
        raise InvalidInput(
            f"{where}: evaluation is {{data: DATASET@VERSION, target: COLUMN}}, not {value!r}"
        )
    unknown = set(value) - {"data", "target"}
    if unknown:
        raise InvalidInput(f"{where}: evaluation has data and target, not {sorted(unknown)}")
    target = value.get("target")
    if target is not None and not isinstance(target, str):
        raise InvalidInput(f"{where}: evaluation target is a column name, not {target!r}")
    return {"data": str(value["data"]).strip(), "target": target}


def _rollout(value: object, where: str) -> Rollout | None:
    if value is None:
        return None
    if not isinstance(value, dict) or not isinstance(value.get("deployment"), str):
        raise InvalidInput(
            f"{where}: rollout is {{deployment: NAME, strategy: canary, steps: [10, 50, 100], "
            f"interval: 5m}}, not {value!r}"
        )
    unknown = sorted(set(value) - set(ROLLOUT_KEYS))
    if unknown:
        raise InvalidInput(f"{where}: rollout has no {unknown}; keys: {', '.join(ROLLOUT_KEYS)}")
    if value.get("strategy", "canary") != "canary":
        raise InvalidInput(
            f"{where}: rollout strategy {value['strategy']!r} is not automated; a loop rolls out "
            "as a canary, which the deployment's controller promotes or rolls back"
        )
    from loopml.deploy import routing

    steps = value.get("steps", [10, 50, 100])
    if not isinstance(steps, list) or not all(isinstance(s, int) for s in steps):
        raise InvalidInput(f"{where}: rollout steps are whole percents, like [10, 50, 100]")
    durations: dict[str, float | None] = {"interval": 300.0, "timeout": None}
    for key in durations:
        if value.get(key) is not None:
            durations[key] = _duration(value[key], f"{where}: rollout {key}", key)
    interval_s, timeout_s = durations["interval"], durations["timeout"]
    assert interval_s is not None
    bounds = {key: value.get(key) or {} for key in ("min_metrics", "max_metrics")}
    for key, given in bounds.items():
        if not isinstance(given, dict) or not all(isinstance(k, str) for k in given):
            raise InvalidInput(
                f"{where}: rollout {key} is a mapping of metric: number, like {{accuracy: 0.85}}; "
                f"not {given!r}"
            )
    rollout = Rollout(
        deployment=value["deployment"],
        steps=tuple(steps),
        interval_s=interval_s,
        min_requests=value.get("min_requests", 50),
        max_error_rate=value.get("max_error_rate", 0.01),
        max_p99_ms=value.get("max_p99_ms"),
        min_metrics=dict(bounds["min_metrics"]),
        max_metrics=dict(bounds["max_metrics"]),
        timeout_s=timeout_s,
    )
    try:  # the deployment's own rules for a canary, checked now
        routing.Rollout(
            steps=rollout.steps,
            interval_s=rollout.interval_s,
            max_error_rate=rollout.max_error_rate,
            max_p99_ms=rollout.max_p99_ms,
            min_metrics=rollout.min_metrics,
            max_metrics=rollout.max_metrics,
            min_requests=rollout.min_requests,
        )
    except InvalidInput as exc:
        raise InvalidInput(f"{where}: rollout: {exc}") from None
    return rollout


def _cooldown(value: object, where: str) -> float:
    if value is not False and value in (0, "0", "none", None):
        return 0.0
    return _duration(value, f"{where}: cooldown", "cooldown")


def _duration(value: object, where: str, key: str) -> float:
    """Return the seconds `value` means, refused past the longest sensible `key`."""
    if isinstance(value, bool):
        raise InvalidInput(f"{where}: {value!r} is not a duration; write e.g. 90, 45s, 5m, 1h")
    try:
        found = seconds(value)  # type: ignore[arg-type]
    except InvalidInput as exc:
        raise InvalidInput(f"{where}: {exc}") from None
    longest = MAX_DURATION_S[key]
    if not math.isfinite(found) or found > longest:
        raise InvalidInput(f"{where}: {value!r} is longer than {longest / 86400:g} days")
    return found


def _rooted(ws: Workspace, path: str, what: str) -> str:
    """Return `path` relative to the workspace root (absolute if outside it); NotFound if it
    is not a file. A module path (no .py, no slash) is returned as it is."""
    if not path.endswith((".py", ".yaml", ".yml", ".json")) and "/" not in path:
        return path
    file = Path(path).expanduser()
    candidates = [file] if file.is_absolute() else [ws.root / file, Path.cwd() / file]
    for candidate in candidates:
        if candidate.is_file():
            resolved = candidate.resolve()
            try:
                return resolved.relative_to(ws.root.resolve()).as_posix()
            except ValueError:
                return str(resolved)
    raise NotFound(f"{what} {path} does not exist (paths are relative to {ws.root})")


def _from(policy: Policy) -> str:
    return policy.source or "Python"
