"""Routers, driven as real ASGI apps: who answers, what each model sees, what shadows count."""

from __future__ import annotations

import asyncio
import json
import math
import random
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from loopml.serving import routers


@dataclass
class Model:
    """A tiny model app: answers JSON predictions and keeps each request's scope and body."""

    who: str
    predictions: Any = (1, 2)
    status: int = 200
    error: Exception | None = None
    gate: asyncio.Event | None = None
    seen: list[dict[str, Any]] = field(default_factory=list)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        headers = {k.decode().lower(): v.decode() for k, v in scope.get("headers", [])}
        self.seen.append({**scope, "body": body, "headers": headers})
        if self.gate is not None:
            await self.gate.wait()
        if self.error is not None:
            raise self.error
        payload = json.dumps({"predictions": list(self.predictions), "who": self.who}).encode()
        headers_out = [(b"content-type", b"application/json"), (b"x-who", self.who.encode())]
        await send({"type": "http.response.start", "status": self.status, "headers": headers_out})
        await send({"type": "http.response.body", "body": payload})


async def send_all(
    router: Any,
    bodies: list[bytes],
    headers: list[dict[str, str]] | None = None,
    *,
    url: str = "/invocations",
    method: str = "POST",
) -> list[httpx.Response]:
    """Send each body through an HTTP client to `router`; return the responses."""
    transport = httpx.ASGITransport(app=router)
    async with httpx.AsyncClient(transport=transport, base_url="http://model") as client:
        sent = zip(bodies, headers or [{}] * len(bodies), strict=True)
        answers = [await client.request(method, url, content=b, headers=h) for b, h in sent]
    if isinstance(router, routers.Shadow):
        await router.aclose()  # the copies finish before their counts are read
    return answers


def post(router: Any, bodies: list[bytes], *args: Any, **kwargs: Any) -> list[httpx.Response]:
    return asyncio.run(send_all(router, bodies, *args, **kwargs))


def more(body: bytes) -> dict[str, Any]:
    return {"type": "http.request", "body": body, "more_body": True}


def last(body: bytes) -> dict[str, Any]:
    return {"type": "http.request", "body": body}


def receiver(*messages: dict[str, Any]) -> routers.Receive:
    """Return a `receive` that hands out `messages`, then a disconnect."""
    queue = list(messages)

    async def receive() -> dict[str, Any]:
        return queue.pop(0) if queue else {"type": "http.disconnect"}

    return receive


async def call(app: Any, chunks: list[bytes], headers: list[tuple[bytes, bytes]]) -> dict[str, str]:
    """Send one POST straight through ASGI, its body in `chunks`; return the response headers."""
    sent: list[dict[str, Any]] = []

    async def send(message: Any) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/invocations", "headers": headers}
    await app(scope, receiver(*(more(c) for c in chunks[:-1]), last(chunks[-1])), send)
    return {k.decode(): v.decode() for k, v in sent[0]["headers"]}


def near(count: int, n: int, percent: float) -> bool:
    """Return True if `count` of `n` is within 4 binomial standard deviations of `percent`."""
    p = percent / 100
    return abs(count - n * p) <= 4 * math.sqrt(n * p * (1 - p))


def arms_of(answers: list[httpx.Response]) -> list[str]:
    """Return each response's arm header, checking that the arm it names answered."""
    arms = [r.headers["x-deployment-arm"] for r in answers]
    assert arms == [r.json()["who"] for r in answers]
    return arms


def arms_by_key(keys: list[str], answers: list[httpx.Response]) -> dict[str, set[str]]:
    arms: dict[str, set[str]] = {}
    for key, arm in zip(keys, arms_of(answers), strict=True):
        arms.setdefault(key, set()).add(arm)
    return arms


@pytest.mark.parametrize(("weight", "n"), [(0, 200), (20, 2000), (100, 200)])
def test_weighted_sends_about_weight_percent_to_the_candidate(weight: float, n: int) -> None:
    stable, candidate = Model("stable"), Model("candidate")
    router = routers.Weighted(stable, candidate, weight, rng=random.Random(7))
    sent = [json.dumps({"instances": [{"x": i}]}).encode() for i in range(n)]
    whos = [r.json()["who"] for r in post(router, sent)]
    assert near(whos.count("candidate"), n, weight)  # exactly none at 0, all at 100
    assert len(candidate.seen) == whos.count("candidate")
    assert sorted(s["body"] for s in stable.seen + candidate.seen) == sorted(sent)


