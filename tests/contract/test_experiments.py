"""Experiments on every store: create, find, rename, soft delete, restore, bad input."""

from __future__ import annotations

import pytest

from loopml.core.workspace import Workspace
from loopml.errors import AlreadyExists, InvalidInput, InvalidState, NotFound
from loopml.tracking import experiments, fluent


def test_default_experiment_exists_with_id_zero(ws: Workspace) -> None:
    default = experiments.get(ws, "Default")
    assert default.id == 0
    assert experiments.get(ws, 0) == default


def test_create_get_list_rename(ws: Workspace) -> None:
    created = experiments.create(ws, "churn")
    assert experiments.get(ws, "churn") == created
    assert experiments.get(ws, str(created.id)) == created
    renamed = experiments.rename(ws, "churn", "churn-v2")
    assert renamed.id == created.id and renamed.name == "churn-v2"
    assert [e.name for e in experiments.list_all(ws)] == ["Default", "churn-v2"]
    with pytest.raises(NotFound, match="churn"):
        experiments.get(ws, "churn")


def test_duplicate_names_are_refused(ws: Workspace) -> None:
    experiments.create(ws, "churn")
    experiments.create(ws, "other")
    with pytest.raises(AlreadyExists, match="'churn' already exists"):
        experiments.create(ws, "churn")
    with pytest.raises(AlreadyExists, match="'other' already exists"):
        experiments.rename(ws, "churn", "other")


def test_soft_delete_hides_keeps_the_name_and_restores(ws: Workspace) -> None:
    exp = experiments.create(ws, "churn")
    experiments.delete(ws, "churn")
    assert [e.name for e in experiments.list_all(ws)] == ["Default"]
    assert [e.name for e in experiments.list_all(ws, view="deleted")] == ["churn"]
    with pytest.raises(AlreadyExists, match="deleted"):
        experiments.create(ws, "churn")
    with pytest.raises(InvalidState, match="restore"):
        fluent.start_run("churn")
    assert experiments.restore(ws, "churn").lifecycle_stage == "active"
    with fluent.start_run("churn") as run:
        assert run.experiment_id == exp.id


@pytest.mark.parametrize("name", ["", "   ", "x" * 501, None, 3.5])
def test_bad_names_are_refused(ws: Workspace, name: object) -> None:
    with pytest.raises(InvalidInput):
        experiments.create(ws, name)  # type: ignore[arg-type]


def test_unknown_experiment_and_view(ws: Workspace) -> None:
    with pytest.raises(NotFound, match="loopml experiments list"):
        experiments.get(ws, "nope")
    with pytest.raises(NotFound):
        experiments.delete(ws, 12345)
    with pytest.raises(InvalidInput, match="view"):
        experiments.list_all(ws, view="everything")


def test_runs_of_a_deleted_experiment_show_only_when_asked_for_by_name(ws: Workspace) -> None:
    from loopml.tracking import runs

    with fluent.start_run("gone") as hidden:
        pass
    with fluent.start_run("kept") as shown:
        pass
    experiments.delete(ws, "gone")
    assert [r.id for r in runs.list_runs(ws)] == [shown.id]
    assert [r.id for r in fluent.search_runs()] == [shown.id]
    assert [r.id for r in runs.list_runs(ws, "gone")] == [hidden.id]
    assert [r.id for r in fluent.search_runs("gone")] == [hidden.id]
