"""The main job, as far as the loop exists today: versioned data, validation, tracked training,
cached pipelines and a sweep.

Versions scikit-learn's bundled breast-cancer data as a dataset, validates a later batch of it
against the first (an HTML report), trains a few scikit-learn models on the exact version,
tracks each run (params, per-epoch metrics, the dataset version it read, a confusion-matrix
artifact), searches the runs and prints the table. Then it runs the split-train-evaluate
pipeline of examples/pipelines/breast_cancer.py twice (the second time every step is cached)
and sweeps its params, with a report of the trials. The sweep's best model is registered and
promoted to champion past a validation gate, which then refuses a weaker model; the champion's
evaluation (metrics, slices, fairness, importance) is an HTML report. Finally the champion is
deployed behind a local server, and the weaker model goes out as a canary on live, labelled
traffic: the rollout controller promotes it or rolls it back on its live accuracy, and the
deployment's history is an HTML report. A monitor then watches the deployment against the
training data: held-out traffic passes, traffic from a "recalibrated scanner" (every feature
30 % high) drifts and loses accuracy, alerts fire, and the monitor's report draws it. Everything
lands in ./demo-output/.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from rich.console import Console
from rich.progress import track
from rich.table import Table
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import SGDClassifier
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, log_loss
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

import loopml
from loopml.core.workspace import Workspace
from loopml.tracking.report import write_report

OUT = Path("demo-output")
console = Console()


def train(alpha: float, penalty: str, epochs: int, data: tuple) -> None:  # type: ignore[type-arg]
    """Train one SGD classifier epoch by epoch, logging everything a person would compare."""
    x_train, x_test, y_train, y_test = data
    with loopml.start_run(experiment="breast-cancer", run_name=f"sgd-{penalty}-{alpha:g}") as run:
        run.log_input("breast-cancer@v1", context="training")
        run.log_params(
            {"alpha": alpha, "penalty": penalty, "epochs": epochs, "model": "SGDClassifier"}
        )
        model = SGDClassifier(loss="log_loss", alpha=alpha, penalty=penalty, random_state=0)
        for epoch in range(epochs):
            model.partial_fit(x_train, y_train, classes=[0, 1])
            run.log_metrics(
                {
                    "train_loss": log_loss(y_train, model.predict_proba(x_train)),
                    "test_loss": log_loss(y_test, model.predict_proba(x_test)),
                    "test_accuracy": accuracy_score(y_test, model.predict(x_test)),
                },
                step=epoch,
            )
        predictions = model.predict(x_test)
        run.log_metric("f1", f1_score(y_test, predictions))
        run.log_dict(
            {"confusion_matrix": confusion_matrix(y_test, predictions).tolist()}, "confusion.json"
        )


def version_data() -> loopml.data.DatasetVersion:
    """Version the data as v1, then check a later, shifted batch (v2) against it."""
    frame = load_breast_cancer(as_frame=True).frame
    path = OUT / "data" / "breast_cancer.csv"
    path.parent.mkdir(parents=True)
    frame.to_csv(path, index=False)
    v1 = loopml.data.add(path, "breast-cancer", message="the bundled data")
    # A later batch: the same columns, one of them measured on a new scale.
    later = frame.sample(frac=0.8, random_state=1)
    later["mean radius"] = later["mean radius"] * 1.3
    later.to_csv(path, index=False)
    loopml.data.add(path, "breast-cancer", message="a later batch")
    loopml.data.checkout("breast-cancer@v1")  # the workspace copy back at v1

    from loopml.data.compare import check
    from loopml.data.validation_report import render_html

    (result,) = check(loopml.set_workspace(OUT), "breast-cancer@v2", against="breast-cancer@v1")
    page = render_html(
        result.report,
        result.current,
        result.reference,
        title="breast-cancer@v2 against breast-cancer@v1",
    )
    (OUT / "data-validation.html").write_text(page, encoding="utf-8")
    table = Table(title="breast-cancer@v2 against @v1: columns that moved", header_style="bold")
    for column in ("column", "method", "score", "status"):
        table.add_column(column)
    for row in result.report.columns:
        if row["status"] != "ok":
            table.add_row(
                row["column"], row["method"] or "", f"{row['score'] or 0:.3f}", row["status"]
            )
    console.print(f"Versioned {v1.ref}: {v1.num_files} file, {v1.size:,} bytes")
    console.print(table)
    return v1


def run_pipelines() -> str:
    """Run the pipeline, run it again from the cache, sweep it; return the best trial's id."""
    from loopml.pipelines.loader import load_pipeline
    from loopml.pipelines.runner import run_pipeline
    from loopml.pipelines.sweep import run_sweep

    flow = load_pipeline("examples/pipelines/breast_cancer.py:breast_cancer")
    console.print("[bold]Pipeline breast_cancer: split -> train -> evaluate")
    first = run_pipeline(flow, {"alpha": 1e-3}, progress=True)
    started = time.perf_counter()
    again = run_pipeline(flow, {"alpha": 1e-3}, progress=True)
    cached = sum(s.status == "CACHED" for s in again.steps.values())
    console.print(
        f"Run {first.run_id[:8]}: f1 {first.metrics['f1']:.4f}. Run again: {cached} of "
        f"{len(again.steps)} steps cached, {time.perf_counter() - started:.2f} s"
    )
    console.print("[bold]Sweep: alpha x penalty, ranked by f1 (the split runs once)")
    sweep = run_sweep(
        flow,
        {"alpha": [1e-4, 1e-3, 1e-2], "penalty": ["l2", "l1"]},
        metric="f1",
        progress=True,
    )
    table = Table(title="sweep trials, best f1 first", header_style="bold")
    for column in ("trial", "alpha", "penalty", "accuracy", "f1"):
        table.add_column(column)
    for trial in sweep.trials:
        table.add_row(
            trial.run_id[:8],
            f"{trial.params['alpha']:g}",
            trial.params["penalty"],
            f"{trial.metrics.get('accuracy', float('nan')):.4f}",
            f"{trial.value or float('nan'):.4f}" + ("  best" if trial is sweep.best else ""),
        )
    console.print(table)
    write_report(
        loopml.set_workspace(OUT),
        [t.run_id for t in sweep.trials],
        OUT / "sweep.html",
        title="breast-cancer sweep",
    )
    assert sweep.best is not None
    register_best(flow, sweep.best.params, sweep.trials[-1].params)
    return sweep.best.run_id


