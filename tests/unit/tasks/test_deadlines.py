"""Time limits shared between calls: asyncio.timeout's behaviour, never early."""

from __future__ import annotations

import asyncio

import pytest

from stepd.tasks.deadlines import RESOLUTION_SECONDS, Deadlines


async def test_a_body_that_ends_in_time_is_left_alone() -> None:
    """A body that ends before its deadline returns its value; the slot's timer, firing
    later, cancels nothing (the task goes on waiting past it)."""
    deadlines = Deadlines()

    async def quick() -> str:
        with deadlines.limit(0.05):
            await asyncio.sleep(0)
        await asyncio.sleep(0.1)  # past the deadline, outside the limit
        return "done"

    assert await asyncio.create_task(quick()) == "done"


async def test_a_body_past_its_deadline_raises_timeout_error_never_early() -> None:
    """A body still running at its deadline is cancelled and the limit raises TimeoutError,
    at the deadline or within a slot after it, never before."""
    deadlines = Deadlines()
    loop = asyncio.get_running_loop()

    async def slow() -> float:
        began = loop.time()
        try:
            with deadlines.limit(0.05):
                await asyncio.sleep(10)
        except TimeoutError:
            return loop.time() - began
        raise AssertionError("no TimeoutError")

    elapsed = await asyncio.create_task(slow())
    assert 0.05 <= elapsed < 0.05 + RESOLUTION_SECONDS + 1.0  # generous: a shared machine


async def test_calls_due_together_each_time_out_or_not_on_their_own() -> None:
    """Of many calls whose deadlines fall in one slot, those still running time out and those
    that ended do not; a task is still a task: cancelled from outside, it is cancelled."""
    deadlines = Deadlines()

    async def call(seconds: float) -> str:
        try:
            with deadlines.limit(0.5):
                await asyncio.sleep(seconds)
        except TimeoutError:
            return "timed out"
        return "answered"

    outcomes = await asyncio.gather(*(call(0.001 if n % 2 else 5.0) for n in range(40)))
    assert outcomes == ["timed out" if n % 2 == 0 else "answered" for n in range(40)]

    cancelled = asyncio.create_task(call(5.0))
    await asyncio.sleep(0.01)
    cancelled.cancel()
    with pytest.raises(asyncio.CancelledError):
        await cancelled


async def test_a_timeout_inside_another_limit_is_the_inner_ones() -> None:
    """Nested limits: the shorter inner one raises TimeoutError, which the outer body sees
    and can handle; the outer limit does not fire afterwards."""
    deadlines = Deadlines()

    async def nested() -> str:
        with deadlines.limit(1.0):
            try:
                with deadlines.limit(0.02):
                    await asyncio.sleep(10)
            except TimeoutError:
                await asyncio.sleep(0)
                return "inner timed out"
        return "no timeout"

    assert await asyncio.create_task(nested()) == "inner timed out"