def test_sticky_header_key_always_lands_on_the_same_arm() -> None:
    router = routers.Sticky(Model("a"), Model("b"), 30, "header:X-User-Id", salt="churn")
    keys = [f"user-{i}" for i in range(100)] * 3
    random.Random(1).shuffle(keys)
    arms = arms_by_key(keys, post(router, [b"{}"] * len(keys), [{"x-user-id": k} for k in keys]))
    assert all(seen == {router.arm(key)} for key, seen in arms.items())
    assert {router.arm(key) for key in arms} == {"a", "b"}
    assert router.unkeyed == 0


@pytest.mark.parametrize("weight", [0, 10, 30, 50, 100])
def test_sticky_sends_about_weight_percent_of_keys_to_b(weight: float) -> None:
    router = routers.Sticky(Model("a"), Model("b"), weight, "header:x-user-id", salt="s")
    to_b = sum(router.arm(f"customer-{i}") == "b" for i in range(4000))
    assert near(to_b, 4000, weight)


def test_sticky_header_name_is_case_insensitive_but_the_value_is_exact() -> None:
    router = routers.Sticky(Model("a"), Model("b"), 50, "header:X-User-Id", salt="s")
    i = next(i for i in range(1000) if router.arm(f"User-{i}") != router.arm(f"user-{i}"))

    def arm(name: bytes, value: str) -> str:
        return asyncio.run(call(router, [b"{}"], [(name, value.encode())]))["x-deployment-arm"]

    upper = arm(b"X-USER-ID", f"User-{i}")
    assert upper == arm(b"x-user-id", f"User-{i}") == router.arm(f"User-{i}")
    assert arm(b"x-user-id", f"user-{i}") != upper
    assert router.unkeyed == 0


def formats(key: str) -> list[dict[str, Any]]:
    """The same request, keyed by `customer` in its first row, in every request format."""
    return [
        {"dataframe_split": {"columns": ["x", "customer"], "data": [[1, key], [2, "other"]]}},
        {"dataframe_records": [{"x": 1, "customer": key}, {"x": 2, "customer": "other"}]},
        {"instances": [{"customer": key, "x": 1}]},
        {"inputs": {"x": [1, 2], "customer": [key, "other"]}},
        {"inputs": [{"name": "customer", "shape": [1], "datatype": "BYTES", "data": [key]}]},
    ]


def test_sticky_field_key_is_read_from_every_format_and_the_body_arrives_intact() -> None:
    a, b = Model("a"), Model("b")
    router = routers.Sticky(a, b, 50, "field:customer", salt="s")
    keys = [str(k) for k in range(60) for _ in formats("")]
    sent = [json.dumps(f).encode() for k in range(60) for f in formats(str(k))]
    arms = arms_by_key(keys, post(router, sent))
    assert all(seen == {router.arm(key)} for key, seen in arms.items())
    assert {router.arm(key) for key in arms} == {"a", "b"}
    assert sorted(s["body"] for s in a.seen + b.seen) == sorted(sent)
    assert router.unkeyed == 0


def test_sticky_field_key_from_a_body_sent_in_chunks() -> None:
    a, b = Model("a"), Model("b")
    router = routers.Sticky(a, b, 50, "field:customer", salt="s")
    body = json.dumps({"dataframe_records": [{"customer": "c-42", "x": 1}]}).encode()
    arm = asyncio.run(call(router, [body[:5], body[5:20], body[20:]], []))["x-deployment-arm"]
    assert arm == router.arm("c-42")
    assert [s["body"] for s in (b if arm == "b" else a).seen] == [body]