def register_best(flow: object, params: dict[str, object], worst: dict[str, object]) -> None:
    """Register the sweep's best model, promote it past a gate, and watch the gate refuse a
    weaker one; write the evaluation and gate reports."""
    import numpy as np

    from loopml.evaluation.report import render_evaluation, render_gate
    from loopml.pipelines.runner import run_pipeline

    best = run_pipeline(flow, params)  # type: ignore[arg-type]  # every step from the cache
    weaker = run_pipeline(flow, worst)  # type: ignore[arg-type]
    test = best.output("split", "test")
    # A made-up clinic per patient stands in for a sensitive feature, to show fairness metrics.
    test["clinic"] = np.random.default_rng(0).choice(["north", "south"], size=len(test))
    test.to_csv(OUT / "held-out.csv", index=False)
    held_out = loopml.data.add(OUT / "held-out.csv", "breast-cancer-test")
    features = test.drop(columns=["target", "clinic"])
    with loopml.start_run(experiment="breast-cancer", run_name="register") as run:
        run.log_input("breast-cancer@v1", context="training")
        first = loopml.log_model(
            best.output("train"), name="breast-cancer", input_example=features.head(5)
        )
        second = loopml.log_model(
            weaker.output("train"), name="breast-cancer", input_example=features.head(5)
        )
    gate = loopml.Gate(
        [
            loopml.Threshold("f1", min=0.9),
            loopml.BeatsChampion("f1", min_delta=0.0),
            loopml.Fairness("demographic_parity_difference", max=0.2, sensitive="clinic"),
            loopml.LatencyBudget(max_ms=50),
        ],
        target="target",
    )
    event = loopml.promote("breast-cancer", 1, gate=gate, data=held_out.ref)
    console.print(
        f"Registered {first.uri} and {second.uri}; {first.uri} passed the gate on "
        f"{held_out.ref} and is breast-cancer@champion (was: {event.from_version or 'nothing'})"
    )
    try:
        loopml.promote("breast-cancer", 2, gate=gate, data=held_out.ref)
    except loopml.errors.GateFailed as refused:
        console.print(f"The gate kept the champion: {refused}")
        assert refused.result is not None
        (OUT / "gate.html").write_text(render_gate(refused.result), encoding="utf-8")
    evaluation = loopml.evaluate(
        "models:/breast-cancer@champion",
        data=held_out.ref,
        target="target",
        sensitive_features=["clinic"],
        slices=["clinic", "mean radius"],
    )
    (OUT / "evaluation.html").write_text(render_evaluation(evaluation), encoding="utf-8")
    table = Table(title=f"breast-cancer@champion on {held_out.ref}", header_style="bold")
    for column in ("metric", "value"):
        table.add_column(column)
    for name, value in evaluation.metrics.items():
        table.add_row(name, f"{value:.4f}" if value is not None else "")
    console.print(table)
    champion = loopml.load_model("models:/breast-cancer@champion")
    console.print(f"Loaded back {champion!r}: predicts {champion.predict(features.head(3))}")
    deploy_champion(test, evaluation.metrics["accuracy"] or 0.0)


