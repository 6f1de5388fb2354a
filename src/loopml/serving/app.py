"""The model server: one loaded model behind the Open Inference Protocol (KServe v2), MLflow's
`/invocations` and Prometheus' `/metrics`, as one ASGI app.

Every request is checked against the model's signature before it joins a batch, so a bad
request is a 400 that names the field and never costs other callers anything; a model that
raises gives that request a 500 with an error id (its traceback is logged under the id) and
the server keeps serving. Each response names the version that answered it, in the body and in
the `X-Model-Version` header.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

import loopml
from loopml.errors import InvalidInput, LoopMLError
from loopml.registry.package import LoadedModel
from loopml.registry.signature import enforce
from loopml.serving.batching import MicroBatcher
from loopml.serving.metrics import CONTENT_TYPE, ServerMetrics
from loopml.serving.prediction_log import PredictionLog
from loopml.serving.protocols import UnsupportedMediaType, invocations, parse_json, v2

log = logging.getLogger("loopml.serving")

MAX_BODY_BYTES = 32 * 1024 * 1024
# Routes a load balancer or Kubernetes probes without credentials.
OPEN_PATHS = frozenset({"/v2/health/live", "/v2/health/ready", "/ping", "/health"})


@dataclass(frozen=True)
class ServerSettings:
    """How a model server batches, limits and authenticates requests."""

    max_batch_size: int = 1
    max_wait_ms: float = 5.0
    max_body_bytes: int = MAX_BODY_BYTES
    token: str | None = None  # when set, every route but the health probes needs it
    log_predictions: bool = True
    log_sample_rate: float = 1.0


# Called after each prediction request: (server, request id, status, seconds, outputs).
OnAnswer = Callable[["ModelServer", str, int, float, Any], None]


class ModelServer:
    """One loaded model and the ASGI app that serves it.

    Alone it is the whole server; in a deployment several share one metrics registry and one
    prediction log, answer to the deployment's name too (`names`), and report each answer
    through `on_answer`.
    """

    def __init__(
        self,
        model: LoadedModel,
        *,
        name: str,
        version: str,
        settings: ServerSettings,
        log: PredictionLog | None = None,
        metrics: ServerMetrics | None = None,
        names: tuple[str, ...] = (),
        on_answer: OnAnswer | None = None,
    ) -> None:
        if settings.max_body_bytes < 1:
            raise InvalidInput(f"max_body_bytes must be at least 1, not {settings.max_body_bytes}")
        self.model = model
        self.name = name
        self.version = version
        self.names = frozenset((name, *names))
        self.settings = settings
        self.log = log
        self.metrics = metrics or ServerMetrics()
        self.model_metrics = self.metrics.of_model(name, version, model.package.flavor)
        self.on_answer = on_answer
        self.batcher = MicroBatcher(
            model.predict,
            max_batch_size=settings.max_batch_size,
            max_wait_ms=settings.max_wait_ms,
            on_batch=self.model_metrics.batch,
        )
        self.app = Starlette(
            routes=self._routes(),
            lifespan=self._lifespan,
            exception_handlers={HTTPException: self._http_error},
        )
        self.app.add_middleware(Guard, token=settings.token, headers=self._headers())

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)

    @asynccontextmanager
    async def _lifespan(self, app: Starlette) -> AsyncIterator[None]:
        yield
        await self.aclose()  # shutdown: answer every request already queued
        if self.log is not None:
            await asyncio.to_thread(self.log.close)  # and write every prediction logged

    async def aclose(self) -> None:
        """Answer every request already queued, then take no more."""
        await self.batcher.aclose()

    def _routes(self) -> list[Route]:
        model = "/v2/models/{name}"
        versioned = "/v2/models/{name}/versions/{version}"
        return [
            Route("/v2/health/live", self._live),
            Route("/v2/health/ready", self._ready),
            Route("/v2", self._server_metadata),
            Route(model, self._model_metadata),
            Route(versioned, self._model_metadata),
            Route(f"{model}/ready", self._model_ready),
            Route(f"{versioned}/ready", self._model_ready),
            Route(f"{model}/infer", self._infer, methods=["POST"]),
            Route(f"{versioned}/infer", self._infer, methods=["POST"]),
            Route("/invocations", self._invocations, methods=["POST"]),
            Route("/feedback", self._feedback, methods=["POST"]),
            Route("/ping", self._ping),
            Route("/health", self._ping),
            Route("/version", self._version),
            Route("/metrics", self._metrics),
        ]

    # Probes and metadata

    async def _live(self, request: Request) -> Response:
        return self._json({"live": True})

    async def _ready(self, request: Request) -> Response:
        return self._json({"ready": True})

    async def _ping(self, request: Request) -> Response:
        return PlainTextResponse("\n", headers=self._headers(request))

    async def _version(self, request: Request) -> Response:
        return PlainTextResponse(loopml.__version__, headers=self._headers(request))

    async def _server_metadata(self, request: Request) -> Response:
        return self._json({"name": "loopml", "version": loopml.__version__, "extensions": []})

    async def _model_metadata(self, request: Request) -> Response:
        self._check_model(request)
        signature = self.model.package.signature
        flavor = self.model.package.flavor
        return self._json(v2.model_metadata(self.name, self.version, signature, flavor))

    async def _model_ready(self, request: Request) -> Response:
        self._check_model(request)
        return self._json({"name": self.name, "ready": True})

    async def _metrics(self, request: Request) -> Response:
        return Response(self.metrics.exposition(), media_type=CONTENT_TYPE)

    # Predictions

    async def _infer(self, request: Request) -> Response:
        self._check_model(request)

        async def answer(body: bytes, exchange: _Exchange) -> dict[str, Any]:
            parsed = v2.decode(parse_json(body), self.model.package.signature)
            predictions = await self._predict(parsed.data, exchange)
            answered = v2.encode(
                predictions,
                model_name=self.name,
                model_version=self.version,
                request_id=parsed.id,
                outputs=parsed.outputs,
            )
            answered["parameters"] = {"request_id": exchange.request_id}
            return answered

        return await self._serve(request, "v2", answer)

    async def _invocations(self, request: Request) -> Response:
        async def answer(body: bytes, exchange: _Exchange) -> dict[str, Any]:
            content_type = request.headers.get("content-type")
            data = invocations.decode(body, content_type, self.model.package.signature)
            body_out = invocations.encode(await self._predict(data, exchange))
            return {
                **body_out,
                "model_name": self.name,
                "model_version": self.version,
                "request_id": exchange.request_id,
            }

        return await self._serve(request, "invocations", answer)

    async def _predict(self, data: Any, exchange: _Exchange) -> Any:
        signature = self.model.package.signature
        exchange.inputs = enforce(signature, data) if signature is not None else data
        exchange.outputs = await self.batcher.submit(exchange.inputs)
        return exchange.outputs

    async def _feedback(self, request: Request) -> Response:
        """Attach ground truth to logged predictions: `{"request_id": ..., "label": ...}`, or
        `{"feedback": [that, ...]}`."""
        if self.log is None:
            raise HTTPException(
                409,
                "this server keeps no prediction log (it was started with --no-log), so "
                "feedback has nothing to attach to",
            )
        try:
            body = parse_json(await read_limited(request, self.settings.max_body_bytes))
            items = feedback_items(body)
            for item in items:
                self.log.record_feedback(item["request_id"], item["label"])
        except InvalidInput as exc:
            return self._json({"error": str(exc)}, status=400, request=request)
        return self._json({"accepted": len(items)}, request=request)

    async def _serve(
        self,
        request: Request,
        protocol: str,
        answer: Callable[[bytes, _Exchange], Awaitable[dict[str, Any]]],
    ) -> Response:
        started = time.perf_counter()
        exchange = _Exchange(_request_id(request))
        try:
            body = await read_limited(request, self.settings.max_body_bytes)
            response = self._json(await answer(body, exchange), request=request)
        except HTTPException as exc:  # 413: counted and logged like every other answer
            response = self._error(request, protocol, exc.status_code, str(exc.detail))
        except UnsupportedMediaType as exc:
            response = self._error(request, protocol, 415, str(exc))
        except InvalidInput as exc:
            response = self._error(request, protocol, 400, str(exc))
        except Exception:
            error_id = uuid.uuid4().hex[:12]
            log.exception("prediction failed (error id %s)", error_id)
            response = self._error(
                request,
                protocol,
                500,
                f"the model failed on this request (error id {error_id}); the server log has "
                "its traceback under that id",
                error_id=error_id,
            )
        seconds = time.perf_counter() - started
        self.model_metrics.observe(protocol, response.status_code, seconds)
        response.headers["X-Request-Id"] = exchange.request_id
        if self.log is not None:
            try:
                self.log.record(
                    request_id=exchange.request_id,
                    inputs=exchange.inputs,
                    outputs=exchange.outputs if response.status_code == 200 else None,
                    model_version=self.version,
                    latency_ms=seconds * 1000,
                    status=response.status_code,
                )
            except LoopMLError as exc:  # the answer stands; only its log row is lost
                log.warning("prediction %s not logged: %s", exchange.request_id, exc)
        if self.on_answer is not None:
            outputs = exchange.outputs if response.status_code == 200 else None
            self.on_answer(self, exchange.request_id, response.status_code, seconds, outputs)
        return response

    # Responses

    def _check_model(self, request: Request) -> None:
        name = request.path_params.get("name")
        version = request.path_params.get("version")
        if name not in self.names or (version is not None and version != self.version):
            asked = f"{name}" + (f" version {version}" if version is not None else "")
            raise HTTPException(
                404,
                f"model {asked} is not served here; this server serves {self.name} "
                f"version {self.version}",
            )

    def _headers(self, request: Request | None = None) -> dict[str, str]:
        return {"X-Model-Version": f"{self.name}/{self.version}"}

    def _json(self, content: Any, *, status: int = 200, request: Request | None = None) -> Response:
        return JSONResponse(content, status_code=status, headers=self._headers(request))

    def _error(
        self, request: Request, protocol: str, status: int, message: str, **extra: str
    ) -> Response:
        if protocol == "invocations":  # MLflow's scoring server error body
            code = "BAD_REQUEST" if status < 500 else "INTERNAL_ERROR"
            body: dict[str, Any] = {"error_code": code, "message": message, **extra}
        else:
            body = {"error": message, **extra}
        return self._json(body, status=status, request=request)

    async def _http_error(self, request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return self._json({"error": exc.detail}, status=exc.status_code, request=request)


@dataclass
class _Exchange:
    """One prediction request as it is answered: what the log keeps of it."""

    request_id: str
    inputs: Any = None
    outputs: Any = None


def _request_id(request: Request) -> str:
    """Return the caller's X-Request-Id (if it is a sane one), else a new id."""
    given = request.headers.get("x-request-id", "")
    if 0 < len(given) <= 200 and given.isprintable():
        return given
    return uuid.uuid4().hex


