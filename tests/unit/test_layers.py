"""The layering of ARCHITECTURE.md ("imports only point down"), checked over the import graph.

Every module under src/loopml is parsed; every import of a loopml module counts, including
imports inside functions and under `if TYPE_CHECKING:`, since each one is a dependency the
lower layer would have to know about.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

import loopml

PACKAGE_DIR = Path(loopml.__file__).parent

# Top-level packages and modules of loopml, lowest layer first.
LAYERS: dict[str, int] = {
    "errors": 0,
    "config": 0,
    "core": 1,
    "data": 2,
    "tracking": 2,
    "pipelines": 2,
    "registry": 3,
    "evaluation": 3,
    "deploy": 4,
    "serving": 4,
    "monitoring": 4,
    "automation": 5,
    "cli": 6,
    "server": 6,
    "ui": 6,
    "__main__": 6,  # `python -m loopml` would be a front end
}
FRONT_ENDS = {name for name, layer in LAYERS.items() if layer == 6}
TESTING = "testing"  # may import anything; nothing in src may import it
ROOT = ""  # loopml/__init__.py: exempt, it lazily re-exports names from every layer
SQL_PACKAGES = ("sqlalchemy", "alembic")


@dataclass(frozen=True)
class Import:
    """One import statement of one module."""

    file: Path
    line: int
    importer: str  # dotted module name, e.g. loopml.cli.runs
    target: str  # dotted module name, e.g. loopml.core.workspace

    def __str__(self) -> str:
        return f"{self.file.relative_to(PACKAGE_DIR.parent)}:{self.line}: imports {self.target}"


def module_name(path: Path) -> str:
    """Return the dotted name of a module file under PACKAGE_DIR."""
    parts = list(path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path, source: str | None = None) -> list[Import]:
    """Return every import in a module, at any depth, with relative ones made absolute."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    tree = ast.parse(source if source is not None else path.read_text("utf-8"), str(path))
    found: list[Import] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [Import(path, node.lineno, name, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            # `from loopml import config` imports the module loopml.config; `from loopml import
            # Workspace` imports wherever the root re-exports it from.
            for alias in node.names:
                if base == "loopml":
                    target = loopml._LAZY.get(alias.name, f"loopml.{alias.name}")
                    if alias.name == "__version__":
                        target = "loopml"
                    found.append(Import(path, node.lineno, name, target))
                else:
                    found.append(Import(path, node.lineno, name, base))
    return found


def top_of(module: str) -> str:
    """Return the top-level package of a loopml module ('' for the root itself)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ROOT


def violations(imports: list[Import]) -> list[str]:
    """Return a line for every import that points up a layer or into loopml.testing."""
    problems = []
    for imp in imports:
        if imp.target != "loopml" and not imp.target.startswith("loopml."):
            continue
        source, target = top_of(imp.importer), top_of(imp.target)
        # The root itself only holds __version__ and the lazy table; names re-exported through
        # it were mapped to their defining modules above.
        if source in (ROOT, TESTING) or target == ROOT:
            continue
        if target == TESTING:
            problems.append(f"{imp}  (nothing in src may import loopml.testing)")
            continue
        if LAYERS[target] > LAYERS[source]:
            problems.append(
                f"{imp}  ({source} is layer {LAYERS[source]}, {target} is layer {LAYERS[target]})"
            )
    return problems


def all_modules() -> list[Path]:
    return sorted(PACKAGE_DIR.rglob("*.py"))


def all_imports() -> list[Import]:
    return [imp for path in all_modules() for imp in imports_of(path)]


def test_the_source_tree_is_the_one_under_test():
    modules = [module_name(path) for path in all_modules()]

    assert "loopml.cli.app" in modules
    assert "loopml.core.workspace" in modules
    assert len(modules) > 20


def test_every_top_level_module_has_a_layer():
    tops = {top_of(module_name(path)) for path in all_modules()}

    unknown = tops - set(LAYERS) - {ROOT, TESTING}
    assert not unknown, f"give these a layer in ARCHITECTURE.md and in this test: {unknown}"


def test_no_module_imports_a_higher_layer():
    problems = violations(all_imports())

    assert not problems, "imports that point up a layer:\n" + "\n".join(problems)


def test_front_ends_never_touch_sql():
    problems = [
        str(imp)
        for imp in all_imports()
        if top_of(imp.importer) in FRONT_ENDS and imp.target.split(".")[0] in SQL_PACKAGES
    ]

    assert not problems, "front ends call services, never SQL:\n" + "\n".join(problems)


def test_imports_in_functions_and_under_type_checking_are_seen():
    found = {(imp.importer, imp.target) for imp in all_imports()}

    # cli/runs.py imports Workspace under TYPE_CHECKING and the services inside functions.
    assert ("loopml.cli.runs", "loopml.core.workspace") in found
    assert ("loopml.cli.runs", "loopml.tracking") in found
    # core/workspace.py reaches config through `from loopml import config`.
    assert ("loopml.core.workspace", "loopml.config") in found


@pytest.mark.parametrize(
    ("module", "source", "expected"),
    [
        ("core/blobs/local.py", "def f():\n    from loopml.tracking import runs\n", 1),
        (
            "core/x.py",
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import loopml.cli\n",
            1,
        ),
        ("tracking/x.py", "from ..cli import app\n", 1),
        ("errors.py", "from loopml import Workspace\n", 1),
        ("tracking/x.py", "import loopml\nfrom loopml import __version__\n", 0),
        ("tracking/x.py", "import loopml.testing.stores\n", 1),
        ("cli/x.py", "from loopml.tracking import runs\nfrom loopml.core import store\n", 0),
        ("tracking/x.py", "from . import runs\nfrom loopml.errors import NotFound\n", 0),
        ("testing/x.py", "import loopml.cli.app\n", 0),
    ],
)
def test_the_check_catches_what_it_should(module: str, source: str, expected: int):
    problems = violations(imports_of(PACKAGE_DIR / module, source))

    assert len(problems) == expected, problems
    assert all(f"{module}:" in line for line in problems)
