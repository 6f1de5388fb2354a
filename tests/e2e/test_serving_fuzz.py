"""Fuzzing a live server over HTTP: whatever a client sends, a clear answer.

One real server (a `loopml serve` process on a free loopback port, then a deployment's
`loopml deploy serve`, which routes through its router) serves a scikit-learn
classifier of three numeric columns and one text column. Hypothesis sends it arbitrary bytes,
arbitrary JSON, and bodies that look like v2 and MLflow requests but get names, shapes, types
or sizes wrong. Every answer must be a 2xx or a 4xx (the model is well-behaved on any input
its signature lets through, so a 5xx is the server's fault); a 4xx says what was wrong in a
JSON error string; a 2xx has one prediction per row sent; and the server keeps answering.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context

from tests.e2e.cli import LOOPML, environment, free_port, loopml, python

SETUP = """
    import numpy as np
    import pandas as pd
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer, OneHotEncoder

    import loopml

    rng = np.random.default_rng(7)
    frame = pd.DataFrame({
        "a": rng.normal(size=60),
        "b": rng.normal(size=60),
        "n": rng.integers(0, 5, size=60),
        "color": rng.choice(["red", "green", "blue"], size=60).astype(object),
    })
    labels = (frame["a"] + frame["b"] > 0).astype(int)
    # The float columns take NaN (missing) and any float: nan_to_num makes the model answer
    # those too, so only the server can turn a request into a 5xx.
    features = ColumnTransformer([
        ("numbers", FunctionTransformer(np.nan_to_num), ["a", "b", "n"]),
        ("color", OneHotEncoder(handle_unknown="ignore"), ["color"]),
    ])
    model = make_pipeline(features, LogisticRegression()).fit(frame, labels)
    with loopml.start_run():
        loopml.log_model(model, name="clf", input_example=frame.head(5))
    loopml.set_alias("clf", "champion", 1)
"""
COLUMNS = ("a", "b", "n", "color")
LIMIT = 64 * 1024  # the server's body limit: --max-body-mb 0.0625
VALID_ROW = {"a": 0.5, "b": -1.0, "n": 2, "color": "red"}
FUZZ = settings(
    max_examples=int(os.environ.get("LOOPML_FUZZ_EXAMPLES", "60")),  # more for a longer hunt
    deadline=None,
    derandomize=True,  # the same examples on every run, so CI failures reproduce
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@dataclass
class Server:
    url: str
    log: Path
    client: httpx.Client

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


@pytest.fixture(scope="module", params=["serve", "deploy"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """A model server (`loopml serve`) or a deployment's server (`loopml deploy serve`)."""
    root = tmp_path_factory.mktemp("serving-fuzz")
    loopml("init", cwd=root)
    python(SETUP, cwd=root)
    command: tuple[str, ...] = ("serve", "clf@champion")
    if request.param == "deploy":
        loopml("deploy", "create", "fz", "--model", "clf@champion", "--no-serve", cwd=root)
        command = ("deploy", "serve", "fz")
    port, output = free_port(), root / "server.log"
    with output.open("w") as sink:
        # A file, not a pipe: hundreds of access-log lines would fill a pipe and stall it.
        process = subprocess.Popen(
            [
                *(str(LOOPML), *command, "--port", str(port)),
                *("--max-batch-size", "4", "--max-wait-ms", "2"),
                *("--max-body-mb", str(LIMIT / 2**20)),
            ],
            cwd=root,
            env=environment(),
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=url, timeout=60) as client:
            _wait_ready(client, process, output)
            yield Server(url, output, client)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)


def _wait_ready(client: httpx.Client, process: subprocess.Popen[bytes], output: Path) -> None:
    for _ in range(600):
        if process.poll() is not None:
            raise AssertionError(f"loopml serve exited {process.returncode}:\n{output.read_text()}")
        try:
            if client.get("/v2/health/ready", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=0.2)
    raise AssertionError(f"loopml serve was not ready:\n{output.read_text()}")


# The property every answer must have


