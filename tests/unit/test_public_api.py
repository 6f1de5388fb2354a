"""The names `import loopml` offers, and the error tree drawn in `loopml.errors`."""

from __future__ import annotations

import builtins
import inspect
import re
from importlib import import_module

import pytest

import loopml
from loopml import errors

# Lines of the drawn tree: box characters, a class name, and an optional builtin mixin.
TREE_LINE = re.compile(r"^(?P<lead>[\s│├└─]*)(?P<name>[A-Z]\w+)(?: \((?P<mixin>\w+)\))?\s")


def error_classes() -> dict[str, type[BaseException]]:
    """Return every exception class defined in loopml.errors, by name."""
    return {
        name: obj
        for name, obj in vars(errors).items()
        if inspect.isclass(obj)
        and issubclass(obj, BaseException)
        and obj.__module__ == errors.__name__
    }


def test_all_is_exactly_the_lazy_names_and_the_version():
    assert len(loopml.__all__) == len(set(loopml.__all__)), "a name is listed twice"
    assert set(loopml.__all__) == set(loopml._LAZY) | {"__version__"}


@pytest.mark.parametrize("name", sorted(loopml._LAZY))
def test_every_public_name_resolves_to_the_object_of_its_module(name: str):
    value = getattr(loopml, name)

    assert value is getattr(import_module(loopml._LAZY[name]), name)
    assert getattr(loopml, name) is value  # cached after the first lookup


def test_version_is_a_plain_string():
    assert isinstance(loopml.__version__, str)
    assert re.fullmatch(r"\d+\.\d+\.\d+\S*", loopml.__version__)


def test_dir_lists_every_public_name():
    assert set(loopml.__all__) <= set(dir(loopml))


def test_unknown_attribute_raises_attribute_error_naming_it():
    with pytest.raises(AttributeError, match="no_such_thing"):
        _ = loopml.no_such_thing  # type: ignore[attr-defined]
    assert not hasattr(loopml, "no_such_thing")


def test_every_error_is_a_loopml_error():
    classes = error_classes()

    assert "LoopMLError" in classes
    for name, cls in classes.items():
        assert issubclass(cls, errors.LoopMLError), name


def test_errors_mix_in_the_builtin_they_stand_for():
    assert issubclass(errors.InvalidInput, ValueError)
    assert issubclass(errors.AlreadyExists, ValueError)
    assert issubclass(errors.NotFound, LookupError)
    assert issubclass(errors.InvalidFilter, errors.InvalidInput)
    assert issubclass(errors.SchemaTooNew, errors.StoreError)


def test_errors_all_lists_every_error_class():
    assert set(errors.__all__) == set(error_classes())


def test_errors_docstring_names_every_error_class():
    doc = errors.__doc__ or ""

    missing = [name for name in error_classes() if not re.search(rf"\b{name}\b", doc)]
    assert not missing, f"errors.py docstring does not name {missing}"


def test_errors_docstring_tree_matches_the_class_hierarchy():
    classes = error_classes()
    stack: list[tuple[int, str]] = []  # (column of the name, name) of the open ancestors
    drawn: set[str] = set()
    for line in (errors.__doc__ or "").splitlines():
        match = TREE_LINE.match(line + " ")
        if match is None or match["name"] not in classes:
            continue
        name, column = match["name"], len(match["lead"])
        while stack and stack[-1][0] >= column:
            stack.pop()
        cls = classes[name]
        if stack:
            parent = classes[stack[-1][1]]
            assert cls.__bases__[0] is parent, f"the tree draws {name} under {parent.__name__}"
        else:
            assert cls is errors.LoopMLError, f"{name} is drawn as a root"
        if match["mixin"]:
            mixin = getattr(builtins, match["mixin"])
            assert issubclass(cls, mixin), f"the tree says {name} is a {match['mixin']}"
        stack.append((column, name))
        drawn.add(name)

    assert drawn == set(classes)


def test_invalid_filter_points_at_the_problem():
    error = errors.InvalidFilter("expected a number", "metrics.loss < x", 15)

    assert error.position == 15
    assert error.text == "metrics.loss < x"
    text_line, caret_line = str(error).splitlines()[-2:]
    assert caret_line.index("^") == text_line.index("x")
