"""Run search on every store: the filter language compiled to SQL, ordering, paging."""

from __future__ import annotations

import math
import time

import pytest

import loopml
from loopml.core.workspace import Workspace
from loopml.errors import InvalidFilter, InvalidInput, NotFound


@pytest.fixture
def seeded(ws: Workspace) -> dict[str, str]:
    """Twelve runs in 'churn' and one in 'other'; returns run names to ids."""
    ids = {}
    for i in range(12):
        time.sleep(0.002)  # start times are milliseconds: each run gets one of its own
        with loopml.start_run("churn", run_name=f"r{i:02d}") as run:
            run.log_params({"max_depth": i % 4, "model": "rf" if i % 2 else "Gbm"})
            if i % 3 == 0:
                run.set_tag("team", "a")
            run.log_metric("loss", 1 / (i + 1), step=0)
            if i != 5:
                run.log_metric("acc", math.nan if i == 7 else i / 20, step=0)
        ids[run.name] = run.id
    with loopml.start_run("other", run_name="elsewhere") as run:
        run.log_metric("loss", 0.0)
    ids[run.name] = run.id
    return ids


def names(found: list[loopml.RunRecord]) -> list[str]:
    return [r.name for r in found]


def test_the_issue_example(seeded: dict[str, str]) -> None:
    found = loopml.search_runs(
        "churn",
        filter="metrics.loss < 0.1 and (params.max_depth = '1' or tags.team = 'a')",
        order_by=["metrics.loss ASC"],
    )
    # loss < 0.1 means i >= 10; r11 has depth 3 and no tag; r10 depth 2 none; r09 too high loss
    assert names(found) == []
    found = loopml.search_runs(
        "churn",
        filter="metrics.loss < 0.2 and (params.max_depth = '1' or tags.team = 'a')",
        order_by=["metrics.loss ASC"],
    )
    assert names(found) == ["r09", "r06", "r05"]  # tag a, tag a, depth 1


@pytest.mark.parametrize(
    ("filter_text", "expected"),
    [
        ("params.max_depth = '3'", {"r03", "r07", "r11"}),
        ("params.max_depth != '3' and metrics.loss >= 0.25", {"r00", "r01", "r02"}),
        ("params.model LIKE 'G%'", {"r00", "r02", "r04", "r06", "r08", "r10"}),
        ("params.model LIKE 'g%'", set()),  # LIKE is case-sensitive on every store
        ("params.model ILIKE 'g%'", {"r00", "r02", "r04", "r06", "r08", "r10"}),
        ("params.max_depth IN ('0', '2') and tags.team = 'a'", {"r00", "r06"}),
        ("params.max_depth NOT IN ('0', '1', '2')", {"r03", "r07", "r11"}),
        ("tags.team IS NULL and metrics.loss > 0.2", {"r01", "r02"}),
        ("tags.team IS NOT NULL", {"r00", "r03", "r06", "r09"}),
        ("run_name = 'r04' or run_name = 'r05'", {"r04", "r05"}),
        ("status = 'FINISHED' and run_name LIKE 'r1%'", {"r10", "r11"}),
        ("metrics.acc > 0.4", {"r09", "r10", "r11"}),  # NaN never matches a comparison
        ("(metrics.loss >= 0.5 or metrics.loss < 0.09) and params.model = 'rf'", {"r01", "r11"}),
    ],
)
def test_filters(seeded: dict[str, str], filter_text: str, expected: set[str]) -> None:
    assert set(names(loopml.search_runs("churn", filter=filter_text))) == expected


def test_time_attributes_compare_as_numbers(seeded: dict[str, str]) -> None:
    first = loopml.get_run(seeded["r00"])
    later = loopml.search_runs("churn", filter=f"start_time > {first.start_time - 1}")
    assert len(later) == 12
    assert names(loopml.search_runs("churn", filter="end_time IS NULL")) == []


def test_order_by_metric_puts_nan_and_missing_last(seeded: dict[str, str]) -> None:
    found = loopml.search_runs("churn", order_by=["metrics.acc DESC"])
    assert names(found)[:3] == ["r11", "r10", "r09"]
    assert names(found)[-2:] == ["r07", "r05"]  # NaN, then no value at all
    ascending = loopml.search_runs("churn", order_by=["metrics.acc ASC"])
    assert names(ascending)[0] == "r00"
    assert names(ascending)[-2:] == ["r07", "r05"]


def test_order_by_param_then_attribute(seeded: dict[str, str]) -> None:
    found = loopml.search_runs("churn", order_by=["params.max_depth DESC", "run_name ASC"])
    assert names(found)[:3] == ["r03", "r07", "r11"]


