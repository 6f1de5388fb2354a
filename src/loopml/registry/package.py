"""Model packages: a model's files in the blob store, described by a verified JSON manifest.

The manifest (flavor, its metadata, every file's digest and size, signature, input example,
environment) is canonical JSON stored as a blob last, so its digest names the whole package
and every file of it: loading checks each file against that manifest before a byte of the
model is unpickled.
"""

from __future__ import annotations

import json
import platform
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path, PurePosixPath
from typing import Any

from loopml.core.blobs import Blob, digest_file
from loopml.core.blobs.digest import digest_hex
from loopml.core.workspace import Workspace
from loopml.errors import IntegrityError, InvalidInput, NotFound
from loopml.pipelines import materializers
from loopml.registry import flavors
from loopml.registry.flavors.base import Flavor
from loopml.registry.flavors.onnx import TOLERANCE as ONNX_TOLERANCE
from loopml.registry.flavors.onnx import export_sklearn
from loopml.registry.signature import ColumnSpec, Signature, enforce, infer_signature

FORMAT = "loopml.model/1"
# How a loaded model predicts: with its flavor, or with onnxruntime on its ONNX export.
RUNTIMES = ("native", "onnx")
# The key of a flavor's metadata that describes the ONNX export stored beside the model.
ONNX_KEY = "onnx"
# Versions recorded with every package besides the flavor's own requirements.
ENVIRONMENT_PACKAGES = ("loopml", "numpy", "pandas", "scikit-learn")
# How an input example is stored, in order of preference; anything else is refused.
_EXAMPLE_FORMATS: tuple[materializers.Materializer, ...] = (
    materializers.ParquetMaterializer(),
    materializers.NpyMaterializer(),
    materializers.JsonMaterializer(),
)


@dataclass(frozen=True)
class ModelPackage:
    """A stored model: its manifest's digest and what the manifest says."""

    digest: str
    flavor: str
    flavor_meta: dict[str, Any]
    files: dict[str, tuple[str, int]]  # relative path -> (blob digest, size)
    signature: Signature | None
    input_example: str | None  # digest of the input example blob
    environment: dict[str, Any] = field(default_factory=dict)
    input_example_format: str | None = None  # "parquet", "npy" or "json"

    def manifest(self) -> dict[str, Any]:
        """Return the manifest: the JSON whose canonical bytes the package digest names."""
        return _manifest(
            flavor=self.flavor,
            flavor_meta=self.flavor_meta,
            files=self.files,
            signature=self.signature,
            example=(self.input_example, self.input_example_format),
            environment=self.environment,
        )


def save_package(
    ws: Workspace,
    model: Any,
    *,
    flavor: str | None = None,
    input_example: Any = None,
    signature: Signature | None = None,
    onnx: bool = False,
    onnx_tolerance: float = ONNX_TOLERANCE,
) -> ModelPackage:
    """Store `model`'s files and manifest in `ws`'s blob store; return the package.

    The flavor is detected when not given; the signature is inferred from `input_example`
    and the model's predictions on it when not given. With `onnx`, a scikit-learn model is
    also stored as ONNX, once its outputs on the input example agree with the model's.
    """
    chosen = flavors.by_name(flavor) if flavor is not None else flavors.detect(model)
    if onnx:
        _check_onnx_export(chosen, input_example)
    example: tuple[str, bytes] | None = None
    if input_example is not None:
        example = _encode_example(input_example)
        if signature is None:
            signature = infer_signature(
                input_example, _predict_example(chosen, model, input_example)
            )
    exported = None
    if onnx and signature is not None:
        # Before anything is stored: a model whose export disagrees leaves no blob behind.
        exported = export_sklearn(model, input_example, signature, tolerance=onnx_tolerance)
    with tempfile.TemporaryDirectory(prefix="loopml-model-") as tmp:
        folder = Path(tmp) / "model"
        folder.mkdir()
        meta = chosen.save(model, folder)
        _check_json(meta, chosen.name)
        environment = _environment(chosen)
        if exported is not None:
            data, meta[ONNX_KEY] = exported
            (folder / meta[ONNX_KEY]["file"]).write_bytes(data)
            environment["requirements"] = sorted(
                {*environment["requirements"], *flavors.by_name("onnx").requirements()}
            )
        with ws.blob_lock():
            files = {
                _relative(path, folder): _blob_tuple(ws.blobs.put_file(path))
                for path in sorted(folder.rglob("*"))
                if path.is_file()
            }
            example_blob = ws.blobs.put_bytes(example[1]) if example is not None else None
            manifest = _manifest(
                flavor=chosen.name,
                flavor_meta=meta,
                files=files,
                signature=signature,
                example=(
                    example_blob.digest if example_blob else None,
                    example[0] if example is not None else None,
                ),
                environment=environment,
            )
            # Stored last: a manifest never names a file that is not stored yet.
            digest = ws.blobs.put_bytes(_canonical(manifest)).digest
    return _package(digest, manifest)


