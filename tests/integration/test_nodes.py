"""Several stepd nodes on one PostgreSQL database: real daemons, real SIGKILLs, a real server.

Three `stepd run` processes share a fresh database of the session's throwaway PostgreSQL
(tests/postgres_server.py) and one stand-in classroom server. What a user would notice is
checked: every node answers for every execution, a name starts once whichever node is asked,
a killed node's call in flight is sent again by a survivor with the same key, a stopped node
hands its work over, a database restarted as after a crash loses and doubles nothing, and a
node cut off from the database (in a network namespace of its own, tests/netns.py) stops
sending while the others take its work. Failover, hand-over and cut-off times are noted in
the terminal summary ("figures").
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from tests.integration.chaos_support import (
    SOAK,
    Figures,
    check_resends,
    percentile,
)
from tests.integration.harness import (
    EARLY_SLACK_SECONDS,
    MACHINE,
    PING_PATH,
    START_PATH,
    STEP_PATHS,
    STOP_PATH,
    Classroom,
    DaemonFactory,
    Stepd,
    check_history,
    clean_env,
    delivered,
    due_instants,
    records_of,
    rename_task,
    run_cli,
    sleep_until,
    task_keys,
    wait_until,
    whole_second,
)
from tests.netns import Namespace, Placements, posts_by_node
from tests.postgres_server import PostgresServer, remove_server, start_server

from stepd.classroom import ClassroomServer
from stepd.cluster import API_SETTINGS
from stepd.store.formats import FORMAT_VERSION
from stepd.store.pg_nodes import LEASE_SECONDS

NODES = 3
KILL_ROUNDS = 20 if SOAK else 2  # `make soak`: the failover figure over 20 kills
RUN_SECONDS = 40.0  # generous bound past a class's end for its execution to close
# A call in flight on a killed node is sent again once its lease (5 s) ran out and a survivor
# reaped it: typically 5-6 s; a generous bound.
FAILOVER_BOUND_SECONDS = 15.0
CALL_TIMEOUT_SECONDS = 60  # a held-back answer stays in flight until the node is killed
# A node cut off from the database: it sends nothing once its last renewal is SEND_SECONDS
# old (a hard bound); a survivor sends its call in flight again once its lease ran out and it
# was reaped (about 5-6 s; bound generously), and it rejoins once a renewal gets through after
# the heal (about 1 s). Its call's answer is held back until after the heal, when the commit
# it then tries must be refused.
SEND_SECONDS = 3.0
RESUME_BOUND_SECONDS = 15.0
REJOIN_BOUND_SECONDS = 10.0
CUT_SECONDS = 12.0
HELD_SECONDS = 18.0
BACKLOG_SECONDS = 3.0  # after a database restart, before the next one
LONG_OUTAGE_SECONDS = 6.0  # longer than a node's lease (5 s)
LEASE_WATCHED_SECONDS = 2.0  # after a kill, when a survivor's /healthz is read
BYSTANDERS = 6  # classes started on the survivors at each kill, falling due during failover
STALL_ROUNDS = 5
EX_CONFIG = 78
DEMO_INTERRUPTED = 130  # a command ended by Ctrl-C, as a shell reports it
HANDOVER_BOUND_SECONDS = 5.0  # the hand-over takes milliseconds (the README's figure)
HINTED_BOUND_SECONDS = 0.75  # a hinted step is sent within milliseconds: a generous bound


async def start_nodes(
    make_stepd: DaemonFactory,
    postgres: PostgresServer,
    *,
    count: int = NODES,
    placements: Placements | None = None,
    host: str = "127.0.0.1",
    env: dict[str, str] | None = None,
    prepare: Callable[[Stepd], None] | None = None,
) -> list[Stepd]:
    """`count` nodes on a new database (reached at `host`; with `env` more environment, each
    node's config changed by `prepare` first), each in a network namespace of its own with
    `placements` (in the order made: `placements.namespaces`)."""
    url = await asyncio.to_thread(postgres.new_database, host)
    nodes = []
    for n in range(1, count + 1):
        node = make_stepd(name=f"node{n}", timeout_seconds=CALL_TIMEOUT_SECONDS)
        node.extra_env.update(env or {})
        if prepare is not None:
            prepare(node)
        node.extra_env["STEPD_STORE__URL"] = url
        if placements is not None:
            await placements.place(node)
        nodes.append(node)
    await asyncio.gather(*(node.start() for node in nodes))
    return nodes


async def health(node: Stepd) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=5, trust_env=False) as client:
        answer: dict[str, Any] = (await client.get(node.url + "/healthz")).json()
        return answer


async def timed_health(node: Stepd) -> tuple[dict[str, Any], float]:
    """/healthz and how long it took to answer."""
    began = time.monotonic()
    answer = await health(node)
    return answer, time.monotonic() - began


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
    killed = (await health(holder))["node"]["id"]
    holder.kill()
    killed_at = time.time()
    survivor = next(n for n in nodes if n.process)
    if number == 0:  # the survivors see the dead node's lease run down
        await asyncio.sleep(LEASE_WATCHED_SECONDS)
        listed = {n["id"]: n for n in (await health(survivor))["node"]["nodes"]}
        if killed in listed:  # not reaped yet
            left = listed[killed]["lease_left_seconds"]
            assert left <= LEASE_SECONDS - LEASE_WATCHED_SECONDS + 0.5, listed[killed]
    arrivals = await sent(classroom, room.name, START_PATH, 2)
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


async def test_a_node_waits_for_its_database_and_stops_when_the_database_refuses_it(
    make_stepd: DaemonFactory,
) -> None:
    """A node started before its database is up waits for it (a warning line, no bare text)
    and is ready once it answers; a node the database refuses (a database that does not
    exist) stops at once with exit 78 (systemd does not restart it), naming the cause."""
    server = await asyncio.to_thread(start_server)
    try:
        url = await asyncio.to_thread(server.new_database)
        await asyncio.to_thread(server.stop)
        node = make_stepd(name="early")
        node.extra_env["STEPD_STORE__URL"] = url
        process = node.spawn()

        async def waiting() -> bool:
            return bool(node.log_events("store.waiting"))

        await wait_until(waiting, timeout=15, what="store.waiting", explain=node.tail())
        await asyncio.sleep(3)  # a few more attempts
        assert process.poll() is None, node.tail()
        await asyncio.to_thread(server.start)

        async def ready() -> bool:
            try:
                return (await health(node))["status"] == "ok"
            except httpx.HTTPError:
                return False

        await wait_until(ready, timeout=20, what="the node ready", explain=node.tail())
        assert node.log_events("store.reached")
        bare = [line for line in node.log_text().splitlines() if not line.startswith(("{", "---"))]
        assert bare == [], node.tail()
        assert await node.stop() == 0

        refused = make_stepd(name="refused")
        refused.extra_env["STEPD_STORE__URL"] = url.rsplit("/", 1)[0] + "/no_such_database"
        refused.spawn()
        assert await refused.exited(timeout=20) == EX_CONFIG, refused.tail()
        assert "no_such_database" in refused.log_text()
        assert "does not exist" in refused.log_text()
    finally:
        await asyncio.to_thread(remove_server, server)


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
    healths = [await health(n) for n in nodes]
    assert len({str(h["node"]["id"]) for h in healths}) == NODES
    assert [(h["status"], h["node"]["problems"]) for h in healths] == [("ok", [])] * NODES
    async with httpx.AsyncClient(timeout=5, trust_env=False) as client:
        metrics = (await client.get(nodes[0].url + "/metrics")).text
    assert "stepd_node_lease_fresh 1.0" in metrics
    assert "stepd_node_claiming 1.0" in metrics


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
    assert max(lateness) < HANDOVER_BOUND_SECONDS


async def test_a_node_whose_store_a_newer_release_migrated_hands_over_and_stops(
    make_stepd: DaemonFactory,
    postgres: PostgresServer,
    classroom: ClassroomServer,
) -> None:
    """A rolling upgrade: once a newer release migrated the store past what a running node
    reads, that node hands its work over and stops with exit 78 (as it would refuse to start
    on such a store), naming the cause; the classes it would have sent are sent by another."""
    nodes = await start_nodes(make_stepd, postgres, count=2)
    start = whole_second(6)
    rooms = [Classroom(name=f"upgraded-{n}", start=start, end=start + 3) for n in range(4)]
    for room in rooms:
        await nodes[0].start_execution(room)
    url = nodes[0].extra_env["STEPD_STORE__URL"]
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await conn.execute("UPDATE meta SET value = '999' WHERE key = 'record_format'")
        assert await nodes[0].exited(timeout=20) == EX_CONFIG, nodes[0].tail()
        assert await nodes[1].exited(timeout=20) == EX_CONFIG, nodes[1].tail()
        assert "record format 999" in nodes[0].log_text()
        await conn.execute(
            "UPDATE meta SET value = %s WHERE key = 'record_format'", (str(FORMAT_VERSION),)
        )
    survivor = make_stepd(name="node3", timeout_seconds=CALL_TIMEOUT_SECONDS)
    survivor.extra_env["STEPD_STORE__URL"] = url
    await survivor.start()
    lateness = await first_steps_late(survivor, classroom, rooms)
    assert len(lateness) == len(rooms)


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


async def test_nodes_of_another_region_or_account_are_reported(
    make_stepd: DaemonFactory,
    postgres: PostgresServer,
) -> None:
    """A node whose `[api] region` differs from the others' (its ARNs name another region:
    an ARN it gives is unknown to them) is listed beside differing definitions."""

    def elsewhere(node: Stepd) -> None:
        if node.config.name == "node2.toml":
            node.extra_env["STEPD_API__REGION"] = "eu-west-1"

    nodes = await start_nodes(make_stepd, postgres, count=2, prepare=elsewhere)
    differ = (await health(nodes[0]))["node"]["definitions_differ"]
    assert list(differ) == [API_SETTINGS]
    assert len(set(differ[API_SETTINGS].values())) == 2
    assert [n["machines"] for n in (await health(nodes[0]))["node"]["nodes"]] == [1, 1]


async def test_an_execution_started_on_a_reloaded_node_runs_on_one_not_reloaded_yet(
    make_stepd: DaemonFactory,
    postgres: PostgresServer,
    classroom: ClassroomServer,
) -> None:
    """Node 1 is reloaded with the Task state StartRecording renamed BeginRecording (and its
    endpoint line changed to match); node 2 is not reloaded yet. A class started on node 1,
    which then stops, is run by node 2: it calls BeginRecording's endpoint, which only node
    1's config names, and succeeds."""
    nodes = await start_nodes(make_stepd, postgres, count=2)
    rename_task(nodes[0].config, old="StartRecording", new="BeginRecording", path="/recording/b")
    reloaded = await asyncio.to_thread(run_cli, "reload", "-c", nodes[0].config)
    assert reloaded.returncode == 0, reloaded.stdout + reloaded.stderr
    start = whole_second(3)
    room = Classroom(name="renamed-on-one-node", start=start, end=start + 3)
    await nodes[0].start_execution(room)
    assert await nodes[0].stop() == 0

    await nodes[1].wait_status([room.name], "SUCCEEDED", timeout=RUN_SECONDS)

    assert [r.path for r in records_of(classroom.records, room.name)] == [
        "/recording/b",
        PING_PATH,
        STOP_PATH,
    ]
    states = [
        e["stateEnteredEventDetails"]["name"]
        for e in await nodes[1].history(room.name)
        if "stateEnteredEventDetails" in e
    ]
    assert "BeginRecording" in states


