"""A deployment's server: several model versions behind a router, following the stored routing.

The store is the control plane. Once a second the server reads its deployment; when the
routing's revision moved (a person ran `loopml deploy canary`, the controller advanced a step),
it loads any new version off the event loop, builds the new router and swaps it in, so no
request waits on a load. In the same loop the rollout controller judges the live traffic.
Predictions go to the router; probes, `/metrics`, `/feedback` and `/deployment` (the routing
and live numbers, as JSON) are answered here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

import numpy as np
from prometheus_client import Gauge
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

import loopml
from loopml.core.store import now_ms
from loopml.core.workspace import Workspace
from loopml.deploy import strategies
from loopml.deploy.deployments import Deployment, get
from loopml.deploy.rollout import RolloutController, compare_arms
from loopml.deploy.routing import Routing
from loopml.deploy.traffic import TrafficStats
from loopml.errors import InvalidInput, LoopMLError, NotFound
from loopml.monitoring.prometheus import MonitorCollector
from loopml.serving import routers
from loopml.serving.app import (
    Guard,
    ModelServer,
    ServerSettings,
    feedback_items,
    read_limited,
)
from loopml.serving.metrics import CONTENT_TYPE, ServerMetrics
from loopml.serving.prediction_log import PredictionLog
from loopml.serving.protocols import parse_json

log = logging.getLogger("loopml.serving")

POLL_S = 1.0
_OWN = frozenset(
    {"/v2/health/live", "/v2/health/ready", "/v2", "/ping", "/health", "/version", "/metrics"}
    | {"/feedback", "/deployment"}
)
_VERSIONED = re.compile(r"/v2/models/([^/]+)/versions/([^/]+)(/.*)?")


class DeploymentServer:
    """The ASGI app of one deployment: hosts its versions and routes between them."""

    def __init__(
        self,
        ws: Workspace,
        name: str,
        settings: ServerSettings,
        *,
        log: PredictionLog | None = None,
        poll_s: float = POLL_S,
    ) -> None:
        self.ws = ws
        self.name = name
        self.settings = settings
        self.log = log
        self.poll_s = poll_s
        self.metrics = ServerMetrics()
        self.traffic = TrafficStats()
        self.servers: dict[str, ModelServer] = {}
        self.deployment = get(ws, name)
        self._inner = replace(settings, token=None)  # the guard here checks the token once
        self.router: Any = None
        self._shadow: routers.Shadow | None = None
        self._missing = False  # the deployment was deleted while this server runs
        self.controller = RolloutController(
            ws, name, self.traffic, shadow_counts=self._shadow_counts
        )
        self._weights = Gauge(
            "loopml_deployment_weight",
            "Percent of the deployment's traffic each version takes.",
            ["deployment", "version", "role"],
            registry=self.metrics.registry,
        )
        # Drift, live performance and alert states of this deployment's monitors, beside it.
        self.metrics.registry.register(MonitorCollector(ws, name))
        # Every version is loaded now: a stable one that fails stops the start (one line), a
        # candidate that fails is rolled back, in the store, with the reason.
        deployment, loaded = self._prepare(self.deployment, {})
        self.servers.update(loaded)
        self._switch_to(deployment)
        own = Starlette(
            routes=[
                Route("/v2/health/live", lambda r: self._json({"live": True})),
                Route("/v2/health/ready", lambda r: self._json({"ready": True})),
                Route("/v2", self._server_metadata),
                Route("/ping", lambda r: PlainTextResponse("\n")),
                Route("/health", lambda r: PlainTextResponse("\n")),
                Route("/version", lambda r: PlainTextResponse(loopml.__version__)),
                Route("/metrics", self._metrics),
                Route("/feedback", self._feedback, methods=["POST"]),
                Route("/deployment", self._status),
            ],
            lifespan=self._lifespan,
            exception_handlers={HTTPException: self._http_error},
        )
        self._own = own
        self.app = Guard(self._dispatch, token=settings.token, headers={})

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)

    # Routing

    async def _dispatch(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] in _OWN:
            await self._own(scope, receive, send)
            return
        match = _VERSIONED.fullmatch(scope["path"])
        if match is not None:  # an explicit version: that version, if it is served here
            await self._version(match[1], match[2])(scope, receive, send)
            return
        preview = scope["path"].startswith(routers.PREVIEW + "/")
        if scope["method"] != "POST" and not preview:  # metadata, readiness: the stable's
            await self.servers[self.deployment.routing.stable](scope, receive, send)
            return
        await self.router(scope, receive, send)

    def _version(self, model: str, number: str) -> Any:
        wanted = f"{model}/{number}"
        if wanted in self.servers:
            return self.servers[wanted]
        if model == self.name:  # the deployment's name with a version number
            found = [s for v, s in self.servers.items() if v.rsplit("/", 1)[1] == number]
            if len(found) == 1:
                return found[0]
        served = ", ".join(v.replace("/", " version ") for v in self.deployment.routing.versions)
        message = f"model {model} version {number} is not served by deployment {self.name!r}"
        return JSONResponse({"error": f"{message}; it serves {served}"}, status_code=404)

    def _prepare(
        self, deployment: Deployment, loaded: dict[str, ModelServer]
    ) -> tuple[Deployment, dict[str, ModelServer]]:
        """Load what `deployment` routes to that is not loaded yet (off the event loop: the
        new servers are returned, not installed); roll back a candidate that fails to load.
        Return the deployment to serve and the servers loaded."""
        routing = deployment.routing

        def ensure(version: str) -> None:
            if version not in self.servers and version not in loaded:
                loaded[version] = self._load(version)

        ensure(routing.stable)
        if routing.candidate is not None:
            try:
                ensure(routing.candidate)
            except LoopMLError as exc:
                log.exception("deployment %s: a candidate failed to load; rolling back", self.name)
                back = strategies.rollback(
                    self.ws, self.name, reason=str(exc), details={"error": str(exc)},
                    judged=deployment,
                )  # fmt: skip
                return self._prepare(back, loaded)
        if routing.previous is not None:
            try:
                ensure(routing.previous)
            except LoopMLError as exc:  # only a rollback to it will wait for a load
                log.warning("deployment %s: %s", self.name, exc)
        return deployment, loaded

    def _switch_to(self, deployment: Deployment) -> None:
        """Swap in the router of `deployment` (every version it routes to is loaded)."""
        routing = deployment.routing
        self.router = self._build(routing)
        self.deployment = deployment
        self._weights.clear()
        self._weights.labels(self.name, routing.stable, "stable").set(100 - routing.weight)
        if routing.candidate is not None:
            self._weights.labels(self.name, routing.candidate, routing.strategy).set(
                routing.weight if routing.strategy in ("canary", "ab") else 0
            )
        log.info(
            "deployment %s, revision %d: %s", self.name, deployment.revision, routing.describe()
        )

    def _build(self, routing: Routing) -> Any:
        self._shadow = None
        stable = self.servers[routing.stable]
        if routing.candidate is None:
            return routers.Single(stable)
        candidate = self.servers[routing.candidate]
        match routing.strategy:
            case "canary":
                return routers.Weighted(stable, candidate, routing.weight)
            case "bluegreen":
                return routers.BlueGreen(stable, candidate)
            case "ab":
                salt = f"{self.name}:{routing.stable}:{routing.candidate}"
                return routers.Sticky(
                    stable,
                    candidate,
                    routing.weight,
                    routing.sticky,
                    salt=salt,
                    max_body=self.settings.max_body_bytes,
                )
        self._shadow = routers.Shadow(stable, candidate, max_body=self.settings.max_body_bytes)
        return self._shadow

    def _load(self, version: str) -> ModelServer:
        from loopml.registry import api

        model_name, _, number = version.rpartition("/")
        try:
            loaded = api.load_model(f"models:/{model_name}/{number}")
        except Exception as exc:  # any failure of a user's model to load, as one clear line
            raise LoopMLError(
                f"model {version} could not be loaded ({type(exc).__name__}: "
                f"{str(exc).splitlines()[0] if str(exc) else ''})"
            ) from exc
        return ModelServer(
            loaded,
            name=model_name,
            version=number,
            settings=self._inner,
            log=self.log,
            metrics=self.metrics,
            names=(self.name,),
            on_answer=self._answered,
        )

    def _answered(
        self, server: ModelServer, request_id: str, status: int, seconds: float, outputs: Any
    ) -> None:
        prediction = None
        if outputs is not None and len(outputs) == 1:  # one row: a label can be matched to it
            first = np.asarray(outputs).reshape(-1)
            prediction = first[0].item() if first.size == 1 else None
        self.traffic.record(
            f"{server.name}/{server.version}",
            request_id=request_id,
            status=status,
            latency_ms=seconds * 1000,
            prediction=prediction,
            at_ms=now_ms(),
        )

    # The control loop

    @asynccontextmanager
    async def _lifespan(self, app: Starlette) -> AsyncIterator[None]:
        task = asyncio.create_task(self._follow())
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        if self._shadow is not None:
            await self._shadow.aclose()
        for server in self.servers.values():
            await server.aclose()
        if self.log is not None:
            await asyncio.to_thread(self.log.close)

    async def _follow(self) -> None:
        """Judge the traffic and follow the stored routing until cancelled."""
        while True:
            await asyncio.sleep(self.poll_s)
            try:
                latest = await asyncio.to_thread(self.controller.tick)
                self._missing = False
                current = (self.deployment.id, self.deployment.revision)
                if (latest.id, latest.revision) != current:  # a re-created one starts at 1
                    await self._follow_to(latest)
            except asyncio.CancelledError:
                raise
            except NotFound as exc:  # deleted: keep serving what it was, say so once
                if not self._missing:
                    log.warning("deployment %s: %s; serving its last routing", self.name, exc)
                self._missing = True
            except Exception:  # a failed round must not stop the loop; it retries next second
                log.exception("deployment %s: could not follow its routing", self.name)

    async def _follow_to(self, latest: Deployment) -> None:
        deployment, loaded = await asyncio.to_thread(self._prepare, latest, {})
        self.servers.update(loaded)
        routing = deployment.routing
        retired = set(self.servers) - {*routing.versions, routing.previous}
        self._switch_to(deployment)
        for version in retired:
            await self.servers.pop(version).aclose()

    # Own routes

    async def _server_metadata(self, request: Request) -> Response:
        return self._json({"name": "loopml", "version": loopml.__version__, "extensions": []})

    async def _metrics(self, request: Request) -> Response:
        # The monitor gauges may read the store: off the event loop.
        body = await asyncio.to_thread(self.metrics.exposition)
        return Response(body, media_type=CONTENT_TYPE)

    async def _status(self, request: Request) -> Response:
        """Return the routing and the live numbers per version (and the A/B or shadow result)."""
        deployment = self.deployment
        routing = deployment.routing
        since = deployment.updated_at
        live = {v: self.traffic.window(v, since).summary() for v in routing.versions}
        body: dict[str, Any] = {**deployment.to_dict(), "live": live}
        if routing.strategy == "ab":
            a, b = (self.traffic.window(v, since) for v in routing.versions)
            body["ab"] = await asyncio.to_thread(compare_arms, a, b)  # off the event loop
            if isinstance(self.router, routers.Sticky) and routing.sticky:
                body["ab"]["unkeyed"] = self.router.unkeyed  # split at random: no key sent
        if self._shadow is not None and routing.strategy == "shadow":
            body["shadow"] = self._shadow.counts.to_dict()
        return self._json(body)

    async def _feedback(self, request: Request) -> Response:
        """Attach ground truth to logged predictions (and to the live numbers rollouts use)."""
        try:
            body = parse_json(await read_limited(request, self.settings.max_body_bytes))
            items = feedback_items(body)
        except InvalidInput as exc:
            return self._json({"error": str(exc)}, status=400)
        matched = 0
        for item in items:
            if self.log is not None:
                self.log.record_feedback(item["request_id"], item["label"])
            matched += self.traffic.feedback(item["request_id"], item["label"], at_ms=now_ms())
        return self._json({"accepted": len(items), "matched_live": matched})

    async def _http_error(self, request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return self._json({"error": exc.detail}, status=exc.status_code)

    def _shadow_counts(self) -> dict[str, Any]:
        return self._shadow.counts.to_dict() if self._shadow is not None else {}

    def _json(self, content: Any, status: int = 200) -> Response:
        stable = self.deployment.routing.stable
        headers = {"X-Deployment": self.name, "X-Stable-Version": stable}
        return JSONResponse(content, status_code=status, headers=headers)
