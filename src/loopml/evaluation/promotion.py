"""`loopml.promote`: move an alias (`champion`) to a version only past a gate, on the record."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from loopml.core.workspace import workspace
from loopml.errors import GateFailed, InvalidInput
from loopml.evaluation.checks import GateCheck
from loopml.evaluation.gates import Gate, GateResult
from loopml.evaluation.scoring import DataLike
from loopml.registry import models
from loopml.registry.models import AliasEvent
from loopml.registry.uris import check_name


def promote(
    name: str,
    version: int,
    alias: str = "champion",
    *,
    gate: Gate | Mapping[str, Any] | Sequence[GateCheck] | str | Path | None = None,
    data: DataLike | None = None,
    target: str | None = None,
    file: str | None = None,
    force: bool = False,
    reason: str = "",
) -> AliasEvent:
    """Point `alias` of model `name` at `version` if it passes `gate` on `data`.

    A failed gate raises GateFailed (with the result) and moves nothing, unless `force` is
    set with a `reason`; the alias history keeps the gate's result, the reason and whether
    the move was forced.
    """
    check_name(name)
    check_name(alias, "alias")
    if not isinstance(force, bool):
        raise InvalidInput(f"force must be True or False, not {force!r}")
    if force and not (isinstance(reason, str) and reason.strip()):
        raise InvalidInput("force=True needs reason='why': forced promotions are audited")
    ws = workspace()
    if version is None:
        raise InvalidInput("promote needs the version to promote, like 3")
    record = models.get_version(ws, name, version)
    # What the alias points at as the gate starts: the move below happens only if it still
    # does, so a verdict against one champion never replaces a newer one.
    before = models.get_model(ws, name).aliases.get(alias)
    result: GateResult | None = None
    if gate is None:
        if not force:
            raise InvalidInput(
                f"promoting {record.uri} to {alias!r} needs a gate (gate=Gate([...]) or a gate "
                "YAML file) and data= to check it on; or force=True with reason='why'"
            )
    else:
        chosen = Gate.of(gate)
        if data is None:
            raise InvalidInput("promote with a gate needs data= (a dataset version) to check on")
        result = chosen.check(record.uri, data, target=target, file=file)
        if not result.passed and not force:
            raise GateFailed(
                f"{result.summary()}; {name}@{alias} was not moved (force=True with "
                "reason='why' promotes anyway)",
                result,
            )
    audit = result.to_dict() if result is not None else {}
    audit["forced"] = force
    why = reason.strip() or ("gate passed" if result is not None else "")
    return models.set_alias(
        ws, name, alias, record.version, reason=why, gate_result=audit, expected=before
    )
