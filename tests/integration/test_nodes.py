"""Several stepd nodes on one PostgreSQL database: real daemons, real SIGKILLs, a real server.

Three `stepd run` processes share a fresh database of the session's throwaway PostgreSQL
(tests/postgres_server.py) and one stand-in classroom server. What a user would notice is
checked: every node answers for every execution, a name starts once whichever node is asked,
a killed node's call in flight is sent again by a survivor with the same key, a stopped node
hands its work over, and a database restarted as after a crash loses and doubles nothing.
Failover and hand-over times are noted in the terminal summary ("figures").
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import httpx
import pytest
from tests.integration.chaos_support import SOAK, Figures, percentile
from tests.integration.harness import (
    EARLY_SLACK_SECONDS,
    MACHINE,
    START_PATH,
    STEP_PATHS,
    Classroom,
    DaemonFactory,
    Stepd,
    check_history,
    delivered,
    due_instants,
    records_of,
    run_cli,
    task_keys,
    wait_until,
    whole_second,
)
from tests.postgres_server import Blackhole, PostgresServer

from stepd.classroom import ClassroomServer

NODES = 3
KILL_ROUNDS = 20 if SOAK else 2  # `make soak`: the failover figure over 20 kills
RUN_SECONDS = 40.0  # generous bound past a class's end for its execution to close
# A call in flight on a killed node is sent again once its lease (5 s) ran out and a survivor
# reaped it: typically 5-6 s; a generous bound.
FAILOVER_BOUND_SECONDS = 15.0
CALL_TIMEOUT_SECONDS = 60  # a held-back answer stays in flight until the node is killed
BYSTANDERS = 6  # classes started on the survivors at each kill, falling due during failover
STALL_ROUNDS = 5
HINTED_BOUND_SECONDS = 0.75  # a hinted step is sent within milliseconds: a generous bound


async def start_nodes(
    make_stepd: DaemonFactory,
    postgres: PostgresServer,
    *,
    count: int = NODES,
    last_through: Blackhole | None = None,
    env: dict[str, str] | None = None,
    prepare: Callable[[Stepd], None] | None = None,
) -> list[Stepd]:
    """`count` nodes on a new database (with `env` more environment, each node's config
    changed by `prepare` first); the last one reaches it through `last_through`."""
    url = await asyncio.to_thread(postgres.new_database)
    nodes = []
    for n in range(1, count + 1):
        node = make_stepd(name=f"node{n}", timeout_seconds=CALL_TIMEOUT_SECONDS)
        node.extra_env.update(env or {})
        if prepare is not None:
            prepare(node)
        through = last_through if n == count else None
        node.extra_env["STEPD_STORE__URL"] = url if through is None else through.url(url)
        nodes.append(node)
    await asyncio.gather(*(node.start() for node in nodes))
    return nodes


async def health(node: Stepd) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=5, trust_env=False) as client:
        answer: dict[str, Any] = (await client.get(node.url + "/healthz")).json()
        return answer


async def answering(node: Stepd) -> None:
    """Wait until the node's store answers again (/healthz 200) after the database was back:
    until then its API rightly answers 503."""

    async def up() -> bool:
        async with httpx.AsyncClient(timeout=5, trust_env=False) as client:
            try:
                return (await client.get(node.url + "/healthz")).status_code == httpx.codes.OK
            except httpx.HTTPError:
                return False

    await wait_until(up, timeout=30, what="the node's store to answer again")


async def holder_of_a_call(nodes: list[Stepd]) -> Stepd:
    """The node with a task call in flight."""
    found: list[Stepd] = []

    async def one_found() -> bool:
        found[:] = [n for n in nodes if n.process and (await health(n))["in_flight"]]
        return len(found) == 1

    await wait_until(one_found, timeout=10, what="one node with a call in flight")
    return found[0]


def _instant(event: dict[str, Any]) -> float:
    """When a daemon's JSON log line was written (unix seconds)."""
    return datetime.fromisoformat(str(event["timestamp"])).timestamp()