@pytest.mark.parametrize(
    ("key", "headers", "unkeyed"),
    [
        ("field:customer", {}, 400),  # the body has no customer field
        ("header:x-user-id", {}, 400),
        ("header:x-user-id", {"x-user-id": ""}, 400),
        (None, {"x-user-id": "same"}, 0),  # a plain A/B split has no key to miss
    ],
)
def test_sticky_without_a_key_splits_at_random(
    key: str | None, headers: dict[str, str], unkeyed: int
) -> None:
    router = routers.Sticky(Model("a"), Model("b"), 50, key, salt="s", rng=random.Random(3))
    arms = arms_of(post(router, [b'{"instances": [{"x": 1}]}'] * 400, [headers] * 400))
    assert near(arms.count("b"), 400, 50)
    assert router.unkeyed == unkeyed


def test_sticky_assignments_survive_a_rebuild_and_a_new_salt_reshuffles_them() -> None:
    def arms(salt: str) -> list[str]:
        router = routers.Sticky(Model("a"), Model("b"), 50, "field:customer", salt=salt)
        return [router.arm(f"customer-{i}") for i in range(2000)]

    assert arms("churn:v1:v2") == arms("churn:v1:v2")
    moved = sum(x != y for x, y in zip(arms("churn:v1:v2"), arms("churn:v1:v3"), strict=True))
    assert near(moved, 2000, 50)


@pytest.mark.parametrize(
    ("url", "who", "path"),
    [
        ("/preview/invocations", "preview", "/invocations"),
        ("/preview/v2/models/m/infer?x=1", "preview", "/v2/models/m/infer"),
        ("/preview", "preview", "/"),
        ("/preview/", "preview", "/"),
        ("/previewx", "active", "/previewx"),
        ("/invocations", "active", "/invocations"),
        ("/v2/models/preview/infer", "active", "/v2/models/preview/infer"),
    ],
)
def test_bluegreen_sends_preview_paths_to_the_preview_without_the_prefix(
    url: str, who: str, path: str
) -> None:
    active, preview = Model("active"), Model("preview")
    [answer] = post(routers.BlueGreen(active, preview), [b'{"instances": [1]}'], url=url)
    assert answer.json()["who"] == who
    [seen] = (preview if who == "preview" else active).seen
    assert (seen["path"], seen["raw_path"]) == (path, path.encode())
    assert seen["query_string"] == url.partition("?")[2].encode()
    assert seen["body"] == b'{"instances": [1]}'


NO_COUNTS = {"compared": 0, "agreed": 0, "agreement": None, "shadow_failed": 0, "dropped": 0}


@pytest.mark.parametrize(
    ("shadow", "counts"),
    [
        (Model("shadow", [1.0000001, 2]), {"compared": 1, "agreed": 1, "agreement": 1.0}),
        (Model("shadow", [9, 9]), {"compared": 1, "agreed": 0, "agreement": 0.0}),
        (Model("shadow", error=RuntimeError("boom")), {"shadow_failed": 1}),
        (Model("shadow", status=500), {"shadow_failed": 1}),
    ],
)
def test_shadow_caller_gets_the_primary_answer_and_the_shadow_is_counted(
    shadow: Model, counts: dict[str, Any]
) -> None:
    router = routers.Shadow(Model("primary"), shadow)
    [answer] = post(router, [b'{"instances": [1, 2]}'])
    assert (answer.status_code, answer.headers["x-who"]) == (200, "primary")
    assert answer.json() == {"predictions": [1, 2], "who": "primary"}
    assert [s["body"] for s in shadow.seen] == [b'{"instances": [1, 2]}']
    report = router.counts.to_dict()
    assert {k: report[k] for k in NO_COUNTS} == {**NO_COUNTS, **counts}
    if counts.get("agreement") == 0.0:
        assert report["examples"] == [{"primary": "[1, 2]", "shadow": "[9, 9]"}]


def test_shadow_reports_the_last_five_disagreements() -> None:
    primary = Model("primary")
    router = routers.Shadow(primary, Model("shadow", [9]))
    for i in range(7):
        primary.predictions = [i]
        post(router, [b"{}"])
    report = router.counts.to_dict()
    assert (report["compared"], report["agreed"]) == (7, 0)
    assert [e["primary"] for e in report["examples"]] == [f"[{i}]" for i in range(2, 7)]


