"""Why a state fails while the interpreter runs it.

    StepdError
    └── StateError                 a state cannot complete; `error` is the ASL error name
        ├── StatesRuntimeError     States.Runtime: never retried, never caught
        │   ├── PathError          a path has no results
        │   ├── IntrinsicError     an intrinsic function failed (AWS reports States.Runtime)
        │   └── ParseError         the definition holds something the parsers refuse
        └── ResultPathMatchError   States.ResultPathMatchFailure: ResultPath cannot be applied

The message of each error is the `Cause` the execution reports.
"""

from __future__ import annotations

from stepd.errors import StepdError

STATES_RUNTIME = "States.Runtime"
STATES_RESULT_PATH_MATCH_FAILURE = "States.ResultPathMatchFailure"
INVALID_DEFINITION = "The definition is invalid: "  # how the cause of a ParseError begins


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


class ParseError(StatesRuntimeError):
    """A path, intrinsic call, timestamp or Choice operand in the definition cannot be parsed.

    `stepd check` calls the same parsers, so only a definition that skipped it fails this way.
    `problem` says what is wrong (check reports it as is); the message, which becomes the
    execution's cause, starts with INVALID_DEFINITION.
    """

    def __init__(self, problem: str) -> None:
        super().__init__(INVALID_DEFINITION + problem)
        self.problem = problem


class ResultPathMatchError(StateError):
    """The ResultPath cannot be applied to the state's input."""

    error = STATES_RESULT_PATH_MATCH_FAILURE