@pytest.mark.slow
async def test_a_database_restarted_after_a_crash_loses_and_doubles_nothing(
    make_stepd: DaemonFactory,
    postgres: PostgresServer,
    classroom: ClassroomServer,
    figures: Callable[[str], None],
) -> None:
    """PostgreSQL stopped in immediate mode and started again, twice (the second time down
    longer than a node's lease: every node joins again), while classes run: every step is
    sent, in order, never early; a step is sent twice only with its one key."""
    nodes = await start_nodes(make_stepd, postgres)
    start = whole_second(2)
    rooms = [
        Classroom(name=f"db-{n}", start=start + n % 4, end=start + 6 + n % 4) for n in range(12)
    ]
    for n, room in enumerate(rooms):
        await nodes[n % NODES].start_execution(room)
    outages: list[tuple[float, float]] = []  # (stopped, accepting connections again)
    for planned, down_for in ((start + 1, 0.0), (start + 5, LONG_OUTAGE_SECONDS)):
        # the second restart after the first one's backlog had its time to go out
        at = max([planned] + [back + BACKLOG_SECONDS for _, back in outages])
        await asyncio.sleep(max(0.0, at - time.time()))
        stopped = time.time()
        await asyncio.to_thread(postgres.stop, immediate=True)
        if down_for:  # the database away: /healthz still answers, with the node's lease
            probed, took = await timed_health(nodes[1])
        await asyncio.sleep(max(0.0, stopped + down_for - time.time()))
        await asyncio.to_thread(postgres.start)
        outages.append((stopped, time.time()))
    assert probed["status"] == "unavailable", probed
    assert {"lease_fresh", "last_renewal_seconds_ago", "problems"} <= set(probed["node"])
    assert took < LONG_OUTAGE_SECONDS, took
    await answering(nodes[0])
    await nodes[0].wait_status([r.name for r in rooms], "SUCCEEDED", RUN_SECONDS)
    resent = 0
    # per outage, steps due while the database was down: sent this long after it was back
    backlog: list[list[float]] = [[0.0] for _ in outages]
    for room in rooms:
        delivery = await delivered(nodes[0], classroom, room)
        delivery.check(max_sends=2, explain=nodes[0].tail())
        resent += len(delivery.records) - len(STEP_PATHS)
        due = due_instants(room, delivery.events)
        for path, records in delivery.by_path().items():
            for n, (down, back) in enumerate(outages):
                if down <= due[path] <= back:
                    backlog[n].append(records[0].received_at - back)
    quick, long = (max(b) for b in backlog)
    figures(
        f"database restarted twice: {len(rooms)} classes delivered, {resent} re-sent; the "
        f"steps due while it was down sent at most {quick:.2f} s after it was back (a restart), "
        f"{long:.2f} s ({len(backlog[1]) - 1} steps; down {LONG_OUTAGE_SECONDS:.0f} s, longer "
        f"than the nodes' leases: each joined again); /healthz answered in {took:.2f} s "
        "with the database down"
    )
    assert all(n.process and n.process.poll() is None for n in nodes)


