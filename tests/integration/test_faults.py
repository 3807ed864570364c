"""Classroom-server faults: 5xx, 429 with Retry-After, resets, slow answers, refusals, and a
server that is down for a while (about 20 s here, minutes in `make soak`).

With the Retry that config/classroom.asl.yaml declares nothing is lost and the backlog drains
once the server is back; without Retry the execution fails with the error the design names
(States.Http.StatusCode.<code>, States.Http.Socket, States.Timeout) and a Catch takes it.
Throughout, the server never holds more than `[http] max_concurrency` requests at once and
the daemon's memory stays bounded.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from tests.integration.chaos_support import (
    RSS_BOUND_KIB,
    Daemon,
    Lab,
    MachineSpec,
    classroom_definition,
    percentile,
    shipped_retry,
    shipped_wait_for_host,
    task_keys_in,
)
from tests.integration.harness import (
    PING_PATH,
    START_PATH,
    STOP_PATH,
    Classroom,
    records_of,
    sleep_until,
    whole_second,
)

from stepd.classroom import Record
from stepd.testing import free_port

TIMEOUT_SECONDS = 2  # [http] timeout_seconds of these daemons
MAX_CONCURRENCY = 4  # [http] max_concurrency of these daemons
ANSWER_DELAY_SECONDS = 0.3  # every answer comes this late, so calls pile up
RUN_SECONDS = 40.0  # an execution closes within this after its last due instant
SHIPPED_MAX_DELAY_SECONDS = 30  # the shipped retriers' MaxDelaySeconds: the longest gap
RSS_SAMPLE_SECONDS = 0.5


@dataclass(frozen=True, kw_only=True)
class Outage:
    """The server stops at `down` (unix seconds) for `seconds`; `rooms` fall due meanwhile."""

    down: float
    seconds: float
    rooms: list[Classroom]

    @property
    def up(self) -> float:
        return self.down + self.seconds


@pytest.fixture
async def lab(tmp_path: Path) -> AsyncIterator[Lab]:
    async with Lab(tmp_path, answer_delay=ANSWER_DELAY_SECONDS) as world:
        yield world


async def sample_rss(daemon: Daemon, samples: list[int], stop: asyncio.Event) -> None:
    while not stop.is_set():
        if daemon.process is not None and daemon.process.poll() is None:
            samples.append(daemon.rss_kib())
        await asyncio.sleep(RSS_SAMPLE_SECONDS)


def sends(records: list[Record], path: str) -> list[Record]:
    return [r for r in records if r.path == path]


def error_events(events: list[dict[str, Any]]) -> list[str]:
    """The error of each failed or timed-out call (LambdaFunction* events: the machines call
    Lambda function ARNs), in order."""
    keys = ("lambdaFunctionFailedEventDetails", "lambdaFunctionTimedOutEventDetails")
    return [event[key]["error"] for event in events for key in keys if key in event]


def check_retried_delivery(
    lab: Lab,
    room: Classroom,
    events: list[dict[str, Any]],
    *,
    machine: str,
    prefix: str,
    uid: str,
    explain: str,
) -> None:
    """Every step reached the server (200) at least once, never early, in order, each send of
    a step with its one key, and nothing but a re-send after a failure."""
    records = lab.server.of(room.name, prefix)
    keys = task_keys_in(machine, room.name, events, uid)
    due = {"start": room.start, "stop": room.end}
    firsts = []
    for state, step in (
        ("StartRecording", "start"),
        ("SendLivePing", "ping"),
        ("StopRecording", "stop"),
    ):
        mine = sends(records, f"{prefix}/{step}")
        assert mine, f"{room.name}: no {step} POST\n{explain}"
        assert {r.idempotency_key for r in mine} == {keys[state]}, f"{room.name} {step}\n{explain}"
        assert any(r.status == 200 for r in mine), f"{room.name} {step}: {mine}\n{explain}"
        if step in due:
            assert mine[0].received_at >= due[step] - 0.005, f"{room.name} {step} early\n{explain}"
        firsts.append(min(r.received_at for r in mine if r.status == 200))
    assert firsts == sorted(firsts), f"{room.name}: out of order\n{explain}"


# -- one fault at a time, with the shipped Retry ------------------------------------------------

FAULTS: dict[str, dict[str, Any]] = {
    "f503": {"status": 503, "times": 2},
    "f429": {"status": 429, "retry_after": 3},
    "freset": {"drop": True, "times": 2},
    "fslow": {"status": 200, "delay": TIMEOUT_SECONDS + 1.5},  # processed, answered too late
}
EXPECTED_ERRORS = {
    "f503": ["States.Http.StatusCode.503"] * 2,
    "f429": ["States.Http.StatusCode.429"],
    "freset": ["States.Http.Socket"] * 2,
    "fslow": ["States.Timeout"],
}


def retry_machines() -> list[MachineSpec]:
    definition = classroom_definition(retry=shipped_retry())
    return [
        MachineSpec(name="classroom", definition=definition),
        *(MachineSpec(name=name, definition=definition, prefix=f"/{name}") for name in FAULTS),
    ]


async def test_single_faults_are_retried_with_the_shipped_retry(lab: Lab) -> None:
    """5xx, 429 + Retry-After, a reset and a too-slow answer: each retried to success with the
    same key; Retry-After is honoured; a slow answer's re-send is a duplicate at the server."""
    daemon = lab.daemon(
        retry_machines(), timeout_seconds=TIMEOUT_SECONDS, max_concurrency=MAX_CONCURRENCY
    )
    await daemon.start()
    start = whole_second(2)
    rooms = {name: Classroom(name=f"{name}-room", start=start, end=start + 9) for name in FAULTS}
    for name, fault in FAULTS.items():
        lab.server.fail_next(f"/{name}/start", **fault)
        await daemon.start_retrying(rooms[name], machine=name)

    for name, room in rooms.items():
        closed = await daemon.wait_closed(
            name, [room.name], timeout=room.end - time.time() + RUN_SECONDS
        )
        explain = f"{name}\n{lab.explain()}"
        assert closed[room.name]["status"] == "SUCCEEDED", f"{closed}\n{explain}"
        events = await daemon.history_in(name, room.name)
        assert error_events(events) == EXPECTED_ERRORS[name], explain
        check_retried_delivery(
            lab,
            room,
            events,
            machine=name,
            prefix=f"/{name}",
            uid=closed[room.name]["stepd"]["uid"],
            explain=explain,
        )

    starts = sends(lab.server.of(rooms["f429"].name, "/f429"), "/f429/start")
    assert [r.status for r in starts] == [429, 200]
    assert starts[1].received_at - starts[0].received_at >= 3.0 - 0.01, "Retry-After ignored"
    slow = sends(lab.server.of(rooms["fslow"].name, "/fslow"), "/fslow/start")
    assert [(r.duplicate, r.payload_mismatch) for r in slow] == [(False, False), (True, False)]
    resets = sends(lab.server.of(rooms["freset"].name, "/freset"), "/freset/start")
    assert [r.status for r in resets] == [None, None, 200]
    assert lab.server.max_in_flight <= MAX_CONCURRENCY


