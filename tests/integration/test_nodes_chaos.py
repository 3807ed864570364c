"""Node chaos: three stepd nodes on one PostgreSQL, nodes SIGKILLed at random and started
again, the database restarted as after a crash, and one node cut off from the database for a
while (a partition: the node in a network namespace of its own, a blackhole rule on the
database's port, tests/netns.py) while the classroom server still hears it.

Judged as the one-node chaos is (tests/integration/test_chaos.py): every step of every
execution delivered, in order, never early; a step sent more than once only when a kill, a
database restart or the partition fell while it was in flight, every send with the step's one
Idempotency-Key; every execution SUCCEEDED with a complete history. The classroom server
tells the nodes apart by the address each request comes from: the node cut off sends nothing
from SEND_SECONDS after the cut until the cut heals. The fast version runs in `make test`
(about a minute); `make soak` runs it at full size (300 classrooms, 30 kills, 2 restarts, a
partition).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import httpx
import pytest
from tests.integration.chaos_support import Daemon, Lab, check_resends, percentile
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
from tests.integration.test_chaos import chaos_seed
from tests.netns import Network, Placements, posts_by_node
from tests.postgres_server import PostgresServer

from stepd.classroom import Record

NODES = 3
RUN_SECONDS = 60.0  # past the last class's end, every execution has closed within this
ANSWER_DELAY_SECONDS = 0.15  # calls stay in flight for a while: kills catch some
MIN_GAP_SECONDS = 1.0  # between two chaos moments
DOWN_SECONDS = (0.3, 3.0)  # a killed node is started again after this long
KILL_DELAY_SECONDS = 5.0  # a kill waits this long at most for two nodes to be up and reachable
# The partition outlasts a lease (5 s) and a reap, so the others take the node's work.
CUT_SECONDS = 9.0
# its calls in flight sent again by the others: about 5 s, more when a kill or a database
# restart falls during the cut (10 s seen); a generous bound
RESUME_BOUND_SECONDS = 20.0
CUT_AFTER_DUE_SECONDS = 0.03  # the cut falls this soon after the burst's instant
SEND_SECONDS = 3.0  # a node cut off sends nothing once its last renewal is this old
REJOIN_WAIT_SECONDS = 15.0  # not killed until it rejoined after the heal (or this long)


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
    kills=36,  # a kill waits for two nodes up and reachable; a few are skipped
    db_restarts=2,
)


@dataclass
class Chaos:
    """What was done, and when (wall clock)."""

    kills: list[tuple[float, int]] = field(default_factory=list)  # (SIGKILL, node index)
    restarts: list[float] = field(default_factory=list)
    cut: tuple[float, float, int] | None = None  # (cut, healed, node index)
    rejoined_at: float | None = None  # the node cut off logged node.rejoined
    cut_node: int | None = None  # the node cut off right now

    def windows(self) -> list[tuple[float, float]]:
        """The moments a call in flight may be sent again after (check_resends)."""
        spans = [(k, k) for k, _ in self.kills] + [(r, r) for r in self.restarts]
        if self.cut is not None:
            spans.append((self.cut[0], self.cut[0] + SEND_SECONDS))
        return spans


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
    failover: list[float]  # SIGKILL -> the call it caught in flight sent again
    partition: str  # what the node cut off did
    shares: dict[str, int]
    elapsed: float

    def lines(self) -> list[str]:
        failover = (
            f"p50 {percentile(self.failover, 0.5):.2f} s, worst {max(self.failover):.2f} s "
            f"over {len(self.failover)} calls"
            if self.failover
            else "no call in flight at a kill"
        )
        return [
            (
                f"seed {self.seed}: {NODES} nodes, {self.executions} executions, {self.steps} "
                f"steps, {self.kills} SIGKILLs of a node, {self.db_restarts} database crash "
                f"restarts, a partition, in {self.elapsed:.0f} s"
            ),
            (
                f"{self.posts} POSTs: {self.posts - self.steps} re-sends, each of a call in "
                "flight at a kill, a restart or the partition, with the same key; 0 lost, 0 "
                "early, 0 out of order"
            ),
            (
                f"lateness of each step's first POST: p50 {self.p50 * 1000:.0f} ms, p99 "
                f"{self.p99 * 1000:.0f} ms, worst {self.worst * 1000:.0f} ms"
            ),
            f"failover (SIGKILL -> its call in flight sent again by a node): {failover}",
            self.partition,
            f"POSTs by node: {self.shares}",
        ]


def plan_moments(count: int, first: float, last: float, rng: random.Random) -> list[float]:
    moments: list[float] = []
    while len(moments) < count:
        moment = rng.uniform(first, last)
        if all(abs(moment - m) >= MIN_GAP_SECONDS for m in moments):
            moments.append(moment)
    return sorted(moments)


def _logged(daemon: Daemon, event: str, after: float) -> float | None:
    """When the daemon first logged `event` after `after` (wall clock), if it did."""
    instants = [
        datetime.fromisoformat(str(e["timestamp"])).timestamp() for e in daemon.log_events(event)
    ]
    return min((t for t in instants if t > after), default=None)


async def make_chaos(
    nodes: list[Daemon],
    *,
    placements: Placements,
    postgres: PostgresServer,
    moments: list[float],
    restarts: set[int],
    cut_at: float,
    rng: random.Random,
) -> Chaos:
    """At each moment, SIGKILL a node that is up while another is (it starts again a little
    later; the kill waits a little for two nodes up and reachable, if need be) or restart
    the database in immediate mode; at `cut_at`, cut the node that is up with the most calls in
    flight off the database for CUT_SECONDS (it is not killed until it rejoined)."""
    chaos = Chaos()
    down: set[int] = set()
    comebacks: list[asyncio.Task[None]] = []

    async def come_back(index: int) -> None:
        await asyncio.sleep(rng.uniform(*DOWN_SECONDS))
        await nodes[index].start()
        down.discard(index)

    async def partition() -> None:
        await sleep_until(cut_at)
        while len(up := [i for i in range(len(nodes)) if i not in down]) < 2:
            await asyncio.sleep(0.1)
        counts = await asyncio.gather(*(calls_in_flight(nodes[i]) for i in up))
        victim = max(zip(counts, up, strict=True))[1]  # the one with the most calls in flight
        chaos.cut_node = victim
        namespace, hub = placements.namespaces[victim], placements.network.hub
        namespace.cut(hub, postgres.port)
        began = time.time()
        await asyncio.sleep(CUT_SECONDS)
        namespace.heal(hub, postgres.port)
        chaos.cut = (began, time.time(), victim)

        async def rejoined() -> bool:
            chaos.rejoined_at = _logged(nodes[victim], "node.rejoined", began)
            return chaos.rejoined_at is not None

        try:
            await wait_until(rejoined, timeout=REJOIN_WAIT_SECONDS, what="a rejoin")
        finally:
            chaos.cut_node = None

    cutting = asyncio.create_task(partition())
    for number, moment in enumerate(moments):
        await sleep_until(moment)
        if number in restarts:
            chaos.restarts.append(time.time())
            await asyncio.to_thread(postgres.restart, immediate=True)
            continue
        deadline = time.monotonic() + KILL_DELAY_SECONDS
        while (
            len(up := [i for i in range(len(nodes)) if i not in down and i != chaos.cut_node]) < 2
            and time.monotonic() < deadline
        ):
            await asyncio.sleep(0.1)  # one node up only (another killed, or cut off): wait
        if len(up) < 2:
            continue
        victim = rng.choice(up)
        down.add(victim)
        chaos.kills.append((time.time(), victim))
        nodes[victim].kill()
        comebacks.append(asyncio.create_task(come_back(victim)))
    await asyncio.gather(*comebacks, cutting)
    return chaos


async def calls_in_flight(node: Daemon) -> int:
    """How many task calls the node has in flight (its /healthz), 0 if it cannot say."""
    try:
        async with httpx.AsyncClient(timeout=1.0, trust_env=False) as client:
            return int((await client.get(node.url + "/healthz")).json().get("in_flight", 0))
    except (httpx.HTTPError, ValueError, TypeError):
        return 0


def kill_failovers(records: list[Record], chaos: Chaos, addresses: list[str]) -> list[float]:
    """For each call in flight at a SIGKILL (sent by the killed node within the answer's
    delay before it), seconds from the kill to the same call sent again."""
    delays = []
    for killed_at, index in chaos.kills:
        caught = [
            r
            for r in records
            if r.remote == addresses[index]
            and killed_at - ANSWER_DELAY_SECONDS - 0.05 <= r.received_at <= killed_at
        ]
        for record in caught:
            again = [
                r.received_at
                for r in records
                if r.idempotency_key == record.idempotency_key and r.received_at > killed_at
            ]
            if again:
                delays.append(min(again) - killed_at)
    return delays


def judge_partition(records: list[Record], chaos: Chaos, addresses: list[str]) -> str:
    """Nothing sent by the node cut off from SEND_SECONDS after the cut until the heal, and
    its calls in flight sent again by the others within RESUME_BOUND_SECONDS; what it did, as
    a figure line."""
    assert chaos.cut is not None, "the partition did not happen"
    began, healed, index = chaos.cut
    sent = [r for r in records if r.remote == addresses[index]]
    late = [r for r in sent if began + SEND_SECONDS < r.received_at < healed]
    assert not late, f"node {index + 1} sent while cut off (cut at {began:.3f}): {late}"
    last = max((r.received_at - began for r in sent if r.received_at < healed), default=None)
    caught = [r for r in sent if began - ANSWER_DELAY_SECONDS - 0.05 <= r.received_at < healed]
    resumed = [
        min(again) - began
        for record in caught
        if (
            again := [
                r.received_at
                for r in records
                if r.idempotency_key == record.idempotency_key and r.received_at > began
            ]
        )
    ]
    assert max(resumed, default=0.0) < RESUME_BOUND_SECONDS, f"taken over late: {resumed}"
    rejoin = "" if chaos.rejoined_at is None else f"{chaos.rejoined_at - healed:.2f} s"
    meanwhile = [k for k, _ in chaos.kills if began <= k <= healed]
    restarts = [r for r in chaos.restarts if began - 6 <= r <= healed]
    return (
        f"partition: node {index + 1} cut off from the database {healed - began:.0f} s: last "
        + ("POST before the cut" if last is None or last < 0 else f"POST {last:.2f} s after it")
        + f", {len(caught)} calls it had in flight sent again by another node "
        + (f"{max(resumed):.2f} s after the cut at worst" if resumed else "(none)")
        + (f"; it rejoined {rejoin} after the heal" if rejoin else "")
        + f" ({len(meanwhile)} kills of other nodes and {len(restarts)} database restarts "
        "around the cut)"
    )


async def run_nodes_chaos(
    lab: Lab, postgres: PostgresServer, placements: Placements, plan: NodesPlan, seed: int
) -> NodesResult:
    rng = random.Random(seed)
    lab.server.answer_delay = ANSWER_DELAY_SECONDS
    url = await asyncio.to_thread(postgres.new_database, placements.network.hub)
    nodes = [
        lab.daemon(name=f"node{n}", env={"STEPD_STORE__URL": url}, max_concurrency=64)
        for n in range(1, NODES + 1)
    ]
    for node in nodes:
        await placements.place(node)
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
    cut_at = base + CUT_AFTER_DUE_SECONDS  # the burst: the node cut off has calls in flight
    chaos = await make_chaos(
        nodes,
        placements=placements,
        postgres=postgres,
        moments=moments,
        restarts=restarts,
        cut_at=cut_at,
        rng=rng,
    )

    explain = f"seed {seed} (STEPD_TEST_SEED reruns it)\n{lab.explain()}"
    names = [r.name for r in rooms]
    await wait_until(nodes[0].healthy, timeout=30, what="node 1's store to answer again")
    await nodes[0].wait_closed("classroom", names, timeout=last_end - time.time() + RUN_SECONDS)
    records = list(lab.server.records)
    addresses = [n.address for n in placements.namespaces]
    partition = judge_partition(records, chaos, addresses)
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
            records=records_of(records, room.name),
            uid=await node.uid(room.name),
        )
        windows = chaos.windows()
        delivery.check(max_sends=1 + len(windows), explain=explain)
        check_resends(delivery, windows, explain)
        lateness.extend(delivery.lateness().values())
        posts += len(delivery.records)
    return NodesResult(
        seed=seed,
        executions=len(rooms),
        steps=len(STEP_PATHS) * len(rooms),
        posts=posts,
        kills=len(chaos.kills),
        db_restarts=len(chaos.restarts),
        p50=percentile(lateness, 0.5),
        p99=percentile(lateness, 0.99),
        worst=max(lateness),
        failover=kill_failovers(records, chaos, addresses),
        partition=partition,
        shares=posts_by_node(records, nodes, placements.namespaces),
        elapsed=time.time() - began,
    )


@pytest.fixture
async def lab(tmp_path: Path, network: Network) -> AsyncIterator[Lab]:
    """The classroom server on the hub address, which the nodes in namespaces reach."""
    async with Lab(tmp_path, host=network.hub) as world:
        yield world


@pytest.mark.slow
async def test_nodes_killed_a_database_restart_and_a_partition_lose_nothing(
    lab: Lab,
    reachable_postgres: PostgresServer,
    placements: Placements,
    figures: Callable[[str], None],
) -> None:
    result = await run_nodes_chaos(lab, reachable_postgres, placements, FAST, chaos_seed())
    for line in result.lines():
        figures(line)
    assert result.kills >= FAST.kills - 1