@dataclass(frozen=True, kw_only=True)
class Cut:
    """A node cut off from the database and healed: when each thing happened (wall clock)."""

    node: Stepd
    namespace: Namespace
    old_id: str  # its node id before the cut
    at: float
    resent_at: float  # a survivor sent its call in flight again
    healed_at: float
    rejoined_at: float  # it logged node.rejoined


async def cut_the_holder(
    nodes: list[Stepd],
    placements: Placements,
    port: int,
    classroom: ClassroomServer,
    held: Classroom,
) -> Cut:
    """Cut the node holding `held`'s call in flight off the database (port `port` of the
    hub), wait for a survivor to send that call again, heal the cut after CUT_SECONDS and
    wait for the node to rejoin."""
    node = await holder_of_a_call(nodes)
    namespace = placements.namespaces[nodes.index(node)]
    old_id = str((await health(node))["node"]["id"])
    hub = placements.network.hub
    namespace.cut(hub, port)
    cut_at = time.time()
    resent_at = (await sent(classroom, held.name, START_PATH, 2))[1]
    await sleep_until(cut_at + CUT_SECONDS)
    namespace.heal(hub, port)
    healed_at = time.time()

    async def rejoined() -> bool:
        return bool(node.log_events("node.rejoined"))

    await wait_until(rejoined, timeout=REJOIN_BOUND_SECONDS, what="the cut-off node to rejoin")
    return Cut(
        node=node,
        namespace=namespace,
        old_id=old_id,
        at=cut_at,
        resent_at=resent_at,
        healed_at=healed_at,
        rejoined_at=_instant(node.log_events("node.rejoined")[0]),
    )


