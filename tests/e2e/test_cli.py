"""The real `loopml` command, run as a user runs it: a process in a folder, reading its output."""

from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path

import pytest

from loopml.core.workspace import Workspace
from tests.e2e.cli import environment, loopml, loopml_json, one_error_line, python, together

HEAVY = ("sqlalchemy", "pandas", "sklearn", "numpy", "alembic")
MODEL_BYTES = bytes(range(256)) * 4
# Ids are random; two that share a prefix are made by fixing uuid4 in the seeding process.
TWIN_IDS = ("abcdef01" + "0" * 23 + "1", "abcdef01" + "0" * 23 + "2")

SEED = textwrap.dedent(
    f"""
    import json
    import uuid

    import loopml

    loopml.Workspace.init(".")
    loopml.set_workspace(".")
    ids = {{}}
    for name, losses, params in [
        ("high", [0.9, 0.8, 0.75, 0.72, 0.7], {{"lr": 0.1, "depth": 3}}),
        ("mid", [0.6, 0.4], {{"lr": 0.01, "depth": 3}}),
        ("low", [0.5, 0.3, 0.1], {{"lr": 0.001, "depth": 5}}),
    ]:
        with loopml.start_run("e2e", run_name=name, tags={{"team": "blue"}}) as run:
            loopml.log_params(params)
            for step, loss in enumerate(losses):
                loopml.log_metric("loss", loss, step=step)
            if name == "high":
                loopml.log_text("hello\\n", "notes/readme.txt")
                loopml.log_dict({{"layers": [8, 4]}}, "config.json")
                with open("model.bin", "wb") as f:
                    f.write({MODEL_BYTES!r})
                loopml.log_artifact("model.bin")
        ids[name] = run.id
    with loopml.start_run("other", run_name="elsewhere") as run:
        loopml.log_metric("loss", 0.05)
    ids["elsewhere"] = run.id
    twins = iter([uuid.UUID(h) for h in {TWIN_IDS!r}])
    uuid.uuid4 = lambda: next(twins)
    for name in ("twin-[/a]", "twin-[/b]"):
        with loopml.start_run("twins", run_name=name) as run:
            pass
        ids[name] = run.id
    print(json.dumps(ids))
    """
)


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """A workspace with runs logged through the Python API, and the ids of those runs."""
    root = tmp_path_factory.mktemp("seeded")
    done = python(SEED, cwd=root)
    return root, json.loads(done.stdout)


@pytest.fixture
def workspace(seeded: tuple[Path, dict[str, str]], tmp_path: Path) -> Path:
    """A private copy of the seeded workspace, for tests that change it."""
    root = tmp_path / "copy"
    shutil.copytree(seeded[0], root)
    return root


def test_init_creates_the_workspace_once(tmp_path: Path):
    done = loopml("init", cwd=tmp_path)

    dot = tmp_path / ".loopml"
    assert str(dot) in done.stdout
    assert (dot / "loopml.db").is_file()
    assert (dot / "blobs").is_dir()
    assert (dot / "journal").is_dir()
    assert (dot / "config.toml").is_file()

    again = loopml("init", cwd=tmp_path, expect=1)
    assert "already exists" in one_error_line(again)
    assert str(dot) in again.stderr


def test_init_on_postgresql_records_the_store(tmp_path: Path, postgres_url: str):
    from loopml.testing.stores import truncate_all

    truncate_all(postgres_url)
    done = loopml("init", "project", "--store-uri", postgres_url, cwd=tmp_path)
    project = tmp_path / "project"

    assert "postgresql" in done.stdout
    assert "postgresql" in (project / ".loopml" / "config.toml").read_text("utf-8")
    assert not (project / ".loopml" / "loopml.db").exists()
    created = loopml_json("experiments", "create", "on-postgres", cwd=project)
    assert created["name"] == "on-postgres"


def test_outside_a_workspace_commands_say_to_run_loopml_init(tmp_path: Path):
    done, debug = together(
        lambda: loopml("runs", "list", cwd=tmp_path, expect=1),
        lambda: loopml("--debug", "runs", "list", cwd=tmp_path, expect=1),
    )

    line = one_error_line(done)
    assert "`loopml init`" in line
    assert str(tmp_path) in line
    assert done.stdout == ""
    assert "Traceback (most recent call last)" in debug.stderr
    assert "WorkspaceNotFound" in debug.stderr


def test_commands_find_the_workspace_from_a_subfolder_or_loopml_home(
    seeded: tuple[Path, dict[str, str]], tmp_path: Path
):
    root, _ = seeded
    deep = root / "src" / "models"
    deep.mkdir(parents=True, exist_ok=True)

    from_subfolder, from_home = together(
        lambda: loopml("experiments", "list", "--json", cwd=deep),
        lambda: loopml(
            "experiments", "list", "--json", cwd=tmp_path, env=environment(LOOPML_HOME=str(root))
        ),
    )

    names = ["Default", "e2e", "other", "twins"]
    assert [e["name"] for e in json.loads(from_subfolder.stdout)] == names
    assert [e["name"] for e in json.loads(from_home.stdout)] == names