# -- the server down for a while ----------------------------------------------------------------


def backlog_of(
    lab: Lab, room: Classroom, events: list[dict[str, Any]], outage: Outage
) -> list[tuple[float, float, str]]:
    """The steps of `room` that fell due during the outage: (due, first 200, key)."""
    backlog: list[tuple[float, float, str]] = []
    records = records_of(lab.server.records, room.name)
    # a Wait for a timestamp ends at that timestamp, or when it is entered if that is later
    entered = {
        event["stateEnteredEventDetails"]["name"]: float(event["timestamp"])
        for event in events
        if event["type"] == "WaitStateEntered"
    }
    for path, wait, nominal in (
        (START_PATH, "RecordingWait", room.start),
        (STOP_PATH, "StoppingWait", room.end),
    ):
        due = max(float(nominal), entered.get(wait, 0.0))
        ok = [r for r in records if r.path == path and r.status == 200]
        if outage.down <= due < outage.up:
            backlog.append((float(due), ok[0].received_at, ok[0].idempotency_key or ""))
    ping_ok = [r for r in records if r.path == PING_PATH and r.status == 200]
    for event in events:
        if (
            event["type"] == "WaitStateEntered"
            and event["stateEnteredEventDetails"]["name"] == "SendLivePingWait"
        ):
            ping_due = float(event["timestamp"]) + 2
            if outage.down <= ping_due < outage.up:
                backlog.append((ping_due, ping_ok[0].received_at, ping_ok[0].idempotency_key or ""))
    return backlog