def deploy_champion(test: object, champion_accuracy: float) -> None:
    """Serve the champion as a deployment, canary the weaker model on live labelled traffic,
    and let the rollout controller promote it or roll it back; write the deployment report."""
    import socket
    import threading

    import httpx
    import uvicorn

    from loopml.core.workspace import workspace
    from loopml.deploy import deployments, strategies
    from loopml.deploy.report import render_deployment
    from loopml.serving.server import create_deployment_server

    ws = workspace()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    deployments.create(ws, "breast-cancer", "breast-cancer@champion", host="127.0.0.1", port=port)
    server = uvicorn.Server(
        uvicorn.Config(
            create_deployment_server("breast-cancer", poll_s=0.2), port=port, log_level="error"
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    while not server.started:
        time.sleep(0.05)
    canary = strategies.canary(
        ws,
        "breast-cancer",
        "breast-cancer/2",
        steps=(50, 100),
        interval_s=1.0,
        min_requests=30,
        min_metrics={"accuracy": champion_accuracy},
    )
    console.print(f"Deployment breast-cancer at {url}: {canary.routing.describe()}")
    rows = test.drop(columns=["target", "clinic"]).to_dict("records")  # type: ignore[attr-defined]
    labels = test["target"].tolist()  # type: ignore[index]
    deadline = time.monotonic() + 60
    with httpx.Client(base_url=url) as client:
        while (
            deployments.get(ws, "breast-cancer").routing.candidate and time.monotonic() < deadline
        ):
            for row, label in zip(rows, labels, strict=True):  # live traffic, labelled later
                answer = client.post("/invocations", json={"dataframe_records": [row]})
                feedback = {"request_id": answer.headers["x-request-id"], "label": label}
                client.post("/feedback", json=feedback)
    watch(url, test)
    close_the_loop(url, test)
    server.should_exit = True
    thread.join()
    events = deployments.history(ws, "breast-cancer")
    for event in events:
        console.print(
            f"  {event.kind:<12} {event.routing.describe()}  {event.reason}", markup=False
        )
    (OUT / "deployment.html").write_text(
        render_deployment(deployments.get(ws, "breast-cancer"), events), encoding="utf-8"
    )


def watch(url: str, test: object, window_s: int = 3) -> None:
    """Monitor the deployment against its training data: one window of held-out traffic, then
    one where a recalibrated scanner reads every feature 30 % high; print the windows and the
    alerts, write the monitor's report."""
    import httpx

    from loopml.core.workspace import workspace
    from loopml.monitoring import monitors, windows
    from loopml.monitoring.report import render_monitor

    ws = workspace()
    monitor = monitors.create(
        ws,
        "breast-cancer-watch",
        deployment="breast-cancer",
        reference="breast-cancer@v1",
        window=f"{window_s}s",
        alerts=["drift_share > 0.3", "accuracy < 0.9"],
        files=[OUT / "alerts.jsonl"],
    )
    console.print(
        f"Monitor {monitor.name}: {len(monitor.columns)} columns against {monitor.reference}, "
        f"{window_s}s windows, alerts when {' or '.join(monitor.settings['rules'])}"
    )
    features = test.drop(columns=["target", "clinic"])  # type: ignore[attr-defined]
    labels = test["target"].tolist()  # type: ignore[index]
    with httpx.Client(base_url=url) as client:
        for frame in (features, features * 1.3):
            time.sleep(window_s - time.time() % window_s + 0.05)  # a window of its own
            for row, label in zip(frame.to_dict("records"), labels, strict=True):
                answer = client.post("/invocations", json={"dataframe_records": [row]})
                feedback = {"request_id": answer.headers["x-request-id"], "label": label}
                client.post("/feedback", json=feedback)
    # The last window closes and the prediction log settles (a run waits 2.5 s for it).
    time.sleep(window_s - time.time() % window_s + 2.7)
    result = windows.run(ws, monitor.name, since_s=3 * window_s)
    table = Table(title=f"{monitor.name}: windows with traffic", header_style="bold")
    for column in ("window (UTC)", "rows", "drift share", "prediction drift", "accuracy"):
        table.add_column(column)
    for found in result.windows:
        if not found.rows:
            continue
        metrics = found.metrics
        table.add_row(
            time.strftime("%H:%M:%S", time.gmtime(found.start_ms / 1000)),
            str(found.rows),
            f"{metrics['drift_share']:.2f}" if metrics["drift_share"] is not None else "-",
            "yes" if metrics.get("prediction_drifted") else "no",
            f"{metrics['accuracy']:.3f}" if metrics.get("accuracy") is not None else "-",
        )
    console.print(table)  # the alerts were logged as they fired (the monitor's log notifier)
    page = render_monitor(
        monitor, monitors.windows(ws, monitor.name), monitors.alert_events(ws, monitor.name)
    )
    (OUT / "monitor.html").write_text(page, encoding="utf-8")


def close_the_loop(url: str, test: object) -> None:
    """Let a policy retrain on its own: the recalibrated scanner's data arrives as new dataset
    versions, its traffic keeps drifting, and the loop controller retrains on the newest
    version, gates the model against the champion, canaries it and promotes it. Print the
    timeline; write the policy's report."""
    import threading

    import httpx
    import yaml

    from loopml.automation import controller, loops
    from loopml.automation import policy as policies
    from loopml.automation.report import render_stored
    from loopml.core.workspace import workspace

    ws = workspace()
    frame = load_breast_cancer(as_frame=True).frame
    features = [c for c in frame.columns if c != "target"]
    recalibrated = frame.assign(**{c: frame[c] * 1.3 for c in features})
    recalibrated.to_csv(OUT / "data" / "breast_cancer.csv", index=False)
    newest = loopml.data.add(OUT / "data" / "breast_cancer.csv", "breast-cancer")
    held_out = test.assign(**{c: test[c] * 1.3 for c in features})  # type: ignore[attr-defined]
    held_out.to_csv(OUT / "held-out.csv", index=False)
    newest_test = loopml.data.add(OUT / "held-out.csv", "breast-cancer-test")
    gate = {
        "target": "target",
        "checks": [
            {"threshold": {"metric": "f1", "min": 0.9}},
            {"beats_champion": {"metric": "f1", "min_delta": 0.0}},
        ],
    }
    policy = {
        "name": "breast-cancer-retrain",
        "pipeline": f"{Path('examples/pipelines/breast_cancer.py').resolve()}:breast_cancer",
        "params": {"data": "breast-cancer@latest"},
        "triggers": [
            {"schedule": "0 3 * * *"},
            {"drift": {"monitor": "breast-cancer-watch", "when": "drift_share > 0.3"}},
            {"performance": {"monitor": "breast-cancer-watch", "when": "accuracy < 0.9"}},
        ],
        "register_as": "breast-cancer",
        "evaluation": {"data": "breast-cancer-test@latest", "target": "target"},
        "gate": "gates/retrain.yaml",
        "rollout": {"deployment": "breast-cancer", "steps": [50, 100], "interval": "1s"},
        "cooldown": "6h",
    }
    for path, content in ((OUT / "gates" / "retrain.yaml", gate), (OUT / "policy.yaml", policy)):
        path.parent.mkdir(exist_ok=True)
        path.write_text(yaml.safe_dump(content, sort_keys=False), encoding="utf-8")
    applied, _ = policies.apply(ws, policies.load(OUT / "policy.yaml"))
    console.print(
        f"[bold]The loop[/bold]: {newest.ref} and {newest_test.ref} hold the recalibrated "
        f"scanner's data; policy {applied.name} retrains when "
        + " or ".join(t.key for t in applied.triggers)
    )
    worker = controller.Controller(ws, poll_s=0.5)
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,), daemon=True)
    thread.start()
    rows = held_out.drop(columns=["target", "clinic"]).to_dict("records")
    labels = held_out["target"].tolist()
    deadline = time.monotonic() + 120
    with httpx.Client(base_url=url) as client:
        while time.monotonic() < deadline:
            last = loops.of(ws, applied, limit=1)
            if last and not last[0].active:
                break
            for row, label in zip(rows[:60], labels[:60], strict=True):  # drifted traffic
                answer = client.post("/invocations", json={"dataframe_records": [row]})
                feedback = {"request_id": answer.headers["x-request-id"], "label": label}
                client.post("/feedback", json=feedback)
    stop.set()
    thread.join()
    from loopml.cli.loop import timeline_line

    console.print("[bold]Timeline[/bold] (loopml loop events breast-cancer-retrain)")
    for event in loops.events(ws, applied):
        console.print(timeline_line(event), markup=False, soft_wrap=True)
    (OUT / "loop.html").write_text(render_stored(ws, applied), encoding="utf-8")


