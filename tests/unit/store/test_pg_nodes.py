"""Nodes sharing one PostgreSQL store: claims, leases as fencing tokens, reaping, leaving (a real
throwaway server, tests/postgres_server.py; two store objects stand for two nodes)."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any
from unittest.mock import ANY

import psycopg
import pytest
from structlog.testing import capture_logs
from tests.postgres_server import PostgresServer

from stepd import cluster as cluster_module
from stepd.cluster import (
    API_SETTINGS,
    NOT_SERVED,
    SEND_SECONDS,
    Cluster,
    FencedCaller,
    definition_hashes,
    published,
)
from stepd.engine.machines import Machine
from stepd.errors import ClaimLost, NotLeased
from stepd.store.pg_nodes import NodeLeases
from stepd.store.postgres import CLAIM_SQL, PostgresStore
from stepd.store.records import (
    ABORTED,
    FAILED,
    PHASE_TASK,
    PHASE_WAIT,
    RUNNING,
    ActivityTask,
    Execution,
    NewEvent,
    NewExecution,
    Progress,
    TaskCall,
    Transition,
)
from stepd.tasks.caller import TaskRequest
from stepd.tasks.endpoints import EndpointMap
from stepd.testing import FakeCaller

DUE = 1_000.0  # long past: every execution below is due
NOW = 2_000.0
HINTED_SECONDS = 10.0  # a hinted claim comes within this of its due instant (the poll: a minute)
AHEAD_SECONDS = 5.0  # executions made due this far ahead, to be claimed before their instant


@dataclass
class Node:
    store: PostgresStore
    leases: NodeLeases

    @property
    def id(self) -> str:
        return self.leases.id


@pytest.fixture
async def url(postgres: PostgresServer) -> str:
    return await asyncio.to_thread(postgres.new_database)


@pytest.fixture
async def nodes(url: str) -> AsyncIterator[list[Node]]:
    made = []
    for _ in range(2):
        store = PostgresStore(url)
        await store.open()
        leases = NodeLeases(url, password=None, api="test")
        store.node = await leases.join()
        made.append(Node(store, leases))
    yield made
    for node in made:
        await node.leases.close()
        await node.store.close()


async def waiting(node: Node, name: str, progress: Progress | None = None) -> Execution:
    """A new execution `name`, waiting and long due (or at `progress`)."""
    definition_id = await node.store.put_definition("m", "{}")
    execution, _ = await node.store.create_execution(
        NewExecution(
            machine="m",
            name=name,
            definition_id=definition_id,
            input="{}",
            start_date=1.0,
            uid=name,
            progress=progress
            or Progress(status=RUNNING, state="W", phase=PHASE_WAIT, data="{}", due_at=DUE),
            events=(NewEvent(ts=1.0, type="ExecutionStarted", details={}),),
        )
    )
    return execution


def in_flight(base: Execution) -> Transition:
    """The intent of a call: the execution is held by the node that sends it."""
    task = TaskCall(resource="r", payload="{}", timeout_seconds=None, due=DUE, sent=True)
    progress = Progress(
        status=RUNNING, state="T", phase=PHASE_TASK, data="{}", pending=task, due_at=DUE
    )
    return Transition(base=base, progress=progress, events=())


async def expire(url: str, node: Node) -> None:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await conn.execute(
            "UPDATE nodes SET lease_until = clock_timestamp() - interval '1 s' WHERE id = %s",
            (node.id,),
        )


async def owner(url: str, execution_id: int) -> str | None:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        cur = await conn.execute("SELECT owner FROM executions WHERE id = %s", (execution_id,))
        row = await cur.fetchone()
        assert row is not None
        return row[0]


async def test_each_due_execution_is_claimed_by_one_node(nodes: list[Node]) -> None:
    """Two nodes claiming the same due executions at once: each goes to exactly one."""
    ids = [(await waiting(nodes[0], f"e{n}")).id for n in range(50)]
    got = await asyncio.gather(
        *(node.store.claim(ids, before=NOW, limit=len(ids)) for node in nodes)
    )
    claimed = [execution_id for batch in got for execution_id, _ in batch]
    assert sorted(claimed) == sorted(ids)


async def test_what_is_not_due_yet_is_not_claimed(nodes: list[Node]) -> None:
    execution = await waiting(nodes[0], "later")
    assert await nodes[0].store.claim([execution.id], before=DUE - 1, limit=1) == []


async def version_row(url: str, execution_id: int) -> str:
    """The row's xmin: it changes whenever the row is written."""
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        cur = await conn.execute("SELECT xmin::text FROM executions WHERE id = %s", (execution_id,))
        row = await cur.fetchone()
        assert row is not None
        return str(row[0])


async def test_a_claim_of_what_this_node_holds_already_reads_it_back_unwritten(
    url: str, nodes: list[Node]
) -> None:
    """A wake-up of an execution its node claimed ahead of the instant: no second write."""
    execution = await waiting(nodes[0], "ahead")
    assert await nodes[0].store.claim([execution.id], before=NOW, limit=1) == [(execution.id, DUE)]
    written = await version_row(url, execution.id)
    assert await nodes[0].store.claim([execution.id], before=NOW, limit=1) == [(execution.id, DUE)]
    assert await version_row(url, execution.id) == written
    assert await owner(url, execution.id) == nodes[0].id
    assert await nodes[1].store.claim([execution.id], before=NOW, limit=1) == []


