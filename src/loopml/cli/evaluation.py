"""`loopml models evaluate | evaluations | compare | promote` and `loopml check`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from loopml.core.workspace import Workspace
    from loopml.evaluation.gates import GateResult
    from loopml.evaluation.records import Evaluation

ModelArg = Annotated[
    str, typer.Argument(help="models:/NAME/N, NAME/N, NAME@ALIAS, NAME (latest) or runs:/RUN/PATH.")
]
DataOption = Annotated[
    str, typer.Option("--data", help="Dataset version (churn@v2) or a CSV/Parquet file.")
]
TargetOption = Annotated[
    str | None, typer.Option("--target", help="The column holding the true values.")
]
FileOption = Annotated[
    str | None, typer.Option("--file", help="Table of the dataset version, when it has several.")
]
HtmlOption = Annotated[Path | None, typer.Option("--html", help="Also write an HTML report.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
GateOption = Annotated[
    Path, typer.Option("--gate", help="Gate YAML file (see docs/evaluation.md).")
]


def evaluate(
    model: ModelArg,
    data: DataOption,
    target: Annotated[str, typer.Option("--target", help="The column holding the true values.")],
    sensitive: Annotated[
        list[str] | None,
        typer.Option("--sensitive", help="Sensitive feature for fairness metrics (repeatable)."),
    ] = None,
    slices: Annotated[
        list[str] | None, typer.Option("--slice", help="Column to score per value (repeatable).")
    ] = None,
    task: Annotated[
        str | None, typer.Option("--task", help="classification or regression (else inferred).")
    ] = None,
    importance: Annotated[
        bool, typer.Option("--importance/--no-importance", help="Permutation importance.")
    ] = True,
    file: FileOption = None,
    html: HtmlOption = None,
    as_json: JsonOption = False,
) -> None:
    """Score a model on a dataset version and store the evaluation (metrics, slices, fairness)."""
    from loopml.evaluation.scoring import evaluate as evaluate_
    from loopml.registry.uris import expand

    _ws()
    found = evaluate_(
        expand(model),
        data,
        target,
        sensitive_features=sensitive or (),
        slices=slices or (),
        task=task,
        importance=importance,
        file=file,
    )
    if html is not None:
        from loopml.cli.output import write_page
        from loopml.evaluation.report import render_evaluation

        write_page(html, render_evaluation(found))
    if as_json:
        from loopml.cli.output import print_json

        print_json(found.to_dict())
        return
    _print_evaluation(found)
    if html is not None:
        from loopml.cli.output import console

        console.print(f"Report written to {html}")


def evaluations(
    name: Annotated[str, typer.Argument(help="The registered model's name.")],
    version: Annotated[int | None, typer.Option("--version", help="Only this version.")] = None,
    html: Annotated[
        str | None,
        typer.Option("--html-of", help="Write the HTML report of this evaluation id instead."),
    ] = None,
    output: Annotated[Path, typer.Option("--output", help="Where --html-of writes.")] = Path(
        "evaluation.html"
    ),
    as_json: JsonOption = False,
) -> None:
    """List a model's stored evaluations, newest first (or write one's HTML report)."""
    from loopml.cli.output import console, print_json, table, when
    from loopml.evaluation import records
    from loopml.registry import models

    ws = _ws()
    if html is not None:
        from loopml.cli.output import write_page
        from loopml.evaluation.report import render_evaluation

        write_page(output, render_evaluation(records.get(ws, html)))
        console.print(f"Report written to {output}")
        return
    models.get_model(ws, name)  # an unknown model is an error, not an empty list
    found = records.of_model(ws, name, version)
    if as_json:
        print_json([e.to_dict() for e in found])
        return
    table(
        f"Evaluations of {name}",
        ["ID", "VERSION", "DATASET", "TARGET", "ROWS", "METRICS", "WHEN"],
        [
            (
                e.id[:8],
                e.model_version,
                e.dataset,
                e.target,
                e.rows,
                _metrics_text(e.metrics),
                when(e.created_at, short=True),
            )
            for e in found
        ],
        wrap=("METRICS", "DATASET"),
    )


def compare(
    models_: Annotated[list[str], typer.Argument(metavar="MODEL...", help="Models to compare.")],
    data: DataOption,
    target: TargetOption = None,
    file: FileOption = None,
    html: HtmlOption = None,
    as_json: JsonOption = False,
) -> None:
    """Score several models on the same rows (reusing stored evaluations) side by side."""
    from loopml.cli.output import console, print_json, table
    from loopml.evaluation.metrics import lower_is_better
    from loopml.evaluation.scoring import compare as compare_
    from loopml.registry.uris import expand

    _ws()
    found = compare_([expand(m) for m in models_], data, target=target, file=file)
    if html is not None:
        from loopml.cli.output import write_page
        from loopml.evaluation.report import render_comparison

        write_page(html, render_comparison(found))
    if as_json:
        print_json([e.to_dict() for e in found])
        return
    names = list(dict.fromkeys(k for e in found for k in e.metrics))
    rows = []
    for metric in names:
        values = [e.metrics.get(metric) for e in found]
        known = [v for v in values if isinstance(v, int | float)]
        best = (min if lower_is_better(metric) else max)(known) if known else None
        rows.append(
            [metric]
            + [("" if v is None else f"{v:.4g}" + (" *" if v == best else "")) for v in values]
        )
    table(
        f"{found[0].dataset}, target {found[0].target} (* best)",
        ["METRIC"] + [e.model for e in found],
        rows,
    )
    if html is not None:
        console.print(f"Report written to {html}")


def promote(
    name: Annotated[str, typer.Argument(help="The registered model's name.")],
    version: Annotated[int, typer.Argument(help="The version to promote.")],
    alias: Annotated[str, typer.Option("--alias", help="The alias to move.")] = "champion",
    gate: Annotated[
        Path | None, typer.Option("--gate", help="Gate YAML file the version must pass.")
    ] = None,
    data: Annotated[
        str | None, typer.Option("--data", help="Dataset version to check the gate on.")
    ] = None,
    target: TargetOption = None,
    file: FileOption = None,
    force: Annotated[
        bool,
        typer.Option("--force", help="Move the alias even if the gate fails (needs --reason)."),
    ] = False,
    reason: Annotated[str, typer.Option("--reason", help="Why, kept in the alias history.")] = "",
    as_json: JsonOption = False,
) -> None:
    """Point an alias (champion) at a version that passes the gate; the move is audited."""
    from loopml.cli.output import console, print_json
    from loopml.errors import GateFailed
    from loopml.evaluation.promotion import promote as promote_

    _ws()
    try:
        event = promote_(
            name,
            version,
            alias,
            gate=gate,
            data=data,
            target=target,
            file=file,
            force=force,
            reason=reason,
        )
    except GateFailed as exc:
        from loopml.evaluation.gates import GateResult

        if isinstance(exc.result, GateResult):
            if as_json:
                print_json(exc.result.to_dict())
            else:
                _print_gate(exc.result)
        raise
    if as_json:
        print_json(event.to_dict())
        return
    if event.gate_result and event.gate_result.get("checks"):
        console.print(f"gate {'passed' if event.gate_result['passed'] else 'FAILED (forced)'}")
    before = f"v{event.from_version}" if event.from_version else "nothing"
    console.print(f"{name}@{alias}: {before} -> v{event.to_version}")


def check(
    model: Annotated[str, typer.Option("--model", help="The candidate: models:/NAME/N, NAME/N.")],
    data: DataOption,
    gate: GateOption,
    against: Annotated[
        str | None,
        typer.Option("--against", help="Reference dataset version to validate --data against."),
    ] = None,
    target: TargetOption = None,
    file: FileOption = None,
    skew_threshold: Annotated[
        float, typer.Option("--skew-threshold", help="Distance that counts as skew.")
    ] = 0.1,
    html: HtmlOption = None,
    as_json: JsonOption = False,
) -> None:
    """For CI: validate the data, gate the model on it; exit 0 if both pass, 1 if not."""
    from loopml.cli.output import console, print_json
    from loopml.evaluation.release import check_release
    from loopml.registry.uris import expand

    _ws()
    found = check_release(
        expand(model),
        data,
        gate,
        against=against,
        target=target,
        file=file,
        skew_threshold=skew_threshold,
    )
    if html is not None:
        from loopml.cli.output import write_page
        from loopml.evaluation.report import render_gate

        write_page(html, render_gate(found.gate, found.evaluation, found.validation or None))
    if as_json:
        print_json(found.to_dict())
    else:
        for path, report in found.validation.items():
            verdict = "ok" if report["ok"] else "FAILED"
            console.print(
                f"data {data}:{path} against {against}: {verdict}, {report['errors']} error(s), "
                f"{report['warnings']} warning(s)"
            )
            for issue in report["issues"]:
                console.print(f"  {issue['severity'].upper()}: {issue['message']}")
        _print_gate(found.gate)
        if html is not None:
            console.print(f"Report written to {html}")
        console.print("PASSED" if found.passed else "FAILED")
    if not found.passed:
        raise typer.Exit(1)


def _print_evaluation(found: Evaluation) -> None:
    from loopml.cli.output import console, table

    console.print(
        f"{found.model} on {found.dataset} ({found.rows} rows), target {found.target}, "
        f"{found.task}; evaluation {found.id[:8]}"
    )
    table(None, ["METRIC", "VALUE"], [(k, _value(v)) for k, v in found.metrics.items()])
    for column, rows in found.details.get("slices", {}).items():
        keys = [k for k in rows[0] if k not in ("slice", "rows")][:4] if rows else []
        table(
            f"By {column}",
            ["SLICE", "ROWS", *[k.upper() for k in keys]],
            [(r["slice"], r["rows"], *[_value(r.get(k)) for k in keys]) for r in rows],
        )
    for feature, found_fairness in found.details.get("fairness", {}).items():
        table(
            f"Fairness across {feature}",
            ["GROUP", "ROWS", "SELECTION", "TPR", "FPR"],
            [
                (
                    g["group"],
                    g["rows"],
                    _value(g["selection_rate"]),
                    _value(g["true_positive_rate"]),
                    _value(g["false_positive_rate"]),
                )
                for g in found_fairness["groups"]
            ],
        )
        console.print(
            "  " + "  ".join(f"{k} {_value(v)}" for k, v in found_fairness.items() if k != "groups")
        )
    importance = found.details.get("importance")
    if importance:
        table(
            f"Permutation importance (drop in {importance['metric']}, top 10)",
            ["FEATURE", "IMPORTANCE", "STD"],
            [
                (f["feature"], _value(f["importance"]), _value(f["std"]))
                for f in importance["features"][:10]
            ],
        )


def _print_gate(result: GateResult) -> None:
    from loopml.cli.output import console, table

    table(
        f"Gate on {result.model}, {result.dataset}",
        ["CHECK", "METRIC", "VALUE", "LIMIT", "RESULT", "WHY"],
        [
            (
                c.check,
                c.metric,
                _value(c.value),
                c.limit,
                "pass" if c.passed else "FAIL",
                c.message,
            )
            for c in result.checks
        ],
        wrap=("WHY",),
    )
    console.print(f"gate {'passed' if result.passed else 'FAILED'}")


def _metrics_text(values: dict[str, Any]) -> str:
    return " ".join(f"{k}={_value(v)}" for k, v in values.items())


def _value(value: Any) -> str:
    return "" if value is None else f"{value:.4g}" if isinstance(value, float) else str(value)


def _ws() -> Workspace:
    from loopml.core.workspace import set_workspace

    return set_workspace()
