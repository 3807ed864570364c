"""A Map whose iterations call the classroom server loses nothing across SIGKILL."""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from pathlib import Path

from tests.integration.harness import Stepd, write_machine_config

from stepd.classroom import ClassroomServer
from stepd.testing import free_port

ITEMS = 50
SLOW_ANSWER_SECONDS = 1.0  # each call stays in flight this long
KILL_AFTER_CALLS = 15
DONE_SECONDS = 60.0
SETTLE_AFTER_KILL_SECONDS = 1.0
DEFINITION = {
    "StartAt": "Fan",
    "States": {
        "Fan": {
            "Type": "Map",
            "MaxConcurrency": 10,
            "ItemProcessor": {
                "StartAt": "Deliver",
                "States": {
                    "Deliver": {
                        "Type": "Task",
                        "Resource": "arn:aws:lambda:us-east-1:1:function:deliver",
                        "End": True,
                    }
                },
            },
            "End": True,
        }
    },
}


def _config(folder: Path, base_url: str, port: int) -> Path:
    return write_machine_config(
        folder,
        port=port,
        base_url=base_url,
        machine="fan",
        definition=DEFINITION,
        endpoints={"Deliver": "/deliver"},
    )


async def test_a_map_killed_midway_delivers_every_item_resending_only_calls_in_flight(
    tmp_path: Path, classroom: ClassroomServer
):
    """After SIGKILL and a restart every item is delivered; only calls in flight at the kill
    arrive twice, each with the same Idempotency-Key and body."""
    port = free_port()
    stepd = Stepd(_config(tmp_path, classroom.base_url, port), port, tmp_path / "stepd.log")
    classroom.fail_next("/deliver", status=200, delay=SLOW_ANSWER_SECONDS, times=ITEMS * 2)
    try:
        await stepd.start()
        await stepd.ok(
            "StartExecution",
            {
                "stateMachineArn": "fan",
                "name": "m1",
                "input": json.dumps([{"item": n} for n in range(ITEMS)]),
            },
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
            while (await stepd.describe_in("fan", "m1"))["status"] == "RUNNING":
                await asyncio.sleep(0.2)
        described = await stepd.describe_in("fan", "m1")
    finally:
        stepd.cleanup()
    assert described["status"] == "SUCCEEDED", stepd.tail()
    assert len(json.loads(described["output"])) == ITEMS
    by_key: defaultdict[str | None, list[dict[str, int]]] = defaultdict(list)
    for record in classroom.records:
        by_key[record.idempotency_key].append(record.body)
    assert sorted(b[0]["item"] for b in by_key.values()) == list(range(ITEMS))
    twice = {k for k, bodies in by_key.items() if len(bodies) > 1}
    assert twice <= sent_before  # re-sent: only calls the killed daemon had sent
    assert all(len({json.dumps(b) for b in by_key[k]}) == 1 for k in twice)
    assert len(before) >= KILL_AFTER_CALLS
