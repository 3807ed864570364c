"""A Parallel whose branches call the classroom server loses nothing across SIGKILL."""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from pathlib import Path

from tests.integration.harness import Stepd, write_machine_config

from stepd.classroom import ClassroomServer
from stepd.testing import free_port

BRANCHES = 4
SLOW_ANSWER_SECONDS = 1.0  # each call stays in flight this long
KILL_AFTER_CALLS = 3
DONE_SECONDS = 60.0
SETTLE_AFTER_KILL_SECONDS = 1.0


def _branch(n: int) -> dict[str, object]:
    """Two calls, a second apart, each carrying the branch's number."""
    task = {"Type": "Task", "Resource": "arn:aws:lambda:us-east-1:1:function:deliver"}
    return {
        "StartAt": f"First{n}",
        "States": {
            f"First{n}": {
                **task,
                "Parameters": {"branch": n, "call": 1},
                "ResultPath": None,
                "Next": f"Pause{n}",
            },
            f"Pause{n}": {"Type": "Wait", "Seconds": 1, "Next": f"Second{n}"},
            f"Second{n}": {
                **task,
                "Parameters": {"branch": n, "call": 2},
                "ResultPath": None,
                "OutputPath": "$.n",
                "End": True,
            },
        },
    }


DEFINITION = {
    "StartAt": "Fan",
    "States": {
        "Fan": {"Type": "Parallel", "Branches": [_branch(n) for n in range(BRANCHES)], "End": True}
    },
}


def _config(folder: Path, base_url: str, port: int) -> Path:
    return write_machine_config(
        folder,
        port=port,
        base_url=base_url,
        machine="fan",
        definition=DEFINITION,
        endpoints={"deliver": "/deliver"},
    )


async def test_a_parallel_killed_midway_runs_every_branch_resending_only_calls_in_flight(
    tmp_path: Path, classroom: ClassroomServer
):
    """After SIGKILL and a restart every branch makes both its calls, in order; only calls in
    flight at the kill arrive twice, each with the same Idempotency-Key and body; the output
    lists the branches in order."""
    port = free_port()
    stepd = Stepd(_config(tmp_path, classroom.base_url, port), port, tmp_path / "stepd.log")
    classroom.fail_next("/deliver", status=200, delay=SLOW_ANSWER_SECONDS, times=BRANCHES * 4)
    try:
        await stepd.start()
        await stepd.ok(
            "StartExecution",
            {"stateMachineArn": "fan", "name": "p1", "input": json.dumps({"n": 7})},
        )
        async with asyncio.timeout(DONE_SECONDS):
            before = await classroom.wait_for(KILL_AFTER_CALLS)
        stepd.kill()
        # the stand-in server runs on this event loop, which kill() held up: let it take in
        # what the killed daemon had already sent before looking at what it got
        await asyncio.sleep(SETTLE_AFTER_KILL_SECONDS)
        sent_before = {r.idempotency_key for r in classroom.records}
        await stepd.start()
        async with asyncio.timeout(DONE_SECONDS):
            while (await stepd.describe_in("fan", "p1"))["status"] == "RUNNING":
                await asyncio.sleep(0.2)
        described = await stepd.describe_in("fan", "p1")
    finally:
        stepd.cleanup()
    assert described["status"] == "SUCCEEDED", stepd.tail()
    assert json.loads(described["output"]) == [7] * BRANCHES
    by_key: defaultdict[str | None, list[dict[str, int]]] = defaultdict(list)
    for record in classroom.records:
        by_key[record.idempotency_key].append(record.body)
    calls = sorted((b[0]["branch"], b[0]["call"]) for b in by_key.values())
    assert calls == [(n, c) for n in range(BRANCHES) for c in (1, 2)]
    twice = {k for k, bodies in by_key.items() if len(bodies) > 1}
    assert twice <= sent_before  # re-sent: only calls the killed daemon had sent
    assert all(len({json.dumps(b) for b in by_key[k]}) == 1 for k in twice)
    assert len(before) >= KILL_AFTER_CALLS
    for n in range(BRANCHES):  # in each branch the second call came after the first
        sent = sorted(
            (r.received_at, r.body["call"]) for r in classroom.records if r.body["branch"] == n
        )
        assert sent[0][1] == 1, sent