async def sent(classroom: ClassroomServer, name: str, path: str, times: int) -> list[float]:
    """Wait until `path` of `name` was received `times` times; when each arrived."""

    async def arrived() -> bool:
        return len([r for r in records_of(classroom.records, name) if r.path == path]) >= times

    await wait_until(arrived, timeout=FAILOVER_BOUND_SECONDS + 10, what=f"{name} {path} x{times}")
    return [r.received_at for r in records_of(classroom.records, name) if r.path == path]


async def kill_the_holder(
    nodes: list[Stepd], classroom: ClassroomServer, number: int, bystanders: list[Classroom]
) -> float:
    """Start a class whose first call is held in flight, start BYSTANDERS classes on the other
    nodes that fall due during the failover (added to `bystanders`), SIGKILL the node sending
    the call, wait for a survivor to send it again (same key) and every class to succeed,
    start the node again; seconds from the kill to the call sent again."""
    classroom.fail_next(START_PATH, status=200, delay=CALL_TIMEOUT_SECONDS)
    start = whole_second(1)
    room = Classroom(name=f"killed-{number}", start=start, end=start + 4)
    await next(n for n in nodes if n.process).start_execution(room)
    await sent(classroom, room.name, START_PATH, 1)
    holder = await holder_of_a_call(nodes)
    survivors = [n for n in nodes if n.process and n is not holder]
    first = whole_second(1.5)
    mine = []
    for k in range(BYSTANDERS):  # their steps fall due from 1.5 s to 6.5 s after the kill
        start = first + k % 3
        mine.append(Classroom(name=f"by-{number}-{k}", start=start, end=start + 3))
        await survivors[k % len(survivors)].start_execution(mine[-1])
    bystanders.extend(mine)
    holder.kill()
    killed_at = time.time()
    arrivals = await sent(classroom, room.name, START_PATH, 2)
    survivor = next(n for n in nodes if n.process)
    # all done before the next kill: none of these is held by the node killed next
    await survivor.wait_status([r.name for r in (room, *mine)], "SUCCEEDED", RUN_SECONDS)
    events = await survivor.history(room.name)
    check_history(events, survivor.tail())
    records = records_of(classroom.records, room.name)
    keys = task_keys(room.name, events, await survivor.uid(room.name))
    due = due_instants(room, events)
    assert [r.idempotency_key for r in records] == [
        keys[path] for path in (START_PATH, *STEP_PATHS)
    ]
    assert all(r.received_at >= due[r.path] - EARLY_SLACK_SECONDS for r in records)
    await holder.start()  # the node comes back, under a new id
    return arrivals[1] - killed_at


async def test_every_node_answers_for_every_execution_and_a_name_starts_once(
    make_stepd: DaemonFactory, postgres: PostgresServer, classroom: ClassroomServer
) -> None:
    nodes = await start_nodes(make_stepd, postgres)
    start = whole_second(2)
    room = Classroom(name="shared", start=start, end=start + 3)
    answers = await asyncio.gather(*(node.start_execution(room) for node in nodes))
    assert len({(a["executionArn"], a["startDate"]) for a in answers}) == 1
    await nodes[2].wait_status([room.name], "SUCCEEDED", RUN_SECONDS)
    described = [await node.describe(room.name) for node in nodes]
    assert all(d == described[0] for d in described)
    (await delivered(nodes[1], classroom, room)).check()
    node_ids = {str(h["node"]["id"]) for h in [await health(n) for n in nodes]}
    assert len(node_ids) == NODES
    async with httpx.AsyncClient(timeout=5, trust_env=False) as client:
        metrics = (await client.get(nodes[0].url + "/metrics")).text
    assert "stepd_node_lease_fresh 1.0" in metrics