def check(server: Server, response: httpx.Response, rows: int | None = None) -> None:
    """Assert the answer is a clear 2xx or 4xx, then that the server still predicts."""
    status, sent = response.status_code, response.request
    shown = f"{sent.method} {sent.url.path} -> {status}: {response.text[:500]}"
    assert status < 500, f"{shown}\n--- server log ---\n{server.tail()}"
    # Starlette redirects a path with a trailing slash to the route without one.
    redirect = status in (307, 308) and "location" in response.headers
    assert 200 <= status < 300 or 400 <= status < 500 or redirect, shown
    if currently_in_test_context():  # --hypothesis-show-statistics counts the answers
        event(f"HTTP {status}")
    # uvicorn's HTTP parser refuses a malformed request (a control character in a header)
    # itself, with a plain-text 400, before any route sees it.
    refused = status == 400 and response.text.startswith("Invalid HTTP request")
    if refused:
        assert any(not v.isascii() or not v.isprintable() for v in sent.headers.values()), shown
    elif sent.method != "HEAD" and not redirect and (status >= 400 or sent.url.path[:3] == "/v2"):
        body = response.json()
        if status >= 400:
            message = body.get("error", body.get("message"))
            assert isinstance(message, str) and message.strip(), shown
    if 200 <= status < 300 and rows is not None:
        assert predictions(sent.url.path, response.json()) == rows, shown
    alive = server.client.post("/invocations", json={"dataframe_records": [VALID_ROW]})
    assert alive.status_code == 200, f"after {shown}: {alive.text}\n{server.tail()}"
    assert alive.json()["predictions"] in ([0], [1])


def predictions(path: str, body: dict[str, Any]) -> int:
    if path == "/invocations":
        return len(body["predictions"])
    (output,) = body["outputs"]
    count: int = output["shape"][0]
    assert len(output["data"]) == count, body
    return count


# Strategies

# Values clients get wrong: nulls, booleans, huge and tiny numbers, NaN and infinities
# (json.dumps writes them as NaN/Infinity, which is not JSON but which clients send), text
# that looks like numbers.
wild = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.sampled_from([2**63, -(2**63) - 1, 2**64, 10**30, -1])
    | st.floats()
    | st.sampled_from([1e308, -1e308, 5e-324, math.nan, math.inf])
    | st.sampled_from(["NaN", "nan", "inf", "1.5", "", "red", "\x00", "\u2603"])
    | st.text(max_size=8)
)
json_values = st.recursive(
    wild,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner),
    max_leaves=12,
)
good_values = {
    "a": st.floats(allow_nan=False, allow_infinity=False, width=32) | st.none(),
    "b": st.floats(-1e6, 1e6) | st.integers(-100, 100),
    "n": st.integers(-(2**63), 2**63 - 1),
    "color": st.sampled_from(["red", "green", "blue", "mauve", ""]) | st.text(max_size=10),
}
column_names = st.sampled_from([*COLUMNS, "x", "A", "", "color "]) | st.text(max_size=6)


def sometimes(draw: st.DrawFn, clean: bool, one_in: int) -> bool:
    """Return True for about one draw in `one_in`, and never for a clean example."""
    return not clean and draw(st.integers(0, one_in - 1)) == 0


@st.composite
def columns(draw: st.DrawFn, clean: bool) -> tuple[int, dict[str, list[Any]]]:
    """Return a row count and columns: the model's, or (unless clean) missing, extra or wrong."""
    rows = draw(st.integers(0 if not clean else 1, 4))
    names = list(COLUMNS)
    if sometimes(draw, clean, 3):
        names = draw(st.lists(column_names, max_size=6, unique=True))
    table: dict[str, list[Any]] = {}
    for name in names:
        good = good_values.get(name, wild)
        value = wild if sometimes(draw, clean, 4) else good
        table[name] = draw(st.lists(value, min_size=rows, max_size=rows))
    return rows, table


def records(table: dict[str, list[Any]], rows: int) -> list[dict[str, Any]]:
    return [{name: values[i] for name, values in table.items()} for i in range(rows)]


DATATYPES = ["BOOL", "UINT8", "INT32", "INT64", "UINT64", "FP16", "FP32", "FP64", "BYTES"]
RIGHT_TYPE = {"a": "FP64", "b": "FP32", "n": "INT64", "color": "BYTES"}