def test_shadow_gets_the_same_body_and_request_id_as_the_primary() -> None:
    primary, shadow = Model("primary"), Model("shadow")
    router = routers.Shadow(primary, shadow)
    post(router, [b'{"a": 1}', b'{"a": 2}', b'{"a": 3}'], [{"X-Request-Id": "r-1"}, {}, {}])
    ids = [s["headers"]["x-request-id"] for s in primary.seen]
    assert [s["headers"]["x-request-id"] for s in shadow.seen] == ids
    assert ids[0] == "r-1"
    assert all(ids) and len(set(ids)) == 3
    assert [s["body"] for s in shadow.seen] == [s["body"] for s in primary.seen]


@pytest.mark.parametrize("shadow_status", [200, 500])
def test_shadow_compares_nothing_when_the_primary_failed(shadow_status: int) -> None:
    router = routers.Shadow(Model("primary", status=500), Model("shadow", status=shadow_status))
    [answer] = post(router, [b"{}"])
    assert (answer.status_code, answer.json()["who"]) == (500, "primary")
    assert router.counts.to_dict() | {"examples": []} == NO_COUNTS | {"examples": []}


def test_shadow_does_not_copy_get_requests() -> None:
    shadow = Model("shadow")
    router = routers.Shadow(Model("primary"), shadow)
    [answer] = post(router, [b""], url="/v2/models/m", method="GET")
    assert answer.json()["who"] == "primary"
    assert shadow.seen == []


def test_shadow_aclose_waits_for_copies_in_flight() -> None:
    async def main() -> tuple[bool, int, int]:
        gate = asyncio.Event()
        router = routers.Shadow(Model("primary"), Model("shadow", gate=gate))
        await call(router, [b"{}"], [])
        compared_before = router.counts.compared
        closing = asyncio.create_task(router.aclose())
        for _ in range(5):
            await asyncio.sleep(0)
        waited = not closing.done()
        gate.set()
        await closing
        return waited, compared_before, router.counts.compared

    assert asyncio.run(main()) == (True, 0, 1)


def test_shadow_drops_copies_while_too_many_are_in_flight() -> None:
    limit = routers.MAX_SHADOWS_IN_FLIGHT

    async def main() -> tuple[list[str], dict[str, Any], int, int]:
        gate = asyncio.Event()
        shadow = Model("shadow", gate=gate)
        router = routers.Shadow(Model("primary"), shadow)
        whos = [(await call(router, [b"{}"], []))["x-who"] for _ in range(limit + 3)]
        gate.set()
        await router.aclose()
        report = router.counts.to_dict()
        await send_all(router, [b"{}"])  # room again once the copies finished
        return whos, report, router.counts.compared, len(shadow.seen)

    whos, report, compared_after, shadow_calls = asyncio.run(main())
    assert whos == ["primary"] * (limit + 3)
    assert (report["dropped"], report["compared"], report["agreed"]) == (3, limit, limit)
    assert (compared_after, shadow_calls) == (limit + 1, limit + 1)


def oip(data: Any, shape: list[int]) -> bytes:
    tensor = {"name": "customer", "shape": shape, "datatype": "BYTES", "data": data}
    return json.dumps({"inputs": [tensor]}).encode()


@pytest.mark.parametrize(
    ("body", "value"),
    [
        *[(json.dumps(f).encode(), "c1") for f in formats("c1")],
        (b'{"instances": [{"customer": 7}]}', "7"),
        (b'{"dataframe_records": [{"customer": false}]}', "False"),
        (b'{"dataframe_split": {"columns": ["customer"], "data": [[]]}}', None),
        (b'{"dataframe_split": {"columns": ["x"], "data": [[1]]}}', None),
        (b'{"instances": [[1, 2]]}', None),
        (b'{"instances": [{"customer": null}]}', None),
        (b'{"instances": [{"customer": {"id": 1}}]}', None),
        (b'{"instances": [{"customer": [1]}]}', None),
        (b'{"inputs": {"customer": []}}', None),
        (b'{"inputs": [{"name": "other", "data": [1]}]}', None),
        (oip([], [0]), None),
        (b'{"x": 1}', None),
        (b"[1, 2]", None),
        (b'"c1"', None),
        (b"{", None),
        (b"\xff\xfe", None),
    ],
)
def test_field_value_reads_the_first_row_of_any_format(body: bytes, value: str | None) -> None:
    assert routers.field_value(body, "customer") == value


