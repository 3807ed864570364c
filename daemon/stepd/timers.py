"""Timers: wake-ups for executions that fall due soon. The only module that imports APScheduler.

Timers are hints. The store is the truth: a date job per due instant within the window (all the
executions due at that instant share it: classes start on the hour; it fires LEAD_SECONDS
early and sleeps out the rest on the event loop, for precision), an interval job that loads
the next window, and an interval job that sweeps anything overdue (a missed wake-up, a clock
that jumped, a crash). Firing only pushes executions to the run queue; the engine checks the
due time itself, so an early wake-up is harmless.

APScheduler reckons in wall-clock time, so a clock set back by an hour would hold its interval
jobs back by an hour. A watch on the event loop's monotonic clock notices when the wall clock
moves against it (set by hand, stepped by NTP, a machine that slept) and then loads the window,
sweeps at once and restarts the interval jobs from the new time.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime

from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from stepd import logs
from stepd.errors import StoreError

log = logs.get_logger("stepd.timers")

WINDOW_SECONDS = 120.0  # executions due within this much of now get a date job
RELOAD_SECONDS = 30.0  # how often the next window is loaded from the store
SWEEP_SECONDS = 2.0  # how often overdue executions are looked for (a missed wake-up)
HOUSEKEEPING_SECONDS = 3600.0  # how often closed executions past retention are deleted
SWEEP_LIMIT = 5000  # overdue executions taken per sweep
WINDOW_LIMIT = 200_000  # date jobs armed per window load
CLOCK_WATCH_SECONDS = 0.5  # how often the wall clock is compared with the monotonic one
CLOCK_JUMP_SECONDS = 0.5  # a drift between them larger than this is a jump
# A date job fires this long before its instant and the last stretch is slept on the event
# loop: the kernel's timer slack grows with the length of a sleep, and a sleep of half a
# minute ends milliseconds late where one of 20 ms ends well within one.
LEAD_SECONDS = 0.02

LoadDue = Callable[[float, int], Awaitable[Sequence[tuple[int, float]]]]
OnDue = Callable[[int, float], None]


class Timers:
    def __init__(
        self,
        *,
        on_due: OnDue,
        load_due: LoadDue,
        on_overdue: OnDue | None = None,
        clock: Callable[[], float] = time.time,
        window_seconds: float = WINDOW_SECONDS,
        housekeeping: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self._housekeeping = housekeeping
        self._on_due = on_due
        # what a sweep found overdue in the store (by default the same as a wake-up)
        self._on_overdue = on_due if on_overdue is None else on_overdue
        self._load_due = load_due
        self._clock = clock
        self._window = window_seconds
        self._scheduler = AsyncIOScheduler(
            timezone=UTC,
            job_defaults={"misfire_grace_time": None, "coalesce": True, "max_instances": 1},
        )
        self._armed: dict[int, float] = {}  # execution -> the instant it is armed for
        self._instants: dict[float, set[int]] = {}  # instant -> executions armed for it
        self._watch: asyncio.Task[None] | None = None
        self.clock_jumps = 0

    @property
    def armed(self) -> int:
        return len(self._armed)

    async def start(self) -> None:
        """Load what is due in the window (overdue first, in due order) and start ticking."""
        await self.load_window()
        self._scheduler.add_job(
            _store_may_fail(self.load_window, "timers.window_failed"),
            "interval",
            seconds=RELOAD_SECONDS,
            id="load-window",
        )
        self._scheduler.add_job(
            _store_may_fail(self.sweep, "timers.sweep_failed"),
            "interval",
            seconds=SWEEP_SECONDS,
            id="sweep",
        )
        if self._housekeeping is not None:
            self._scheduler.add_job(
                self._housekeeping, "interval", seconds=HOUSEKEEPING_SECONDS, id="housekeeping"
            )
        self._scheduler.start()
        self._watch = asyncio.create_task(
            self._watch_clock(self._offset()), name="stepd-clock-watch"
        )

    def shutdown(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            self._watch = None
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)
        self._armed.clear()
        self._instants.clear()

    def arm(self, execution_id: int, due_at: float) -> None:
        """Wake `execution_id` at `due_at` if that is within the window; otherwise later."""
        now = self._clock()
        if due_at <= now:
            self.disarm(execution_id)
            self._on_due(execution_id, due_at)
            return
        if due_at > now + self._window:
            self.disarm(execution_id)  # moved later (an update): its old wake-up is stale
            return
        if self._armed.get(execution_id) == due_at:
            return
        self.disarm(execution_id)
        self._armed[execution_id] = due_at
        waiting = self._instants.get(due_at)
        if waiting is not None:
            waiting.add(execution_id)
            return
        self._instants[due_at] = {execution_id}
        self._scheduler.add_job(
            self._fire,
            "date",
            run_date=datetime.fromtimestamp(due_at - LEAD_SECONDS, UTC),
            args=(due_at,),
            id=_job_id(due_at),
        )

    def disarm(self, execution_id: int) -> None:
        due_at = self._armed.pop(execution_id, None)
        if due_at is None:
            return
        waiting = self._instants.get(due_at)
        if waiting is None:
            return
        waiting.discard(execution_id)
        if not waiting:
            del self._instants[due_at]
            with contextlib.suppress(JobLookupError):
                self._scheduler.remove_job(_job_id(due_at))

    async def _fire(self, due_at: float) -> None:
        left = due_at - self._clock()
        if 0 < left <= 2 * LEAD_SECONDS:  # further off: the clock moved; the engine re-arms
            await asyncio.sleep(left)
        for execution_id in sorted(self._instants.pop(due_at, ())):
            del self._armed[execution_id]
            self._on_due(execution_id, due_at)

    async def load_window(self) -> None:
        horizon = self._clock() + self._window
        due = await self._load_due(horizon, WINDOW_LIMIT)
        for execution_id, due_at in due:
            self.arm(execution_id, due_at)
        log.debug("timers.window_loaded", due=len(due), armed=len(self._armed))

    def _offset(self) -> float:
        return self._clock() - time.monotonic()

    async def _watch_clock(self, offset: float) -> None:
        while True:
            await asyncio.sleep(CLOCK_WATCH_SECONDS)
            now_offset = self._offset()
            jump = now_offset - offset
            offset = now_offset
            if abs(jump) <= CLOCK_JUMP_SECONDS:
                continue
            self.clock_jumps += 1
            log.warning("clock.jumped", seconds=round(jump, 3))
            try:
                await self._after_jump()
            except Exception:
                log.exception("timers.clock_jump_failed")

    async def _after_jump(self) -> None:
        """Restart the interval jobs from the new time and catch up on what is due."""
        for job_id, seconds in (("load-window", RELOAD_SECONDS), ("sweep", SWEEP_SECONDS)):
            with contextlib.suppress(JobLookupError):
                self._scheduler.reschedule_job(job_id, trigger="interval", seconds=seconds)
        if self._housekeeping is not None:
            with contextlib.suppress(JobLookupError):
                self._scheduler.reschedule_job(
                    "housekeeping", trigger="interval", seconds=HOUSEKEEPING_SECONDS
                )
        self._scheduler.wakeup()
        await self.load_window()
        await self.sweep()

    async def sweep(self) -> None:
        now = self._clock()
        for execution_id, due_at in await self._load_due(now, SWEEP_LIMIT):
            self._on_overdue(execution_id, due_at)


def _store_may_fail(
    job: Callable[[], Awaitable[None]], event: str
) -> Callable[[], Awaitable[None]]:
    """`job`, with a store that cannot be reached (a database away or restarting) logged as
    `event`, a warning: the job's next run tries again."""

    async def run() -> None:
        logs.unbound()
        try:
            await job()
        except StoreError as exc:
            log.warning(event, error=str(exc))

    return run


def _job_id(due_at: float) -> str:
    return f"at-{due_at!r}"
