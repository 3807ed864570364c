"""The error names ASL predefines (`States.*`) that stepd raises or matches, each spelled once.

A state fails with one of these as its `Error`; retriers and catchers match them (see
`retry.py`). The exceptions that carry them are in `stepd.errors` (StateError and below).
"""

from __future__ import annotations

from typing import Final

STATES_ALL: Final = "States.ALL"
STATES_RUNTIME: Final = "States.Runtime"
STATES_TIMEOUT: Final = "States.Timeout"
STATES_TASK_FAILED: Final = "States.TaskFailed"
STATES_DATA_LIMIT_EXCEEDED: Final = "States.DataLimitExceeded"
STATES_RESULT_PATH_MATCH_FAILURE: Final = "States.ResultPathMatchFailure"
STATES_QUERY_EVALUATION_ERROR: Final = "States.QueryEvaluationError"
STATES_HEARTBEAT_TIMEOUT: Final = "States.HeartbeatTimeout"


def reported(error: str) -> str:
    """The name a state's failure is reported by (events, error output, the execution's
    error): a heartbeat's timeout is `States.Timeout`, as AWS reports it; a retrier or catcher
    naming `States.HeartbeatTimeout` still tells it from the state's own timeout."""
    return STATES_TIMEOUT if error == STATES_HEARTBEAT_TIMEOUT else error