async def test_a_killed_nodes_call_in_flight_is_sent_again_by_a_survivor_with_its_key(
    make_stepd: DaemonFactory,
    postgres: PostgresServer,
    classroom: ClassroomServer,
    figures: Callable[[str], None],
) -> None:
    """SIGKILL the node whose call is in flight (its answer held back): a survivor sends the
    same call again, with the same Idempotency-Key, within the failover bound; the class then
    runs to its end on the survivors. Other classes falling due on the survivors meanwhile
    are each sent once, in order, never early (their lateness is noted)."""
    nodes = await start_nodes(make_stepd, postgres)
    bystanders: list[Classroom] = []
    failovers = [await kill_the_holder(nodes, classroom, n, bystanders) for n in range(KILL_ROUNDS)]
    survivor = next(n for n in nodes if n.process)
    await survivor.wait_status([r.name for r in bystanders], "SUCCEEDED", RUN_SECONDS)
    lateness = []  # ms, each bystander step's first POST
    for room in bystanders:
        delivery = await delivered(survivor, classroom, room)
        delivery.check(explain=survivor.tail())  # once each, in order, never early
        lateness.extend(1000 * late for late in delivery.lateness().values())
    lines = [
        (
            f"failover over {len(failovers)} kills (kill -9 -> the call sent again): p50 "
            f"{percentile(failovers, 0.5):.2f} s, p99 {percentile(failovers, 0.99):.2f} s, "
            f"worst {max(failovers):.2f} s"
        ),
        (
            f"meanwhile {len(lateness)} steps of {len(bystanders)} other classes falling due "
            f"on the survivors during the failovers: lateness p50 "
            f"{percentile(lateness, 0.5):.0f} ms, p99 {percentile(lateness, 0.99):.0f} ms, "
            f"worst {max(lateness):.0f} ms"
        ),
    ]
    for line in lines:
        figures(line)
    if SOAK:
        Figures().record("Node failover (PostgreSQL, 3 nodes)", lines)
    assert max(failovers) < FAILOVER_BOUND_SECONDS


async def first_steps_late(
    node: Stepd, classroom: ClassroomServer, rooms: list[Classroom]
) -> list[float]:
    """Wait until every class succeeded; each checked delivered, its first step's lateness."""
    await node.wait_status([r.name for r in rooms], "SUCCEEDED", RUN_SECONDS)
    lateness = []
    for room in rooms:
        delivery = await delivered(node, classroom, room)
        delivery.check()
        lateness.append(delivery.lateness()[START_PATH])
    return lateness


async def test_a_stopped_node_hands_its_work_over(
    make_stepd: DaemonFactory,
    postgres: PostgresServer,
    classroom: ClassroomServer,
    figures: Callable[[str], None],
) -> None:
    """SIGTERM a node just before the classes it started fall due: the others send them, on
    time, though only that node had armed them."""
    nodes = await start_nodes(make_stepd, postgres)
    start = whole_second(4)
    rooms = [Classroom(name=f"handed-{n}", start=start, end=start + 3) for n in range(6)]
    for room in rooms:
        await nodes[0].start_execution(room)
    await asyncio.sleep(max(0.0, start - 1 - time.time()))
    assert await nodes[0].stop() == 0
    lateness = await first_steps_late(nodes[1], classroom, rooms)
    figures(f"hand-over: first steps after SIGTERM late by at most {max(lateness):.3f} s")
    assert max(lateness) < 1.0


