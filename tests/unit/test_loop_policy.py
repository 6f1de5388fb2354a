"""Policy files as people write them: what parses, and what each mistake is told."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from loopml.automation import policy as policies
from loopml.automation.policy import DEFAULT_COOLDOWN_S, Policy, Rollout, Trigger
from loopml.errors import InvalidInput, NotFound


def spec(**changes: Any) -> dict[str, Any]:
    """Return a good policy mapping, updated by `changes` (None removes a key)."""
    data: dict[str, Any] = {
        "name": "churn-retrain",
        "pipeline": "pipelines/churn.py:churn",
        "triggers": ["manual"],
        "register_as": "churn-model",
        "evaluation": {"data": "churn-holdout@latest", "target": "y"},
        "gate": "gates/churn.yaml",
    }
    data.update(changes)
    return {k: v for k, v in data.items() if v is not None}


def refused(data: object) -> str:
    """Return the message of the InvalidInput that parsing `data` raises."""
    with pytest.raises(InvalidInput) as caught:
        policies.parse(data)
    return str(caught.value)


def test_a_minimal_policy_gets_its_defaults() -> None:
    policy = policies.parse(spec())

    assert policy.name == "churn-retrain"
    assert policy.pipeline == "pipelines/churn.py:churn"
    assert policy.triggers == (Trigger("manual"),)
    assert policy.evaluation == {"data": "churn-holdout@latest", "target": "y"}
    assert policy.model == "train"
    assert policy.params == {}
    assert policy.rollout is None
    assert policy.cooldown_s == DEFAULT_COOLDOWN_S
    assert (policy.approval, policy.executor) == ("none", "local")


def test_a_full_policy_reads_every_key() -> None:
    policy = policies.parse(
        spec(
            params={"data": "churn@latest", "depth": 4},
            triggers=[
                {"schedule": "0  3 * * *"},
                {"drift": {"monitor": "churn-watch", "when": "drift_share > 0.3"}},
                {"performance": {"monitor": "churn-watch", "when": "accuracy < 0.8"}},
                {"new_data": {"dataset": "churn"}},
                {"manual": {}},
            ],
            model="fit:model",
            evaluation="churn-holdout@v3",
            rollout={"deployment": "churn-api", "steps": [25, 100], "interval": "2m"},
            cooldown="30m",
            approval="manual",
            executor="ray",
        )
    )

    assert [t.kind for t in policy.triggers] == [
        "schedule",
        "drift",
        "performance",
        "new_data",
        "manual",
    ]
    assert policy.triggers[0].settings == {"cron": "0 3 * * *"}  # spaces made single
    assert policy.monitors == ["churn-watch"]
    assert policy.params == {"data": "churn@latest", "depth": 4}
    assert policy.model == "fit:model"
    assert policy.evaluation == {"data": "churn-holdout@v3", "target": None}
    assert policy.rollout == Rollout("churn-api", steps=(25, 100), interval_s=120.0)
    assert policy.cooldown_s == 1800.0
    assert (policy.approval, policy.executor) == ("manual", "ray")


@pytest.mark.parametrize("cooldown", [0, "0", "none", None])
def test_a_cooldown_of_zero_means_none(cooldown: object) -> None:
    data = spec()
    data["cooldown"] = cooldown

    assert policies.parse(data).cooldown_s == 0.0


@pytest.mark.parametrize(
    "key", ["name", "pipeline", "triggers", "register_as", "gate", "evaluation"]
)
@pytest.mark.parametrize("empty", [None, "", []])
def test_a_missing_required_key_is_named_with_an_example(key: str, empty: object) -> None:
    data = spec()
    if empty is None:
        del data[key]
    else:
        data[key] = empty

    message = refused(data)

    assert f"needs {key!r}" in message
    assert message.split(": ", 1)[1].strip()  # and says what to give, e.g. "like churn-retrain"


def test_an_unknown_key_is_named_with_the_keys_there_are() -> None:
    message = refused(spec(schedule="0 3 * * *", retries=2))

    assert "unknown key(s) retries, schedule" in message
    assert "triggers" in message
    assert "register_as" in message


@pytest.mark.parametrize("data", [["name", "x"], "name: x", None, 3])
def test_a_policy_that_is_not_a_mapping_is_refused(data: object) -> None:
    message = refused(data)

    assert "is a mapping with keys" in message
    assert "triggers" in message


def test_a_bad_name_is_named() -> None:
    message = refused(spec(name="churn retrain!"))

    assert "policy name 'churn retrain!'" in message
    assert "letters, digits" in message


def test_a_pipeline_without_its_function_is_refused() -> None:
    message = refused(spec(pipeline="pipelines/churn.py"))

    assert "pipeline 'pipelines/churn.py'" in message
    assert "FILE.py:FUNCTION" in message


def test_params_that_are_not_a_mapping_are_refused() -> None:
    assert "params is a mapping" in refused(spec(params=["depth", 4]))


def test_triggers_that_are_not_a_list_are_refused() -> None:
    message = refused(spec(triggers={"schedule": "0 3 * * *"}))

    assert "triggers is a list" in message
    assert "schedule" in message


def test_an_unknown_trigger_kind_is_named_with_the_kinds_there_are() -> None:
    message = refused(spec(triggers=[{"webhook": {"url": "http://x"}}]))

    assert "unknown trigger 'webhook'" in message
    assert "schedule, drift, performance, new_data, manual" in message


@pytest.mark.parametrize(
    "trigger",
    [
        {"schedule": "0 3 * * *", "manual": {}},  # two keys in one item
        ["schedule", "0 3 * * *"],
        "nightly",
        {},
    ],
)
def test_a_trigger_that_is_not_one_kind_settings_pair_is_refused(trigger: object) -> None:
    message = refused(spec(triggers=["manual", trigger]))

    assert "trigger 2 is one 'kind: settings' pair" in message
    assert "drift: {monitor:" in message  # an example of the right shape


@pytest.mark.parametrize("cron", ["every night", "0 25 * * *", "* * *", 3])
def test_a_bad_cron_expression_is_refused_with_its_format(cron: object) -> None:
    message = refused(spec(triggers=[{"schedule": cron}]))

    assert "trigger 1 (schedule)" in message
    assert f"{cron!r} is not a cron expression" in message
    assert "minute hour day month weekday" in message


def test_a_schedule_may_be_written_as_a_mapping() -> None:
    policy = policies.parse(spec(triggers=[{"schedule": {"cron": "*/5 * * * *"}}]))

    assert policy.triggers == (Trigger("schedule", {"cron": "*/5 * * * *"}),)


@pytest.mark.parametrize(
    ("kind", "rule", "belongs"),
    [
        ("drift", "accuracy < 0.8", "performance"),
        ("drift", "p99_ms > 50", "performance"),
        ("performance", "drift_share > 0.3", "drift"),
        ("performance", "drift.age > 0.2", "drift"),
    ],
)
def test_a_metric_under_the_wrong_kind_of_trigger_says_where_it_belongs(
    kind: str, rule: str, belongs: str
) -> None:
    message = refused(spec(triggers=[{kind: {"monitor": "churn-watch", "when": rule}}]))

    metric = rule.split(maxsplit=1)[0]
    assert f"trigger 1 ({kind})" in message
    assert f"{metric} is a {belongs} metric; list it under {belongs}" in message


@pytest.mark.parametrize("rule", ["drift_share above 0.3", "drift_share > lots", "> 0.3"])
def test_a_rule_that_is_not_metric_op_number_is_refused(rule: str) -> None:
    message = refused(spec(triggers=[{"drift": {"monitor": "churn-watch", "when": rule}}]))

    assert repr(rule) in message
    assert "METRIC OP NUMBER" in message or "is not a number" in message


def test_a_rule_with_an_unknown_metric_lists_the_metrics() -> None:
    message = refused(spec(triggers=[{"drift": {"monitor": "m", "when": "drfit_share > 0.3"}}]))

    assert "unknown metric 'drfit_share'" in message
    assert "drift_share" in message


@pytest.mark.parametrize(
    "settings",
    [{"monitor": "churn-watch"}, {"when": "drift_share > 0.3"}, "churn-watch", None],
)
def test_a_monitor_trigger_needs_a_monitor_and_a_rule(settings: object) -> None:
    message = refused(spec(triggers=[{"drift": settings}]))

    assert "trigger 1 (drift): give a monitor and a rule" in message
    assert "when: 'drift_share > 0.3'" in message


def test_a_bad_monitor_name_is_named() -> None:
    message = refused(spec(triggers=[{"drift": {"monitor": "a b", "when": "drift_share > 0.3"}}]))

    assert "trigger 1 (drift): monitor 'a b' is not allowed" in message


@pytest.mark.parametrize("settings", ["churn", {"dataset": "churn"}])
def test_new_data_names_a_dataset_either_way(settings: object) -> None:
    policy = policies.parse(spec(triggers=[{"new_data": settings}]))

    assert policy.triggers == (Trigger("new_data", {"dataset": "churn"}),)


@pytest.mark.parametrize("settings", [{}, "churn@v2", {"dataset": "no way"}])
def test_new_data_with_a_bad_dataset_is_refused(settings: object) -> None:
    message = refused(spec(triggers=[{"new_data": settings}]))
    assert "dataset name" in message or "new_data names a dataset" in message


@pytest.mark.parametrize(
    "triggers",
    [
        ["manual", {"manual": {}}],
        [{"schedule": "0 3 * * *"}, {"schedule": {"cron": "0  3 * *  *"}}],
        [{"new_data": "churn"}, {"new_data": {"dataset": "churn"}}],
        [
            {"drift": {"monitor": "m", "when": "drift_share > 0.3"}},
            {"drift": {"monitor": "m", "when": " drift_share > 0.3 "}},
        ],
    ],
)
def test_a_trigger_listed_twice_is_refused(triggers: list[object]) -> None:
    assert "a trigger is listed twice" in refused(spec(triggers=triggers))


def test_the_same_rule_on_two_monitors_is_two_triggers() -> None:
    policy = policies.parse(
        spec(
            triggers=[
                {"drift": {"monitor": "a", "when": "drift_share > 0.3"}},
                {"drift": {"monitor": "b", "when": "drift_share > 0.3"}},
            ]
        )
    )

    assert policy.monitors == ["a", "b"]


@pytest.mark.parametrize("approval", ["auto", True, "Manual"])
def test_a_bad_approval_is_refused_with_the_choices(approval: object) -> None:
    message = refused(spec(approval=approval))

    assert f"approval is 'none' or 'manual', not {approval!r}" in message


@pytest.mark.parametrize("executor", ["k8s", "", 1])
def test_a_bad_executor_is_refused_with_the_choices(executor: object) -> None:
    message = refused(spec(executor=executor))

    assert f"executor is 'local' or 'ray', not {executor!r}" in message


def test_a_bad_register_as_is_named() -> None:
    assert "register_as 'churn model' is not allowed" in refused(spec(register_as="churn model"))


@pytest.mark.parametrize(
    ("evaluation", "expected"),
    [
        ({"target": "y"}, "evaluation is {data: DATASET@VERSION, target: COLUMN}"),
        (["churn@v1"], "evaluation is {data: DATASET@VERSION, target: COLUMN}"),
        ({"data": "churn@v1", "label": "y"}, "evaluation has data and target, not ['label']"),
        ({"data": "churn@v1", "target": 3}, "evaluation target is a column name, not 3"),
    ],
)
def test_a_bad_evaluation_is_refused(evaluation: object, expected: str) -> None:
    assert expected in refused(spec(evaluation=evaluation))


def test_a_rollout_needs_a_deployment() -> None:
    message = refused(spec(rollout={"steps": [10, 100]}))

    assert "rollout is {deployment: NAME, strategy: canary" in message


def test_a_rollout_with_an_unknown_key_lists_the_keys() -> None:
    message = refused(spec(rollout={"deployment": "api", "weight": 10}))

    assert "rollout has no ['weight']" in message
    assert "max_error_rate" in message


def test_a_blue_green_rollout_is_refused_for_a_canary() -> None:
    message = refused(spec(rollout={"deployment": "api", "strategy": "bluegreen"}))

    assert "rollout strategy 'bluegreen' is not automated" in message
    assert "canary" in message


@pytest.mark.parametrize("steps", [[10, 50], [50, 10, 100], [0, 100], [10, 100.0], "10,100"])
def test_rollout_steps_must_rise_to_100(steps: object) -> None:
    message = refused(spec(rollout={"deployment": "api", "steps": steps}))

    assert "rollout" in message
    assert "100" in message


def test_rollout_steps_that_stop_short_say_to_add_100() -> None:
    message = refused(spec(rollout={"deployment": "api", "steps": [10, 50]}))

    assert "policy 'churn-retrain': rollout: the last canary step must be 100" in message


@pytest.mark.parametrize(
    ("key", "value"),
    [("max_error_rate", 2), ("min_requests", 0), ("max_p99_ms", -5)],
)
def test_rollout_limits_are_checked_now(key: str, value: object) -> None:
    message = refused(spec(rollout={"deployment": "api", key: value}))

    assert "policy 'churn-retrain': rollout:" in message


@pytest.mark.parametrize("key", ["min_metrics", "max_metrics"])
@pytest.mark.parametrize("bounds", [["accuracy"], "accuracy", {"accuracy": "high"}])
def test_rollout_metric_bounds_that_are_not_a_mapping_of_numbers_are_refused(
    key: str, bounds: object
) -> None:
    message = refused(spec(rollout={"deployment": "api", key: bounds}))

    assert "policy 'churn-retrain': rollout" in message
    assert "accuracy" in message


def test_a_bad_rollout_interval_names_the_interval() -> None:
    message = refused(spec(rollout={"deployment": "api", "interval": "soon"}))

    assert "'soon' is not a duration" in message
    assert "rollout" in message
    assert "interval" in message


def test_a_bad_cooldown_names_the_cooldown() -> None:
    message = refused(spec(cooldown="soon"))

    assert "policy 'churn-retrain': cooldown: 'soon' is not a duration" in message
    assert "1h30m" in message


@pytest.mark.parametrize("cooldown", [-5, "-1h", float("inf")])
def test_a_cooldown_below_zero_or_endless_is_refused(cooldown: object) -> None:
    assert "cooldown" in refused(spec(cooldown=cooldown))


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("cooldown", 1e308),
        ("cooldown", "400d"),
        ("cooldown", False),
        ("rollout", {"deployment": "api", "interval": 1e308}),
        ("rollout", {"deployment": "api", "interval": "8d"}),
        ("rollout", {"deployment": "api", "timeout": "1000d"}),
    ],
)
def test_durations_past_a_sensible_length_are_refused(key: str, value: object) -> None:
    message = refused(spec(**{key: value}))
    assert key in message and ("longer than" in message or "not a duration" in message)


@pytest.mark.parametrize("cron", ["0 0 3 * * *", "*/1 * * * * *"])
def test_a_cron_with_seconds_is_refused(cron: str) -> None:
    assert "(minute hour day month weekday)" in refused(spec(triggers=[{"schedule": cron}]))


@pytest.mark.parametrize(
    ("trigger", "expected"),
    [
        ({"new_data": {"dataset": "churn", "x": 1}}, "new_data names a dataset"),
        ({"manual": [1, 2, 3]}, "manual takes no settings"),
    ],
)
def test_triggers_refuse_settings_they_do_not_take(trigger: object, expected: str) -> None:
    assert expected in refused(spec(triggers=[trigger]))


def test_load_reads_a_policy_file(tmp_path: Path) -> None:
    file = tmp_path / "churn.yaml"
    file.write_text(
        "name: churn-retrain\n"
        "pipeline: pipelines/churn.py:churn\n"
        "triggers:\n"
        "  - schedule: '0 3 * * *'\n"
        "  - manual\n"
        "register_as: churn-model\n"
        "evaluation: {data: churn-holdout@latest, target: y}\n"
        "gate: gates/churn.yaml\n"
        "cooldown: 2h\n",
        encoding="utf-8",
    )

    policy = policies.load(file)

    assert policy.source == str(file)
    assert policy.triggers == (Trigger("schedule", {"cron": "0 3 * * *"}), Trigger("manual"))
    assert policy.cooldown_s == 7200.0


def test_load_of_a_missing_file_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match=r"policy file .*nope\.yaml does not exist"):
        policies.load(tmp_path / "nope.yaml")


def test_load_of_invalid_yaml_names_the_file(tmp_path: Path) -> None:
    file = tmp_path / "broken.yaml"
    file.write_text("name: [churn\ntriggers: {\n", encoding="utf-8")

    with pytest.raises(InvalidInput) as caught:
        policies.load(file)

    assert f"policy file {file} is not valid YAML" in str(caught.value)
    assert "\n" not in str(caught.value)  # one line, as the CLI prints it


def test_load_of_a_yaml_list_says_a_policy_is_a_mapping(tmp_path: Path) -> None:
    file = tmp_path / "list.yaml"
    file.write_text("- name: churn-retrain\n- pipeline: p.py:p\n", encoding="utf-8")

    with pytest.raises(InvalidInput) as caught:
        policies.load(file)

    assert f"policy file {file} is a mapping with keys name, pipeline" in str(caught.value)


def test_load_names_the_file_when_a_key_is_missing(tmp_path: Path) -> None:
    file = tmp_path / "short.yaml"
    file.write_text("name: churn-retrain\n", encoding="utf-8")

    with pytest.raises(InvalidInput, match=r"policy file .*short\.yaml needs 'pipeline'"):
        policies.load(file)


@pytest.mark.parametrize(
    ("written", "key"),
    [
        ({"schedule": "0 3 * * *"}, "schedule 0 3 * * *"),
        ({"schedule": {"cron": " 0   3 * * * "}}, "schedule 0 3 * * *"),
        (
            {"drift": {"monitor": "churn-watch", "when": " drift_share > 0.3 "}},
            "drift churn-watch: drift_share > 0.3",
        ),
        (
            {"performance": {"monitor": "churn-watch", "when": "accuracy < 0.8"}},
            "performance churn-watch: accuracy < 0.8",
        ),
        ({"new_data": "churn"}, "new_data churn"),
        ({"new_data": {"dataset": "churn"}}, "new_data churn"),
        ("manual", "manual"),
        ({"manual": {}}, "manual"),
    ],
)
def test_a_trigger_key_is_the_same_however_it_is_written(written: object, key: str) -> None:
    (trigger,) = policies.parse(spec(triggers=[written])).triggers

    assert trigger.key == key
    assert trigger == Trigger(trigger.kind, trigger.settings)


def test_a_trigger_key_survives_a_round_trip_through_the_store() -> None:
    first = policies.parse(
        spec(
            triggers=[
                {"schedule": "0 3 * * *"},
                {"drift": {"monitor": "churn-watch", "when": "drift_share > 0.3"}},
                {"new_data": "churn"},
                "manual",
            ]
        )
    )

    again = policies.parse(first.spec())

    assert [t.key for t in again.triggers] == [t.key for t in first.triggers]


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {
            "params": {"data": "churn@latest", "depth": 4},
            "triggers": [
                {"schedule": "0 3 * * 1"},
                {"drift": {"monitor": "churn-watch", "when": "drift.age > 0.2"}},
                {"performance": {"monitor": "churn-watch", "when": "f1 < 0.7"}},
                {"new_data": "churn"},
                "manual",
            ],
            "model": "train:model",
            "rollout": {
                "deployment": "churn-api",
                "steps": [5, 20, 100],
                "interval": "90s",
                "min_requests": 200,
                "max_error_rate": 0.05,
                "max_p99_ms": 80,
                "min_metrics": {"accuracy": 0.8},
                "max_metrics": {"rmse": 3.0},
            },
            "cooldown": 0,
            "approval": "manual",
            "executor": "ray",
        },
    ],
)
def test_a_policy_spec_parses_back_to_the_same_policy(changes: dict[str, Any]) -> None:
    policy = policies.parse(spec(**changes))

    again = policies.parse(policy.spec())

    assert again == policy
    assert again.spec() == policy.spec()


def test_a_spec_is_what_a_policy_file_writes() -> None:
    policy = Policy(
        name="p",
        pipeline="p.py:p",
        register_as="m",
        gate="g.yaml",
        evaluation={"data": "d@v1", "target": None},
        triggers=(Trigger("schedule", {"cron": "0 3 * * *"}), Trigger("manual")),
        rollout=Rollout("api"),
    )

    written = policy.spec()

    assert written["triggers"] == [{"schedule": "0 3 * * *"}, {"manual": {}}]
    assert written["rollout"]["strategy"] == "canary"
    assert written["rollout"]["steps"] == [10, 50, 100]
    assert written["cooldown"] == DEFAULT_COOLDOWN_S
    assert set(written) == set(policies.KEYS)
