"""Retry and Catch: error matching, backoff, and the error output a catcher passes on.

Matching follows AWS: `States.ALL` matches every error except `States.Runtime` (a task's
`States.DataLimitExceeded`, a result over the size limit, is caught as AWS records it);
`States.TaskFailed` matches the same errors except the timeouts; `States.Timeout` matches a
task's timeout and its heartbeat timeout (`States.HeartbeatTimeout`: AWS's `States.Timeout`
covers both, and `States.HeartbeatTimeout` names the heartbeat's alone); any other name
matches only itself (case-sensitive).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from stepd.asl.failures import (
    STATES_ALL,
    STATES_HEARTBEAT_TIMEOUT,
    STATES_RUNTIME,
    STATES_TASK_FAILED,
    STATES_TIMEOUT,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

DEFAULT_INTERVAL_SECONDS: Final = 1
DEFAULT_MAX_ATTEMPTS: Final = 3
DEFAULT_BACKOFF_RATE: Final = 2.0
MAX_DELAY_SECONDS: Final = 31_622_400.0  # AWS's largest MaxDelaySeconds: a year and a day
JITTER_FULL: Final = "FULL"

_NEVER_CAUGHT: Final = frozenset({STATES_RUNTIME})
_TIMEOUTS: Final = frozenset({STATES_TIMEOUT, STATES_HEARTBEAT_TIMEOUT})


def error_matches(error_equals: Sequence[str], error: str) -> bool:
    """Whether a retrier's or catcher's `ErrorEquals` covers `error`."""
    for name in error_equals:
        if name == error:
            return error != STATES_RUNTIME
        if name == STATES_ALL and error not in _NEVER_CAUGHT:
            return True
        if name == STATES_TASK_FAILED and error not in _NEVER_CAUGHT | _TIMEOUTS:
            return True
        if name == STATES_TIMEOUT and error == STATES_HEARTBEAT_TIMEOUT:
            return True
    return False


@dataclass(frozen=True, kw_only=True)
class Retry:
    """The retrier to use and how long to wait before the next attempt."""

    retrier: int  # index into the state's Retry list
    delay_seconds: float
    retry_counts: tuple[int, ...]


def next_retry(
    retriers: Sequence[Mapping[str, Any]],
    error: str,
    retry_counts: Sequence[int],
    random: Callable[[], float],
) -> Retry | None:
    """The retry to make, or None when no retrier matches or the matching one is spent.

    Only the first retrier whose `ErrorEquals` matches is considered; once its counter
    reaches `MaxAttempts`, the error goes on to the catchers.
    """
    counts = list(retry_counts) + [0] * (len(retriers) - len(retry_counts))
    for index, retrier in enumerate(retriers):
        if not error_matches(retrier.get("ErrorEquals", ()), error):
            continue
        attempts = counts[index]
        if attempts >= retrier.get("MaxAttempts", DEFAULT_MAX_ATTEMPTS):
            return None
        counts[index] = attempts + 1
        return Retry(
            retrier=index,
            delay_seconds=delay_seconds(retrier, attempts, random),
            retry_counts=tuple(counts),
        )
    return None


def delay_seconds(retrier: Mapping[str, Any], attempts: int, random: Callable[[], float]) -> float:
    """`IntervalSeconds * BackoffRate ** attempts`, capped by `MaxDelaySeconds`, then jitter."""
    interval = retrier.get("IntervalSeconds", DEFAULT_INTERVAL_SECONDS)
    rate = retrier.get("BackoffRate", DEFAULT_BACKOFF_RATE)
    try:
        delay = min(float(interval * rate**attempts), MAX_DELAY_SECONDS)
    except OverflowError:
        delay = MAX_DELAY_SECONDS
    cap = retrier.get("MaxDelaySeconds")
    if cap is not None:
        delay = min(delay, float(cap))
    if retrier.get("JitterStrategy") == JITTER_FULL:
        delay *= random()
    return delay


def find_catcher(catchers: Sequence[Mapping[str, Any]], error: str) -> Mapping[str, Any] | None:
    """The first catcher whose `ErrorEquals` matches `error`."""
    for catcher in catchers:
        if error_matches(catcher.get("ErrorEquals", ()), error):
            return catcher
    return None


def error_output(error: str, cause: str | None) -> dict[str, Any]:
    """What a catcher places at its ResultPath: `{"Error": …, "Cause": …}` (both null, as
    AWS gives them, for a SendTaskFailure that named no error)."""
    if not error:
        return {"Error": None, "Cause": cause}
    output: dict[str, Any] = {"Error": error}
    if cause is not None:
        output["Cause"] = cause
    return output