@pytest.mark.slow
async def test_a_node_cut_off_from_the_database_stops_sending_and_its_work_goes_on(
    make_node: DaemonFactory,
    reachable_postgres: PostgresServer,
    hub_classroom: ClassroomServer,
    placements: Placements,
    figures: Callable[[str], None],
) -> None:
    """Three nodes, each in a network namespace of its own; the one with a call in flight
    loses the database (a blackhole rule: its connections hang silently) but not the
    classroom server. It sends nothing once its last renewal is 3 s old; the others send its
    call again (same key) and carry every class on; it joins again under a new id once the
    cut heals; what it still tries to commit for its old work is refused."""
    postgres, classroom, network = reachable_postgres, hub_classroom, placements.network
    nodes = await start_nodes(make_node, postgres, placements=placements, host=network.hub)
    classroom.fail_next(START_PATH, status=200, delay=HELD_SECONDS)
    start = whole_second(1)
    held = Classroom(name="held", start=start, end=start + 4)
    await nodes[0].start_execution(held)
    rooms = [
        Classroom(name=f"cut-{n}", start=start + 2 + n % 6, end=start + 10 + n % 6)
        for n in range(18)
    ]
    for n, room in enumerate(rooms):
        await nodes[n % NODES].start_execution(room)
    await sent(classroom, held.name, START_PATH, 1)
    cut = await cut_the_holder(nodes, placements, postgres.port, classroom, held)
    cut_off, space = cut.node, cut.namespace
    cut_at, resent_at, healed_at, rejoined_at = (
        cut.at,
        cut.resent_at,
        cut.healed_at,
        cut.rejoined_at,
    )
    survivor = next(n for n in nodes if n is not cut_off)
    names = [r.name for r in (held, *rooms)]
    await survivor.wait_status(names, "SUCCEEDED", RUN_SECONDS)

    async def answered() -> bool:  # the held answer reached the cut-off node, long after
        return any(e["key"] == keys[START_PATH] for e in cut_off.log_events("task.result"))

    events = await survivor.history(held.name)
    keys = task_keys(held.name, events, await survivor.uid(held.name))
    await wait_until(answered, timeout=HELD_SECONDS + 5, what="the held answer")
    await asyncio.sleep(1.0)  # its commit is tried meanwhile
    explain = "\n".join(n.tail() for n in nodes)
    # nothing sent from its address from SEND_SECONDS after the cut until it rejoined
    by_cut_off = [r for r in classroom.records if r.remote == space.address]
    while_cut = [r for r in by_cut_off if cut_at + SEND_SECONDS < r.received_at < rejoined_at]
    assert not while_cut, f"sent while cut off: {while_cut}\n{explain}"
    last_send = max((r.received_at for r in by_cut_off if r.received_at < rejoined_at), default=0)
    # its call in flight is the survivors' work now: the result in the history is the one a
    # survivor got; the cut-off node's, answered after the heal, was refused, not written
    succeeded = next(e for e in events if e["type"] == "LambdaFunctionSucceeded")
    assert resent_at - 1 < float(succeeded["timestamp"]) < start + HELD_SECONDS, explain
    refused = cut_off.log_events("task.result_discarded") + cut_off.log_events(
        "engine.advance_failed"
    )
    assert refused, f"the cut-off node's late result was not refused\n{explain}"
    shares = posts_by_node(classroom.records, nodes, placements.namespaces)
    lateness = []
    for room in (held, *rooms):
        delivery = await delivered(survivor, classroom, room)
        delivery.check(max_sends=2, explain=explain)
        check_resends(delivery, [(cut_at, cut_at + SEND_SECONDS)], explain)
        if room is not held:
            lateness.extend(delivery.lateness().values())
    resumed = resent_at - cut_at
    rejoin = rejoined_at - healed_at
    figures(
        f"cut off (node {cut.old_id}): last POST from it {last_send - cut_at:.2f} s after the cut; "
        f"its call in flight sent again by a survivor {resumed:.2f} s after the cut; it "
        f"rejoined {rejoin:.2f} s after the heal; {len(refused)} late commit refused; worst "
        f"lateness of the other classes {max(lateness):.2f} s; POSTs by node {shares}"
    )
    assert resumed < RESUME_BOUND_SECONDS
    assert rejoin < REJOIN_BOUND_SECONDS


