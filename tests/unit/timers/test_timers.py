"""Timers: wake-ups within the window, grouped by instant, never the source of truth."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
import structlog

from stepd import logs
from stepd import timers as timers_module
from stepd.errors import StoreError
from stepd.timers import Timers

# How long a test waits for a timer due in a fraction of a second to fire: it fires within a
# few ms of its instant; this bound is for a slow machine, and passes as soon as it fires.
FIRE_SECONDS = 10.0


class Due:
    """What the store would answer: (execution, due_at) pairs before a horizon."""

    def __init__(self, rows: Sequence[tuple[int, float]] = ()) -> None:
        self.rows = list(rows)

    async def __call__(self, before: float, limit: int) -> list[tuple[int, float]]:
        return sorted((r for r in self.rows if r[1] < before), key=lambda r: r[1])[:limit]


async def _eventually(check: Callable[[], bool]) -> None:
    async with asyncio.timeout(FIRE_SECONDS):
        while not check():
            await asyncio.sleep(0.01)


async def test_executions_due_at_one_instant_share_a_job_and_all_fire():
    """Three executions due at the same instant wake together, in id order, not before it."""
    fired: list[tuple[int, float, float]] = []
    timers = Timers(on_due=lambda e, d: fired.append((e, d, time.time())), load_due=Due())
    await timers.start()
    try:
        at = time.time() + 0.3
        for execution_id in (3, 1, 2):
            timers.arm(execution_id, at)
        await _eventually(lambda: len(fired) >= 3)
    finally:
        timers.shutdown()
    assert [(e, d) for e, d, _ in fired] == [(1, at), (2, at), (3, at)]
    assert min(woke for _, _, woke in fired) >= at


async def test_a_disarmed_execution_does_not_fire():
    """Disarming one execution of an instant leaves the others armed."""
    fired: list[int] = []
    timers = Timers(on_due=lambda e, _d: fired.append(e), load_due=Due())
    await timers.start()
    try:
        at = time.time() + 0.2
        timers.arm(1, at)
        timers.arm(2, at)
        timers.disarm(1)
        await _eventually(lambda: len(fired) >= 1)  # 1 would have fired first, with 2
    finally:
        timers.shutdown()
    assert (fired, timers.armed) == ([2], 0)


async def test_rearming_moves_an_execution_to_its_new_instant():
    """An execution armed again at another instant fires once, at the new one."""
    fired: list[tuple[int, float]] = []
    timers = Timers(on_due=lambda e, d: fired.append((e, d)), load_due=Due())
    await timers.start()
    try:
        first, second = time.time() + 0.2, time.time() + 0.4
        timers.arm(7, first)
        timers.arm(7, second)
        await _eventually(lambda: any(due == second for _, due in fired))  # after `first`
    finally:
        timers.shutdown()
    assert fired == [(7, second)]


async def test_start_hands_overdue_work_over_at_once_in_due_order():
    """On start, what is already due goes to the run queue at once, earliest first."""
    now = time.time()
    fired: list[int] = []
    timers = Timers(
        on_due=lambda e, _d: fired.append(e),
        load_due=Due([(5, now - 1), (4, now - 30), (6, now + 3600)]),
    )
    await timers.start()
    timers.shutdown()
    assert fired == [4, 5]


async def test_far_future_executions_are_left_to_the_window_loader():
    """Only executions due within the window get a timer; the rest stay in the store."""
    timers = Timers(on_due=lambda _e, _d: None, load_due=Due(), window_seconds=60)
    await timers.start()
    try:
        timers.arm(1, time.time() + 30)
        timers.arm(2, time.time() + 3600)
        armed = timers.armed
    finally:
        timers.shutdown()
    assert armed == 1


async def test_an_execution_moved_beyond_the_window_loses_its_old_wake_up():
    """Armed for soon, then armed again for an hour ahead (an update): nothing fires soon;
    another one armed for the same soon instant still does."""
    fired: list[int] = []
    timers = Timers(on_due=lambda e, _d: fired.append(e), load_due=Due())
    await timers.start()
    try:
        at = time.time() + 0.2
        timers.arm(1, at)
        timers.arm(2, at)
        timers.arm(1, time.time() + 3600)
        armed = timers.armed
        await _eventually(lambda: len(fired) >= 1)
        await asyncio.sleep(0.1)
    finally:
        timers.shutdown()
    assert (fired, armed) == ([2], 1)


async def test_a_sweep_while_the_store_is_away_is_a_warning_and_the_next_one_finds_the_work(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The database goes away (a restart, a cut): the interval jobs log a warning instead of
    a traceback, and the first sweep after it is back finds what fell due meanwhile."""
    monkeypatch.setattr(timers_module, "SWEEP_SECONDS", 0.1)
    due = Due()
    away = False

    async def load_due(before: float, limit: int) -> list[tuple[int, float]]:
        if away:
            raise StoreError("postgresql://db:5432/stepd: the connection is lost")
        return await due(before, limit)

    found: list[int] = []
    timers = Timers(on_due=lambda e, _d: found.append(e), load_due=load_due)
    await timers.start()
    try:
        with structlog.testing.capture_logs() as logs:
            away = True
            await _eventually(lambda: any(e["event"] == "timers.sweep_failed" for e in logs))
            due.rows.append((7, time.time() - 1))
            away = False
            await _eventually(lambda: found == [7])
    finally:
        timers.shutdown()
    failed = [e for e in logs if e["event"] == "timers.sweep_failed"]
    assert failed[0]["log_level"] == "warning"
    assert "the connection is lost" in failed[0]["error"]


async def test_a_scheduled_job_logs_without_the_fields_of_the_step_that_armed_it(
    tmp_path: Path,
) -> None:
    """The scheduler starts its jobs from whatever ran last (a step, its machine and
    execution bound): a job's lines name no execution."""
    out_path = tmp_path / "stdout"
    with out_path.open("w", encoding="utf-8") as out:
        logs.configure("info", "json", stream=out)
        try:

            async def job() -> None:
                raise StoreError("the connection is lost")

            token = logs.bind(machine="classroom", execution="class-12")
            try:
                await asyncio.create_task(timers_module._store_may_fail(job, "timers.x_failed")())
            finally:
                logs.reset(token)
        finally:
            structlog.reset_defaults()
    [line] = [json.loads(text) for text in out_path.read_text().splitlines()]
    assert line["event"] == "timers.x_failed"
    assert "execution" not in line
    assert "machine" not in line