@st.composite
def v2_bodies(draw: st.DrawFn) -> tuple[dict[str, Any], int]:
    """Return a v2 infer body (one input per column, or one [N, 4] input) and its rows."""
    clean = draw(st.integers(0, 2)) == 0  # a third right in all but the values' sizes
    rows, table = draw(columns(clean))
    inputs: list[Any] = []
    for name, values in table.items():
        datatype = RIGHT_TYPE.get(name, "FP64")
        if sometimes(draw, clean, 5):
            datatype = draw(st.sampled_from([*DATATYPES, "FLOAT", "fp64", "STRING"]) | wild)
        shape: Any = [rows]
        if sometimes(draw, clean, 3):
            shape = draw(st.sampled_from([[1, rows], [rows + 1], [], [-1], [rows, 2]]) | wild)
        data: Any = values
        if draw(st.booleans()):
            data, shape = [[v] for v in values], [rows, 1]  # nested, as a column [N, 1]
        if sometimes(draw, clean, 8):
            data = draw(json_values)
        inputs.append({"name": name, "shape": shape, "datatype": datatype, "data": data})
    if sometimes(draw, clean, 6):  # every column in one tensor, row-major
        flat = [v for row in records(table, rows) for v in row.values()]
        datatype = draw(st.sampled_from(["FP64", "BYTES"]))
        inputs = [{"name": "x", "shape": [rows, len(table)], "datatype": datatype, "data": flat}]
    body: dict[str, Any] = {"inputs": inputs}
    extras = {
        "id": st.text(max_size=5),
        "parameters": st.just({"content_type": "pd"}) | st.dictionaries(st.text(), wild),
        "outputs": st.just([{"name": "predict"}]),
    }
    for key, strategy in extras.items():
        if draw(st.integers(0, 3)) == 0:
            body[key] = draw(strategy)
    for key in ("id", "parameters", "outputs", "surprise"):
        if sometimes(draw, clean, 8):
            body[key] = draw(json_values)
    return body, rows


@st.composite
def invocations_bodies(draw: st.DrawFn) -> tuple[bytes, str | bytes | None, int]:
    """Return an /invocations body in one of MLflow's formats, its content type and rows."""
    clean = draw(st.integers(0, 2)) == 0
    rows, table = draw(columns(clean))
    kinds = ["split", "records", "instances", "inputs", "csv", "parquet"]
    kind = draw(st.sampled_from(kinds if clean else [*kinds, "odd"]))
    content_type: str | bytes | None = "application/json"
    body: Any
    if kind == "split":
        data = [list(row.values()) for row in records(table, rows)]
        body = {"dataframe_split": {"columns": list(table), "data": data}}
        if sometimes(draw, clean, 2):
            body["dataframe_split"]["index"] = draw(st.lists(wild, max_size=5))
    elif kind == "records":
        body = {"dataframe_records": records(table, rows)}
    elif kind == "instances":
        body = {"instances": records(table, rows)}
    elif kind == "inputs":
        body = {"inputs": table}
    elif kind == "odd":  # right key, wrong shape of value, or keys that do not belong
        key = draw(st.sampled_from(["dataframe_split", "dataframe_records", "instances", "inputs"]))
        body = {key: draw(json_values)}
        if draw(st.booleans()):
            body[draw(st.sampled_from(["params", "extra", "inputs"]))] = draw(json_values)
    if kind in ("csv", "parquet"):
        frame = pd.DataFrame(table, columns=list(table)) if table else pd.DataFrame()
        if kind == "csv":
            content_type, encoded = "text/csv", frame.to_csv(index=False).encode()
        else:
            content_type, encoded = "application/vnd.apache.parquet", _parquet(frame)
    else:
        if sometimes(draw, clean, 5):
            body["params"] = draw(json_values)
        encoded = json.dumps(body).encode()
    content_types = st.sampled_from(
        [None, "application/json; charset=utf-8", "text/csv", "text/plain", "application/json;x"]
    )
    if sometimes(draw, clean, 6):
        content_type = draw(content_types | header_text(20))
    return encoded, content_type, rows


def _parquet(frame: pd.DataFrame) -> bytes:
    sink = io.BytesIO()
    try:
        frame.to_parquet(sink)
    except (
        ValueError,
        TypeError,
        OverflowError,
        NotImplementedError,
    ):  # mixed-type columns do not write
        return b"PAR1 not really"
    return sink.getvalue()


