"""Building a pipeline's graph: lazy outputs, node names, datasets, and the mistakes it names."""

from __future__ import annotations

import pytest

from loopml import Dataset
from loopml.data.entities import DatasetVersion
from loopml.errors import InvalidInput
from loopml.pipelines.graph import Graph, Pipeline, StepOutput, pipeline
from loopml.pipelines.step import step


class Resolver:
    """Stands in for the workspace: turns refs into dataset versions and counts the calls."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def __call__(self, ref: str) -> DatasetVersion:
        self.calls.append(ref)
        name, _, version = ref.partition("@")
        number = int(version.removeprefix("v")) if version.startswith("v") else 7
        digest = "blake3:" + f"{len(self.calls):064x}"
        return DatasetVersion(
            1, name, number, digest, None, "file", "data.csv", 1, 10, "", "me", 0, (), None
        )  # type: ignore[arg-type]


def build(p: Pipeline, **params: object) -> Graph:
    return p.build(p.bind(params), Resolver())


@step
def load(n: int) -> list[int]:
    return list(range(n))


@step
def split(rows: list[int], ratio: float = 0.5) -> tuple[list[int], list[int]]:
    cut = int(len(rows) * ratio)
    return rows[:cut], rows[cut:]


@step
def train(rows: list[int], lr: float = 0.1) -> float:
    return sum(rows) * lr


@step
def report(score: float) -> None:
    print(score)


def test_a_pipeline_wires_outputs_to_inputs_and_keeps_plain_params():
    @pipeline
    def flow(n: int = 10, lr: float = 0.1) -> None:
        rows = load(n)
        train_rows, _test_rows = split(rows, ratio=0.8)
        report(train(train_rows, lr=lr))

    graph = build(flow, n=5)
    assert list(graph.nodes) == ["load", "split", "train", "report"]
    assert graph.nodes["load"].params == {"n": 5}
    assert graph.nodes["split"].inputs == {"rows": StepOutput("load", "output", 0)}
    assert graph.nodes["split"].params == {"ratio": 0.8}
    assert graph.nodes["train"].inputs == {"rows": StepOutput("split", "output_0", 0)}
    assert graph.nodes["train"].params == {"lr": 0.1}
    assert graph.nodes["report"].upstream == {"train"}
    assert graph.downstream_of({"split"}) == {"split", "train", "report"}


def test_outputs_are_lazy_placeholders_while_the_graph_is_built():
    seen: list[object] = []

    @pipeline
    def flow() -> None:
        rows = load(3)
        seen.append(rows)
        seen.append(split(rows))
        seen.append(report(1.0))

    build(flow)
    rows, halves, nothing = seen
    assert rows == StepOutput("load", "output", 0)
    assert halves == (StepOutput("split", "output_0", 0), StepOutput("split", "output_1", 1))
    assert nothing is None  # a step with no outputs gives nothing to pass on


def test_a_step_called_again_gets_a_numbered_node():
    @pipeline
    def flow() -> None:
        rows = load(10)
        train(rows, lr=0.1)
        train(rows, lr=0.2)
        train(rows, lr=0.3)

    graph = build(flow)
    assert list(graph.nodes) == ["load", "train", "train_2", "train_3"]
    assert [graph.nodes[n].params["lr"] for n in ("train", "train_2", "train_3")] == [0.1, 0.2, 0.3]


def test_unpacking_a_single_output_says_how_to_declare_several():
    @pipeline
    def flow() -> None:
        _a, _b = load(3)

    with pytest.raises(InvalidInput, match=r"step 'load' has one output.*tuple\[A, B\].*outputs=2"):
        build(flow)


def test_an_output_cannot_decide_an_if():
    @pipeline
    def flow() -> None:
        score = train(load(3))
        if score:
            report(score)

    with pytest.raises(InvalidInput, match=r"'train' is not known while.*branch inside a step"):
        build(flow)


def test_an_output_cannot_be_formatted_into_text():
    @step
    def greet(text: str) -> str:
        return text

    @pipeline
    def flow() -> None:
        greet(f"rows: {load(3)}")

    with pytest.raises(InvalidInput, match=r"'load' is not known while.*format it there"):
        build(flow)


def test_passing_all_outputs_at_once_says_to_unpack_them():
    @pipeline
    def flow() -> None:
        train(split(load(3)))

    with pytest.raises(
        InvalidInput, match=r"'rows' was given all the outputs of step 'split' at once; unpack"
    ):
        build(flow)


def test_outputs_inside_a_list_are_refused_rather_than_sent_as_placeholders():
    @step
    def total(parts: list[list[int]]) -> int:
        return sum(map(len, parts))

    @pipeline
    def flow() -> None:
        a, b = split(load(4))
        total([a, b])

    with pytest.raises(
        InvalidInput, match="'parts' holds the output of step 'split' inside a list"
    ):
        build(flow)


def test_passing_a_step_instead_of_its_output_says_to_call_it():
    @pipeline
    def flow() -> None:
        train(load)

    with pytest.raises(
        InvalidInput, match=r"was given the step 'load' itself; call it.*load\(\.\.\.\)"
    ):
        build(flow)


def test_a_bad_call_of_a_step_shows_its_signature():
    @pipeline
    def flow() -> None:
        load(1, 2)

    with pytest.raises(InvalidInput, match=r"step 'load': too many .*\(n: int\)"):
        build(flow)


def test_a_pipeline_that_calls_no_steps_is_refused():
    @pipeline
    def empty(n: int = 1) -> None:
        load.fn(n)  # the plain function: no node

    with pytest.raises(InvalidInput, match="pipeline 'empty' called no steps; call functions"):
        build(empty)


def test_a_pipeline_called_inside_another_is_refused_before_anything_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # were a workspace opened, it would be made here

    @pipeline
    def inner() -> None:
        load(1)

    @pipeline
    def outer() -> None:
        inner()

    with pytest.raises(InvalidInput, match="pipeline 'inner' was called inside another pipeline"):
        build(outer)
    assert list(tmp_path.iterdir()) == []


def test_pipeline_decorates_plain_functions_only():
    with pytest.raises(InvalidInput, match="@pipeline decorates a plain function"):
        pipeline(load)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="@pipeline decorates a plain function"):
        pipeline(len)  # type: ignore[arg-type]


@step
def rows_of(data: Dataset, extra: Dataset | None = None) -> int:
    return data.num_files


def test_dataset_params_are_resolved_once_per_ref():
    @pipeline
    def flow(data: Dataset = "churn@v2") -> None:  # type: ignore[assignment]
        rows_of(data)
        rows_of(data, extra="churn@v2")
        rows_of("iris@latest")

    resolver = Resolver()
    graph = flow.build(flow.bind({}), resolver)
    assert resolver.calls == ["churn@v2", "iris@latest"]
    first, second, third = (graph.nodes[n] for n in ("rows_of", "rows_of_2", "rows_of_3"))
    assert first.datasets["data"].ref == "churn@v2"
    assert second.datasets["data"] is first.datasets["data"] is second.datasets["extra"]
    assert third.datasets["data"].name == "iris"
    assert first.params == {"extra": None}  # an optional dataset left out is a plain None


def test_a_dataset_version_can_be_passed_as_it_is():
    version = Resolver()("churn@v3")

    @pipeline
    def flow() -> None:
        rows_of(version)

    resolver = Resolver()
    graph = flow.build({}, resolver)
    assert graph.nodes["rows_of"].datasets["data"] is version
    assert resolver.calls == []


def test_a_dataset_param_given_something_else_says_what_to_pass():
    @pipeline
    def flow() -> None:
        rows_of(3)

    with pytest.raises(InvalidInput, match="'data' is a Dataset; pass a ref like 'churn@v2'"):
        build(flow)


@step
def plus_one(x: int) -> int:
    return x + 1


def test_an_error_in_the_pipeline_body_is_one_line_with_where_it_happened():
    @pipeline
    def arithmetic():
        y = plus_one(1)
        plus_one(y + 1)  # type: ignore[operator]

    @pipeline
    def typo():
        plus_one(undefined_name)  # type: ignore[name-defined]  # noqa: F821

    with pytest.raises(
        InvalidInput,
        match=r"(?s)'arithmetic': building its graph failed: "
        r"TypeError: .*StepOutput.* \(at test_graph.py:\d+\); a step's output "
        r"has no value while the graph is built",
    ):
        arithmetic.build({}, lambda ref: None)  # type: ignore[arg-type,return-value]
    with pytest.raises(InvalidInput, match=r"NameError: name 'undefined_name' is not defined"):
        typo.build({}, lambda ref: None)  # type: ignore[arg-type,return-value]