async def run_outage(
    lab: Lab,
    *,
    retry: dict[str, list[dict[str, Any]]] | list[dict[str, Any]],
    wait_for_host_seconds: float,
    outage_seconds: float,
    rooms_due_in_outage: int,
    burst: int,
) -> dict[str, Any]:
    """A burst of classrooms, then the server stops for `outage_seconds` while more fall due;
    all must succeed once it is back. Returns the figures."""
    definition = classroom_definition(retry=retry)
    daemon = lab.daemon(
        [
            MachineSpec(
                name="classroom",
                definition=definition,
                wait_for_host_seconds=wait_for_host_seconds,
            )
        ],
        timeout_seconds=TIMEOUT_SECONDS,
        max_concurrency=MAX_CONCURRENCY,
    )
    await daemon.start()
    samples: list[int] = []
    stop_sampling = asyncio.Event()
    sampler = asyncio.create_task(sample_rss(daemon, samples, stop_sampling))
    base = whole_second(3)
    burst_rooms = [Classroom(name=f"burst-{i:02d}", start=base, end=base + 3) for i in range(burst)]
    down = base + 4.5
    spread = max(1, int(outage_seconds) - 3)
    outage_rooms = [
        Classroom(
            name=f"outage-{i:03d}",
            start=int(down) + 1 + (i * spread) // max(1, rooms_due_in_outage),
            end=int(down) + 1 + (i * spread) // max(1, rooms_due_in_outage) + 3 + i % 4,
        )
        for i in range(rooms_due_in_outage)
    ]
    rooms = burst_rooms + outage_rooms
    gate = asyncio.Semaphore(8)

    async def start(room: Classroom) -> None:
        async with gate:
            await daemon.start_retrying(room)

    await asyncio.gather(*(start(r) for r in rooms))
    outage = Outage(down=down, seconds=outage_seconds, rooms=outage_rooms)
    await sleep_until(outage.down)
    await lab.server.stop()
    await sleep_until(outage.up)
    await lab.server.start()
    back = time.time()
    explain = lab.explain()
    last_end = max(r.end for r in rooms)
    closed = await daemon.wait_closed(
        "classroom",
        [r.name for r in rooms],
        timeout=max(last_end, back) - time.time() + RUN_SECONDS + SHIPPED_MAX_DELAY_SECONDS,
    )
    stop_sampling.set()
    await sampler
    failed = {
        n: (d["status"], d.get("error")) for n, d in closed.items() if d["status"] != "SUCCEEDED"
    }
    assert not failed, (
        f"{len(failed)} of {len(rooms)} executions lost to the outage, "
        f"{sorted({error for _, error in failed.values()})}: {sorted(failed)}\n{explain}"
    )
    backlog: list[tuple[float, float, str]] = []  # (due, first 200 after the outage, key)
    for room in rooms:
        events = await daemon.history_in("classroom", room.name)
        uid = await daemon.uid(room.name)
        check_retried_delivery(
            lab, room, events, machine="classroom", prefix="/recording", uid=uid, explain=explain
        )
        backlog.extend(backlog_of(lab, room, events, outage))
    assert backlog, "no step fell due during the outage"
    drain = max(received for _, received, _ in backlog) - back
    in_due_order = [key for _, _, key in sorted(backlog)]
    arrival_order = [key for _, _, key in sorted(backlog, key=lambda b: b[1])]
    inversions = sum(
        1
        for i, (due_i, got_i, _) in enumerate(backlog)
        for due_j, got_j, _ in backlog[i + 1 :]
        if (due_i - due_j) * (got_i - got_j) < 0
    )
    assert lab.server.max_in_flight <= MAX_CONCURRENCY, lab.server.max_in_flight
    assert max(samples) < RSS_BOUND_KIB, f"RSS {max(samples)} KiB"
    return {
        "rooms": len(rooms),
        "backlog_steps": sorted(backlog),
        "back": back,
        "backlog": len(backlog),
        "drain": drain,
        "in_due_order": in_due_order == arrival_order,
        "inversions": inversions,
        "pairs": len(backlog) * (len(backlog) - 1) // 2,
        "max_in_flight": lab.server.max_in_flight,
        "rss_max_mib": max(samples) / 1024,
        "rss_p50_mib": percentile([float(s) for s in samples], 0.5) / 1024,
        "requests": len(lab.server.records),
    }


