"""Why a state fails while the interpreter runs it.

    StepdError
    └── StateError                 a state cannot complete; `error` is the ASL error name
        ├── StatesRuntimeError     States.Runtime: never retried, never caught
        │   ├── PathError          a path has no results or cannot be parsed
        │   └── IntrinsicError     an intrinsic function failed (AWS reports States.Runtime)
        └── ResultPathMatchError   States.ResultPathMatchFailure: ResultPath cannot be applied

The message of each error is the `Cause` the execution reports.
"""

from __future__ import annotations

from stepd.errors import StepdError

STATES_RUNTIME = "States.Runtime"
STATES_RESULT_PATH_MATCH_FAILURE = "States.ResultPathMatchFailure"


class StateError(StepdError):
    """The state failed."""

    error = STATES_RUNTIME


class StatesRuntimeError(StateError):
    """The state machine could not run the state."""

    error = STATES_RUNTIME


class PathError(StatesRuntimeError):
    """A path has no results."""


class IntrinsicError(StatesRuntimeError):
    """An intrinsic function failed."""


class ResultPathMatchError(StateError):
    """The ResultPath cannot be applied to the state's input."""

    error = STATES_RESULT_PATH_MATCH_FAILURE
