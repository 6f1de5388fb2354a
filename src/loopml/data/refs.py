"""Dataset names and references: `churn`, `churn@v3`, `churn@latest`, `churn@prod`."""

from __future__ import annotations

import re
from dataclasses import dataclass

from loopml.errors import InvalidInput

LATEST = "latest"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")
_VERSION = re.compile(r"v([0-9]{1,9})")


@dataclass(frozen=True)
class Ref:
    """A parsed reference: a dataset name and a version number, `latest` or a tag."""

    name: str
    version: int | None = None  # set for `name@vN`
    tag: str = LATEST  # `latest` or a tag name when version is None

    def __str__(self) -> str:
        return (
            f"{self.name}@v{self.version}"
            if self.version is not None
            else f"{self.name}@{self.tag}"
        )


def check_name(name: object, *, what: str = "dataset name") -> str:
    """Return `name` if it is a valid dataset or tag name, else raise InvalidInput."""
    if not isinstance(name, str) or _NAME.fullmatch(name) is None:
        raise InvalidInput(
            f"{what} {name!r} is not valid: use up to 200 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name


def check_tag(tag: object) -> str:
    """Return `tag` if it can name a version (not `latest`, not of the form vN)."""
    check_name(tag, what="tag")
    assert isinstance(tag, str)
    if tag == LATEST or _VERSION.fullmatch(tag):
        raise InvalidInput(f"tag {tag!r} is reserved (it reads as a version); choose another name")
    return tag


def parse_ref(ref: object) -> Ref:
    """Parse `name[@vN|@latest|@tag]`; a bare name means its latest version."""
    if not isinstance(ref, str):
        raise InvalidInput(f"dataset reference must be a string like 'churn@v2', not {ref!r}")
    name, sep, selector = ref.partition("@")
    check_name(name)
    if not sep:
        return Ref(name)
    if match := _VERSION.fullmatch(selector):
        version = int(match.group(1))
        if version < 1:
            raise InvalidInput(f"dataset reference {ref!r}: versions start at v1")
        return Ref(name, version=version)
    if not selector or _NAME.fullmatch(selector) is None:
        raise InvalidInput(
            f"dataset reference {ref!r} is not valid; use NAME, NAME@vN, NAME@latest or NAME@TAG"
        )
    return Ref(name, tag=selector)
