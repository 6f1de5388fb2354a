"""Routers: ASGI apps that wrap model apps and decide which one answers a request.

`Single`, `Weighted` (canary), `Sticky` (A/B by a request key), `BlueGreen` (preview under
/preview/) and `Shadow` (a copy to the candidate, compared, never returned) take ASGI apps and
are ASGI apps, so they stack like middleware. A router never changes: a deployment builds a new
one when its routing changes and swaps it in.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import math
import random
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("loopml.serving")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

PREVIEW = "/preview"
ARM_HEADER = b"x-deployment-arm"
MAX_SHADOWS_IN_FLIGHT = 64
MAX_BODY_BYTES = 32 * 1024 * 1024  # what a router buffers to read a key or copy a request


class Single:
    """Every request to one app."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)


class Weighted:
    """`weight` percent of requests, drawn at random, to `candidate`; the rest to `stable`."""

    def __init__(
        self, stable: ASGIApp, candidate: ASGIApp, weight: float, rng: random.Random | None = None
    ) -> None:
        self.stable, self.candidate, self.weight = stable, candidate, weight
        self._rng = rng or random.Random()  # noqa: S311 - traffic splitting, not security

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        chosen = self.candidate if self._rng.random() * 100 < self.weight else self.stable
        await chosen(scope, receive, send)


class Sticky:
    """An A/B split: `weight` percent to arm b, and each response says which arm answered.

    With a key, a header (`header:x-user-id`) or a field of the JSON body (`field:customer`,
    read from the first row of any request format), a key always picks the same arm; requests
    without one (or with no key configured) are split at random, and the keyless ones counted
    in `unkeyed`.
    """

    def __init__(
        self,
        a: ASGIApp,
        b: ASGIApp,
        weight: float,
        key: str | None,
        *,
        salt: str,
        max_body: int = MAX_BODY_BYTES,
        rng: random.Random | None = None,
    ) -> None:
        self.a, self.b, self.weight, self.salt, self.max_body = a, b, weight, salt, max_body
        kind, _, name = (key or "").partition(":")
        self.kind, self.key = kind, name.lower() if kind == "header" else name
        self.unkeyed = 0
        self._rng = rng or random.Random()  # noqa: S311 - traffic splitting, not security

    def arm(self, key: str | None) -> str:
        """Return "a" or "b" for request key `key` (at random without one)."""
        if key is None:
            return "b" if self._rng.random() * 100 < self.weight else "a"
        digest = hashlib.blake2b(f"{self.salt}\0{key}".encode(), digest_size=8).digest()
        return "b" if int.from_bytes(digest) % 10_000 < self.weight * 100 else "a"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        key = None
        if self.kind == "header":
            key = _header(scope, self.key.encode())
        elif self.kind == "field":
            body = await _buffered(scope, receive, send, self.max_body)
            if body is None:
                return
            receive = replay(body)
            key = field_value(body, self.key)
        if key is None and self.kind:
            self.unkeyed += 1
        arm = self.arm(key)

        async def tagged(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (ARM_HEADER, arm.encode())]
            await send(message)

        await (self.b if arm == "b" else self.a)(scope, receive, tagged)


class BlueGreen:
    """Requests under /preview/ to the preview app (prefix stripped); the rest to the active."""

    def __init__(self, active: ASGIApp, preview: ASGIApp) -> None:
        self.active, self.preview = active, preview

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if path == PREVIEW or path.startswith(PREVIEW + "/"):
            inner = path[len(PREVIEW) :] or "/"
            raw: bytes = scope.get("raw_path") or path.encode()
            raw = raw[len(PREVIEW) :] if raw.startswith(PREVIEW.encode()) else inner.encode()
            scope = {**scope, "path": inner, "raw_path": raw or b"/"}
            await self.preview(scope, receive, send)
            return
        await self.active(scope, receive, send)


@dataclass
class ShadowCounts:
    """How often the shadow agreed with the answer the caller got."""

    compared: int = 0
    agreed: int = 0
    shadow_failed: int = 0  # the shadow answered an error where the primary did not
    dropped: int = 0  # copies not sent: too many still in flight
    examples: list[dict[str, Any]] = field(default_factory=list)  # a few disagreements

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-able dict, with the agreement rate."""
        rate = self.agreed / self.compared if self.compared else None
        return {
            "compared": self.compared,
            "agreed": self.agreed,
            "agreement": rate,
            "shadow_failed": self.shadow_failed,
            "dropped": self.dropped,
            "examples": self.examples[-5:],
        }


class Shadow:
    """The primary answers; after it has, the shadow gets a copy of the request, and its
    answer is compared with the primary's and dropped. Both share the request id, so the
    prediction log pairs them."""

    def __init__(
        self, primary: ASGIApp, shadow: ASGIApp, *, max_body: int = MAX_BODY_BYTES
    ) -> None:
        self.primary, self.shadow, self.max_body = primary, shadow, max_body
        self.counts = ShadowCounts()
        self._tasks: set[asyncio.Task[None]] = set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] != "POST":
            await self.primary(scope, receive, send)
            return
        body = await _buffered(scope, receive, send, self.max_body)
        if body is None:
            return
        scope = _with_request_id(scope)
        answer = _Captured(send)
        await self.primary(scope, replay(body), answer)
        if len(self._tasks) >= MAX_SHADOWS_IN_FLIGHT:
            self.counts.dropped += 1
            return
        task = asyncio.create_task(self._copy(scope, body, answer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def aclose(self) -> None:
        """Wait for the copies still in flight."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _copy(self, scope: Scope, body: bytes, primary: _Captured) -> None:
        shadow = _Captured(None)
        try:
            await self.shadow(scope, replay(body), shadow)
        except Exception:  # a shadow never hurts the caller; its failure is counted
            log.exception("the shadow model failed on a copied request")
            if primary.status == 200:
                self.counts.shadow_failed += 1
            return
        if primary.status != 200:
            return
        if shadow.status != 200:
            self.counts.shadow_failed += 1
            return
        mine, theirs = predictions_of(primary.body()), predictions_of(shadow.body())
        self.counts.compared += 1
        if agree(mine, theirs):
            self.counts.agreed += 1
        elif len(self.counts.examples) < 50:
            self.counts.examples.append({"primary": _short(mine), "shadow": _short(theirs)})


