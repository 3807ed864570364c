"""The hour ahead: which running executions fall due when, a minute at a time.

What `stepd agenda` prints and the agenda page draws. An execution's due instant is when its
next step runs: the end of a Wait, a Task's next attempt, a callback's deadline.
"""

from __future__ import annotations

from dataclasses import dataclass

from stepd.store.records import Execution

MINUTE = 60.0
MAX_DUE = 100_000  # executions read for one agenda


@dataclass(frozen=True, kw_only=True)
class Minute:
    start: float  # unix seconds, a whole minute
    executions: tuple[Execution, ...]  # due in it, earliest first

    @property
    def count(self) -> int:
        return len(self.executions)


def minute_of(instant: float) -> float:
    return instant - instant % MINUTE


def per_minute(executions: list[Execution]) -> list[Minute]:
    """`executions` (earliest due first) grouped by the minute they fall due in; minutes
    without any are left out."""
    groups: dict[float, list[Execution]] = {}
    for execution in executions:
        if execution.due_at is not None:
            groups.setdefault(minute_of(execution.due_at), []).append(execution)
    return [Minute(start=start, executions=tuple(group)) for start, group in groups.items()]


def counts(minutes: list[Minute], start: float, end: float) -> list[tuple[float, int]]:
    """(minute, count) for every minute from `start`'s to before `end`, zeros included."""
    by_start = {m.start: m.count for m in minutes}
    first = minute_of(start)
    total = max(0, int((end - first + MINUTE - 1) // MINUTE))
    return [(first + n * MINUTE, by_start.get(first + n * MINUTE, 0)) for n in range(total)]
