"""Timers: a wall clock that jumps against the monotonic one reloads, sweeps and restarts.

The wall clock is injected (the real one plus a shift the test moves); APScheduler and the
event loop keep real time, as they would when an operator or NTP steps the system clock.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

from stepd import timers as timers_module
from stepd.timers import (
    CLOCK_JUMP_SECONDS,
    HOUSEKEEPING_SECONDS,
    RELOAD_SECONDS,
    SWEEP_LIMIT,
    SWEEP_SECONDS,
    WINDOW_LIMIT,
    Timers,
)

WATCH_SECONDS = 0.01
WINDOW = 120.0


class ShiftedClock:
    """The real wall clock, moved by `shift` seconds."""

    def __init__(self) -> None:
        self.shift = 0.0

    def __call__(self) -> float:
        return time.time() + self.shift


@dataclass
class Due:
    """The store's due executions; remembers each query as (before, limit)."""

    rows: list[tuple[int, float]] = field(default_factory=list)
    queries: list[tuple[float, int]] = field(default_factory=list)
    fail: bool = False

    async def __call__(self, before: float, limit: int) -> list[tuple[int, float]]:
        self.queries.append((before, limit))
        if self.fail:
            raise RuntimeError("store unavailable")
        return sorted((r for r in self.rows if r[1] < before), key=lambda r: r[1])[:limit]

    def since(self, count: int) -> list[int]:
        return [limit for _, limit in self.queries[count:]]


@dataclass
class Rig:
    clock: ShiftedClock
    due: Due
    fired: list[int]
    timers: Timers


async def _eventually(check: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait until `check` holds; the timeout is generous, for a slow machine."""
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.002)


async def _watch_ticks(count: int = 3) -> None:
    """Long enough for the watch to have compared the clocks `count` more times."""
    await asyncio.sleep(WATCH_SECONDS * count + 0.01)


@pytest.fixture
async def rig(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Rig]:
    monkeypatch.setattr(timers_module, "CLOCK_WATCH_SECONDS", WATCH_SECONDS)
    clock, due = ShiftedClock(), Due()
    fired: list[int] = []
    timers = Timers(
        on_due=lambda e, _d: fired.append(e),
        load_due=due,
        clock=clock,
        window_seconds=WINDOW,
    )
    await timers.start()
    made = Rig(clock=clock, due=due, fired=fired, timers=timers)
    yield made
    timers.shutdown()


def _next_run(timers: Timers, job_id: str) -> datetime:
    job = timers._scheduler.get_job(job_id)
    assert job is not None
    run_at: datetime = job.next_run_time
    return run_at


async def test_a_steady_clock_is_not_a_jump(rig: Rig) -> None:
    """Drift within CLOCK_JUMP_SECONDS (slewing, loop lag) loads and sweeps nothing extra."""
    assert rig.due.since(0) == [WINDOW_LIMIT]  # the start's window load
    rig.clock.shift += CLOCK_JUMP_SECONDS * 0.6
    await _watch_ticks()
    assert (rig.timers.clock_jumps, rig.due.since(1)) == (0, [])


@pytest.mark.parametrize("shift", [3600.0, -3600.0, 2.0], ids=["forward", "back", "small"])
async def test_a_jump_reloads_the_window_and_sweeps_at_once_from_the_new_time(
    rig: Rig, shift: float
) -> None:
    """The window load and the sweep ask the store relative to the jumped clock."""
    await _watch_ticks()
    rig.clock.shift = shift
    await _eventually(lambda: len(rig.due.queries) >= 3)
    now = rig.clock()
    (horizon, window_limit), (before, sweep_limit) = rig.due.queries[1:3]
    assert rig.timers.clock_jumps == 1
    assert (window_limit, sweep_limit) == (WINDOW_LIMIT, SWEEP_LIMIT)
    assert horizon == pytest.approx(now + WINDOW, abs=0.5)
    assert before == pytest.approx(now, abs=0.5)
    await _watch_ticks()
    assert (rig.timers.clock_jumps, len(rig.due.queries)) == (1, 3)  # once per jump


async def test_a_forward_jump_hands_over_what_fell_due_and_arms_the_new_window(
    rig: Rig,
) -> None:
    """An hour forward: executions due during the skipped hour go to the run queue in due
    order; one due a minute after the new time is armed; later ones are left alone."""
    real = time.time()
    rig.due.rows = [
        (1, real + 1800),
        (2, real + 600),
        (3, real + 3600 + 60),
        (4, real + 3600 + 600),
    ]
    await _watch_ticks()
    assert (rig.fired, rig.timers.armed) == ([], 0)
    rig.clock.shift = 3600.0
    await _eventually(lambda: len(rig.due.queries) >= 3)
    assert rig.fired[:2] == [2, 1]
    assert set(rig.fired) == {1, 2}
    assert rig.timers.armed == 1


async def test_a_jump_restarts_interval_jobs_held_back_by_the_old_time(rig: Rig) -> None:
    """A clock set back leaves APScheduler's interval jobs far in the future; after the jump
    they run again one interval from now."""
    far = datetime.now(UTC) + timedelta(hours=1)
    for job_id in ("load-window", "sweep"):
        rig.timers._scheduler.modify_job(job_id, next_run_time=far)
    await _watch_ticks()
    rig.clock.shift = -3600.0
    await _eventually(lambda: rig.timers.clock_jumps == 1)
    now = datetime.now(UTC)
    for job_id, seconds in (("load-window", RELOAD_SECONDS), ("sweep", SWEEP_SECONDS)):
        delay = (_next_run(rig.timers, job_id) - now).total_seconds()
        assert 0 < delay <= seconds, job_id


async def test_a_jump_restarts_the_housekeeping_job_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(timers_module, "CLOCK_WATCH_SECONDS", WATCH_SECONDS)
    clock = ShiftedClock()
    housekept: list[float] = []

    async def housekeeping() -> None:
        housekept.append(time.time())

    timers = Timers(
        on_due=lambda _e, _d: None, load_due=Due(), clock=clock, housekeeping=housekeeping
    )
    await timers.start()
    try:
        far = datetime.now(UTC) + timedelta(days=1)
        timers._scheduler.modify_job("housekeeping", next_run_time=far)
        await _watch_ticks()  # the watch has taken the clocks' offset
        clock.shift = 7200.0
        await _eventually(lambda: timers.clock_jumps == 1)
        delay = (_next_run(timers, "housekeeping") - datetime.now(UTC)).total_seconds()
    finally:
        timers.shutdown()
    assert HOUSEKEEPING_SECONDS - 5 < delay <= HOUSEKEEPING_SECONDS
    assert housekept == []  # restarted, not run at once


async def test_the_watch_survives_a_failed_catch_up_and_sees_the_next_jump(rig: Rig) -> None:
    rig.due.fail = True
    rig.clock.shift = 3600.0
    await _eventually(lambda: rig.timers.clock_jumps == 1)
    await _watch_ticks()
    rig.due.fail = False
    rig.due.rows = [(9, time.time() + 3600 + 1000)]
    queries = len(rig.due.queries)
    rig.clock.shift = 7200.0
    await _eventually(lambda: len(rig.due.queries) >= queries + 2)
    assert rig.timers.clock_jumps == 2
    assert rig.due.since(queries) == [WINDOW_LIMIT, SWEEP_LIMIT]
    assert 9 in rig.fired


async def test_after_shutdown_a_jump_is_not_watched(rig: Rig) -> None:
    rig.timers.shutdown()
    rig.clock.shift = 3600.0
    await _watch_ticks()
    assert (rig.timers.clock_jumps, rig.due.since(1), rig.fired) == (0, [], [])