def main() -> None:
    """Run the demo and print what a person would look at."""
    shutil.rmtree(OUT, ignore_errors=True)
    Workspace.init(OUT)
    loopml.set_workspace(OUT)

    dataset = version_data()
    frame = dataset.to_pandas()
    x, y = frame.drop(columns="target").to_numpy(), frame["target"].to_numpy()
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=0.25, random_state=0, stratify=y
    )
    scaler = StandardScaler().fit(x_train)
    data = (scaler.transform(x_train), scaler.transform(x_test), y_train, y_test)

    grid = [(alpha, penalty) for alpha in (1e-4, 1e-3, 1e-2) for penalty in ("l2", "l1")]
    for alpha, penalty in track(grid, description="Training"):
        train(alpha, penalty, epochs=30, data=data)

    best = loopml.search_runs(
        "breast-cancer", filter="metrics.test_accuracy > 0.9", order_by=["metrics.f1 DESC"]
    )
    table = Table(title="breast-cancer runs, best F1 first", header_style="bold")
    for column in ("run", "alpha", "penalty", "test_accuracy", "test_loss", "f1"):
        table.add_column(column)
    for run in best:
        table.add_row(
            run.name,
            run.params["alpha"],
            run.params["penalty"],
            f"{run.metrics['test_accuracy']:.4f}",
            f"{run.metrics['test_loss']:.4f}",
            f"{run.metrics['f1']:.4f}",
        )
    console.print(table)
    champion = best[0]
    history = loopml.get_metric_history(champion.id, "test_loss")
    console.print(
        f"Best run {champion.name} ({champion.id[:8]}): test loss "
        f"{history[0].value:.3f} at epoch 0 -> {history[-1].value:.3f} at epoch {history[-1].step}"
    )
    report = write_report(
        loopml.set_workspace(OUT), [r.id for r in best], OUT / "report.html", title="breast-cancer"
    )
    best_trial = run_pipelines()
    console.print(f"Open the report with its charts of metrics over epochs: {report.resolve()}")
    console.print(f"The data check: {(OUT / 'data-validation.html').resolve()}")
    console.print(f"The sweep's trials: {(OUT / 'sweep.html').resolve()}")
    console.print(f"The champion's evaluation: {(OUT / 'evaluation.html').resolve()}")
    console.print(f"The gate that refused the weaker model: {(OUT / 'gate.html').resolve()}")
    console.print(f"The canary's rollout: {(OUT / 'deployment.html').resolve()}")
    console.print(f"Drift, accuracy and alerts in production: {(OUT / 'monitor.html').resolve()}")
    console.print(f"The loop that retrained, gated and promoted: {(OUT / 'loop.html').resolve()}")
    console.print(
        f"Serve it, with the loop controller alongside: cd {OUT} && ../.venv/bin/loopml deploy "
        "serve breast-cancer"
    )
    console.print(
        f"Explore it yourself:  cd {OUT} && ../.venv/bin/loopml runs list   "
        f"(or: loopml runs show {champion.id[:8]}, loopml data log breast-cancer, "
        "loopml data diff breast-cancer@v1 breast-cancer@v2, loopml data used-by "
        f"breast-cancer@v1, loopml pipelines runs, loopml pipelines show {best_trial[:8]}, "
        "loopml models show breast-cancer@champion, "
        "loopml models alias breast-cancer champion --history, loopml deploy history "
        "breast-cancer, loopml models evaluations breast-cancer, loopml monitor status "
        "breast-cancer-watch, loopml monitor alerts, loopml drift breast-cancer@v1 "
        "breast-cancer-test@v1, loopml loop status, loopml loop events breast-cancer-retrain)"
    )


if __name__ == "__main__":
    main()