def test_experiments_round_trip(tmp_path: Path):
    Workspace.init(tmp_path).close()

    created = loopml_json("experiments", "create", "churn", cwd=tmp_path)
    assert created["name"] == "churn"
    assert created["lifecycle_stage"] == "active"

    duplicate, unknown = together(
        lambda: loopml("experiments", "create", "churn", cwd=tmp_path, expect=1),
        lambda: loopml("experiments", "delete", "nope", cwd=tmp_path, expect=1),
    )
    assert "'churn' already exists" in one_error_line(duplicate)
    line = one_error_line(unknown)
    assert "'nope'" in line
    assert "loopml experiments list" in line

    renamed = loopml_json("experiments", "rename", "churn", "churn-v2", cwd=tmp_path)
    assert renamed == created | {"name": "churn-v2", "updated_at": renamed["updated_at"]}

    deleted = loopml_json("experiments", "delete", "churn-v2", cwd=tmp_path)
    assert deleted["lifecycle_stage"] == "deleted"
    assert [e["name"] for e in loopml_json("experiments", "list", cwd=tmp_path)] == ["Default"]

    restored = loopml("experiments", "restore", "churn-v2", cwd=tmp_path)
    assert "Restored experiment 'churn-v2'" in restored.stdout
    listed = loopml_json("experiments", "list", "--view", "all", cwd=tmp_path)
    assert {e["name"]: e["lifecycle_stage"] for e in listed} == {
        "Default": "active",
        "churn-v2": "active",
    }


def test_runs_list_and_show_report_what_the_api_logged(seeded: tuple[Path, dict[str, str]]):
    root, ids = seeded

    listed, shown = together(
        lambda: loopml_json("runs", "list", cwd=root),
        lambda: loopml_json("runs", "show", ids["high"][:8], cwd=root),
    )

    assert {r["id"] for r in listed} == set(ids.values())
    assert {r["status"] for r in listed} == {"FINISHED"}
    assert shown["id"] == ids["high"]
    assert shown["name"] == "high"
    assert shown["params"] == {"lr": "0.1", "depth": "3"}
    assert shown["metrics"] == {"loss": 0.7}
    assert shown["tags"]["team"] == "blue"
    assert {a["path"]: a["size"] for a in shown["artifacts"]} == {
        "config.json": len(json.dumps({"layers": [8, 4]}, indent=2)),
        "model.bin": len(MODEL_BYTES),
        "notes/readme.txt": 6,
    }
    assert all(a["digest"].startswith("blake3:") for a in shown["artifacts"])


def test_runs_compare_shows_both_runs_side_by_side(seeded: tuple[Path, dict[str, str]]):
    root, ids = seeded

    table, compared = together(
        lambda: loopml("runs", "compare", ids["high"][:8], ids["low"][:8], cwd=root).stdout,
        lambda: loopml_json("runs", "compare", ids["high"], ids["low"], cwd=root),
    )

    for name in ("high", "low"):
        assert name in table
        assert ids[name][:8] in table
    for row in ("params.lr", "params.depth", "metrics.loss"):
        assert row in table
    loss_row = next(line for line in table.splitlines() if "metrics.loss" in line)
    assert "0.7" in loss_row
    assert "0.1" in loss_row

    assert [r["id"] for r in compared] == [ids["high"], ids["low"]]
    assert [r["metrics"]["loss"] for r in compared] == [0.7, 0.1]


def test_runs_search_filters_one_experiment_and_orders(seeded: tuple[Path, dict[str, str]]):
    root, ids = seeded

    found = loopml_json(
        "runs",
        "search",
        "-e",
        "e2e",
        "-f",
        "metrics.loss < 0.5",
        "-o",
        "metrics.loss ASC",
        cwd=root,
    )

    # "elsewhere" (loss 0.05) is in another experiment; "high" ends at 0.7.
    assert [r["name"] for r in found] == ["low", "mid"]
    assert [r["id"] for r in found] == [ids["low"], ids["mid"]]


def test_runs_history_lists_every_step(seeded: tuple[Path, dict[str, str]]):
    root, ids = seeded

    points = loopml_json("runs", "history", ids["high"], "loss", cwd=root)

    assert [(p["step"], p["value"]) for p in points] == list(enumerate([0.9, 0.8, 0.75, 0.72, 0.7]))
    assert {p["key"] for p in points} == {"loss"}


def test_runs_artifacts_and_download_give_back_the_logged_files(
    seeded: tuple[Path, dict[str, str]], tmp_path: Path
):
    root, ids = seeded
    run = ids["high"][:8]

    target, inside = tmp_path / "downloaded", tmp_path / "inside"
    listing, done, evil = together(
        lambda: loopml("runs", "artifacts", run, cwd=root).stdout,
        lambda: loopml("runs", "download", run, "--to", str(target), cwd=root),
        lambda: loopml("runs", "download", run, "../evil", "--to", str(inside), cwd=root, expect=1),
    )

    for path in ("config.json", "model.bin", "notes/readme.txt"):
        assert path in listing
    assert str(target) in done.stdout
    assert (target / "model.bin").read_bytes() == MODEL_BYTES
    assert (target / "notes" / "readme.txt").read_text("utf-8") == "hello\n"
    assert json.loads((target / "config.json").read_text("utf-8")) == {"layers": [8, 4]}
    assert "'../evil'" in one_error_line(evil)
    assert not (tmp_path / "evil").exists()