@contextlib.contextmanager
def paused(node: Stepd) -> Iterator[None]:
    """The node's process stopped (SIGSTOP) meanwhile: a stall, as a long GC pause or a host
    swapping makes one; it goes on (SIGCONT) afterwards."""
    assert node.process is not None
    os.kill(node.process.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(node.process.pid, signal.SIGCONT)


async def test_a_class_started_on_a_node_that_stalls_is_sent_on_time_by_another(
    make_stepd: DaemonFactory,
    postgres: PostgresServer,
    classroom: ClassroomServer,
    figures: Callable[[str], None],
) -> None:
    """Node 1 starts a class whose first step is due 0.2 s later and then stalls past it.
    Node 2 looks at what falls due only every 30 s here, and no timer of its own has the class:
    node 1's NOTIFY tells it the instant, and it sends the step on time."""
    nodes = await start_nodes(
        make_stepd, postgres, count=2, env={"STEPD_STORE__WATCH_SECONDS": "30"}
    )
    rooms = []
    for n in range(STALL_ROUNDS):
        start = whole_second(1)
        start += (start + n) % 2  # odd and even seconds: a poll's phase cannot match them all
        room = Classroom(name=f"stalled-{n}", start=start, end=start + 3)
        await asyncio.sleep(max(0.0, start - 0.2 - time.time()))
        await nodes[0].start_execution(room)
        with paused(nodes[0]):
            await sent(classroom, room.name, START_PATH, 1)
            await asyncio.sleep(max(0.0, start + 0.3 - time.time()))  # node 1 missed it
        rooms.append(room)
    lateness = await first_steps_late(nodes[1], classroom, rooms)
    figures(
        f"hinted: first steps due 0.2 s after their start on a node that then stalled, sent "
        f"by another (polling every 30 s) late by at most {max(lateness):.3f} s"
    )
    # without the hint, the other node's sweep (every 2 s) would find those due at odd or
    # those due at even seconds at least 1 s late
    assert max(lateness) < HINTED_BOUND_SECONDS


async def nodes_page(node: Stepd) -> str:
    async with httpx.AsyncClient(timeout=5, trust_env=False) as client:
        answer = await client.get(node.url + "/ui/nodes")
        assert answer.status_code == httpx.codes.OK, answer.text
        return answer.text


async def test_the_nodes_page_shows_every_node_and_a_definition_reloaded_on_one_only(
    make_stepd: DaemonFactory,
    postgres: PostgresServer,
) -> None:
    """Every node's page lists the nodes (lease, what each holds); after a reload that changes
    the machine's definition on one node only, /healthz and the page of the other name the
    machine, and that node logs it once."""
    nodes = await start_nodes(make_stepd, postgres, count=2)
    ids = [(await health(node))["node"]["id"] for node in nodes]
    page = await nodes_page(nodes[0])
    assert all(f'id="node-{node_id}"' in page for node_id in ids)
    assert 'id="definitions-agree"' in page
    definition_file = nodes[1].config.parent / "classroom.asl.json"
    definition = json.loads(definition_file.read_text(encoding="utf-8"))
    definition["Comment"] = "changed on the second node only"
    definition_file.write_text(json.dumps(definition), encoding="utf-8")
    reloaded = await asyncio.to_thread(run_cli, "reload", "-c", nodes[1].config)
    assert reloaded.returncode == 0, reloaded.stdout + reloaded.stderr
    differ = (await health(nodes[0]))["node"]["definitions_differ"]
    assert list(differ) == [MACHINE]
    assert set(differ[MACHINE]) == set(ids)
    page = await nodes_page(nodes[0])
    assert 'id="definitions-differ"' in page
    assert f"<td>{MACHINE}</td>" in page
    await health(nodes[0])
    assert len(nodes[0].log_events("node.definitions_differ")) == 1


@pytest.mark.slow
async def test_a_database_restarted_after_a_crash_loses_and_doubles_nothing(
    make_stepd: DaemonFactory,
    postgres: PostgresServer,
    classroom: ClassroomServer,
    figures: Callable[[str], None],
) -> None:
    """PostgreSQL stopped in immediate mode and started again, twice, while classes run: every
    step is sent, in order, never early; a step is sent twice only with its one key."""
    nodes = await start_nodes(make_stepd, postgres)
    start = whole_second(2)
    rooms = [
        Classroom(name=f"db-{n}", start=start + n % 4, end=start + 6 + n % 4) for n in range(12)
    ]
    for n, room in enumerate(rooms):
        await nodes[n % NODES].start_execution(room)
    outages = []  # (stopped, accepting connections again)
    for at in (start + 1, start + 5):
        await asyncio.sleep(max(0.0, at - time.time()))
        stopped = time.time()
        await asyncio.to_thread(postgres.restart, immediate=True)
        outages.append((stopped, time.time()))
    await answering(nodes[0])
    await nodes[0].wait_status([r.name for r in rooms], "SUCCEEDED", RUN_SECONDS)
    resent = 0
    backlog = [0.0]  # steps due while the database was down: sent this long after it was back
    for room in rooms:
        delivery = await delivered(nodes[0], classroom, room)
        delivery.check(max_sends=2, explain=nodes[0].tail())
        resent += len(delivery.records) - len(STEP_PATHS)
        due = due_instants(room, delivery.events)
        for path, records in delivery.by_path().items():
            backlog += [
                records[0].received_at - back for down, back in outages if down <= due[path] <= back
            ]
    figures(
        f"database restarted twice: {len(rooms)} classes delivered, {resent} re-sent; the "
        f"steps due while it was down sent at most {max(backlog):.2f} s after it was back"
    )
    assert all(n.process and n.process.poll() is None for n in nodes)


@pytest.mark.slow
async def test_a_node_cut_off_from_the_database_stops_sending_and_its_work_goes_on(
    make_stepd: DaemonFactory,
    postgres: PostgresServer,
    classroom: ClassroomServer,
    figures: Callable[[str], None],
) -> None:
    """One node loses the database (its connections hang silently) but not the classroom
    server: it sends nothing once its lease is 3 s old, the others carry every class on, and
    it joins again under a new id once the cut heals."""
    hole = Blackhole(postgres.port)
    await hole.start()
    try:
        nodes = await start_nodes(make_stepd, postgres, last_through=hole)
        cut_off = nodes[-1]
        start = whole_second(2)
        rooms = [
            Classroom(name=f"cut-{n}", start=start + n % 6, end=start + 8 + n % 6)
            for n in range(18)
        ]
        for n, room in enumerate(rooms):
            await nodes[n % NODES].start_execution(room)
        await asyncio.sleep(max(0.0, start + 3 - time.time()))
        hole.cut()
        cut_at = time.time()
        await asyncio.sleep(12)
        hole.heal()
        healed_at = time.time()

        async def rejoined() -> bool:
            return bool(cut_off.log_events("node.rejoined"))

        await wait_until(rejoined, timeout=15, what="the cut-off node to join again")
        rejoin = float(_instant(cut_off.log_events("node.rejoined")[0])) - healed_at
        await nodes[0].wait_status([r.name for r in rooms], "SUCCEEDED", RUN_SECONDS)
    finally:
        await hole.stop()
    sends = [_instant(e) for e in cut_off.log_events("task.result")]
    last_send = max((t for t in sends if t < healed_at), default=cut_at) - cut_at
    lateness = []
    for room in rooms:
        delivery = await delivered(nodes[0], classroom, room)
        delivery.check(max_sends=2, explain=nodes[0].tail())
        lateness.extend(delivery.lateness().values())
    figures(
        f"cut off: last answer to the cut-off node {last_send:.2f} s after the cut; "
        f"worst lateness {max(lateness):.2f} s; joined again {rejoin:.2f} s after the heal"
    )
    # the answer to a call sent at most 3 s after the cut comes within the call's own time
    assert last_send < 3.0 + 1.0


@pytest.mark.slow
def test_the_nodes_demo_kills_a_node_and_every_class_succeeds() -> None:
    """`stepd demo --nodes 2`: what a newcomer runs to see a node die and its classes go on."""
    done = run_cli("demo", "--nodes", "2", timeout=150)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "killed node 1" in done.stdout
    assert "6 of 6 classes SUCCEEDED" in done.stdout