async def test_a_node_looks_only_at_what_it_may_run(nodes: list[Node]) -> None:
    """What falls due that another node holds is that node's: a node's timers and watch
    leave it out (a herd held by one node does not hide what nobody holds from the others)."""
    held = [await waiting(nodes[0], f"held{n}") for n in range(3)]
    free = await waiting(nodes[0], "free")
    await nodes[0].store.claim([e.id for e in held], before=NOW, limit=3)
    assert await nodes[1].store.claimable(NOW, 10) == [(free.id, DUE)]
    assert await nodes[1].store.claimable(NOW, 1) == [(free.id, DUE)]
    assert await nodes[0].store.claimable(NOW, 10) == [(e.id, DUE) for e in (*held, free)]
    assert await nodes[0].store.claimable(NOW, 10, own=False) == [(free.id, DUE)]
    assert len(await nodes[0].store.due(NOW, 10)) == 4  # the store's contract: everything


async def claim_plan(url: str, node: str, ids: list[int]) -> dict[str, Any]:
    """The plan a claim of `ids` ran with, as the store runs it after a few claims: generic
    (made without its parameters' values), with what each step read."""
    params = {"%(node)s": "$1", "%(ids)b": "$2", "%(before)s": "$3", "%(limit)s": "$4"}
    sql = CLAIM_SQL
    for name, number in params.items():
        sql = sql.replace(name, number)
    array = "ARRAY[" + ",".join(map(str, ids)) + "]::int8[]"
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await conn.execute("SET plan_cache_mode = force_generic_plan")
        await conn.execute(f"PREPARE claim (text, int8[], float8, int8) AS {sql}")
        cur = await conn.execute(
            "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) EXECUTE claim"
            f" ('{node}', {array}, {NOW}, {len(ids)})"
        )
        row = await cur.fetchone()
    assert row is not None
    return dict(row[0][0]["Plan"])


def scans(plan: dict[str, Any]) -> list[dict[str, Any]]:
    """Every step of `plan` that reads `executions` (not the write itself)."""
    found = []
    if plan.get("Relation Name") == "executions" and plan["Node Type"] != "ModifyTable":
        found.append(plan)
    for child in plan.get("Plans", []):
        found.extend(scans(child))
    return found


