"""Crash chaos: many classrooms, the daemon SIGKILLed at random moments and restarted.

Judged from what the classroom server received and from the API: every step of every
execution delivered, in order, never early; a step is sent more than once only when a kill
fell while it was in flight, and every send carries the step's one Idempotency-Key; every
execution SUCCEEDED with a complete history. The fast version runs in `make test`; the long
one (`make soak`) runs the same scenario with more classrooms and kills and writes its
figures to tests/soak/FIGURES.md.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from tests.integration.chaos_support import Daemon, Lab, check_resends, percentile
from tests.integration.harness import (
    STEP_PATHS,
    Classroom,
    Delivery,
    check_history,
    due_instants,
    records_of,
    sleep_until,
    whole_second,
)

RUN_SECONDS = 45.0  # past the last class's end, every execution has closed within this
ANSWER_DELAY_SECONDS = 0.15  # the server answers this late: calls stay in flight for a while
MIN_KILL_GAP_SECONDS = 1.2  # a restart is ready in about 0.5 s; kill again no sooner than this
BOOT_KILL_SHARE = 0.2  # this share of the kills hits a daemon still starting up
DUE_KILL_SHARE = 0.5  # this share of the kills lands just after an instant many steps fall due


@dataclass(frozen=True, kw_only=True)
class ChaosPlan:
    """How big one run is."""

    executions: int  # classrooms scheduled before the chaos starts
    late_starts: int  # classrooms started through the API while the kills go on
    spread_seconds: int  # starts spread over this long
    burst: int  # this many classrooms start in the same second
    longest_class_seconds: int  # from start to end
    kills: int


FAST = ChaosPlan(
    executions=50,
    late_starts=10,
    spread_seconds=24,
    burst=15,
    longest_class_seconds=10,
    kills=12,
)
LONG = ChaosPlan(
    executions=220,
    late_starts=30,
    spread_seconds=150,
    burst=40,
    longest_class_seconds=40,
    kills=60,
)


@dataclass(frozen=True, kw_only=True)
class ChaosResult:
    seed: int
    kills: int
    boot_kills: int
    executions: int
    steps: int
    posts: int
    duplicates: int
    worst_lateness: float
    p50_lateness: float
    p99_lateness: float
    steps_due_while_down: int
    elapsed: float

    def lines(self) -> list[str]:
        return [
            (
                f"seed {self.seed}: {self.executions} executions, {self.steps} steps, "
                f"{self.kills} SIGKILLs ({self.boot_kills} during start-up) in "
                f"{self.elapsed:.0f} s"
            ),
            (
                f"{self.posts} POSTs: {self.duplicates} re-sends, each of a call in flight at "
                "a kill, with the same Idempotency-Key; 0 lost, 0 early, 0 out of order"
            ),
            (
                f"lateness of each step's first POST: p50 {self.p50_lateness * 1000:.0f} ms, "
                f"p99 {self.p99_lateness * 1000:.0f} ms, worst "
                f"{self.worst_lateness * 1000:.0f} ms ({self.steps_due_while_down} steps fell "
                "due while the daemon was down)"
            ),
        ]


def plan_classrooms(plan: ChaosPlan, base: int, rng: random.Random) -> list[Classroom]:
    rooms = []
    for index in range(plan.executions):
        start = base + (0 if index < plan.burst else rng.randint(0, plan.spread_seconds))
        length = rng.randint(3, plan.longest_class_seconds)  # the ping is due 2 s in
        rooms.append(Classroom(name=f"chaos-{index:03d}", start=start, end=start + length))
    return rooms


def plan_kills(
    plan: ChaosPlan, rooms: list[Classroom], first: float, last: float, rng: random.Random
) -> list[float]:
    """Kill instants in [first, last], at least MIN_KILL_GAP_SECONDS apart; half of them
    just after an instant at which steps fall due."""
    dues = sorted({t for r in rooms for t in (r.start, r.end) if first <= t <= last})
    kills: list[float] = []
    attempts = 0
    while len(kills) < plan.kills and attempts < 100 * plan.kills:
        attempts += 1
        if dues and rng.random() < DUE_KILL_SHARE:
            moment = rng.choice(dues) + rng.uniform(0.0, 0.08)
        else:
            moment = rng.uniform(first, last)
        if all(abs(moment - k) >= MIN_KILL_GAP_SECONDS for k in kills):
            kills.append(moment)
    return sorted(kills)


async def kill_and_restart(daemon: Daemon, rng: random.Random) -> bool:
    """SIGKILL now; sometimes again while the new process starts up. True if it did."""
    daemon.kill()
    if rng.random() < BOOT_KILL_SHARE:
        daemon.spawn()
        await asyncio.sleep(rng.uniform(0.05, 0.4))
        if daemon.process is not None and daemon.process.poll() is None:
            daemon.kill()
            await daemon.start()
            return True
        daemon.process = None
    else:
        await asyncio.sleep(rng.uniform(0.0, 0.5))
    await daemon.start()
    return False


def down_intervals(daemon: Daemon) -> list[tuple[float, float]]:
    """(SIGKILL, /healthz answering again) for each kill: the stretches with no daemon."""
    return [
        (kill, min((r for r in daemon.ready_times if r > kill), default=float("inf")))
        for kill in daemon.kill_times
    ]


async def run_crash_chaos(lab: Lab, plan: ChaosPlan, seed: int) -> ChaosResult:
    rng = random.Random(seed)
    lab.server.answer_delay = ANSWER_DELAY_SECONDS
    daemon = lab.daemon(max_concurrency=64)
    await daemon.start()
    began = time.time()
    base = whole_second(4)
    rooms = plan_classrooms(plan, base, rng)
    gate = asyncio.Semaphore(16)

    async def start(room: Classroom) -> None:
        async with gate:
            await daemon.start_retrying(room)

    await asyncio.gather(*(start(room) for room in rooms))
    last_end = max(r.end for r in rooms)
    kills = plan_kills(plan, rooms, base - 1, last_end + 1, rng)
    boot_kills = 0

    async def start_during_chaos() -> None:
        for index in range(plan.late_starts):
            await asyncio.sleep(rng.uniform(0.2, 1.5))
            start = whole_second(rng.uniform(1, 6))
            room = Classroom(
                name=f"chaos-late-{index:03d}", start=start, end=start + rng.randint(3, 8)
            )
            rooms.append(room)
            await daemon.start_retrying(room)

    starter = asyncio.create_task(start_during_chaos())
    for moment in kills:
        await sleep_until(moment)
        boot_kills += await kill_and_restart(daemon, rng)
    await starter

    names = [r.name for r in rooms]
    last_end = max(r.end for r in rooms)
    explain = f"seed {seed} (STEPD_TEST_SEED reruns it)\n{lab.explain()}"
    await daemon.wait_closed("classroom", names, timeout=last_end - time.time() + RUN_SECONDS)
    statuses = {n: (await daemon.describe(n))["status"] for n in names}
    assert set(statuses.values()) == {"SUCCEEDED"}, f"{statuses}\n{explain}"
    all_kills = list(daemon.kill_times)
    down = down_intervals(daemon)
    lateness: list[float] = []
    due_while_down = 0
    deliveries = []
    for room in rooms:
        events = await daemon.history(room.name)
        check_history(events, explain)
        delivery = Delivery(
            classroom=room,
            events=events,
            records=records_of(lab.server.records, room.name),
            uid=await daemon.uid(room.name),
        )
        delivery.check(max_sends=1 + len(all_kills), explain=explain)
        check_resends(delivery, [(k, k) for k in all_kills], explain)
        deliveries.append(delivery)
        lateness.extend(delivery.lateness().values())
        due = due_instants(room, events)
        due_while_down += sum(1 for path in STEP_PATHS if any(k <= due[path] <= r for k, r in down))
    posts = sum(len(d.records) for d in deliveries)
    steps = len(STEP_PATHS) * len(rooms)
    return ChaosResult(
        seed=seed,
        kills=len(all_kills),
        boot_kills=boot_kills,
        executions=len(rooms),
        steps=steps,
        posts=posts,
        duplicates=posts - steps,
        worst_lateness=max(lateness),
        p50_lateness=percentile(lateness, 0.5),
        p99_lateness=percentile(lateness, 0.99),
        steps_due_while_down=due_while_down,
        elapsed=time.time() - began,
    )


def chaos_seed() -> int:
    return int(os.environ.get("STEPD_TEST_SEED", time.time_ns() % 1_000_000))


@pytest.fixture
async def lab(tmp_path: Path) -> AsyncIterator[Lab]:
    async with Lab(tmp_path) as world:
        yield world


@pytest.mark.slow
async def test_random_kills_lose_nothing(lab: Lab, figures: Callable[[str], None]) -> None:
    """60 classrooms, 12 SIGKILLs at random (some mid-start-up): all succeed, nothing lost,
    early or out of order; re-sends only of calls in flight at a kill, with the same key."""
    result = await run_crash_chaos(lab, FAST, chaos_seed())

    assert result.kills >= FAST.kills
    assert result.duplicates >= 0
    for line in result.lines():
        figures(line)