def test_field_value_reads_a_column_sent_as_a_nested_n_by_1_tensor() -> None:
    # the server accepts a column as shape [N, 1] with nested data, so the key must be found
    assert routers.field_value(oip([["c1"], ["c2"]], [2, 1]), "customer") == "c1"


@pytest.mark.parametrize(
    ("body", "predictions"),
    [
        (b'{"predictions": [1, 2]}', [1, 2]),
        (b'{"predictions": {"label": ["a"]}}', {"label": ["a"]}),
        (b'{"predictions": null}', None),
        (
            b'{"outputs": [{"name": "y", "data": [1, 2]}, {"name": "p", "data": [0.5]}]}',
            [[1, 2], [0.5]],
        ),
        (b'{"outputs": [{"name": "y"}, "junk"]}', [None]),
        (b'{"outputs": "junk"}', None),
        (b'{"error": "bad input"}', None),
        (b"[1, 2]", None),
        (b"not json", None),
        (b"\xff", None),
    ],
)
def test_predictions_of_reads_either_protocol(body: bytes, predictions: Any) -> None:
    assert routers.predictions_of(body) == predictions


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ([1.0, 2.0], [1.0000001, 2.0], True),
        (1.0, 1.00001, False),
        (1e9, 1e9 + 100, True),
        (0, 1e-13, True),
        (0, 1e-9, False),
        ([1, 2], [1, 2, 3], False),
        ([[1, [2.0]], {"p": 0.3}], [[1, [2.0000001]], {"p": 0.3000000001}], True),
        ([[1, [2.0]]], [[1, [2.1]]], False),
        ({"a": 1, "b": 2}, {"b": 2, "a": 1}, True),
        ({"a": 1}, {"b": 1}, False),
        ("cat", "cat", True),
        ("cat", "dog", False),
        ("1", 1, False),
        (None, [1], False),
    ],
)
def test_agree_compares_numbers_within_a_relative_tolerance(a: Any, b: Any, same: bool) -> None:
    assert routers.agree(a, b) is same
    assert routers.agree(b, a) is same


def test_read_body_joins_chunks_and_stops_at_a_disconnect() -> None:
    joined = receiver(more(b'{"a"'), more(b": 1"), {"type": "http.request", "more_body": True})
    assert asyncio.run(routers.read_body(joined)) == b'{"a": 1'  # then a disconnect
    joined = receiver(more(b'{"a"'), more(b": 1"), last(b"}"), last(b"never read"))
    assert asyncio.run(routers.read_body(joined)) == b'{"a": 1}'


def test_replay_hands_the_body_once_then_waits_like_a_live_client() -> None:
    async def main() -> tuple[Any, bool]:
        receive = routers.replay(b'{"a": 1}')
        first = await receive()
        second = asyncio.create_task(receive())
        for _ in range(5):
            await asyncio.sleep(0)
        waiting = not second.done()
        second.cancel()
        return first, waiting

    assert asyncio.run(main()) == (
        {"type": "http.request", "body": b'{"a": 1}', "more_body": False},
        True,
    )


@pytest.mark.parametrize("kind", ["sticky", "shadow"])
def test_a_router_that_reads_the_body_refuses_one_over_the_limit(kind: str) -> None:
    a, b = Model("a"), Model("b")
    router: Any = (
        routers.Sticky(a, b, 50, "field:user", salt="s", max_body=100)
        if kind == "sticky"
        else routers.Shadow(a, b, max_body=100)
    )
    small, big = b'{"dataframe_records": [{"user": "u"}]}', b" " * 101
    answers = post(router, [small, big])
    assert answers[0].status_code == 200
    assert answers[1].status_code == 413 and "limit of 100 bytes" in answers[1].json()["error"]
    assert len(a.seen) + len(b.seen) == (1 if kind == "sticky" else 2)  # the big one reached none
    # Sent in chunks without a declared length, and past the limit: refused all the same.
    sent: list[dict[str, Any]] = []

    async def send(message: Any) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/invocations", "headers": []}
    asyncio.run(router(scope, receiver(more(b" " * 60), last(b" " * 60)), send))
    assert sent[0]["status"] == 413