@pytest.mark.parametrize("before", ["nobody held any", "all were held", "all were closed"])
async def test_a_claim_reads_only_the_executions_it_asks_for(
    url: str, nodes: list[Node], before: str
) -> None:
    """A claim looks each execution up by its key, however many executions there are and
    whatever the database's statistics say, taken before a herd: read by the index of
    holders, or of what falls due, every claim of a herd would read thousands (five times the
    database's time for a herd of 15,000 on one node)."""
    count = 2000
    definition_id = await nodes[0].store.put_definition("m", "{}")
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await conn.execute(
            "INSERT INTO executions (machine, name, definition_id, status, input, start_date,"
            " state, phase, data, due_at, owner) SELECT 'm', 'e' || g, %s, %s, '{}', 1, 'W',"
            " %s, '{}', %s, %s FROM generate_series(1, %s) AS g",
            (
                definition_id,
                RUNNING,
                PHASE_WAIT,
                None if before == "all were closed" else DUE,
                nodes[1].id if before == "all were held" else None,
                count,
            ),
        )
        await conn.execute("ANALYZE executions")
        # then the herd: all due, nobody holding any, but what this node claimed
        await conn.execute("UPDATE executions SET due_at = %s, owner = NULL", (DUE,))
        cur = await conn.execute("SELECT id FROM executions ORDER BY id")
        ids = [int(r[0]) for r in await cur.fetchall()]
    held = await nodes[0].store.claim(ids[: count // 2], before=NOW, limit=count // 2)
    assert len(held) == count // 2
    asked = ids[count // 2 - 32 : count // 2 + 32]  # half of them held by this node already
    plan = await claim_plan(url, nodes[0].id, asked)
    read = scans(plan)
    assert read
    assert {step.get("Index Name") for step in read} == {"executions_pkey"}, json.dumps(plan)
    assert plan["Shared Hit Blocks"] + plan.get("Shared Read Blocks", 0) < 20 * len(asked)
    assert plan["Actual Rows"] == len(asked)  # 32 taken, 32 held already


async def test_what_a_node_may_run_comes_in_the_order_it_falls_due(nodes: list[Node]) -> None:
    """What no node holds and what this node holds are read apart: merged, the earliest
    come first, whoever holds them, and no more than the limit."""

    def at(due_at: float) -> Progress:
        return Progress(status=RUNNING, state="W", phase=PHASE_WAIT, data="{}", due_at=due_at)

    mine = [await waiting(nodes[0], f"mine{due}", at(due)) for due in (10.0, 30.0)]
    theirs = await waiting(nodes[0], "theirs", at(5.0))
    free = [await waiting(nodes[0], f"free{due}", at(due)) for due in (20.0, 40.0)]
    await nodes[0].store.claim([e.id for e in mine], before=NOW, limit=2)
    await nodes[1].store.claim([theirs.id], before=NOW, limit=1)
    order = [(mine[0].id, 10.0), (free[0].id, 20.0), (mine[1].id, 30.0), (free[1].id, 40.0)]
    assert await nodes[0].store.claimable(NOW, 10) == order
    assert await nodes[0].store.claimable(NOW, 3) == order[:3]
    assert await nodes[0].store.claimable(35.0, 10) == order[:3]
    assert await nodes[0].store.claimable(NOW, 10, own=False) == [order[1], order[3]]


async def test_what_a_look_finds_in_the_engines_hand_is_not_claimed_again(
    url: str, nodes: list[Node]
) -> None:
    """The sweep and the watch find the executions this node is running (due, their calls in
    flight): those its engine has in hand are neither claimed again nor run again."""
    store = PostgresStore(url)
    await store.open()
    cluster = Cluster(store, NodeLeases(url, password=None, api="test"), watch_seconds=60)
    run: list[int] = []
    in_hand = await waiting(nodes[0], "in hand")
    lost = await waiting(nodes[0], "lost")
    cluster.attach(
        dispatch=lambda i, _: run.append(i),
        overdue=lambda i, _: run.append(i),
        load_window=nothing,
        in_hand=lambda i: i == in_hand.id,
    )
    try:
        await cluster.start()
        for execution in (in_hand, lost):
            cluster.on_overdue(execution.id, DUE)
        await until(lambda: bool(run), 30)
        await asyncio.sleep(0.1)
        holders = (await owner(url, in_hand.id), await owner(url, lost.id))
    finally:
        await cluster.stop()
        await store.close()
    assert (run, holders) == ([lost.id], (None, cluster.node))


async def test_a_node_claims_what_woke_earliest_due_first(
    url: str, nodes: list[Node], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch at a time (here 2), the earliest due first, whatever order the wake-ups came
    in; a wake-up for an earlier instant moves an execution forward."""
    monkeypatch.setattr(cluster_module, "CLAIM_BATCH", 2)
    store = PostgresStore(url)
    await store.open()
    cluster = Cluster(store, NodeLeases(url, password=None, api="test"), watch_seconds=60)
    run: list[int] = []
    cluster.attach(dispatch=lambda i, _: run.append(i), load_window=nothing)
    ids = [(await waiting(nodes[0], f"e{n}")).id for n in range(5)]
    try:
        await cluster.start()
        for n, execution_id in enumerate(ids):  # e0 due last, e4 first
            cluster.on_due(execution_id, DUE - n)
        cluster.on_due(ids[0], DUE - 10)  # e0 first after all
        await until(lambda: len(run) == len(ids), 30)
    finally:
        await cluster.stop()
        await store.close()
    batches = [set(run[:2]), set(run[2:4]), set(run[4:])]
    assert batches == [{ids[0], ids[4]}, {ids[3], ids[2]}, {ids[1]}]


async def node_cluster(
    url: str, backlog: Callable[[], int], workers: int | None = None
) -> tuple[Cluster, list[int]]:
    """A started cluster node whose engine has `backlog()` claimed executions waiting for a
    worker, and the executions it ran (in the order claimed); it claims only what it is woken
    for (no hints, no watch)."""
    store = PostgresStore(url)
    await store.open()
    cluster = Cluster(
        store, NodeLeases(url, password=None, api="test"), watch_seconds=60, listening=False
    )
    run: list[int] = []
    cluster.attach(
        dispatch=lambda i, _: run.append(i),
        load_window=nothing,
        backlog=backlog,
        workers=workers,
    )
    await cluster.start()
    return cluster, run


async def stop_cluster(cluster: Cluster) -> None:
    await cluster.stop()
    await cluster.store.close()


async def until(condition: Callable[[], bool], seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        await asyncio.sleep(0.02)


async def test_a_busy_node_leaves_what_is_due_to_a_node_that_is_free(
    url: str, nodes: list[Node]
) -> None:
    """While other nodes run, a node claims more only while its engine has fewer than
    CLAIM_BACKLOG waiting for a worker: a herd both woke for is not taken all by one node and
    worked through alone."""
    waiting_here = [cluster_module.CLAIM_BACKLOG]  # the busy node's engine, for now
    busy, busy_run = await node_cluster(url, lambda: waiting_here[0])
    free, free_run = await node_cluster(url, lambda: 0)
    try:
        await until(lambda: busy.leases.live > 1)
        ids = [(await waiting(nodes[0], f"e{n}")).id for n in range(300)]
        for execution_id in ids:
            busy.on_due(execution_id, DUE)
        await asyncio.sleep(0.3)
        assert busy_run == [], "a busy node claimed more"
        for execution_id in ids:
            free.on_due(execution_id, DUE)
        await until(lambda: len(free_run) == len(ids))
        last = (await waiting(nodes[0], "last")).id  # only the busy node wakes for this one
        busy.on_due(last, DUE)
        await asyncio.sleep(0.3)
        assert busy_run == []
        waiting_here[0] = 0  # its engine is free again: it claims what is still unheld
        await until(lambda: last in busy_run)
    finally:
        await stop_cluster(busy)
        await stop_cluster(free)
    assert (sorted(free_run), busy_run) == (ids, [last])


async def test_a_nodes_backlog_is_two_rounds_of_its_workers(url: str, nodes: list[Node]) -> None:
    """`[http] max_concurrency` workers start that many calls at once: a node of 2 claims more
    only while fewer than 4 wait for one."""
    queued = [4]
    few, run = await node_cluster(url, lambda: queued[0], workers=2)
    try:
        await until(lambda: few.leases.live > 1)
        execution = await waiting(nodes[0], "e")
        few.on_due(execution.id, DUE)
        await asyncio.sleep(0.3)
        assert run == []
        queued[0] = 3
        await until(lambda: bool(run))
    finally:
        await stop_cluster(few)
    assert run == [execution.id]


async def test_a_node_alone_claims_whatever_its_backlog(url: str) -> None:
    """With no other node to leave it to, a busy node claims what is due as before."""
    alone, run = await node_cluster(url, lambda: 10 * cluster_module.CLAIM_BACKLOG)
    try:
        await until(alone.fresh)
        ids = [(await waiting(Node(alone.store, alone.leases), f"e{n}")).id for n in range(3)]
        assert alone.leases.live == 1
        for execution_id in ids:
            alone.on_due(execution_id, DUE)
        await until(lambda: len(run) == len(ids))
    finally:
        await stop_cluster(alone)
    assert run == ids


async def due_in(url: str, ids: list[int], seconds: float) -> float:
    """Make `ids` fall due `seconds` from now, at one instant (one statement); that instant."""
    at = time.time() + seconds
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await conn.execute("UPDATE executions SET due_at = %s WHERE id = ANY(%s)", (at, ids))
    return at


async def test_a_node_claims_a_bounded_number_ahead_of_their_instant(
    url: str, nodes: list[Node], monkeypatch: pytest.MonkeyPatch
) -> None:
    """What falls due within CLAIM_AHEAD_SECONDS is claimed ahead (its wake-up then costs no
    write), but while other nodes run, no more than CLAIM_BACKLOG of it still to come: the
    rest is left for another node to claim. (Here the claims reach further ahead than the
    shipped second, so that a slow machine still looks before the instant.)"""
    monkeypatch.setattr(cluster_module, "CLAIM_AHEAD_SECONDS", AHEAD_SECONDS + 2)
    first, first_run = await node_cluster(url, lambda: 0)
    second, second_run = await node_cluster(url, lambda: 0)
    try:
        await until(lambda: first.leases.live > 1 and second.leases.live > 1)
        later = replace(soon(0), due_at=time.time() + 3600)
        ids = [(await waiting(nodes[0], f"e{n}", later)).id for n in range(300)]
        due_at = await due_in(url, ids, AHEAD_SECONDS)
        for execution_id in ids:
            first.on_overdue(execution_id, due_at)
        await until(lambda: len(first_run) >= cluster_module.CLAIM_BACKLOG)
        await asyncio.sleep(0.05)
        ahead = len(first_run), time.time() < due_at
        for execution_id in ids:
            second.on_overdue(execution_id, due_at)
        await until(lambda: len(first_run) + len(second_run) >= len(ids), AHEAD_SECONDS + 10)
    finally:
        await stop_cluster(first)
        await stop_cluster(second)
    assert ahead == (cluster_module.CLAIM_BACKLOG, True)
    assert sorted(first_run + second_run) == ids
    assert second_run, "the other node took none"


async def test_a_node_cannot_write_an_execution_another_node_holds(nodes: list[Node]) -> None:
    execution = await waiting(nodes[0], "held")
    await nodes[0].store.claim([execution.id], before=NOW, limit=1)
    with pytest.raises(ClaimLost, match=f"node {nodes[0].id} holds it"):
        await nodes[1].store.commit(in_flight(execution))
    assert await nodes[1].store.claim([execution.id], before=NOW, limit=1) == []


async def test_any_node_may_stop_an_execution_another_node_holds(nodes: list[Node]) -> None:
    """StopExecution asked of any node applies; the holder's next write finds it changed."""
    holder, other = nodes
    execution = await waiting(holder, "stopped")
    await holder.store.claim([execution.id], before=NOW, limit=1)
    sending = await holder.store.commit(in_flight(execution))
    assert sending is not None
    stop = replace(sending.progress, status=ABORTED, due_at=None, phase=None, pending=None)
    assert await other.store.commit(Transition(base=sending, progress=stop, events=()))
    assert await holder.store.commit(in_flight(sending)) is None


async def test_any_node_may_update_an_execution_another_node_holds(
    url: str, nodes: list[Node]
) -> None:
    """UpdateExecution asked of any node applies while the holder's call is in flight; the
    execution stays with its holder, which then writes the call's answer to it."""
    holder, other = nodes
    execution = await waiting(holder, "moved")
    await holder.store.claim([execution.id], before=NOW, limit=1)
    sending = await holder.store.commit(in_flight(execution))
    assert sending is not None
    update = Transition(base=sending, progress=sending.progress, events=(), input='{"x": 1}')
    updated = await other.store.commit(update)
    assert updated is not None
    assert updated.input == '{"x": 1}'
    assert await owner(url, execution.id) == holder.id
    assert await holder.store.commit(in_flight(updated)) is not None


async def test_a_node_whose_lease_ran_out_can_neither_claim_nor_write(
    url: str, nodes: list[Node]
) -> None:
    """The lease is the fencing token: checked by the database in the writing statement."""
    execution = await waiting(nodes[0], "fenced")
    await nodes[0].store.claim([execution.id], before=NOW, limit=1)
    await expire(url, nodes[0])
    with pytest.raises(ClaimLost, match="lease ran out"):
        await nodes[0].store.commit(in_flight(execution))
    assert await nodes[0].store.claim([execution.id], before=NOW, limit=1) == []
    assert await nodes[0].leases.renew() is None  # it must join again, under a new id


async def test_a_call_in_flight_stays_held_and_a_wait_lets_go(url: str, nodes: list[Node]) -> None:
    execution = await waiting(nodes[0], "holding")
    await nodes[0].store.claim([execution.id], before=NOW, limit=1)
    sending = await nodes[0].store.commit(in_flight(execution))
    assert sending is not None
    assert await owner(url, execution.id) == nodes[0].id
    wait = Progress(
        status=RUNNING, state="W", phase=PHASE_WAIT, data="{}", due_at=time.time() + 3600
    )
    assert await nodes[0].store.commit(Transition(base=sending, progress=wait, events=()))
    assert await owner(url, execution.id) is None


async def test_only_the_node_holding_an_execution_may_carry_on_with_it(nodes: list[Node]) -> None:
    """`held_here`: what a node asks before it carries on with an execution it read again
    after a refused commit (a call in flight is another node's while that node holds it)."""
    execution = await waiting(nodes[0], "held")
    unheld = [await node.store.held_here(execution.id) for node in nodes]
    await nodes[1].store.claim([execution.id], before=NOW, limit=1)
    sending = await nodes[1].store.commit(in_flight(execution))
    assert sending is not None
    held = [await node.store.held_here(execution.id) for node in nodes]
    assert (unheld, held) == ([False, False], [False, True])


async def test_reaping_lets_go_of_a_dead_nodes_executions_for_a_survivor(
    url: str, nodes: list[Node]
) -> None:
    dead, survivor = nodes
    execution = await waiting(dead, "orphan")
    await dead.store.claim([execution.id], before=NOW, limit=1)
    sending = await dead.store.commit(in_flight(execution))
    assert sending is not None
    assert await survivor.leases.reap() == (0, [])  # alive: nothing to reap
    await expire(url, dead)
    assert await survivor.leases.reap() == (1, [(execution.id, DUE)])
    assert await survivor.store.claim([execution.id], before=NOW, limit=1) == [(execution.id, DUE)]
    resent = await survivor.store.commit(in_flight(sending))
    assert resent is not None
    assert resent.task == sending.task  # the same call, its intent kept: sent again as it was


async def test_a_stop_on_another_node_after_a_claim_wins_over_the_claimer(
    nodes: list[Node],
) -> None:
    """The claimer's first read after its claim may be the row the claim took (one read per
    claim): a StopExecution applied by another node since is still never written over, and
    the claimer's next read shows it."""
    claimer, other = nodes
    execution = await waiting(claimer, "stopped after the claim")
    assert await claimer.store.claim([execution.id], before=NOW, limit=1) == [(execution.id, DUE)]
    stop = replace(execution.progress, status=ABORTED, due_at=None, phase=None, pending=None)
    assert await other.store.commit(Transition(base=execution, progress=stop, events=()))
    read = await claimer.store.get_execution(execution.id)
    assert read is not None
    assert await claimer.store.commit(in_flight(read)) is None
    again = await claimer.store.get_execution(execution.id)
    assert again is not None
    assert again.status == ABORTED


async def test_a_call_taken_over_and_then_stopped_is_read_as_stopped(
    url: str, nodes: list[Node]
) -> None:
    """A call in flight on a dead node is sent again by the survivor without a write before:
    the survivor reads it as it is then, not as its claim took it, so a StopExecution in
    between means no call."""
    dead, survivor = nodes
    execution = await waiting(dead, "taken over, then stopped")
    await dead.store.claim([execution.id], before=NOW, limit=1)
    sending = await dead.store.commit(in_flight(execution))
    assert sending is not None
    await expire(url, dead)
    await survivor.leases.reap()
    assert await survivor.store.claim([execution.id], before=NOW, limit=1) == [(execution.id, DUE)]
    third = PostgresStore(url)  # StopExecution asked of a third node
    await third.open()
    try:
        stop = replace(sending.progress, status=ABORTED, due_at=None, phase=None, pending=None)
        assert await third.commit(Transition(base=sending, progress=stop, events=()))
    finally:
        await third.close()
    read = await survivor.store.get_execution(execution.id)
    assert read is not None
    assert read.status == ABORTED


async def test_leaving_lets_go_of_everything_at_once(url: str, nodes: list[Node]) -> None:
    execution = await waiting(nodes[0], "left")
    await nodes[0].store.claim([execution.id], before=NOW, limit=1)
    assert await nodes[0].leases.leave() == 1
    assert await owner(url, execution.id) is None
    assert [row.id for row in await nodes[1].leases.nodes()] == [nodes[1].id]


async def failed(node: Node, name: str) -> None:
    await waiting(node, name, Progress(status=FAILED, stop_date=2.0, error="E"))


async def test_each_notice_is_told_by_one_node_until_that_node_leaves(nodes: list[Node]) -> None:
    """The outbox on several nodes: a notice goes to the notifier of the node that read it
    first, again at each of its reads, to no other node while its lease runs; once it leaves
    (or dies: its lease runs out), another node's notifier takes it over."""
    first, other = nodes
    await failed(first, "one")
    told = await first.store.outbox(10)
    assert [n.name for n in told] == ["one"]
    assert await other.store.outbox(10) == []
    await failed(other, "two")
    assert [n.name for n in await other.store.outbox(10)] == ["two"]
    assert await first.store.outbox(10) == told
    await first.leases.leave()
    assert [n.name for n in await other.store.outbox(10)] == ["one", "two"]


async def test_each_activity_task_is_taken_by_one_node(nodes: list[Node]) -> None:
    for n in range(40):
        await nodes[0].store.queue_activity_task(
            ActivityTask(activity="a", token=f"t{n:02}", input="{}", queued_at=float(n))
        )
    takes = [node.store.take_activity_task("a") for _ in range(25) for node in nodes]
    taken = [task.token for task in await asyncio.gather(*takes) if task is not None]
    assert sorted(taken) == [f"t{n:02}" for n in range(40)]


async def test_a_node_whose_lease_ran_out_queues_no_activity_task(
    url: str, nodes: list[Node]
) -> None:
    """Queueing an activity's task is its call: fenced by the lease as a write is."""
    task = ActivityTask(activity="a", token="t", input="{}", queued_at=1.0)
    await expire(url, nodes[0])
    with pytest.raises(ClaimLost, match="lease ran out"):
        await nodes[0].store.queue_activity_task(task)
    await nodes[1].store.queue_activity_task(task)
    assert await nodes[0].store.take_activity_task("a") == task


@dataclass
class Fenced:
    """A node's cluster (not started) and its fenced caller over a fake one."""

    cluster: Cluster
    caller: FakeCaller
    fenced: FencedCaller
    request = TaskRequest(
        url="http://127.0.0.1:1/x", payload={}, idempotency_key="k", timeout_seconds=1
    )

    def sent(self) -> tuple[list[str | None], int]:
        """The keys the fake caller got, and how many calls were held back for good."""
        return [c.idempotency_key for c in self.caller.calls], self.cluster.stats.unsent


@pytest.fixture
async def fenced(url: str) -> AsyncIterator[Fenced]:
    store = PostgresStore(url)
    await store.open()
    cluster = Cluster(store, NodeLeases(url, password=None, api="test"))
    caller = FakeCaller()
    try:
        yield Fenced(cluster=cluster, caller=caller, fenced=FencedCaller(caller, cluster))
    finally:
        await cluster.stop()
        await store.close()


async def test_a_node_whose_lease_is_not_fresh_sends_nothing(fenced: Fenced) -> None:
    with pytest.raises(NotLeased):  # never joined: no lease at all
        await fenced.fenced.call(fenced.request)
    await fenced.cluster.start()
    await fenced.fenced.call(fenced.request)
    assert fenced.sent() == (["k"], 1)


async def test_a_call_held_back_by_a_late_renewal_goes_out_after_the_next_one(
    fenced: Fenced,
) -> None:
    """A node whose last renewal is too old to send (the database was briefly away) but whose
    lease still runs holds the call until a renewal under the same id gets through, then
    sends it: nobody can have taken its work."""
    cluster = fenced.cluster
    await cluster.start()
    node = cluster.node
    cluster._last_good -= SEND_SECONDS  # as after renewals that failed
    assert not cluster.fresh()
    await fenced.fenced.call(fenced.request)
    assert (cluster.fresh(), cluster.node) == (True, node)
    assert fenced.sent() == (["k"], 0)


async def nothing() -> None:
    """A timers window that has nothing in it."""


async def test_what_a_look_finds_is_claimed_then_left_to_the_engine_if_in_hand(url: str) -> None:
    """A wake-up's execution goes to the engine to run; what a sweep or the watch found goes
    to it as overdue (which the engine leaves alone when it has it in hand already)."""
    store = PostgresStore(url)
    await store.open()
    cluster = Cluster(store, NodeLeases(url, password=None, api="test"))
    woken: list[int] = []
    looked: list[int] = []
    cluster.attach(
        dispatch=lambda i, _: woken.append(i),
        overdue=lambda i, _: looked.append(i),
        load_window=nothing,
    )
    try:
        await cluster.start()
        swept = await waiting(Node(store, cluster.leases), "swept")
        due = await waiting(Node(store, cluster.leases), "due")
        cluster.on_overdue(swept.id, DUE)
        cluster.on_due(due.id, DUE)
        await until(lambda: bool(woken and looked), 30)
    finally:
        await cluster.stop()
        await store.close()
    assert (woken[0], looked[0]) == (due.id, swept.id)
    assert swept.id not in woken


async def test_a_node_whose_clock_is_off_claims_nothing_and_says_so(url: str) -> None:
    """Due instants are wall-clock times: a node 2 s ahead of the database would send early."""
    store = PostgresStore(url)
    await store.open()
    ahead = Cluster(
        store, NodeLeases(url, password=None, api="test"), clock=lambda: time.time() + 2
    )
    dispatched: list[int] = []
    ahead.attach(dispatch=lambda i, _: dispatched.append(i), load_window=nothing)
    try:
        await ahead.start()
        execution = await waiting(Node(store, ahead.leases), "skewed")
        await until(lambda: ahead.skewed, 30)  # the first renewal measures the clocks
        ahead.on_due(execution.id, DUE)
        await asyncio.sleep(0.3)
        status = await ahead.status()
    finally:
        await ahead.stop()
        await store.close()
    assert (dispatched, status["claiming"], round(status["clock_skew_seconds"])) == ([], False, 2)
    [problem] = status["problems"]  # what /healthz gives as the reason it is degraded
    said = re.search(r"its clock is ([+-][0-9.]+) s off the database's", problem)
    assert said is not None, problem
    assert float(said[1]) == pytest.approx(2, abs=0.2)
    assert "claims nothing" in problem


async def test_nodes_serving_different_definitions_of_a_machine_are_reported_once(
    url: str,
) -> None:
    """Each node records a hash of each definition it serves with its lease; a machine whose
    definition differs between the nodes is listed (with each node's hash) and logged once."""
    stores = [PostgresStore(url), PostgresStore(url)]
    clusters = [Cluster(store, NodeLeases(url, password=None, api="test")) for store in stores]
    try:
        for store, cluster in zip(stores, clusters, strict=True):
            await store.open()
            await cluster.start()
        held = await waiting(Node(stores[0], clusters[0].leases), "held")
        assert await stores[0].claim([held.id], before=NOW, limit=1) == [(held.id, DUE)]
        await clusters[0].publish({"m": '{"StartAt":"A"}', "n": "{}"})
        await clusters[1].publish({"m": '{"StartAt":"A"}', "n": "{}"})
        agreeing = await clusters[0].status()
        await clusters[1].publish({"m": '{"StartAt":"B"}', "n": "{}"})
        with capture_logs() as logs:
            first = await clusters[0].status()
            again = await clusters[0].status()
        await clusters[1].publish({"m": '{"StartAt":"A"}', "n": "{}"})
        agreeing_again = await clusters[0].status()
        await clusters[1].publish({"m": '{"StartAt":"A"}'})
        lacking = await clusters[0].status()
    finally:
        for store, cluster in zip(stores, clusters, strict=True):
            await cluster.stop()
            await store.close()
    assert (agreeing["definitions_differ"], agreeing_again["definitions_differ"]) == ({}, {})
    differ = first["definitions_differ"]
    assert list(differ) == ["m"]
    assert set(differ["m"]) == {c.node for c in clusters}
    assert len(set(differ["m"].values())) == 2
    assert again["definitions_differ"] == differ
    assert lacking["definitions_differ"] == {
        "n": {clusters[0].node: ANY, clusters[1].node: NOT_SERVED}
    }
    warned = [e for e in logs if e["event"] == "node.definitions_differ"]
    assert [(e["machine"], e["log_level"]) for e in warned] == [("m", "warning")]
    assert [(n["id"], n["machines"], n["holds"]) for n in first["nodes"]] == [
        (clusters[0].node, 2, 1),
        (clusters[1].node, 2, 0),
    ]


async def listening(url: str, seconds: float = 30.0) -> None:
    """Until a connection of the database has run LISTEN and waits for notifications."""
    deadline = time.monotonic() + seconds
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        while time.monotonic() < deadline:
            cur = await conn.execute(
                "SELECT 1 FROM pg_stat_activity WHERE datname = current_database()"
                " AND state = 'idle' AND query LIKE 'LISTEN %'"
            )
            if await cur.fetchone() is not None:
                return
            await asyncio.sleep(0.01)
    raise AssertionError(f"no connection listened within {seconds} s")


async def claimed_by_a_listener(
    url: str, write: Callable[[], Awaitable[Execution]], *, seconds: float = 2 * HINTED_SECONDS
) -> tuple[Execution, float | None]:
    """A node that polls only every minute (its watch) and has no timers: what `write` (done
    by another node) commits, and when this node claimed it (None: not within `seconds`)."""
    store = PostgresStore(url)
    await store.open()
    cluster = Cluster(store, NodeLeases(url, password=None, api="test"), watch_seconds=60)
    claimed: dict[int, float] = {}
    cluster.attach(
        dispatch=lambda i, _: claimed.setdefault(i, time.time()),
        overdue=lambda i, _: claimed.setdefault(i, time.time()),
        load_window=nothing,
    )
    try:
        await cluster.start()
        await listening(url)
        written = await write()
        deadline = time.monotonic() + seconds
        while written.id not in claimed and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
    finally:
        await cluster.stop()
        await store.close()
    return written, claimed.get(written.id)


def soon(seconds: float) -> Progress:
    return Progress(
        status=RUNNING, state="W", phase=PHASE_WAIT, data="{}", due_at=time.time() + seconds
    )


async def test_an_execution_started_on_one_node_is_claimed_by_another_when_due(
    url: str, nodes: list[Node]
) -> None:
    """The start's NOTIFY carries its due instant: the listener claims it then, not before,
    though its own poll would not look for a minute."""
    started, at = await claimed_by_a_listener(url, lambda: waiting(nodes[0], "s", soon(0.5)))
    assert started.due_at is not None
    assert at is not None, "never claimed"
    assert started.due_at - 0.005 <= at < started.due_at + HINTED_SECONDS


async def test_a_wait_committed_on_one_node_is_claimed_by_another_when_due(
    url: str, nodes: list[Node]
) -> None:
    """A transition that lets go of an execution due soon (a wait, a back-off) is hinted too
    (one due within HOLD_SECONDS its node keeps holding: no other may claim it)."""
    base = await waiting(nodes[0], "w")

    async def wait_soon() -> Execution:
        moved = await nodes[0].store.commit(Transition(base=base, progress=soon(1.5), events=()))
        assert moved is not None
        return moved

    waited, at = await claimed_by_a_listener(url, wait_soon)
    assert waited.due_at is not None
    assert at is not None, "never claimed"
    assert waited.due_at - 0.005 <= at < waited.due_at + HINTED_SECONDS


async def test_a_node_without_notify_sends_no_hint(url: str, nodes: list[Node]) -> None:
    """`[store] notify = false`: nothing is told; only the poll (here a minute) would find it."""
    nodes[0].store.notify = False
    _, at = await claimed_by_a_listener(
        url, lambda: waiting(nodes[0], "quiet", soon(0.3)), seconds=1.5
    )
    assert at is None


async def test_a_node_whose_store_a_newer_release_migrated_claims_nothing_and_says_so(
    url: str,
) -> None:
    """A rolling upgrade: a node of a newer release migrates the store while this node runs.
    At its next renewal this node stops claiming (it could not read what the newer node
    writes) and tells the daemon why, which then hands its work over and stops (exit 78)."""
    store = PostgresStore(url)
    cluster = Cluster(store, NodeLeases(url, password=None, api="test"))
    told: list[str] = []
    cluster.on_store_too_new = told.append
    await store.open()
    await cluster.start()
    try:
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
            await conn.execute("UPDATE meta SET value = '999' WHERE key = 'record_format'")
        deadline = time.monotonic() + 10
        while not told and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        due = await waiting(Node(store, cluster.leases), "due")
        cluster.on_due(due.id, DUE)
        await asyncio.sleep(2 * cluster.watch_seconds)  # the watch would have found it too
        held = await store.held_here(due.id)
    finally:
        await cluster.stop()
        await store.close()
    assert len(told) == 1
    assert "record format 999" in told[0]
    assert "upgrade stepd" in told[0]
    assert cluster.stats.claimed == 0
    assert not held


def test_what_a_node_publishes_changes_with_its_endpoints_and_region() -> None:
    """A node publishes each machine's definition with where its calls go (endpoints, base
    URL), and its region and account: a difference in any is reported between the nodes."""
    definition = {
        "StartAt": "Call",
        "States": {"Call": {"Type": "Task", "Resource": "c", "End": True}},
    }

    def one(base_url: str, route: str) -> Machine:
        routes = {"Call": route}
        return Machine(
            name="m",
            definition=definition,
            definition_text=json.dumps(definition),
            endpoints=EndpointMap(base_url=base_url, routes=routes),
            state_endpoints=routes,
        )

    base = definition_hashes(published({"m": one("http://a", "/c")}, region="r", account="1"))
    again = definition_hashes(published({"m": one("http://a", "/c")}, region="r", account="1"))
    moved = definition_hashes(published({"m": one("http://b", "/c")}, region="r", account="1"))
    routed = definition_hashes(published({"m": one("http://a", "/d")}, region="r", account="1"))
    other = definition_hashes(published({"m": one("http://a", "/c")}, region="s", account="1"))
    assert base == again
    assert moved["m"] != base["m"]
    assert routed["m"] != base["m"]
    assert other["m"] == base["m"]
    assert other[API_SETTINGS] != base[API_SETTINGS]
