"""Model URIs: `models:/name/3`, `models:/name@champion`, `models:/name/latest`, and
`runs:/RUN/path` (the model a run logged at that path)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from loopml.errors import InvalidInput

NAME = r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,199}"
_MODELS = re.compile(rf"models:/(?P<name>{NAME})(?:/(?P<version>\d+|latest)|@(?P<alias>{NAME}))")
_RUNS = re.compile(r"runs:/(?P<run>[0-9a-f]{4,32})/(?P<path>[^\0\\]+)")


@dataclass(frozen=True)
class ModelRef:
    """What a model URI points at: a registered version (by number, alias or latest) or the
    model a run logged at a path."""

    name: str | None = None
    version: int | None = None  # None with no alias: the latest version
    alias: str | None = None
    run_id: str | None = None
    path: str | None = None

    def __str__(self) -> str:
        if self.run_id is not None:
            return f"runs:/{self.run_id}/{self.path}"
        if self.alias is not None:
            return f"models:/{self.name}@{self.alias}"
        return f"models:/{self.name}/{self.version if self.version is not None else 'latest'}"


def parse(uri: object) -> ModelRef:
    """Return the ModelRef of `uri`, or raise InvalidInput showing the forms it can take."""
    if not isinstance(uri, str):
        raise InvalidInput(f"a model URI is a string like 'models:/churn/3', not {uri!r}")
    if (found := _MODELS.fullmatch(uri)) is not None:
        version = found["version"]
        return ModelRef(
            name=found["name"],
            version=None if version in (None, "latest") else int(version),
            alias=found["alias"],
        )
    if (found := _RUNS.fullmatch(uri)) is not None:
        path = found["path"].strip("/")
        if any(part in ("", ".", "..") for part in path.split("/")):
            raise InvalidInput(f"{uri!r}: the path inside the run must not hold '..' or '.'")
        return ModelRef(run_id=found["run"], path=path)
    raise InvalidInput(
        f"{uri!r} is not a model URI; use models:/NAME/VERSION, models:/NAME@ALIAS, "
        "models:/NAME/latest or runs:/RUN_ID/PATH"
    )


def expand(text: str) -> str:
    """Return the URI a short form names: NAME (its latest), NAME/N, NAME@ALIAS; a URI as is."""
    if ":" in text:
        return text
    return f"models:/{text}" if "/" in text or "@" in text else f"models:/{text}/latest"


def check_name(name: object, what: str = "model name") -> str:
    """Return `name` if it can name a model or an alias, else raise InvalidInput."""
    if not isinstance(name, str) or not re.fullmatch(NAME, name):
        raise InvalidInput(
            f"{what} {name!r} is not allowed: use up to 200 letters, digits, _ . -, "
            "starting with a letter or digit"
        )
    return name
