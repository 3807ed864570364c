"""stepd loses nothing across SIGKILL: the real daemon, killed and restarted on its database.

Lateness is asserted only as "never early" and "arrives within a generous bound"; the
measured figures are listed in the terminal summary ("stepd integration figures").
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import time
from collections.abc import Callable

import pytest
from tests.integration.harness import (
    PING_PATH,
    START_PATH,
    STEP_PATHS,
    STOP_PATH,
    Classroom,
    Stepd,
    delivered,
    due_instants,
    execution_arn,
    records_of,
    sleep_until,
    task_keys,
    whole_second,
)

from stepd.classroom import ClassroomServer

RUN_SECONDS = 30.0  # generous bound past a class's end for its execution to close
# An overdue step is sent within this long of the daemon's start: typically 0.4-0.6 s (the
# process imports, opens the store, then sends); over 10x that.
OVERDUE_SENT_SECONDS = 8.0
# A class due this long after the test starts it: a SIGKILL and a restart (about 0.5 s, 20x)
# are over before it is due.
RESTART_LEAD_SECONDS = 10
ARRIVAL_SECONDS = 10.0  # a POST the test waits for arrives within this


async def wait_for_post(classroom: ClassroomServer, name: str, path: str) -> None:
    async with asyncio.timeout(ARRIVAL_SECONDS):
        while not any(r.path == path for r in records_of(classroom.records, name)):
            await classroom.wait_for(len(classroom.records) + 1)


async def test_kill_while_waiting_restart_before_due(
    stepd: Stepd, classroom: ClassroomServer
) -> None:
    """SIGKILL during a Wait, restart before it is due: each step once, never early."""
    await stepd.start()
    start = whole_second(RESTART_LEAD_SECONDS)
    room = Classroom(name="killed-waiting", start=start, end=start + 3)
    await stepd.start_execution(room)
    described = await stepd.describe(room.name)
    assert described["stepd"] == {
        "uid": described["stepd"]["uid"],
        "state": "RecordingWait",
        "dueAt": float(start),
    }
    assert re.fullmatch("[0-9a-f]{16}", described["stepd"]["uid"])

    stepd.kill()
    await stepd.start()

    assert time.time() < start, "the restart took too long for this test to mean anything"
    assert classroom.records == []
    await stepd.wait_status([room.name], "SUCCEEDED", timeout=room.end - time.time() + RUN_SECONDS)
    (await delivered(stepd, classroom, room)).check(explain=stepd.tail())


async def test_kill_during_a_call_resends_it_with_the_same_key(
    stepd: Stepd, classroom: ClassroomServer
) -> None:
    """SIGKILL while a call is unanswered: it is re-sent once with the same Idempotency-Key."""
    await stepd.start()
    classroom.fail_next(START_PATH, status=200, delay=3)  # processed, answered 3 s late
    start = whole_second(2)
    room = Classroom(name="killed-in-flight", start=start, end=start + 4)
    await stepd.start_execution(room)
    await wait_for_post(classroom, room.name, START_PATH)

    stepd.kill()  # the answer is still 3 s away
    await stepd.start()

    await stepd.wait_status([room.name], "SUCCEEDED", timeout=room.end - time.time() + RUN_SECONDS)
    delivery = await delivered(stepd, classroom, room)
    delivery.check(max_sends=2, explain=stepd.tail())
    sends = delivery.by_path()
    assert [len(sends[path]) for path in STEP_PATHS] == [2, 1, 1], stepd.tail()
    first, resent = sends[START_PATH]
    assert (
        first.idempotency_key
        == resent.idempotency_key
        == task_keys(room.name, delivery.events, delivery.uid)[START_PATH]
    )
    assert (first.delay, resent.duplicate, resent.payload_mismatch) == (3, True, False)
    resends = stepd.log_events("task.resend")
    assert [e["key"] for e in resends] == [first.idempotency_key], stepd.tail()


async def test_overdue_steps_run_soon_after_restart_in_due_order(
    stepd: Stepd, classroom: ClassroomServer, figures: Callable[[str], None]
) -> None:
    """Down past due times: overdue steps go out within seconds of restart, in due order, once."""
    await stepd.start()
    base = whole_second(6)  # room before it for the starts below, on a slow machine too
    rooms = [
        Classroom(name=f"overdue-start-{i}", start=base + i, end=base + i + 3) for i in range(3)
    ]
    for room in rooms:
        await stepd.start_execution(room)
    # One execution is killed inside its 2 s ping Wait: the wait must not restart on restart.
    in_ping_wait = Classroom(name="overdue-ping", start=whole_second(0), end=base + 4)
    await stepd.start_execution(in_ping_wait)
    await wait_for_post(classroom, in_ping_wait.name, START_PATH)
    assert (await stepd.describe(in_ping_wait.name))["stepd"]["state"] == "SendLivePingWait"

    stepd.kill()
    await sleep_until(base + 3)  # every start (and the ping) is now overdue
    assert len(classroom.records) == 1
    await stepd.start()

    everyone = [in_ping_wait, *rooms]
    await stepd.wait_status(
        [r.name for r in everyone], "SUCCEEDED", timeout=base + 6 - time.time() + RUN_SECONDS
    )
    deliveries = [await delivered(stepd, classroom, room) for room in everyone]
    for delivery in deliveries:
        delivery.check(explain=stepd.tail())
    overdue = sorted(
        (
            due_instants(d.classroom, d.events)[path],
            d.by_path()[path][0].received_at,
            d.by_path()[path][0].idempotency_key,
        )
        for d in deliveries
        for path in (START_PATH, PING_PATH)
        if due_instants(d.classroom, d.events)[path]
        < stepd.started_at
        < d.by_path()[path][0].received_at
    )
    assert len(overdue) == 4, overdue  # the ping, and the three starts
    after_start = [received - stepd.started_at for _, received, _ in overdue]
    assert max(after_start) < OVERDUE_SENT_SECONDS, f"{after_start}\n{stepd.tail()}"
    arrival_order = [key for _, _, key in sorted(overdue, key=lambda o: o[1])]
    assert arrival_order == [key for _, _, key in overdue], f"{overdue}\n{stepd.tail()}"
    ready_ms = (stepd.ready_at - stepd.started_at) * 1000
    figures(
        f"overdue steps sent {min(after_start) * 1000:.0f}-{max(after_start) * 1000:.0f} ms "
        f"after process start (healthz answered after {ready_ms:.0f} ms)"
    )
    assert classroom.records[0].path == START_PATH
    assert [r.path for r in records_of(classroom.records, in_ping_wait.name)] == list(STEP_PATHS)
    assert len(classroom.records) == 3 * len(everyone)


@pytest.mark.slow
async def test_many_executions_survive_random_kills(
    stepd: Stepd, classroom: ClassroomServer, figures: Callable[[str], None]
) -> None:
    """30 staggered executions and two random SIGKILLs: all succeed, nothing lost or early."""
    seed = int(os.environ.get("STEPD_TEST_SEED", time.time_ns() % 1_000_000))
    rng = random.Random(seed)
    await stepd.start()
    base = whole_second(3)
    rooms = [
        Classroom(name=f"many-{i:02d}", start=base + i % 10, end=base + i % 10 + 4)
        for i in range(30)
    ]
    classroom.fail_next(PING_PATH, status=200, delay=0.5, times=len(rooms))  # in flight longer
    await asyncio.gather(*(stepd.start_execution(room) for room in rooms))
    kills = sorted(rng.uniform(base, base + 13) for _ in range(2))

    for kill_at in kills:
        await sleep_until(kill_at)
        await stepd.restart()

    await stepd.wait_status(
        [r.name for r in rooms], "SUCCEEDED", timeout=base + 14 - time.time() + RUN_SECONDS
    )
    explain = f"seed {seed}, kills at {[round(k - base, 2) for k in kills]}\n{stepd.tail()}"
    deliveries = [await delivered(stepd, classroom, room) for room in rooms]
    for delivery in deliveries:
        delivery.check(max_sends=1 + len(kills), explain=explain)
    lateness = [s for d in deliveries for s in d.lateness().values()]
    duplicates = sum(r.duplicate for r in classroom.records)
    figures(
        f"seed {seed}: {len(classroom.records)} POSTs for {3 * len(rooms)} steps "
        f"({duplicates} re-sent), worst lateness {max(lateness) * 1000:.0f} ms, "
        f"earliest {min(lateness) * 1000:.1f} ms"
    )


async def test_stopped_execution_stays_stopped_across_restart(
    stepd: Stepd, classroom: ClassroomServer
) -> None:
    """A stopped execution is ABORTED for good: no POST for it, even after a SIGKILL."""
    await stepd.start()
    start = whole_second(2)
    stopped = Classroom(name="stopped", start=start, end=start + 2)
    control = Classroom(name="not-stopped", start=start, end=start + 2)
    await stepd.start_execution(stopped)
    await stepd.start_execution(control)

    answer = await stepd.ok("StopExecution", {"executionArn": execution_arn(stopped.name)})

    described = await stepd.describe(stopped.name)
    assert described["status"] == "ABORTED"
    assert described["stopDate"] == answer["stopDate"]
    history = await stepd.history(stopped.name)
    assert [e["type"] for e in history] == [
        "ExecutionStarted",
        "WaitStateEntered",
        "ExecutionAborted",
    ]
    stepd.kill()
    await stepd.start()
    await stepd.wait_status([control.name], "SUCCEEDED", timeout=RUN_SECONDS)
    await sleep_until(stopped.end + 2.5)  # past every due time, and a sweep after that
    assert (await stepd.describe(stopped.name))["status"] == "ABORTED"
    assert await stepd.history(stopped.name) == history
    assert records_of(classroom.records, stopped.name) == []
    assert [r.path for r in records_of(classroom.records, control.name)] == [
        START_PATH,
        PING_PATH,
        STOP_PATH,
    ]
