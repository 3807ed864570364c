"""Time limits for many calls at once: `asyncio.timeout`'s behaviour, with one timer for all
the calls whose deadlines fall in the same 10 ms.

A herd sends thousands of calls within a second, each bounded by its task's timeout; an
`asyncio.timeout` arms and cancels a timer of the event loop for each (about 4 µs a call on
uvloop). Here a call joins the slot its deadline falls in; the slot's one timer, at the slot's
end, cancels the calls still in it. A call times out at its deadline or up to 10 ms after it,
never before.
"""

from __future__ import annotations

import asyncio
import math
from types import TracebackType
from typing import Self

RESOLUTION_SECONDS = 0.01


class Deadlines:
    """The time limits of one caller's calls."""

    def __init__(self) -> None:
        # (loop, slot) -> the limits whose deadlines fall in that slot of RESOLUTION_SECONDS
        self._slots: dict[tuple[asyncio.AbstractEventLoop, int], set[Limit]] = {}

    def limit(self, seconds: float) -> Limit:
        """`with deadlines.limit(seconds):` (inside a task) raises TimeoutError, as `async
        with asyncio.timeout(seconds)` does, when its body has not ended `seconds` after it
        began. A plain `with`: entering and leaving a limit awaits nothing."""
        return Limit(self, seconds)

    def join(self, limit: Limit, loop: asyncio.AbstractEventLoop, when: float) -> None:
        key = (loop, math.ceil(when / RESOLUTION_SECONDS))
        limits = self._slots.get(key)
        if limits is None:
            limits = self._slots[key] = set()
            loop.call_at(key[1] * RESOLUTION_SECONDS, self._expire, key)
        limits.add(limit)
        limit.key = key

    def leave(self, limit: Limit) -> None:
        limits = self._slots.get(limit.key) if limit.key is not None else None
        if limits is not None:
            limits.discard(limit)

    def _expire(self, key: tuple[asyncio.AbstractEventLoop, int]) -> None:
        for limit in self._slots.pop(key, ()):
            limit.expire()


class Limit:
    """One `with` of a time limit (see `Deadlines.limit`)."""

    __slots__ = ("_cancelling", "_deadlines", "_expired", "_seconds", "_task", "key")

    def __init__(self, deadlines: Deadlines, seconds: float) -> None:
        self._deadlines = deadlines
        self._seconds = seconds
        self._task: asyncio.Task[object] | None = None
        self._cancelling = 0
        self._expired = False
        self.key: tuple[asyncio.AbstractEventLoop, int] | None = None

    def __enter__(self) -> Self:
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("a time limit is used inside a task")
        self._task = task
        self._cancelling = task.cancelling()
        loop = task.get_loop()
        self._deadlines.join(self, loop, loop.time() + self._seconds)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._deadlines.leave(self)
        # as asyncio.timeout: the cancellation it made is taken back (uncancel), and becomes
        # a TimeoutError unless someone else cancelled the task too
        if (
            self._expired
            and self._task is not None
            and self._task.uncancel() <= self._cancelling
            and exc_type is asyncio.CancelledError
        ):
            raise TimeoutError from exc

    def expire(self) -> None:
        """The deadline passed: cancel the body."""
        if not self._expired and self._task is not None and not self._task.done():
            self._expired = True
            self._task.cancel()