@pytest.mark.slow
def test_the_nodes_demo_kills_a_node_and_every_class_succeeds(tmp_path: Path) -> None:
    """`stepd demo --nodes 2`: what a newcomer runs to see a node die and its classes go on;
    with a private TMPDIR (mode 0700: PostgreSQL's own user cannot enter it) too, and
    nothing is left in it afterwards (no server folder, no control socket)."""
    private = tmp_path / "tmp"
    private.mkdir(mode=0o700)
    done = subprocess.run(  # noqa: PLW1510 - the status is asserted below
        [sys.executable, "-m", "stepd", "demo", "--nodes", "2"],
        capture_output=True,
        text=True,
        timeout=150,
        env={**clean_env(), "TMPDIR": str(private)},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "killed node 1" in done.stdout
    assert "6 of 6 classes SUCCEEDED" in done.stdout
    assert list(private.iterdir()) == []


@pytest.mark.parametrize(
    ("signum", "group"),
    [
        pytest.param(signal.SIGINT, True, id="ctrl-c"),
        pytest.param(signal.SIGTERM, False, id="sigterm"),
        pytest.param(signal.SIGHUP, False, id="sighup"),
    ],
)
def test_the_nodes_demo_stops_cleanly_on_ctrl_c(
    tmp_path: Path, signum: signal.Signals, group: bool
) -> None:
    """Ctrl-C (SIGINT to the demo's process group, as a terminal sends it), or SIGTERM or
    SIGHUP to the demo alone (`kill`, `timeout`, a closed terminal), while classes run: one
    line says what was stopped, no traceback, exit 130, nothing left behind (no node, no
    PostgreSQL server: their folders are gone)."""
    private = tmp_path / "tmp"
    private.mkdir(mode=0o700)
    process = subprocess.Popen(
        [sys.executable, "-m", "stepd", "demo", "--nodes", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**clean_env(), "TMPDIR": str(private)},
        start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # noqa: PLW1509
    )
    assert process.stdout is not None
    lines = []
    for line in process.stdout:
        lines.append(line)
        if line.startswith("started class-"):
            break
    if group:
        os.killpg(process.pid, signum)
    else:
        process.send_signal(signum)
    rest, _ = process.communicate(timeout=60)
    output = "".join(lines) + rest
    assert process.returncode == DEMO_INTERRUPTED, output
    assert "interrupted" in output
    assert "Traceback" not in output
    assert list(private.iterdir()) == []
    assert _processes_naming(str(private)) == []
    port = re.search(r"PostgreSQL at postgresql://[^ ]*:(\d+)/", output)
    assert port is not None, output
    assert _processes_naming(f" -p {port[1]} ") == []  # its PostgreSQL server stopped


def _processes_naming(text: str) -> list[str]:
    """The command lines of the processes still running that hold `text` (a node's config
    folder, a PostgreSQL server's port)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                line = (
                    (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                )
                if text in line:
                    found.append(line)
    return found
