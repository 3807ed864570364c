"""A Map of 10,000 items runs to its end through the real daemon, its output in item order.

An inline Map of 10,000 iterations writes about 40,000 events: beyond AWS's history limit of
25,000, at which stepd (as AWS) fails the execution, so this daemon runs with the limit lifted.
How much memory such a Map takes is measured by bench/run.py's `map memory`, not here.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from tests.integration.harness import Stepd, write_machine_config

from stepd.classroom import ClassroomServer
from stepd.testing import free_port, with_history_limit

ITEMS = 10_000
DONE_SECONDS = 600.0  # generous: about 12 s on a quiet 2-core machine
DEFINITION = {
    "StartAt": "Fan",
    "States": {
        "Fan": {
            "Type": "Map",
            "MaxConcurrency": 0,
            "ItemProcessor": {"StartAt": "Keep", "States": {"Keep": {"Type": "Pass", "End": True}}},
            "End": True,
        }
    },
}


async def test_a_map_of_ten_thousand_items_succeeds_with_its_output_in_order(
    tmp_path: Path, classroom: ClassroomServer
):
    port = free_port()
    config = write_machine_config(
        tmp_path,
        port=port,
        base_url=classroom.base_url,
        machine="fan",
        definition=DEFINITION,
        endpoints={},
    )
    stepd = Stepd(config, port, tmp_path / "stepd.log")
    stepd.launch = with_history_limit(100_000)
    items = [{"item": n} for n in range(ITEMS)]
    try:
        await stepd.start()
        await stepd.ok(
            "StartExecution", {"stateMachineArn": "fan", "name": "m", "input": json.dumps(items)}
        )
        async with asyncio.timeout(DONE_SECONDS):
            while (described := await stepd.describe_in("fan", "m"))["status"] == "RUNNING":
                await asyncio.sleep(0.5)
    finally:
        stepd.cleanup()
    assert described["status"] == "SUCCEEDED", stepd.tail()
    assert json.loads(described["output"]) == items
