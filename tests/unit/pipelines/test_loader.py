"""Finding a pipeline from the command line: `flow.py:train` or `package.module:train`."""

from __future__ import annotations

import os
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from loopml.errors import InvalidInput, NotFound
from loopml.pipelines.graph import Pipeline
from loopml.pipelines.loader import load_pipeline

FLOW = """
    from loopml import pipeline, step


    @step
    def make(n: int) -> list[int]:
        return list(range(n))


    @pipeline
    def train(n: int = 3):
        make(n)


    @pipeline
    def evaluate():
        make(1)


    def helper():
        return 1
    """


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An empty project folder, the current folder; modules imported from it are forgotten."""
    root = tmp_path / "project"
    root.mkdir()
    monkeypatch.chdir(root)
    monkeypatch.setattr(sys, "path", list(sys.path))  # the loader adds the file's folder
    yield root
    for name, module in list(sys.modules.items()):
        if str(getattr(module, "__file__", None) or "").startswith(str(tmp_path)):
            del sys.modules[name]


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def test_a_file_target_loads_the_pipeline_and_remembers_where_it_came_from(project: Path):
    write(project / "pipelines" / "churn.py", FLOW)
    found = load_pipeline("pipelines/churn.py:train")
    assert isinstance(found, Pipeline)
    assert found.name == "train"
    assert found.defaults() == {"n": 3}
    assert found.source == f"{project / 'pipelines' / 'churn.py'}:train"


def test_a_relative_file_is_also_looked_up_from_the_project_root(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    write(project / "flows" / "churn.py", FLOW)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    found = load_pipeline("flows/churn.py:evaluate", root=project)
    assert found.name == "evaluate"
    assert found.source == "flows/churn.py:evaluate"  # relative to the root, as `resume` needs


def test_a_file_imports_its_sibling_modules(project: Path):
    write(project / "flows" / "shared_steps_ld.py", FLOW)
    write(project / "flows" / "main.py", "from shared_steps_ld import train\n")
    assert load_pipeline("flows/main.py:train").name == "train"


def test_a_module_target_is_imported(project: Path, monkeypatch: pytest.MonkeyPatch):
    write(project / "ld_package" / "__init__.py", "")
    write(project / "ld_package" / "flows.py", FLOW)
    monkeypatch.syspath_prepend(str(project))
    found = load_pipeline("ld_package.flows:train")
    assert found.reference == "ld_package.flows:train"
    assert found.source == "ld_package.flows:train"


def test_a_missing_file_says_to_check_the_path(project: Path):
    with pytest.raises(
        NotFound, match=r"pipeline file flows/nope\.py does not exist; check the path"
    ):
        load_pipeline("flows/nope.py:train")


def test_a_missing_module_says_what_to_give(project: Path):
    with pytest.raises(NotFound, match=r"no module 'ld_nowhere\.flows'; give FILE\.py:FUNCTION"):
        load_pipeline("ld_nowhere.flows:train")


def test_a_missing_function_lists_the_pipelines_the_file_defines(project: Path):
    write(project / "churn.py", FLOW)
    with pytest.raises(NotFound) as caught:
        load_pipeline("churn.py:trian")
    assert str(caught.value) == "churn.py has no 'trian'; it defines evaluate, train"

    write(project / "empty.py", "X = 1\n")
    with pytest.raises(NotFound, match=r"empty\.py has no 'train'; it defines no @pipeline"):
        load_pipeline("empty.py:train")


@pytest.mark.parametrize(
    ("name", "kind"), [("helper", "function"), ("make", "Step"), ("pipeline", "function")]
)
def test_something_that_is_not_a_pipeline_is_refused(project: Path, name: str, kind: str):
    write(project / "churn.py", FLOW)
    with pytest.raises(InvalidInput, match=f"churn.py:{name} is a {kind}, not a function with @p"):
        load_pipeline(f"churn.py:{name}")


def test_a_syntax_error_names_the_file_and_line(project: Path):
    path = write(project / "broken.py", "import os\n\ndef train(:\n    pass\n")
    with pytest.raises(InvalidInput) as caught:
        load_pipeline("broken.py:train")
    message = str(caught.value)
    assert message.startswith(f"importing {path} failed: SyntaxError:")
    assert message.endswith("(line 3)")


def test_a_syntax_error_in_an_imported_module_names_that_module(project: Path):
    write(project / "flow.py", "import os\n\nimport ld_helpers_broken\n")
    helper = write(project / "ld_helpers_broken.py", "x = 1\ny = (\n")
    with pytest.raises(InvalidInput) as caught:
        load_pipeline("flow.py:train")
    assert str(caught.value).endswith(f"({helper}, line 2)")


def test_an_error_while_importing_names_the_line_of_the_file(project: Path):
    path = write(project / "needs.py", "import os\n\nimport ld_not_installed_anywhere\n")
    with pytest.raises(InvalidInput) as caught:
        load_pipeline("needs.py:train")
    assert str(caught.value) == (
        f"importing {path} failed: ModuleNotFoundError: No module named "
        "'ld_not_installed_anywhere' (line 3)"
    )
    assert "needs" not in sys.modules  # a half-imported module is not left behind


def test_an_error_while_importing_a_module_target_names_its_file(
    project: Path, monkeypatch: pytest.MonkeyPatch
):
    path = write(project / "ld_raises.py", "X = 1\nraise RuntimeError('no config')\n")
    monkeypatch.syspath_prepend(str(project))
    with pytest.raises(InvalidInput) as caught:
        load_pipeline("ld_raises:train")
    assert str(caught.value) == (
        f"importing ld_raises failed: RuntimeError: no config ({path}, line 2)"
    )


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("churn.py", "'churn.py' does not name a pipeline; use FILE.py:FUNCTION or MODULE:FUNC"),
        ("", "'' does not name a pipeline"),
        (None, "None does not name a pipeline"),
        ("churn.py:", "'' in 'churn.py:' is not a function name"),
        ("churn.py:2fast", "'2fast' in 'churn.py:2fast' is not a function name"),
        (":train", "':train' names no file or module; use FILE.py:FUNCTION"),
    ],
)
def test_a_bad_target_says_what_a_target_looks_like(project: Path, target: object, message: str):
    with pytest.raises(InvalidInput) as caught:
        load_pipeline(target)  # type: ignore[arg-type]
    assert message in str(caught.value)


def test_a_file_rewritten_in_the_same_second_at_the_same_size_loads_its_new_code(
    project: Path, monkeypatch: pytest.MonkeyPatch
):
    # Python's bytecode cache keys on mtime (whole seconds) and size: it would run stale code.
    monkeypatch.setattr(sys, "dont_write_bytecode", False)
    flow = "from loopml import pipeline\n\n\n@pipeline\ndef train(n: int = {n}):\n    pass\n"
    path = write(project / "same.py", flow.format(n=1))
    assert load_pipeline("same.py:train").defaults() == {"n": 1}
    stat = path.stat()
    path.write_text(flow.format(n=2))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    for name in [n for n, m in sys.modules.items() if getattr(m, "__file__", "") == str(path)]:
        del sys.modules[name]

    assert load_pipeline("same.py:train").defaults() == {"n": 2}
