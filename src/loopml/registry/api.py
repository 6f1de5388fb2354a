"""The registry's Python API: `loopml.log_model`, `loopml.load_model`, aliases and versions."""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from typing import Any

from loopml.core.workspace import Workspace, workspace
from loopml.errors import InvalidInput, LoopMLError, NotFound
from loopml.registry import models
from loopml.registry.flavors.onnx import TOLERANCE as ONNX_TOLERANCE
from loopml.registry.models import AliasEvent, ModelVersionRecord
from loopml.registry.package import LoadedModel, ModelPackage, load, read_package, save_package
from loopml.registry.signature import Signature
from loopml.registry.uris import ModelRef, check_name, parse

MANIFEST_FILE = "model.json"  # a run's model is this artifact: the package manifest's bytes


@dataclass(frozen=True)
class LoggedModel:
    """A model stored by `log_model`: its package, the run that logged it and, when it was
    registered, its version."""

    package: ModelPackage
    run_id: str | None
    artifact_path: str
    version: ModelVersionRecord | None

    @property
    def uri(self) -> str:
        """Return the model's URI: its registered version, else the run's path."""
        if self.version is not None:
            return self.version.uri
        return f"runs:/{self.run_id}/{self.artifact_path}"


def log_model(
    model: Any,
    name: str | None = None,
    *,
    artifact_path: str = "model",
    input_example: Any = None,
    signature: Signature | None = None,
    flavor: str | None = None,
    description: str = "",
    tags: dict[str, Any] | None = None,
    onnx: bool = False,
    onnx_tolerance: float = ONNX_TOLERANCE,
) -> LoggedModel:
    """Store `model` as a package (in the active run, if any); with `name`, register it as
    the next version of that model. With `onnx`, a scikit-learn model is stored with its ONNX
    export too, checked to agree with it on the input example within `onnx_tolerance`."""
    from loopml.tracking import artifacts
    from loopml.tracking.fluent import active_run

    if name is not None:
        check_name(name)
    path = _artifact_path(artifact_path)
    ws = workspace()
    run = active_run()
    if run is None and name is None:
        raise InvalidInput(
            "log_model needs a run to log into or a name to register under: call it inside "
            "`with loopml.start_run():`, or pass name='my-model'"
        )
    with ws.blob_lock():  # GC waits until rows point at the package's blobs
        package = save_package(
            ws,
            model,
            flavor=flavor,
            input_example=input_example,
            signature=signature,
            onnx=onnx,
            onnx_tolerance=onnx_tolerance,
        )
        if run is not None:
            manifest = ws.blobs.read_bytes(package.digest)
            artifacts.log_bytes(ws, run.id, manifest, posixpath.join(path, MANIFEST_FILE))
        version = None
        if name is not None:
            version = models.register_version(
                ws,
                name,
                package.digest,
                package.flavor,
                run_id=run.id if run is not None else None,
                source=f"runs:/{run.id}/{path}" if run is not None else "",
                description=description,
                tags=tags,
            )
    return LoggedModel(package, run.id if run is not None else None, path, version)


def register_model(uri: str, name: str, *, description: str = "") -> ModelVersionRecord:
    """Register the model a run logged (`runs:/RUN/model`) as the next version of `name`."""
    ws = workspace()
    ref = parse(uri)
    if ref.run_id is None:
        raise InvalidInput(f"{uri} is registered already; register a run's model: runs:/RUN/path")
    package, run_id = _run_package(ws, ref)
    return models.register_version(
        ws,
        name,
        package.digest,
        package.flavor,
        run_id=run_id,
        source=str(ref),
        description=description,
    )


def load_model(uri: str, *, runtime: str = "native") -> LoadedModel:
    """Return the model `uri` names, its files verified before anything is unpickled; with
    runtime="onnx", one that predicts through onnxruntime on its ONNX export."""
    ws = workspace()
    return load(ws, package_of(ws, uri), runtime=runtime)


def package_of(ws: Workspace, uri: str | ModelRef) -> ModelPackage:
    """Return the package a model URI points at."""
    ref = uri if isinstance(uri, ModelRef) else parse(uri)
    if ref.run_id is not None:
        return _run_package(ws, ref)[0]
    return read_package(ws, models.resolve(ws, ref).package_digest)


def set_alias(
    name: str, alias: str, version: int, *, reason: str = "", gate_result: Any = None
) -> AliasEvent:
    """Point `alias` (`champion`) at a version of model `name`; the move is kept in history."""
    return models.set_alias(
        workspace(), name, alias, version, reason=reason, gate_result=gate_result
    )


def get_model_version(uri: str) -> ModelVersionRecord:
    """Return the registered version a `models:/` URI points at."""
    return models.resolve(workspace(), uri)


def referenced_digests(ws: Workspace) -> set[str]:
    """Return every blob a model package points at (manifests, files, input examples), for GC."""
    from loopml.core.store import schema as db

    with ws.store.read() as conn:
        from sqlalchemy import select

        logged = set(
            conn.execute(
                select(db.artifacts.c.digest).where(
                    db.artifacts.c.path.endswith(f"/{MANIFEST_FILE}")
                    | (db.artifacts.c.path == MANIFEST_FILE)
                )
            ).scalars()
        )
    found: set[str] = set()
    for digest in models.package_digests(ws) | logged:
        try:
            package = read_package(ws, digest)
        except (LoopMLError, ValueError):  # an artifact of that name that is not a package
            continue
        found.add(package.digest)
        found.update(d for d, _ in package.files.values())
        if package.input_example is not None:
            found.add(package.input_example)
    return found


def _run_package(ws: Workspace, ref: ModelRef) -> tuple[ModelPackage, str]:
    from loopml.tracking import artifacts, runs

    run_id = runs.resolve_id(ws, ref.run_id or "")
    path = posixpath.join(ref.path or "", MANIFEST_FILE)
    try:
        data = artifacts.read_bytes(ws, run_id, path)
    except NotFound:
        raise NotFound(
            f"run {run_id} logged no model at {ref.path!r}; `loopml runs artifacts {run_id[:8]}` "
            "lists what it logged"
        ) from None
    from loopml.core.blobs.digest import digest_bytes

    return read_package(ws, digest_bytes(data)), run_id


def _artifact_path(path: object) -> str:
    if not isinstance(path, str) or not path.strip("/"):
        raise InvalidInput(f"artifact_path must be a relative path like 'model', not {path!r}")
    clean = path.strip("/")
    if any(part in ("", ".", "..") for part in clean.split("/")) or "\\" in clean:
        raise InvalidInput(f"artifact_path {path!r} must not hold '..', '.' or backslashes")
    return clean