def header_text(limit: int) -> st.SearchStrategy[bytes]:
    """Header values HTTP can carry: tab, printable ASCII and Latin-1, even if not printable
    text to Python."""
    alphabet = st.sampled_from("\t ~") | st.characters(min_codepoint=0x20, max_codepoint=0xFF)
    # h11 refuses a value that starts or ends with whitespace, so the client never sends one.
    return st.text(alphabet, max_size=limit).map(lambda s: s.strip(" \t").encode("latin-1"))


request_ids = st.none() | header_text(20) | header_text(400)


def headers(content_type: str | bytes | None, request_id: bytes | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if content_type is not None:
        out["content-type"] = content_type
    if request_id is not None:
        out["x-request-id"] = request_id
    return out


# The fuzz tests


@FUZZ
@given(
    body=st.binary(max_size=300) | json_values.map(lambda v: json.dumps(v).encode()),
    path=st.sampled_from(["/invocations", "/v2/models/clf/infer", "/feedback"]),
    content_type=st.none() | st.sampled_from(["application/json", "text/csv"]) | header_text(30),
)
def test_any_bytes_or_json_get_a_clear_answer(
    server: Server, body: bytes, path: str, content_type: str | bytes | None
) -> None:
    answer = server.client.post(path, content=body, headers=headers(content_type, None))
    check(server, answer)


@FUZZ
@given(case=v2_bodies(), versioned=st.booleans(), request_id=request_ids)
def test_v2_infer_bodies_get_a_clear_answer(
    server: Server, case: tuple[dict[str, Any], int], versioned: bool, request_id: bytes | None
) -> None:
    body, rows = case
    path = "/v2/models/clf/versions/1/infer" if versioned else "/v2/models/clf/infer"
    encoded = json.dumps(body).encode()
    answer = server.client.post(path, content=encoded, headers=headers(None, request_id))
    check(server, answer, rows)


@FUZZ
@given(case=invocations_bodies(), request_id=request_ids)
def test_invocations_bodies_get_a_clear_answer(
    server: Server, case: tuple[bytes, str | bytes | None, int], request_id: bytes | None
) -> None:
    body, content_type, rows = case
    answer = server.client.post(
        "/invocations", content=body, headers=headers(content_type, request_id)
    )
    check(server, answer, rows)


segments = st.sampled_from(["clf", "other", "1", "2", "versions", "infer", "ready", ""]) | st.text(
    st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters="/?#%"), max_size=6
)


@FUZZ
@given(
    parts=st.lists(segments, max_size=4),
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]),
    body=st.none() | st.builds(lambda rows: {"dataframe_records": rows}, st.just([VALID_ROW])),
)
def test_any_path_and_method_under_models_get_a_clear_answer(
    server: Server, parts: list[str], method: str, body: Any
) -> None:
    path = "/v2/models/" + "/".join(parts)
    content = json.dumps(body).encode() if body is not None else None
    check(server, server.client.request(method, path, content=content))


@FUZZ
@given(
    path=st.sampled_from(
        [
            *("/v2", "/v2/health/live", "/v2/health/ready", "/ping", "/health", "/version"),
            *("/metrics", "/invocations", "/feedback", "/nowhere", "/v2/models"),
        ]
    ),
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "HEAD"]),
)
def test_every_route_and_method_gets_a_clear_answer(server: Server, path: str, method: str) -> None:
    check(server, server.client.request(method, path))


feedback_items = st.fixed_dictionaries(
    {"request_id": st.text(max_size=10) | wild, "label": json_values}
) | st.dictionaries(st.sampled_from(["request_id", "label", "extra"]), json_values)


@FUZZ
@given(
    body=feedback_items
    | st.fixed_dictionaries({"feedback": st.lists(feedback_items, max_size=3) | json_values})
    | json_values
)
def test_feedback_bodies_get_a_clear_answer(server: Server, body: Any) -> None:
    check(server, server.client.post("/feedback", content=json.dumps(body).encode()))


# Sizes, names and the answers a caller can rely on