def drain_bound(result: dict[str, Any], max_delay_seconds: float) -> float:
    """How long the backlog may take once the server is back: the retriers' longest gap, plus
    the backlog's turn through MAX_CONCURRENCY connections at ANSWER_DELAY_SECONDS each."""
    return max_delay_seconds + result["backlog"] * ANSWER_DELAY_SECONDS / MAX_CONCURRENCY + 2


def outage_lines(name: str, seconds: float, figures: dict[str, Any]) -> list[str]:
    return [
        (
            f"{name}: server down {seconds:.0f} s; {figures['rooms']} executions all "
            f"SUCCEEDED; {figures['backlog']} steps fell due while it was down"
        ),
        (
            f"backlog drained {figures['drain']:.1f} s after the server was back "
            f"({figures['inversions']} of {figures['pairs']} pairs delivered out of due order)"
        ),
        (
            f"at most {figures['max_in_flight']} requests in flight at the server "
            f"(max_concurrency {MAX_CONCURRENCY}); daemon RSS max "
            f"{figures['rss_max_mib']:.0f} MiB"
        ),
    ]


FAST_OUTAGE_SECONDS = 20.0


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def outage(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One run for the module: a 20 s outage with the shipped Retry (figures and backlog)."""
    async with Lab(tmp_path_factory.mktemp("outage"), answer_delay=ANSWER_DELAY_SECONDS) as world:
        return await run_outage(
            world,
            retry=shipped_retry(),
            wait_for_host_seconds=shipped_wait_for_host(),
            outage_seconds=FAST_OUTAGE_SECONDS,
            rooms_due_in_outage=24,
            burst=12,
        )


@pytest.mark.slow
@pytest.mark.asyncio(loop_scope="module")
async def test_outage_with_the_shipped_retry_loses_nothing(
    outage: dict[str, Any], figures: Callable[[str], None]
) -> None:
    """The server is down ~20 s while steps fall due: with the shipped Retry every execution
    succeeds, the backlog drains within the retriers' 30 s cap, concurrency and memory stay
    bounded."""
    for line in outage_lines("shipped Retry", FAST_OUTAGE_SECONDS, outage):
        figures(line)

    assert outage["drain"] <= drain_bound(outage, SHIPPED_MAX_DELAY_SECONDS), outage
    assert outage["max_in_flight"] >= 2, "the burst never overlapped: the bound was not tested"


@pytest.mark.slow
@pytest.mark.asyncio(loop_scope="module")
async def test_backlog_after_an_outage_drains_in_due_order(outage: dict[str, Any]) -> None:
    """Steps that fell due while the server was down reach it, once it is back, in the order
    they fell due."""
    backlog = outage["backlog_steps"]  # (due, first 200, key), in due order
    back = outage["back"]
    overtaken = [
        (key, round(got - back, 1), later_key, round(later_got - back, 1))
        for due, got, key in backlog
        for later_due, later_got, later_key in backlog
        if later_due > due and later_got < got
    ]
    assert not overtaken, (
        f"{len(overtaken)} of {outage['pairs']} pairs out of due order once the server was "
        "back; e.g. (step, s after it was back, a step due later, s after it was back): "
        f"{overtaken[:4]}"
    )


# -- without Retry: the right error, and Catch -----------------------------------------------

CATCH_ALL = [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Recover"}]
RECOVER = {"Recover": {"Type": "Pass", "End": True}}
BARE_FAULTS: list[tuple[str, dict[str, Any] | None, str]] = [
    ("503", {"status": 503}, "States.Http.StatusCode.503"),
    ("reset", {"drop": True}, "States.Http.Socket"),
    ("slow", {"status": 200, "delay": TIMEOUT_SECONDS + 1.5}, "States.Timeout"),
    ("refused", None, "States.Http.Socket"),
]


async def test_without_retry_the_execution_fails_with_the_right_error_and_catch_works(
    lab: Lab,
) -> None:
    """No Retry: 503, a reset, a timeout and a refused connection fail the execution with
    States.Http.StatusCode.503 / States.Http.Socket / States.Timeout; a Catch takes each."""
    closed_port = free_port()
    machines = []
    for kind in ("bare", "caught"):
        catch = {"StartRecording": CATCH_ALL} if kind == "caught" else None
        definition = classroom_definition(catch=catch, extra_states=RECOVER if catch else None)
        for fault, _, _ in BARE_FAULTS:
            endpoints = (
                {"StartRecording": f"http://127.0.0.1:{closed_port}/nobody"}
                if fault == "refused"
                else None
            )
            machines.append(
                MachineSpec(
                    name=f"{kind}-{fault}",
                    definition=definition,
                    prefix=f"/{kind}-{fault}",
                    endpoints=endpoints,
                )
            )
    daemon = lab.daemon(machines, timeout_seconds=TIMEOUT_SECONDS)
    await daemon.start()
    start = whole_second(2)
    rooms = {}
    for machine in machines:
        fault_name = machine.name.split("-", 1)[1]
        fault = next(f for n, f, _ in BARE_FAULTS if n == fault_name)
        if fault is not None:
            lab.server.fail_next(f"{machine.prefix}/start", **fault)
        room = Classroom(name=f"{machine.name}-room", start=start, end=start + 3)
        rooms[machine.name] = room
        await daemon.start_retrying(room, machine=machine.name)

    for fault_name, _, error in BARE_FAULTS:
        bare, caught = f"bare-{fault_name}", f"caught-{fault_name}"
        explain = f"{fault_name}\n{lab.explain()}"
        failed = (await daemon.wait_closed(bare, [rooms[bare].name], RUN_SECONDS))[rooms[bare].name]
        assert (failed["status"], failed.get("error")) == ("FAILED", error), f"{failed}\n{explain}"
        events = await daemon.history_in(bare, rooms[bare].name)
        assert error_events(events) == [error], explain
        assert events[-1]["type"] == "ExecutionFailed", explain
        assert sends(lab.server.of(rooms[bare].name, f"/{bare}"), f"/{bare}/ping") == []

        recovered = (await daemon.wait_closed(caught, [rooms[caught].name], RUN_SECONDS))[
            rooms[caught].name
        ]
        assert recovered["status"] == "SUCCEEDED", f"{recovered}\n{explain}"
        output = json.loads(recovered["output"])
        assert output["error"]["Error"] == error, f"{output}\n{explain}"
        entered = [
            e["stateEnteredEventDetails"]["name"]
            for e in await daemon.history_in(caught, rooms[caught].name)
            if e["type"].endswith("StateEntered")
        ]
        assert entered == ["RecordingWait", "StartRecording", "Recover"], explain


# -- a retrier whose backoff overflows ----------------------------------------------------------


async def test_an_overflowing_backoff_is_capped_instead_of_resending_forever(
    lab: Lab,
) -> None:
    """A valid retrier (BackoffRate 1e308) whose second delay overflows: the delay is capped at
    AWS's largest (a year and a day), not re-sent every sweep, and the daemon does not crash."""
    retry = [
        {
            "ErrorEquals": ["States.ALL"],
            "IntervalSeconds": 1,
            "BackoffRate": 1e308,
            "MaxAttempts": 3,
        }
    ]
    machine = MachineSpec(
        name="overflow", definition=classroom_definition(retry=retry), prefix="/overflow"
    )
    daemon = lab.daemon([machine], timeout_seconds=TIMEOUT_SECONDS)
    await daemon.start()
    lab.server.fail_next("/overflow/start", status=503, times=100)
    room = Classroom(name="overflow-room", start=whole_second(1), end=whole_second(30))
    await daemon.start_retrying(room, machine="overflow")

    await sleep_until(room.start + 5.5)

    posts = sends(lab.server.of(room.name, "/overflow"), "/overflow/start")
    described = await daemon.describe_in("overflow", room.name)
    crashes = daemon.log_events("engine.advance_failed")
    assert not crashes, crashes[0]
    # the first retry 1 s after the first failure; the next one capped at a year and a day
    assert len(posts) == 2, f"{len(posts)} POSTs in 5.5 s for a step with MaxAttempts 3"
    assert described["status"] == "RUNNING", described