def read_package(ws: Workspace, digest: str) -> ModelPackage:
    """Return the package whose manifest is the blob `digest`, verified, with its files stored."""
    try:
        data = ws.blobs.read_bytes(digest)
    except NotFound:
        raise NotFound(
            f"model package {digest} is not in this workspace's blob store; pull it from the "
            "remote it was pushed to"
        ) from None
    try:
        manifest = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError):
        manifest = None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise InvalidInput(f"blob {digest} is not a model package manifest ({FORMAT})")
    package = _package(digest, manifest)
    for relative, (file_digest, size) in package.files.items():
        if not ws.blobs.has(Blob(file_digest, size)):
            raise IntegrityError(
                f"model package {digest} is incomplete: its file {relative} (blob "
                f"{file_digest}, {size} bytes) is missing or damaged; pull it from a remote"
            )
    return package


def load_native(ws: Workspace, package: ModelPackage) -> Any:
    """Return the flavor's native model, loaded from files verified against their digests."""
    flavor = flavors.by_name(package.flavor)
    return flavor.load(_verified_folder(ws, package), package.flavor_meta)


def load_input_example(ws: Workspace, package: ModelPackage) -> Any:
    """Return the package's input example, or None if it was saved without one."""
    if package.input_example is None or package.input_example_format is None:
        return None
    data = ws.blobs.read_bytes(package.input_example)
    return materializers.by_name(package.input_example_format).load(data)


class LoadedModel:
    """A loaded package: `predict` checks inputs against the signature, then predicts."""

    def __init__(
        self, package: ModelPackage, native: Any, flavor: Flavor, runtime: str = "native"
    ) -> None:
        self.package = package
        self.native = native
        self.runtime = runtime
        self._flavor = flavor
        # An ONNX regressor returns [rows, 1] where the model it was made from returns [rows].
        outputs = package.signature.outputs if package.signature is not None else ()
        self._flatten = runtime == "onnx" and len(outputs) == 1 and _rank(outputs[0]) == 1

    def predict(self, data: Any) -> Any:
        """Return the model's predictions for `data`, checked and cast to the signature first."""
        if self.package.signature is not None:
            data = enforce(self.package.signature, data)
        result = self._flavor.predict(self.native, data)
        if self._flatten and result.ndim == 2 and result.shape[1] == 1:
            return result.ravel()
        return result

    def __repr__(self) -> str:
        return (
            f"LoadedModel(flavor={self.package.flavor!r}, runtime={self.runtime!r}, "
            f"digest={self.package.digest!r})"
        )


def load(ws: Workspace, package: ModelPackage, *, runtime: str = "native") -> LoadedModel:
    """Return `package` loaded, ready to predict: with its own flavor (runtime="native"), or
    with onnxruntime (runtime="onnx") if it is an ONNX model or was stored with one."""
    if runtime not in RUNTIMES:
        raise InvalidInput(f"runtime {runtime!r} is unknown; use one of {', '.join(RUNTIMES)}")
    if runtime == "native" or package.flavor == "onnx":
        flavor = flavors.by_name(package.flavor)
        return LoadedModel(package, load_native(ws, package), flavor, runtime)
    onnx_meta = package.flavor_meta.get(ONNX_KEY)
    if not isinstance(onnx_meta, Mapping):
        raise InvalidInput(
            f"model package {package.digest} ({package.flavor}) holds no ONNX model; load it "
            "with runtime='native', or log it again with onnx=True (scikit-learn models)"
        )
    onnx = flavors.by_name("onnx")
    return LoadedModel(package, onnx.load(_verified_folder(ws, package), onnx_meta), onnx, runtime)


def _verified_folder(ws: Workspace, package: ModelPackage) -> Path:
    """Return a cache folder holding the package's files, each checked against its digest."""
    cache = ws.settings.dir / "models" / digest_hex(package.digest)[:32]
    if cache.is_dir():
        # Hashing is cheap next to unpickling; a cache edited since it was made, or holding a
        # file the manifest does not list, is rebuilt.
        present = {p.relative_to(cache).as_posix() for p in cache.rglob("*") if not p.is_dir()}
        if present == set(package.files) and all(
            _matches(cache / relative, file_digest)
            for relative, (file_digest, _) in package.files.items()
        ):
            return cache
        shutil.rmtree(cache)
    cache.parent.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(prefix=".tmp-", dir=cache.parent))
    try:
        for relative, (file_digest, _) in package.files.items():
            # copy_to verifies the bytes before the file appears: nothing corrupt is loaded.
            ws.blobs.copy_to(file_digest, building / relative, durable=False, mode=0o444)
        try:
            building.rename(cache)
        except OSError:
            if not cache.is_dir():
                raise
            # Another process built the same cache a moment ago; theirs is as good as ours.
    finally:
        if building.exists():
            shutil.rmtree(building)
    return cache