def test_bodies_over_the_limit_are_refused_whether_their_length_is_declared_or_not(
    server: Server,
) -> None:
    row = json.dumps(VALID_ROW)
    padded = ('{"dataframe_records": [' + row + "]}").ljust(LIMIT).encode()
    assert len(padded) == LIMIT
    at_limit = server.client.post("/invocations", content=padded)
    assert at_limit.status_code == 200, at_limit.text  # the limit itself is allowed

    over = padded + b" "
    for path in ("/invocations", "/v2/models/clf/infer", "/feedback"):
        declared = server.client.post(path, content=over)
        assert declared.status_code == 413, (path, declared.text)
        body = declared.json()  # MLflow's error body on /invocations, {"error": ...} elsewhere
        assert f"limit of {LIMIT:,} bytes" in body.get("error", body.get("message", ""))
        chunked = server.client.post(path, content=iter([padded, b" "]))
        assert chunked.request.headers.get("transfer-encoding") == "chunked"
        assert "content-length" not in chunked.request.headers
        assert chunked.status_code == 413, (path, chunked.text)
        check(server, chunked)


def test_unknown_model_names_and_versions_are_404s_that_name_what_is_served(
    server: Server,
) -> None:
    body = {"inputs": [{"name": "a", "shape": [1], "datatype": "FP64", "data": [1.0]}]}
    for path in ("/v2/models/churn", "/v2/models/clf/versions/9/ready", "/v2/models/x/infer"):
        answer = server.client.post(path, json=body) if "infer" in path else server.client.get(path)
        assert answer.status_code == 404, answer.text
        assert "clf version 1" in answer.json()["error"]


def test_a_request_id_is_echoed_only_when_it_is_printable_and_short(server: Server) -> None:
    body = {"dataframe_records": [VALID_ROW]}
    for given_id, kept in (("req-1", True), ("x" * 201, False), ("tab\there", False)):
        answer = server.client.post("/invocations", json=body, headers={"x-request-id": given_id})
        assert answer.status_code == 200, answer.text
        assert (answer.headers["x-request-id"] == given_id) is kept
        assert answer.json()["request_id"] == answer.headers["x-request-id"]


def test_wrong_dtypes_name_the_column(server: Server) -> None:
    cases = [
        ({"dataframe_records": [{**VALID_ROW, "color": 3}]}, "'color'"),
        ({"dataframe_records": [{**VALID_ROW, "n": 1.5}]}, "'n'"),
        ({"dataframe_records": [{**VALID_ROW, "a": "high"}]}, "'a'"),
    ]
    for body, named in cases:
        answer = server.client.post("/invocations", json=body)
        assert answer.status_code == 400 and named in answer.json()["message"], answer.text
    tensor = {"name": "n", "shape": [1], "datatype": "FP64", "data": [1.5]}
    others = [
        {"name": c, "shape": [1], "datatype": RIGHT_TYPE[c], "data": [VALID_ROW[c]]}
        for c in ("a", "b", "color")
    ]
    answer = server.client.post("/v2/models/clf/infer", json={"inputs": [*others, tensor]})
    assert answer.status_code == 400 and "'n'" in answer.json()["error"], answer.text


BEYOND_FLOAT64 = {  # well-formed bodies but for one number JSON parses as infinity
    "/invocations": b'{"dataframe_records": [{"a": 1e400, "b": 1, "n": 1, "color": "red"}]}',
    "/v2/models/clf/infer": json.dumps(
        {
            "inputs": [
                {"name": c, "shape": [1], "datatype": RIGHT_TYPE[c], "data": [v]}
                for c, v in {**VALID_ROW, "a": 12345.5}.items()
            ]
        }
    )
    .replace("12345.5", "1e400")
    .encode(),
    "/feedback": b'{"request_id": "r-1", "label": 1e400}',
}


@pytest.mark.parametrize("path", list(BEYOND_FLOAT64))
@pytest.mark.parametrize(
    "body",
    [b"[" * 50_000, b'{"a":' * 10_000, b"[" + b"7" * 5_000 + b"]", None],
    ids=["nested-lists", "nested-objects", "5000-digit-int", "beyond-float64"],
)
def test_json_too_deep_too_long_or_beyond_float64_is_a_400(
    server: Server, path: str, body: bytes | None
) -> None:
    answer = server.client.post(path, content=body or BEYOND_FLOAT64[path])
    assert answer.status_code == 400, answer.text
    check(server, answer)
