"""The long mode (`make soak`): the chaos, fault and clock scenarios at full size.

Skipped unless STEPD_SOAK=1 (the Makefile's `soak` target sets it). Each test writes its
figures to tests/soak/FIGURES.md, which the README's reliability section quotes. About 19
minutes on the reference machine (2 cores).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from tests.integration.chaos_support import (
    SOAK,
    Figures,
    Lab,
    shipped_retry,
    shipped_wait_for_host,
)
from tests.integration.harness import (
    EARLY_SLACK_SECONDS,
    START_PATH,
    Classroom,
    records_of,
    sleep_until,
)
from tests.integration.test_chaos import LONG, chaos_seed, run_crash_chaos
from tests.integration.test_clock import HOUR, ON_TIME_SECONDS, fake_clocked, run_suspend
from tests.integration.test_faults import (
    ANSWER_DELAY_SECONDS,
    drain_bound,
    outage_lines,
    run_outage,
)
from tests.integration.test_nodes_chaos import LONG as NODES_LONG
from tests.integration.test_nodes_chaos import run_nodes_chaos
from tests.netns import Network, Placements
from tests.postgres_server import PostgresServer

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not SOAK, reason="the long mode: `make soak` (STEPD_SOAK=1)"),
]

OUTAGE_SECONDS = 150.0  # the classroom server is down this long
SUSPEND_SECONDS = 180.0  # the daemon is SIGSTOPped this long
BEYOND_WINDOW_SECONDS = 150  # further ahead than timers.WINDOW_SECONDS (120 s)


@pytest.fixture
async def lab(tmp_path: Path) -> AsyncIterator[Lab]:
    async with Lab(tmp_path) as world:
        yield world


@pytest.fixture
async def hub_lab(tmp_path: Path, network: Network) -> AsyncIterator[Lab]:
    """The classroom server on the hub address, which nodes in namespaces reach."""
    async with Lab(tmp_path, host=network.hub) as world:
        yield world


@pytest.fixture
async def slow_lab(tmp_path: Path) -> AsyncIterator[Lab]:
    async with Lab(tmp_path, answer_delay=ANSWER_DELAY_SECONDS) as world:
        yield world


@pytest.fixture
def record() -> Figures:
    return Figures()


async def test_crash_chaos_at_full_size(lab: Lab, record: Figures) -> None:
    """250 classrooms over ~3 minutes, 60 SIGKILLs: nothing lost, early, out of order or
    re-sent but what a kill caught in flight."""
    result = await run_crash_chaos(lab, LONG, chaos_seed())

    record.record("Crash chaos", result.lines())
    print("\n".join(result.lines()))
    assert result.kills >= LONG.kills
    assert result.executions >= 200


async def test_nodes_chaos_at_full_size(
    hub_lab: Lab,
    reachable_postgres: PostgresServer,
    placements: Placements,
    record: Figures,
) -> None:
    """Three nodes on PostgreSQL, each in a network namespace of its own, 300 classrooms over
    ~3 minutes, at least 30 SIGKILLs of a node, 2 database crash restarts and one node cut off
    from the database for 9 s: nothing lost, early, out of order or re-sent but what a kill, a
    restart or the partition caught in flight; the node cut off sends nothing 3 s after the
    cut."""
    result = await run_nodes_chaos(
        hub_lab, reachable_postgres, placements, NODES_LONG, chaos_seed()
    )

    record.record("Node chaos (PostgreSQL, 3 nodes)", result.lines())
    print("\n".join(result.lines()))
    assert result.executions >= 300
    assert result.kills >= 30
    assert result.db_restarts == 2


@pytest.mark.parametrize(
    ("retry_name", "wait_for_host_seconds"),
    [
        ("shipped config, calls waiting for the host", shipped_wait_for_host()),
        ("wait_for_host_seconds = 0, every attempt sent", 0.0),
    ],
    ids=["waiting-for-the-host", "every-attempt-sent"],
)
async def test_server_down_for_minutes(
    slow_lab: Lab, record: Figures, retry_name: str, wait_for_host_seconds: float
) -> None:
    """The classroom server is down 2.5 minutes while steps fall due: with the shipped Retry
    nothing is lost and the backlog drains within the retry cap (in due order when calls wait
    for the host)."""
    try:
        result = await run_outage(
            slow_lab,
            retry=shipped_retry(),
            wait_for_host_seconds=wait_for_host_seconds,
            outage_seconds=OUTAGE_SECONDS,
            rooms_due_in_outage=80,
            burst=40,
        )
    except AssertionError as exc:
        record.record(
            f"Server down {OUTAGE_SECONDS:.0f} s, {retry_name}",
            [f"FAILED: {str(exc).splitlines()[0][:300]}"],
        )
        raise
    lines = outage_lines(f"shipped Retry, {retry_name}", OUTAGE_SECONDS, result)
    record.record(f"Server down {OUTAGE_SECONDS:.0f} s, {retry_name}", lines)
    print("\n".join(lines))
    assert result["drain"] <= drain_bound(result, 30), result
    if wait_for_host_seconds:
        assert result["inversions"] == 0, f"backlog not in due order: {result}"


async def test_sigstop_for_minutes(lab: Lab, record: Figures) -> None:
    """SIGSTOP for 3 minutes: every step due meanwhile fires at once after SIGCONT, once."""
    lines: list[str] = []
    await run_suspend(lab, suspend_seconds=SUSPEND_SECONDS, wall_jump=0.0, figures=lines.append)
    record.record("SIGSTOP for 3 minutes", lines)


async def test_eight_hour_suspend(lab: Lab, record: Figures) -> None:
    """SIGSTOP 3 minutes with the wall clock 8 h on at SIGCONT (a laptop lid, a paused VM)."""
    lines: list[str] = []
    await run_suspend(
        lab, suspend_seconds=SUSPEND_SECONDS, wall_jump=8 * HOUR, figures=lines.append
    )
    record.record("8 h suspend", lines)


async def test_backward_jump_does_not_stall_steps_beyond_the_timer_window(
    lab: Lab, record: Figures
) -> None:
    """The wall clock goes back 1 h (and stays): a class started afterwards, due in 150 s
    (past the 120 s window of armed timers), starts on time, not an hour late."""
    daemon, clock = fake_clocked(lab)
    await daemon.start()
    await asyncio.sleep(1.5)
    clock.set(-HOUR)
    await asyncio.sleep(1.5)
    start = int(clock.daemon_time(time.time())) + BEYOND_WINDOW_SECONDS
    room = Classroom(name="after-the-jump", start=start, end=start + 3)
    await daemon.start_execution(room)

    due_real = start - clock.offset
    await sleep_until(due_real + ON_TIME_SECONDS)
    sent = [r for r in records_of(lab.server.records, room.name) if r.path == START_PATH]
    line = f"-1 h jump, class due {BEYOND_WINDOW_SECONDS} s later: start sent " + (
        f"{sent[0].received_at - due_real:.2f} s after due"
        if sent
        else f"not at all ({ON_TIME_SECONDS:.0f} s on)"
    )
    record.record("Backward jump, timer window", [line])
    assert sent, line
    assert sent[0].received_at >= due_real - EARLY_SLACK_SECONDS, line