def test_runs_delete_hides_a_run_until_restored(
    workspace: Path, seeded: tuple[Path, dict[str, str]]
):
    _, ids = seeded
    run = ids["mid"]

    assert f"Deleted run {run}" in loopml("runs", "delete", run[:8], cwd=workspace).stdout
    assert run not in {r["id"] for r in loopml_json("runs", "list", cwd=workspace)}

    assert f"Restored run {run}" in loopml("runs", "restore", run, cwd=workspace).stdout
    assert run in {r["id"] for r in loopml_json("runs", "list", cwd=workspace)}


def test_malformed_filter_points_at_the_problem(seeded: tuple[Path, dict[str, str]]):
    root, _ = seeded
    text = "metrics.loss < 0.5 andd params.lr = '0.1'"

    done = loopml("runs", "search", "-f", text, cwd=root, expect=1)

    assert "Traceback" not in done.stderr
    lines = done.stderr.rstrip().splitlines()
    assert lines[0].startswith("error: ")
    assert "'andd'" in lines[0]
    echoed = next(line for line in lines if text in line)
    caret = lines[lines.index(echoed) + 1]
    assert caret.strip() == "^"
    assert caret.index("^") == echoed.index("andd")


def test_unknown_option_is_a_usage_error(seeded: tuple[Path, dict[str, str]]):
    root, _ = seeded

    done = loopml("runs", "list", "--bogus", cwd=root, expect=2)

    assert "No such option" in done.stderr
    assert "Traceback" not in done.stderr


def test_run_prefixes_must_name_exactly_one_run(seeded: tuple[Path, dict[str, str]]):
    root, _ = seeded

    ambiguous, unknown = together(
        lambda: one_error_line(loopml("runs", "show", "abcdef01", cwd=root, expect=1)),
        lambda: one_error_line(loopml("runs", "show", "ffff0000ffff", cwd=root, expect=1)),
    )

    assert "ambiguous" in ambiguous
    assert TWIN_IDS[0] in ambiguous
    assert TWIN_IDS[1] in ambiguous
    assert "'ffff0000ffff'" in unknown
    assert "loopml runs list" in unknown


def test_help_stays_light(tmp_path: Path):
    code = textwrap.dedent(
        f"""
        import contextlib, io, json, sys
        from loopml.cli.app import main

        codes = []
        for argv in (["--help"], ["runs", "--help"], ["experiments", "--help"],
                     ["runs", "search", "--help"]):
            sys.argv = ["loopml", *argv]
            with contextlib.redirect_stdout(io.StringIO()):
                try:
                    main()
                except SystemExit as exc:
                    codes.append(exc.code)
        heavy = sorted({{m.split(".")[0] for m in sys.modules}} & set({HEAVY!r}))
        print(json.dumps({{"codes": codes, "heavy": heavy}}))
        """
    )

    result = json.loads(python(code, cwd=tmp_path).stdout)

    assert result["codes"] == [0, 0, 0, 0]
    assert result["heavy"] == []


def test_import_loopml_stays_light(tmp_path: Path):
    code = (
        "import json, sys, loopml; "
        f"print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r}))))"
    )

    assert json.loads(python(code, cwd=tmp_path).stdout) == []


def test_names_with_brackets_are_printed_as_typed(
    seeded: tuple[Path, dict[str, str]], tmp_path: Path
):
    Workspace.init(tmp_path).close()

    created = loopml("experiments", "create", "ab[/x]", cwd=tmp_path)
    assert "'ab[/x]'" in created.stdout
    listing, again, runs = together(
        lambda: loopml("experiments", "list", cwd=tmp_path).stdout,
        lambda: loopml("experiments", "create", "ab[/x]", cwd=tmp_path, expect=1),
        lambda: loopml("runs", "list", "-e", "twins", cwd=seeded[0]).stdout,
    )
    assert "ab[/x]" in listing
    assert "'ab[/x]' already exists" in one_error_line(again)
    assert "twin-[/a]" in runs
    assert "twin-[/b]" in runs


def test_runs_list_refuses_an_unknown_view(seeded: tuple[Path, dict[str, str]]):
    root, _ = seeded

    done = loopml("runs", "list", "--view", "bogus", cwd=root, expect=1)

    assert "active, deleted, all" in one_error_line(done)


def test_a_failed_init_can_be_retried(tmp_path: Path):
    bad = loopml("init", "--store-uri", "bogus://nowhere", cwd=tmp_path, expect=1)
    assert "not supported" in one_error_line(bad)

    loopml("init", cwd=tmp_path)