class _Captured:
    """A `send` that keeps the response's status and body (and forwards it, if given one)."""

    def __init__(self, send: Send | None) -> None:
        self.send = send
        self.status = 0
        self.chunks: list[bytes] = []

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
        elif message["type"] == "http.response.body":
            self.chunks.append(message.get("body", b""))
        if self.send is not None:
            await self.send(message)

    def body(self) -> bytes:
        return b"".join(self.chunks)


async def read_body(receive: Receive, limit: int | None = None) -> bytes:
    """Return the whole request body from `receive`; raise BodyTooLarge past `limit` bytes."""
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if limit is not None and size > limit:
            raise BodyTooLarge(limit)
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


class BodyTooLarge(Exception):
    """A request body past the server's limit."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"the request body is over this server's limit of {limit:,} bytes; send fewer rows "
            "per request, or start the server with a larger --max-body-mb"
        )


async def _buffered(scope: Scope, receive: Receive, send: Send, limit: int) -> bytes | None:
    """Return the request body, or answer 413 (declared or read past `limit`) and return None."""
    declared = _header(scope, b"content-length")
    refused = declared is not None and declared.isdigit() and int(declared) > limit
    if not refused:
        try:
            return await read_body(receive, limit)
        except BodyTooLarge:
            pass
    body = json.dumps({"error": str(BodyTooLarge(limit))}).encode()
    length = str(len(body)).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", length)]
    await send({"type": "http.response.start", "status": 413, "headers": headers})
    await send({"type": "http.response.body", "body": body})
    return None


def replay(body: bytes) -> Receive:
    """Return a `receive` that hands out `body` once, then waits like a live connection."""
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.Event().wait()  # as a client that stays connected
        return {"type": "http.disconnect"}

    return receive


def field_value(body: bytes, name: str) -> str | None:
    """Return field `name` of the first row of a JSON request body (any format), as text."""
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(data, dict):
        return None
    value: Any = None
    if isinstance(split := data.get("dataframe_split"), dict):
        columns, rows = split.get("columns"), split.get("data")
        if isinstance(columns, list) and name in columns and isinstance(rows, list) and rows:
            row = rows[0]
            index = columns.index(name)
            value = row[index] if isinstance(row, list) and index < len(row) else None
    for key in ("dataframe_records", "instances"):
        rows = data.get(key)
        if isinstance(rows, list) and rows and isinstance(rows[0], dict):
            value = rows[0].get(name)
    inputs = data.get("inputs")
    if isinstance(inputs, dict) and isinstance(inputs.get(name), list) and inputs[name]:
        value = inputs[name][0]
    if isinstance(inputs, list):  # Open Inference Protocol: named tensors
        for tensor in inputs:
            if isinstance(tensor, dict) and tensor.get("name") == name:
                value = tensor.get("data")
                while isinstance(value, list):  # flat or nested (row-major): row 0's element
                    value = value[0] if value else None
    if value is None or isinstance(value, dict | list):
        return None
    return str(value)


def predictions_of(body: bytes) -> Any:
    """Return the predictions in a response body of either protocol (None if unreadable)."""
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(data, dict):
        return None
    if "predictions" in data:
        return data["predictions"]
    outputs = data.get("outputs")
    if isinstance(outputs, list):
        return [o.get("data") for o in outputs if isinstance(o, dict)]
    return None


def agree(a: Any, b: Any) -> bool:
    """Return True if two predictions are the same (numbers within a relative 1e-6)."""
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(agree(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(agree(a[k], b[k]) for k in a)
    if isinstance(a, int | float) and isinstance(b, int | float):
        return math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-12)
    return bool(a == b)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return bytes(value).decode("latin-1") or None
    return None


def _with_request_id(scope: Scope) -> Scope:
    """Return `scope` with an X-Request-Id header (a new one if the caller sent none)."""
    if _header(scope, b"x-request-id") is not None:
        return scope
    headers = [*scope.get("headers", []), (b"x-request-id", uuid.uuid4().hex.encode())]
    return {**scope, "headers": headers}


def _short(value: Any) -> str:
    return json.dumps(value)[:200]