def test_default_order_is_newest_first(seeded: dict[str, str]) -> None:
    assert names(loopml.search_runs("churn"))[0] == "r11"


def test_pages_cover_everything_once(seeded: dict[str, str]) -> None:
    seen: list[str] = []
    token = None
    while True:
        page = loopml.search_runs(
            "churn", order_by=["metrics.loss ASC"], max_results=5, page_token=token
        )
        seen += names(page)
        token = page.next_page_token
        if token is None:
            break
    assert seen == [f"r{i:02d}" for i in reversed(range(12))]


def test_experiment_scope(seeded: dict[str, str]) -> None:
    assert names(loopml.search_runs("other")) == ["elsewhere"]
    assert len(loopml.search_runs(["churn", "other"])) == 13
    assert len(loopml.search_runs()) == 13
    with pytest.raises(NotFound):
        loopml.search_runs("missing")


def test_results_convert_to_a_dataframe(seeded: dict[str, str]) -> None:
    frame = loopml.search_runs("churn", order_by=["metrics.loss ASC"]).to_pandas()
    assert list(frame["run_name"])[:2] == ["r11", "r10"]
    assert {"metrics.loss", "params.max_depth", "tags.team"} <= set(frame.columns)


@pytest.mark.parametrize(
    ("filter_text", "position"),
    [
        ("metrics.loss < 0.1 and (params.a = '1'", 23),
        ("metrics.loss <", 14),
        ("params.depth = 5", 15),
        ("metricz.loss < 1", 0),
        ("metrics.loss < 1 metrics.acc > 2", 17),
        ("metrics.acc IS NULL", 12),
    ],
)
def test_malformed_filters_point_at_the_problem(
    seeded: dict[str, str], filter_text: str, position: int
) -> None:
    with pytest.raises(InvalidFilter) as caught:
        loopml.search_runs("churn", filter=filter_text)
    assert caught.value.position == position
    assert str(caught.value).splitlines()[-1] == " " * (position + 2) + "^"


@pytest.mark.parametrize("bad", [0, -1, 50_001, "10", True])
def test_max_results_bounds(seeded: dict[str, str], bad: object) -> None:
    with pytest.raises(InvalidInput, match="max_results"):
        loopml.search_runs("churn", max_results=bad)  # type: ignore[arg-type]


def test_forged_page_tokens_are_refused(seeded: dict[str, str]) -> None:
    for token in ("garbage!", "eyJub3QiOiAxfQ==", "eyJvZmZzZXQiOiAtMX0="):
        with pytest.raises(InvalidInput, match="page_token"):
            loopml.search_runs("churn", page_token=token)


def test_wrong_types_are_refused(seeded: dict[str, str]) -> None:
    with pytest.raises(InvalidInput, match="filter must be a string"):
        loopml.search_runs("churn", filter=["metrics.loss < 1"])  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="order_by"):
        loopml.search_runs("churn", order_by=[1])  # type: ignore[list-item]
    assert names(loopml.search_runs("churn", order_by="run_name DESC"))[0] == "r11"  # type: ignore[arg-type]


@pytest.fixture
def texts(ws: Workspace) -> None:
    for name, value in [
        ("underscore", "a_b"),
        ("other", "a\\xb"),
        ("upper", "HÉLLO"),
        ("lower", "héllo"),
        ("dash", "A-1"),
        ("b", "b"),
        ("B", "B"),
    ]:
        with loopml.start_run("texts", run_name=name) as run:
            run.set_tag("t", value)


def test_like_escapes_and_unicode_case_agree_on_every_store(texts: None) -> None:
    assert names(loopml.search_runs("texts", filter="tags.t LIKE 'a\\_b'")) == ["underscore"]
    assert set(names(loopml.search_runs("texts", filter="tags.t ILIKE 'héllo'"))) == {
        "upper",
        "lower",
    }
    with pytest.raises(InvalidInput, match="lone backslash"):
        loopml.search_runs("texts", filter="tags.t LIKE 'ab\\\\'")


def test_text_orders_by_bytes_on_every_store(texts: None) -> None:
    found = loopml.search_runs("texts", order_by=["tags.t ASC"])
    assert [r.tags["t"] for r in found] == sorted(r.tags["t"] for r in found)


def test_huge_page_tokens_are_refused(seeded: dict[str, str]) -> None:
    import base64
    import json as json_

    token = base64.urlsafe_b64encode(json_.dumps({"offset": 2**63}).encode()).decode()
    with pytest.raises(InvalidInput, match="page_token"):
        loopml.search_runs("churn", page_token=token)
