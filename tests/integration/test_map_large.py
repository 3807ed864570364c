"""A Map of 10,000 items runs to its end through the real daemon, its output in item order;
a DISTRIBUTED Map that fills its execution's history fails it.

An inline Map of 10,000 iterations writes about 40,000 events: beyond AWS's history limit of
25,000, at which stepd (as AWS) fails the execution, so this daemon runs with the limit lifted.
How much memory such a Map takes is measured by bench/run.py's `map memory`, not here.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

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


DISTRIBUTED = {
    "StartAt": "Fan",
    "States": {
        "Fan": {
            "Type": "Map",
            "ToleratedFailureCount": 40,
            "ItemProcessor": {
                "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
                "StartAt": "Keep",
                "States": {"Keep": {"Type": "Pass", "End": True}},
            },
            "End": True,
        }
    },
}
SMALL_LIMIT = 60  # events: the 40 children of DISTRIBUTED write about four each


async def _run_to_end(
    folder: Path, classroom: ClassroomServer, definition: dict[str, Any], items: Any, limit: int
) -> dict[str, Any]:
    """Run `definition` on `items` to its end with a history `limit`: DescribeExecution."""
    port = free_port()
    config = write_machine_config(
        folder,
        port=port,
        base_url=classroom.base_url,
        machine="fan",
        definition=definition,
        endpoints={},
    )
    stepd = Stepd(config, port, folder / "stepd.log")
    stepd.launch = with_history_limit(limit)
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
    return {**described, "log": stepd.tail()}


async def test_a_map_of_ten_thousand_items_succeeds_with_its_output_in_order(
    tmp_path: Path, classroom: ClassroomServer
):
    items = [{"item": n} for n in range(ITEMS)]
    described = await _run_to_end(tmp_path, classroom, DEFINITION, items, 100_000)
    assert described["status"] == "SUCCEEDED", described["log"]
    assert json.loads(described["output"]) == items


async def test_a_map_run_that_fills_the_history_fails_with_the_limit_whatever_its_tolerance(
    tmp_path: Path, classroom: ClassroomServer
):
    """A DISTRIBUTED Map's children's events are kept in its execution's history (AWS keeps
    them in child executions): a run that fills it fails the execution with the limit's own
    error, not as children beyond (or within) the tolerance."""
    described = await _run_to_end(tmp_path, classroom, DISTRIBUTED, list(range(40)), SMALL_LIMIT)
    assert described["status"] == "FAILED", described["log"]
    assert described["error"] == "States.Runtime"
    assert f"The execution reached the limit of {SMALL_LIMIT} events" in described["cause"]
