"""The run queue: executions that are due, served earliest-due-first by a bounded set of workers.

An execution is in the queue at most once and handled by one worker at a time; a push for an
execution that is being handled is remembered and served after it.

A handler may hand back the rest of its work (`Later`) instead of doing it at once: the
execution stays its own, and a worker carries that rest out once nothing due waits (or once it
has waited LATER_SECONDS). At the top of the hour the calls that are due go out first and the
answers are recorded after them; when the daemon stops, what was handed back is still done.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import heapq
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TypeAlias

from stepd import logs

log = logs.get_logger("stepd.engine")

DEFAULT_WORKERS = 64
LATER_SECONDS = 5.0  # the longest handed-back work waits behind due work

# The rest of a handler's work, handed back to be done once nothing due waits; it may hand
# back more.
Later: TypeAlias = Callable[[], Awaitable["Later | None"]]


class DueQueue:
    def __init__(
        self, handler: Callable[[int], Awaitable[Later | None]], *, workers: int = DEFAULT_WORKERS
    ) -> None:
        self._handler = handler
        self._workers = workers
        self._heap: list[tuple[float, int]] = []
        self._queued: dict[int, float] = {}
        self._running: set[int] = set()
        self._again: dict[int, float] = {}
        self._held: set[int] = set()  # waiting elsewhere (for a host): pushes are ignored
        self._later: deque[tuple[float, int, Later]] = deque()  # (handed back at, id, rest)
        self._ready = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._accepting = True

    def __len__(self) -> int:
        return len(self._queued)

    @property
    def busy(self) -> int:
        return len(self._running)

    @property
    def accepting(self) -> bool:
        """False once `close` or `stop` was called: handlers should not start new work."""
        return self._accepting

    @property
    def waiting(self) -> bool:
        """Whether due executions wait for a worker (handed-back work goes after them)."""
        return self._accepting and bool(self._queued)

    @property
    def held(self) -> int:
        return len(self._held)

    def is_active(self, execution_id: int) -> bool:
        return (
            execution_id in self._running
            or execution_id in self._queued
            or execution_id in self._held
        )

    def hold(self, execution_id: int) -> None:
        """Ignore pushes for `execution_id` (a sweep finding it overdue) until `release`."""
        self._held.add(execution_id)
        self._again.pop(execution_id, None)

    def release(self, execution_id: int, due_at: float) -> None:
        self._held.discard(execution_id)
        self.push(execution_id, due_at)

    def push(self, execution_id: int, due_at: float) -> None:
        if not self._accepting or execution_id in self._held:
            return
        if execution_id in self._running:
            self._again[execution_id] = min(due_at, self._again.get(execution_id, due_at))
            return
        queued = self._queued.get(execution_id)
        if queued is not None and queued <= due_at:
            return
        self._queued[execution_id] = due_at
        heapq.heappush(self._heap, (due_at, execution_id))
        self._ready.set()

    def start(self) -> None:
        self._accepting = True
        self._tasks = [
            asyncio.create_task(self._work(), name=f"stepd-worker-{n}")
            for n in range(self._workers)
        ]

    def close(self) -> None:
        """Take no more work: drop what is queued and ignore further pushes."""
        self._accepting = False
        self._heap.clear()
        self._queued.clear()
        self._again.clear()
        self._held.clear()
        self._ready.set()

    async def stop(self, timeout: float) -> int:
        """Close; let running handlers finish within `timeout`, then cancel them.

        Returns how many handlers were cancelled.
        """
        self.close()
        if not self._tasks:
            return 0
        _, pending = await asyncio.wait(self._tasks, timeout=timeout)
        for task in pending:
            task.cancel()
        for task in pending:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        return len(pending)

    async def _work(self) -> None:
        while self._accepting or self._later:
            later = self._later
            if later and (
                not self._queued
                or not self._accepting
                or time.monotonic() - later[0][0] > LATER_SECONDS
            ):
                _, execution_id, rest = later.popleft()
                await self._serve(execution_id, rest)
                continue
            if not self._heap:
                self._ready.clear()
                await self._ready.wait()
                continue
            due_at, execution_id = heapq.heappop(self._heap)
            if self._queued.get(execution_id) != due_at:
                continue  # superseded by an earlier push
            del self._queued[execution_id]
            self._running.add(execution_id)
            await self._serve(execution_id, functools.partial(self._handler, execution_id))

    async def _serve(self, execution_id: int, work: Later) -> None:
        """Run `work` for `execution_id`; keep what it hands back for later."""
        rest = None
        try:
            rest = await work()
        except Exception:
            log.exception("engine.advance_failed", execution_id=execution_id)
        finally:
            if rest is not None:
                self._later.append((time.monotonic(), execution_id, rest))
                self._ready.set()
            else:
                self._running.discard(execution_id)
                again = self._again.pop(execution_id, None)
                if again is not None:
                    self.push(execution_id, again)
