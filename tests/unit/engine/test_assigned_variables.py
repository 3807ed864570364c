"""What a state's Assign set is in its StateExited event (`assignedVariables`, each value as
JSON text, and `assignedVariablesDetails`), as AWS records it: for JSONPath and JSONata
states, a Choice rule's Assign and a catcher's; a state without Assign records neither."""

from __future__ import annotations

import json
from typing import Any

from tests.unit.engine.engine_support import Clock, finished, running_engine

from stepd.store.base import Store
from stepd.testing import FakeCaller


async def exits(store: Store, definition: dict[str, Any], given: Any) -> dict[str, Any]:
    """Run `definition` on `given` to its end: {state name: its StateExited details}."""
    engine = await running_engine(store, FakeCaller(), definition, Clock())
    started = await engine.start_execution("m", "x", json.dumps(given))
    done = await finished(store, started.execution.id)
    await engine.drain(1.0)
    assert done.status == "SUCCEEDED", (done.error, done.cause)
    events = await store.history(started.execution.id, reverse=False, limit=1000, after=None)
    found = [e.details["stateExitedEventDetails"] for e in events if e.type.endswith("Exited")]
    return {d["name"]: d for d in found}


async def test_a_pass_records_what_its_assign_set_as_json_text(store):
    definition = {
        "StartAt": "A",
        "States": {
            "A": {
                "Type": "Pass",
                "Assign": {"x": 1, "who.$": "$.name", "o": {"k": [1, None]}},
                "Next": "B",
            },
            "B": {"Type": "Pass", "Assign": {"y.$": "$x"}, "Next": "C"},
            "C": {"Type": "Pass", "End": True},
        },
    }
    found = await exits(store, definition, {"name": "ann"})

    assert found["A"]["assignedVariables"] == {"x": "1", "who": '"ann"', "o": '{"k":[1,null]}'}
    assert found["A"]["assignedVariablesDetails"] == {"truncated": False}
    assert found["B"]["assignedVariables"] == {"y": "1"}
    assert "assignedVariables" not in found["C"]
    assert "assignedVariablesDetails" not in found["C"]


async def test_jsonata_choice_rule_and_catcher_assignments_are_recorded(store):
    definition = {
        "QueryLanguage": "JSONata",
        "StartAt": "Pick",
        "States": {
            "Pick": {
                "Type": "Choice",
                "Choices": [
                    {
                        "Condition": "{% $states.input.n > 1 %}",
                        "Assign": {"big": "{% $states.input.n * 2 %}"},
                        "Next": "Boom",
                    }
                ],
                "Default": "Boom",
            },
            "Boom": {
                "Type": "Pass",
                "Output": "{% $error('X', 'no') %}",
                "Catch": [
                    {"ErrorEquals": ["States.ALL"], "Assign": {"why": "caught"}, "Next": "End"}
                ],
                "Next": "End",
            },
            "End": {"Type": "Succeed"},
        },
    }
    found = await exits(store, definition, {"n": 3})

    assert found["Pick"]["assignedVariables"] == {"big": "6"}
    assert found["Boom"]["assignedVariables"] == {"why": '"caught"'}
