"""How a worker imports the user's modules: by file, checked against the driver's digest, and
again (with every module after it) when a file changed between runs."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from blake3 import blake3

from loopml.errors import InvalidInput
from loopml.pipelines import task

NAMES = ("wi_helpers", "wi_flow")


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setattr(task, "_loaded", {})
    yield tmp_path
    for name in NAMES:
        sys.modules.pop(name, None)


def digest(path: Path) -> str:
    return blake3(path.read_bytes()).hexdigest()


def write(folder: Path, helper_value: int) -> dict[str, tuple[str, str]]:
    helpers = folder / "wi_helpers.py"
    helpers.write_text(f"def value():\n    return {helper_value}\n")
    flow = folder / "wi_flow.py"
    flow.write_text("from wi_helpers import value\n\n\ndef run():\n    return value()\n")
    return {name: (str(folder / f"{name}.py"), digest(folder / f"{name}.py")) for name in NAMES}


def test_a_file_edited_since_the_driver_read_it_is_refused(folder: Path):
    modules = write(folder, 1)
    (folder / "wi_flow.py").write_text("def run():\n    return 'edited'\n")

    with pytest.raises(InvalidInput, match=r"wi_flow.py changed while the pipeline ran"):
        task.import_modules(modules)


def test_a_changed_helper_is_imported_again_with_every_module_after_it(folder: Path):
    task.import_modules(write(folder, 1))
    assert sys.modules["wi_flow"].run() == 1

    # Next run: only the helper changed; the flow module still holds the old `value`.
    task.import_modules(write(folder, 2))

    assert sys.modules["wi_flow"].run() == 2


def test_a_package_folder_goes_after_the_installed_libraries(folder: Path):
    package = folder / "wi_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "json.py").write_text("SHADOW = True\n")
    name = "wi_pkg.json"
    try:
        task.import_modules({name: (str(package / "json.py"), digest(package / "json.py"))})
        assert str(folder) in sys.path and str(package) not in sys.path
        assert sys.path.index(str(folder)) == len(sys.path) - 1
    finally:
        sys.modules.pop(name, None)