def feedback_items(body: Any) -> list[dict[str, Any]]:
    items = body.get("feedback") if isinstance(body, dict) and "feedback" in body else [body]
    if not isinstance(items, list) or not items:
        raise InvalidInput('feedback is {"request_id": ..., "label": ...} or {"feedback": [...]}')
    for i, item in enumerate(items):
        if not isinstance(item, dict) or set(item) != {"request_id", "label"}:
            shown = repr(item)[:200]
            raise InvalidInput(
                f'feedback item {i} must be {{"request_id": ..., "label": ...}}, not {shown}'
            )
        if not isinstance(item["request_id"], str) or not item["request_id"]:
            raise InvalidInput(f"feedback item {i}: request_id must be a non-empty string")
    return items


class Guard:
    """Refuses requests without the server's token (when it has one), before any route."""

    def __init__(self, app: Any, token: str | None, headers: dict[str, str]) -> None:
        self.app = app
        self.token = token
        self.headers = headers

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or self.token is None or scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        given = Request(scope).headers.get("authorization", "")
        scheme, _, credentials = given.partition(" ")
        bearer = scheme.lower() == "bearer"  # the scheme's name is case-insensitive
        if not (bearer and hmac.compare_digest(credentials.encode(), self.token.encode())):
            refused = JSONResponse(
                {"error": "this server needs a token: send the header Authorization: Bearer TOKEN"},
                status_code=401,
                headers={**self.headers, "WWW-Authenticate": "Bearer"},
            )
            await refused(scope, receive, send)
            return
        await self.app(scope, receive, send)


async def read_limited(request: Request, limit: int) -> bytes:
    """Return the request body, refusing (413) one over `limit` bytes before reading it all."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise HTTPException(413, _too_large(limit))
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPException(413, _too_large(limit))
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(limit: int) -> str:
    return (
        f"the request body is over this server's limit of {limit:,} bytes; send fewer rows per "
        "request, or start the server with a larger --max-body-mb"
    )
