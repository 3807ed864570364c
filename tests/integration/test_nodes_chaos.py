"""Node chaos: three stepd nodes on one PostgreSQL, nodes SIGKILLed at random and started
again, the database restarted as after a crash.

Judged as the one-node chaos is (tests/integration/test_chaos.py): every step of every
execution delivered, in order, never early; a step sent more than once only when a kill or a
database restart fell while it was in flight, every send with the step's one Idempotency-Key;
every execution SUCCEEDED with a complete history. The fast version runs in `make test`
(about a minute); `make soak` runs it at full size (300 classrooms, 30 kills, 2 restarts).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from tests.integration.chaos_support import Daemon, Lab, percentile
from tests.integration.harness import (
    STEP_PATHS,
    Classroom,
    Delivery,
    check_history,
    records_of,
    sleep_until,
    wait_until,
    whole_second,
)
from tests.integration.test_chaos import chaos_seed, check_resends
from tests.postgres_server import PostgresServer

NODES = 3
RUN_SECONDS = 60.0  # past the last class's end, every execution has closed within this
ANSWER_DELAY_SECONDS = 0.15  # calls stay in flight for a while: kills catch some
MIN_GAP_SECONDS = 1.0  # between two chaos moments
DOWN_SECONDS = (0.3, 3.0)  # a killed node is started again after this long


@dataclass(frozen=True, kw_only=True)
class NodesPlan:
    executions: int
    spread_seconds: int
    burst: int  # this many classrooms start in the same second
    longest_class_seconds: int
    kills: int
    db_restarts: int


FAST = NodesPlan(
    executions=45, spread_seconds=25, burst=15, longest_class_seconds=10, kills=8, db_restarts=1
)
LONG = NodesPlan(
    executions=300,
    spread_seconds=150,
    burst=40,
    longest_class_seconds=30,
    kills=36,  # a few fall when only one node is up and are skipped
    db_restarts=2,
)


@dataclass(frozen=True, kw_only=True)
class NodesResult:
    seed: int
    executions: int
    steps: int
    posts: int
    kills: int
    db_restarts: int
    p50: float
    p99: float
    worst: float
    elapsed: float

    def lines(self) -> list[str]:
        return [
            (
                f"seed {self.seed}: {NODES} nodes, {self.executions} executions, {self.steps} "
                f"steps, {self.kills} SIGKILLs of a node, {self.db_restarts} database crash "
                f"restarts in {self.elapsed:.0f} s"
            ),
            (
                f"{self.posts} POSTs: {self.posts - self.steps} re-sends, each of a call in "
                "flight at a kill or a restart, with the same key; 0 lost, 0 early, 0 out of order"
            ),
            (
                f"lateness of each step's first POST: p50 {self.p50 * 1000:.0f} ms, p99 "
                f"{self.p99 * 1000:.0f} ms, worst {self.worst * 1000:.0f} ms"
            ),
        ]


def plan_moments(count: int, first: float, last: float, rng: random.Random) -> list[float]:
    moments: list[float] = []
    while len(moments) < count:
        moment = rng.uniform(first, last)
        if all(abs(moment - m) >= MIN_GAP_SECONDS for m in moments):
            moments.append(moment)
    return sorted(moments)


async def make_chaos(
    nodes: list[Daemon],
    postgres: PostgresServer,
    moments: list[float],
    restarts: set[int],
    rng: random.Random,
) -> list[float]:
    """At each moment, SIGKILL a node that is up (it starts again a little later) or restart
    the database in immediate mode; when each began."""
    chaos: list[float] = []
    down: set[int] = set()
    comebacks: list[asyncio.Task[None]] = []

    async def come_back(index: int) -> None:
        await asyncio.sleep(rng.uniform(*DOWN_SECONDS))
        await nodes[index].start()
        down.discard(index)

    for number, moment in enumerate(moments):
        await sleep_until(moment)
        if number in restarts:
            chaos.append(time.time())
            await asyncio.to_thread(postgres.restart, immediate=True)
            continue
        up = [i for i in range(len(nodes)) if i not in down]
        if len(up) < 2:
            continue
        victim = rng.choice(up)
        down.add(victim)
        chaos.append(time.time())
        nodes[victim].kill()
        comebacks.append(asyncio.create_task(come_back(victim)))
    await asyncio.gather(*comebacks)
    return chaos


async def run_nodes_chaos(
    lab: Lab, postgres: PostgresServer, plan: NodesPlan, seed: int
) -> NodesResult:
    rng = random.Random(seed)
    lab.server.answer_delay = ANSWER_DELAY_SECONDS
    url = await asyncio.to_thread(postgres.new_database)
    nodes = [
        lab.daemon(name=f"node{n}", env={"STEPD_STORE__URL": url}, max_concurrency=64)
        for n in range(1, NODES + 1)
    ]
    await asyncio.gather(*(node.start() for node in nodes))
    began = time.time()
    base = whole_second(4)
    rooms = []
    for index in range(plan.executions):
        start = base + (0 if index < plan.burst else rng.randint(0, plan.spread_seconds))
        end = start + rng.randint(3, plan.longest_class_seconds)
        rooms.append(Classroom(name=f"nodes-{index:03d}", start=start, end=end))
    gate = asyncio.Semaphore(16)

    async def start(index: int, room: Classroom) -> None:
        async with gate:
            await nodes[index % NODES].start_retrying(room)

    await asyncio.gather(*(start(i, room) for i, room in enumerate(rooms)))
    last_end = max(r.end for r in rooms)
    moments = plan_moments(plan.kills + plan.db_restarts, base - 1, last_end + 1, rng)
    restarts = set(rng.sample(range(len(moments)), plan.db_restarts))
    chaos = await make_chaos(nodes, postgres, moments, restarts, rng)

    explain = f"seed {seed} (STEPD_TEST_SEED reruns it)\n{lab.explain()}"
    names = [r.name for r in rooms]
    await wait_until(nodes[0].healthy, timeout=30, what="node 1's store to answer again")
    await nodes[0].wait_closed("classroom", names, timeout=last_end - time.time() + RUN_SECONDS)
    lateness: list[float] = []
    posts = 0
    for room in rooms:
        node = nodes[rng.randrange(NODES)]  # any node answers for every execution
        described = await node.describe(room.name)
        assert described["status"] == "SUCCEEDED", f"{room.name}: {described}\n{explain}"
        events = await node.history(room.name)
        check_history(events, explain)
        delivery = Delivery(
            classroom=room,
            events=events,
            records=records_of(lab.server.records, room.name),
            uid=await node.uid(room.name),
        )
        delivery.check(max_sends=1 + len(chaos), explain=explain)
        check_resends(delivery, chaos, explain)
        lateness.extend(delivery.lateness().values())
        posts += len(delivery.records)
    return NodesResult(
        seed=seed,
        executions=len(rooms),
        steps=len(STEP_PATHS) * len(rooms),
        posts=posts,
        kills=len(chaos) - plan.db_restarts,
        db_restarts=plan.db_restarts,
        p50=percentile(lateness, 0.5),
        p99=percentile(lateness, 0.99),
        worst=max(lateness),
        elapsed=time.time() - began,
    )


@pytest.fixture
async def lab(tmp_path: Path) -> AsyncIterator[Lab]:
    async with Lab(tmp_path) as world:
        yield world


@pytest.mark.slow
async def test_nodes_killed_and_a_database_restart_lose_nothing(
    lab: Lab, postgres: PostgresServer, figures: Callable[[str], None]
) -> None:
    result = await run_nodes_chaos(lab, postgres, FAST, chaos_seed())
    for line in result.lines():
        figures(line)
    assert result.kills >= FAST.kills - 1
