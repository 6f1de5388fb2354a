"""Every error LoopML raises on purpose.

    LoopMLError                          root: catch this to catch anything LoopML raised
    ├── WorkspaceNotFound                no .loopml/ above the current folder (run `loopml init`)
    ├── NotFound (LookupError)           a named thing does not exist (experiment, run, blob)
    ├── AlreadyExists (ValueError)       a name that must be unique is taken
    ├── InvalidInput (ValueError)        the caller passed something unusable
    │   ├── InvalidFilter                a search filter that does not parse; carries the position
    │   └── ParamConflict                a write-once param logged again with a different value
    ├── InvalidState                     it exists but cannot do that now (log to an ended run)
    ├── IntegrityError                   stored bytes do not match their digest
    ├── StoreError                       the metadata store cannot be used
    │   └── SchemaTooNew                 the database was migrated by a newer LoopML
    ├── StepFailed                       a pipeline step failed; carries the pipeline result
    ├── StepTimeout (TimeoutError)       a step attempt ran past its timeout
    ├── WorkerLost                       the process running a step attempt died
    └── GateFailed                       a validation gate refused a model; carries its result

Each message names the thing and says how to fix it; the CLI prints it as one line.
"""

from __future__ import annotations


class LoopMLError(Exception):
    """Root of every error LoopML raises on purpose."""


class WorkspaceNotFound(LoopMLError):
    """No workspace was found above the current folder and none was configured."""


class NotFound(LoopMLError, LookupError):
    """A named thing does not exist."""


class AlreadyExists(LoopMLError, ValueError):
    """A name that must be unique is already taken."""


class InvalidInput(LoopMLError, ValueError):
    """The caller passed a value LoopML cannot use."""


class InvalidFilter(InvalidInput):
    """A search filter that does not parse; `position` is the 0-based offset of the problem."""

    def __init__(self, message: str, text: str, position: int) -> None:
        self.text = text
        self.position = position
        pointer = " " * position + "^"
        super().__init__(f"{message} at position {position}:\n  {text}\n  {pointer}")


class ParamConflict(InvalidInput):
    """A param was logged again with a different value; params are write-once."""


class InvalidState(LoopMLError):
    """The thing exists but cannot do that in its current state."""


class IntegrityError(LoopMLError):
    """Stored bytes do not match the digest they are stored under."""


class StoreError(LoopMLError):
    """The metadata store cannot be opened or used."""


class SchemaTooNew(StoreError):
    """The database schema was written by a newer LoopML than this one."""


class StepFailed(LoopMLError):
    """A pipeline step failed; `result` is the pipeline's result, with every step's status."""

    def __init__(self, message: str, result: object = None) -> None:
        super().__init__(message)
        self.result = result


class StepTimeout(LoopMLError, TimeoutError):
    """A step attempt ran past its timeout and was stopped."""


class WorkerLost(LoopMLError):
    """The worker process (or Ray task) running a step attempt died."""


class GateFailed(LoopMLError):
    """A validation gate refused a model; `result` is the gate's verdict, check by check."""

    def __init__(self, message: str, result: object = None) -> None:
        super().__init__(message)
        self.result = result


__all__ = [
    "AlreadyExists",
    "GateFailed",
    "IntegrityError",
    "InvalidFilter",
    "InvalidInput",
    "InvalidState",
    "LoopMLError",
    "NotFound",
    "ParamConflict",
    "SchemaTooNew",
    "StepFailed",
    "StepTimeout",
    "StoreError",
    "WorkerLost",
    "WorkspaceNotFound",
]
