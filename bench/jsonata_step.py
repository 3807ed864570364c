"""JSONata's cost per step: a JSONata Pass state against the same JSONPath one.

Runs the pure interpreter (`stepd.asl.interpreter.enter`), as the engine does for each state
it enters, on a Pass state that reshapes its input and assigns a variable, written once in
JSONPath (Parameters, Assign `.$`) and twice in JSONata (Output, Assign `{% %}`): with plain
`$states.input.…` paths (read directly) and with computed expressions, one of them reading
the context (evaluated by the library). Prints µs per step, the median of ROUNDS rounds of
STEPS steps each. Expressions are compiled once and cached, as in the daemon.

    .venv/bin/python bench/jsonata_step.py
"""

from __future__ import annotations

import statistics
import time
from datetime import UTC, datetime

from stepd.asl.decisions import Context
from stepd.asl.interpreter import enter

STEPS = 2000  # steps per round
ROUNDS = 7
NOW = datetime(2026, 1, 1, tzinfo=UTC)
INPUT = {"room": "r1", "start": "2027-01-15T08:00:10Z", "teacher": {"name": "Ada", "id": 7}}

JSONPATH = {
    "StartAt": "S",
    "States": {
        "S": {
            "Type": "Pass",
            "Parameters": {"room.$": "$.room", "who.$": "$.teacher.name", "kind": "lesson"},
            "Assign": {"teacher.$": "$.teacher.id"},
            "End": True,
        }
    },
}
JSONATA = {
    "QueryLanguage": "JSONata",
    "StartAt": "S",
    "States": {
        "S": {
            "Type": "Pass",
            "Output": {
                "room": "{% $states.input.room %}",
                "who": "{% $states.input.teacher.name %}",
                "kind": "lesson",
            },
            "Assign": {"teacher": "{% $states.input.teacher.id %}"},
            "End": True,
        }
    },
}


# the same state with expressions the library evaluates (not plain `$states.input…` paths)
JSONATA_COMPUTED = {
    "QueryLanguage": "JSONata",
    "StartAt": "S",
    "States": {
        "S": {
            "Type": "Pass",
            "Output": {
                "room": "{% $uppercase($states.input.room) %}",
                "who": "{% $states.input.teacher.name & ' (' & $states.context.State.Name & ')' %}",
                "kind": "lesson",
            },
            "Assign": {"teacher": "{% $states.input.teacher.id + 0 %}"},
            "End": True,
        }
    },
}


def per_step_us(definition: dict[str, object]) -> float:
    ctx = Context(
        execution_id="arn:aws:states:us-east-1:123456789012:execution:m:e",
        execution_name="e",
        execution_input=INPUT,
        execution_start_time=NOW,
        state_machine_id="arn:aws:states:us-east-1:123456789012:stateMachine:m",
        state_machine_name="m",
        state_name="S",
        state_entered_time=NOW,
    )
    enter(definition, "S", INPUT, ctx, NOW)  # compile and warm the caches
    rounds = []
    for _ in range(ROUNDS):
        started = time.perf_counter()
        for _ in range(STEPS):
            enter(definition, "S", INPUT, ctx, NOW)
        rounds.append((time.perf_counter() - started) / STEPS * 1e6)
    return statistics.median(rounds)


def main() -> None:
    jsonpath = per_step_us(JSONPATH)
    jsonata = per_step_us(JSONATA)
    computed = per_step_us(JSONATA_COMPUTED)
    print(f"JSONPath Pass (Parameters + Assign): {jsonpath:.1f} µs per step")
    print(f"JSONata Pass (Output + Assign, 3 paths): {jsonata:.1f} µs per step")
    print(f"JSONata costs {jsonata - jsonpath:.1f} µs more per step ({jsonata / jsonpath:.1f}x)")
    print(f"JSONata Pass, 3 computed expressions, one reading the context: {computed:.1f} µs")
    print(f"computed costs {computed - jsonpath:.1f} µs more per step ({computed / jsonpath:.1f}x)")


if __name__ == "__main__":
    main()