def _matches(path: Path, digest: str) -> bool:
    try:
        return digest_file(path) == digest
    except FileNotFoundError:
        return False


def _check_onnx_export(flavor: Flavor, input_example: Any) -> None:
    """Refuse onnx=True for what skl2onnx cannot convert, before anything is done."""
    if flavor.name != "sklearn":
        already = " (an ONNX model is stored as ONNX already)" if flavor.name == "onnx" else ""
        raise InvalidInput(
            f"onnx=True converts scikit-learn models with skl2onnx, not {flavor.name} models: "
            f"log it without onnx=True{already}"
        )
    if input_example is None:
        raise InvalidInput(
            "onnx=True needs an input example: the ONNX model's inputs are declared from it, "
            "and its outputs are checked against the model's on it; pass input_example=X[:5]"
        )


def _rank(spec: ColumnSpec) -> int | None:
    return len(spec.shape) if spec.shape is not None else None


def _predict_example(flavor: Flavor, model: Any, example: Any) -> Any:
    try:
        return flavor.predict(model, example)
    except Exception as exc:
        raise InvalidInput(
            f"the model could not predict on its input example ({type(exc).__name__}: {exc}), "
            "so no signature can be inferred; pass an input example the model accepts "
            "(a few rows of its training data), or signature="
        ) from exc


def _encode_example(example: Any) -> tuple[str, bytes]:
    """Return (format, bytes) of an input example: Parquet, .npy or JSON."""
    for materializer in _EXAMPLE_FORMATS:
        if materializer.handles(example):
            return materializer.name, materializer.dump(example)
    raise InvalidInput(
        f"an input example of type {type(example).__name__} cannot be stored; pass a pandas "
        "DataFrame with string column names, a numpy array, or JSON-like values"
    )


def _environment(flavor: Flavor) -> dict[str, Any]:
    packages = {}
    for name in ENVIRONMENT_PACKAGES:
        try:
            packages[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return {
        "python": platform.python_version(),
        "requirements": sorted(set(flavor.requirements())),
        "packages": packages,
    }


def _relative(path: Path, folder: Path) -> str:
    return path.relative_to(folder).as_posix()


def _blob_tuple(blob: Blob) -> tuple[str, int]:
    return blob.digest, blob.size


def _check_json(meta: object, flavor: str) -> None:
    try:
        json.dumps(meta, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(
            f"the {flavor} flavor returned metadata that is not JSON ({exc}); a flavor's save "
            "must return plain dicts, lists, strings and numbers"
        ) from exc


def _manifest(
    *,
    flavor: str,
    flavor_meta: Mapping[str, Any],
    files: Mapping[str, tuple[str, int]],
    signature: Signature | None,
    example: tuple[str | None, str | None],
    environment: Mapping[str, Any],
) -> dict[str, Any]:
    example_digest, example_format = example
    return {
        "format": FORMAT,
        "flavor": flavor,
        "flavor_meta": dict(flavor_meta),
        "files": {path: {"digest": d, "size": size} for path, (d, size) in sorted(files.items())},
        "signature": signature.to_dict() if signature is not None else None,
        "input_example": (
            {"digest": example_digest, "format": example_format}
            if example_digest is not None
            else None
        ),
        "environment": dict(environment),
    }


def _canonical(manifest: Mapping[str, Any]) -> bytes:
    """Return the one byte form of `manifest`: equal manifests, one digest."""
    text = json.dumps(manifest, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return text.encode()


def _package(digest: str, manifest: Mapping[str, Any]) -> ModelPackage:
    """Return the ModelPackage a manifest describes; InvalidInput if it is malformed."""
    try:
        files = {
            _safe_path(path, digest): (str(entry["digest"]), int(entry["size"]))
            for path, entry in manifest["files"].items()
        }
        signature = manifest["signature"]
        example = manifest["input_example"]
        return ModelPackage(
            digest=digest,
            flavor=str(manifest["flavor"]),
            flavor_meta=dict(manifest["flavor_meta"]),
            files=files,
            signature=Signature.from_dict(signature) if signature is not None else None,
            input_example=str(example["digest"]) if example is not None else None,
            environment=dict(manifest["environment"]),
            input_example_format=str(example["format"]) if example is not None else None,
        )
    except InvalidInput:
        raise
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        raise InvalidInput(f"model package {digest} has a malformed manifest: {exc!r}") from exc


def _safe_path(path: str, digest: str) -> str:
    """Return `path` if it stays inside the package folder when joined to it."""
    parts = PurePosixPath(path).parts
    if not parts or path.startswith("/") or "\\" in path or ".." in parts:
        raise InvalidInput(f"model package {digest} names a file outside its folder: {path!r}")
    return path
