"""One-off tool: turn LocalStack's AWS-recorded Step Functions tests into conformance cases.

LocalStack (github.com/localstack/localstack, Apache-2.0) tests its Step Functions emulator
against snapshot files it records against real AWS. This tool rebuilds, for every execution
those tests record, the definition and input the test sent, and takes the result AWS recorded
from the snapshot; it writes them in the format of /work/shared/conformance (see its README).
stepd's own suite reads the output, conformance/localstack-cases.json, in
test_conformance_localstack.py.

    git clone https://github.com/localstack/localstack /tmp/localstack  # at the commit below
    python -m venv /tmp/lsvenv && /tmp/lsvenv/bin/pip install json5 pytest pyyaml
    python tests/acceptance/localstack_cases.py /tmp/localstack --python /tmp/lsvenv/bin/python

How: the tests run under pytest with localstack_recorder.py as a plugin in place of
LocalStack and AWS (it notes each definition, input and Lambda function, and the snapshot key
that records the execution); then, for a test marked as validated against AWS
(`*.validation.json`), the snapshot's history gives the expected status, output or error and
cause, and the event types. A Task state's calls are answered by a stand-in server in the
suite: the case keeps, per Task state, what AWS's history shows the service answered
(LambdaFunctionSucceeded/Failed, TaskSucceeded/Failed) and the input it was called with.

A case with Task states takes the input AWS's history shows (ExecutionStarted): where the
recording replaced a value (a function name), the expected output has the same replacement.
Other cases keep the input the test sent (the recording may have replaced timestamps in it).

Left out, with the count printed: cases already in /work/shared/conformance; tests not
validated against AWS; Task states waiting for callbacks or other executions (.sync,
.waitForTaskToken, activities); a Map's ItemReader (it reads S3 itself, with no Task state a
stand-in could answer for); Task states inside a Distributed Map (AWS records their calls
in the Map Run's child executions, not in the history the snapshot holds); a test that acted
on the running execution (StopExecution); and cases whose expected output holds a value the
recording replaced with a placeholder the case cannot reproduce (execution ARNs, request ids,
the instant a Wait computed, random numbers).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
OUT = HERE / "conformance" / "localstack-cases.json"
PUBLIC = Path("/work/shared/conformance/aws-recorded-cases.json")
TESTS = "tests/aws/services/stepfunctions/v2"
SOURCE_REPO = "github.com/localstack/localstack"
_PLACEHOLDER = re.compile(r"<[A-Za-z][A-Za-z0-9_:.-]*>")
_ALLOWED_PLACEHOLDERS = frozenset({"<timestamp>"})
_UNSUPPORTED_RESOURCE = (".sync", ".waitForTaskToken", ":activity:")
# Cases whose recorded result holds a value the recording replaced by a plain word: the time
# a Wait state computed ("date"), a random number ("RandomNumberGenerated").
_REPLACED = {
    "intrinsic_functions_test_math_operations::MathOperations::test_math_random#0",
    "intrinsic_functions_test_math_operations::MathOperations::test_math_random#1",
    "intrinsic_functions_test_math_operations::MathOperations::test_math_random#2",
    (
        "intrinsic_functions_test_math_operations::MathOperations::test_math_random_seeded"
        "#exec_hist_resp"
    ),
    "scenarios_test_base_scenarios::BaseScenarios::test_wait_timestamp_jsonata[NANOSECONDS]",
    "scenarios_test_base_scenarios::BaseScenarios::test_wait_timestamp_jsonata[SECONDS]",
    "scenarios_test_base_scenarios::BaseScenarios::test_wait_timestamp_path[NANOSECONDS]",
    "scenarios_test_base_scenarios::BaseScenarios::test_wait_timestamp_path[SECONDS]",
}
# Cases whose recording depends on what the test did while the execution ran.
_DRIVEN = {
    "v2_test_sfn_api::SnfApi::test_stop_execution#exec_hist_resp": "StopExecution mid-run",
}
_CATEGORIES = {
    "choice_operators": "choice",
    "intrinsic_functions": "intrinsic",
    "assign": "variables",
    "evaluate_jsonata": "jsonata",
    "query_language": "jsonata",
    "outputdecl": "jsonata",
    "arguments": "jsonata",
    "error_handling": "errors",
    "states_variables": "errors",
    "context_object": "context",
    "comments": "pass-dataflow",
}
_OUTCOMES = {
    "LambdaFunctionSucceeded": "lambdaFunctionSucceededEventDetails",
    "LambdaFunctionFailed": "lambdaFunctionFailedEventDetails",
    "LambdaFunctionTimedOut": "lambdaFunctionTimedOutEventDetails",
    "TaskSucceeded": "taskSucceededEventDetails",
    "TaskFailed": "taskFailedEventDetails",
    "TaskTimedOut": "taskTimedOutEventDetails",
}
_SCHEDULED = {
    "LambdaFunctionScheduled": ("lambdaFunctionScheduledEventDetails", "input"),
    "TaskScheduled": ("taskScheduledEventDetails", "parameters"),
}
_CLOSING = {
    "ExecutionSucceeded": ("SUCCEEDED", "executionSucceededEventDetails"),
    "ExecutionFailed": ("FAILED", "executionFailedEventDetails"),
    "ExecutionTimedOut": ("TIMED_OUT", "executionTimedOutEventDetails"),
    "ExecutionAborted": ("ABORTED", "executionAbortedEventDetails"),
}


def record(checkout: Path, python: str) -> list[dict[str, Any]]:
    """Run LocalStack's tests under the recorder; what they would have sent AWS."""
    with tempfile.TemporaryDirectory() as folder:
        lines = Path(folder) / "record.jsonl"
        env = {**os.environ, "LOCALSTACK_RECORD": str(lines), "PYTHONPATH": str(HERE)}
        command = [python, "-m", "pytest", "-p", "localstack_recorder", "--noconftest", "-q"]
        command += ["-p", "no:cacheprovider", "-W", "ignore", "--continue-on-collection-errors"]
        subprocess.run([*command, TESTS], cwd=checkout, env=env, check=False, capture_output=True)
        if not lines.exists():
            return []
        return [json.loads(line) for line in lines.read_text(encoding="utf-8").splitlines()]


def load_json_files(checkout: Path, suffix: str) -> tuple[dict[str, Any], dict[str, str]]:
    """Every `*<suffix>` file's entries by test id, and each test id's file."""
    entries: dict[str, Any] = {}
    files: dict[str, str] = {}
    for path in sorted((checkout / "tests/aws/services/stepfunctions").rglob(f"*{suffix}")):
        for test, value in json.loads(path.read_text(encoding="utf-8")).items():
            entries[test] = value
            files[test] = str(path.relative_to(checkout))
    return entries, files


def case_id(test: str, key: str) -> str:
    """As /work/shared/conformance names cases: folder_module::Class::test[#n]."""
    path, _, rest = test.partition("::")
    parts = Path(path).with_suffix("").parts
    klass, _, name = rest.rpartition("::")
    prefix = f"{parts[-2]}_{parts[-1]}::" + (f"{klass.removeprefix('Test')}::" if klass else "")
    if key == "get_execution_history":
        return prefix + name
    number = re.search(r"(\d+)$", key)
    return f"{prefix}{name}#{number.group(1) if number else key}"


def decoded(value: Any) -> Any:
    """A snapshot keeps JSON text as text unless it decoded it already."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def task_states(states: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every Task state of `states`, nested ones too, by name."""
    found: dict[str, dict[str, Any]] = {}
    for name, state in states.items():
        if state.get("Type") == "Task":
            found[name] = state
        for branch in state.get("Branches", []):
            found.update(task_states(branch.get("States", {})))
        for key in ("Iterator", "ItemProcessor"):
            if isinstance(state.get(key), dict):
                found.update(task_states(state[key].get("States", {})))
    return found


def stand_in_answers(events: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Per Task state name: what it was called with and what the service answered, in order."""
    by_id = {str(e["id"]): e for e in events}
    answers: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
    pending: dict[str, dict[str, Any]] = {}
    for event in events:
        if event["type"] in _SCHEDULED:
            details, field = _SCHEDULED[event["type"]]
            state = _state_of(event, by_id)
            pending[str(event["id"])] = {"state": state, "input": decoded(event[details][field])}
        elif event["type"] in _OUTCOMES:
            scheduled = _scheduled_of(event, by_id, pending)
            if scheduled is None:
                continue
            details = event.get(_OUTCOMES[event["type"]], {})
            answer: dict[str, Any] = {"input": scheduled["input"]}
            if event["type"].endswith("Succeeded"):
                answer["output"] = decoded(details.get("output"))
            else:
                answer["error"] = details.get("error", "States.Timeout")
                answer["cause"] = details.get("cause", "")
            answers[scheduled["state"]].append(answer)
    return dict(answers)


def _state_of(event: dict[str, Any], by_id: dict[str, dict[str, Any]]) -> str:
    seen = 0
    while event is not None and seen < 20:
        details = event.get("stateEnteredEventDetails")
        if details:
            return str(details["name"])
        event = by_id.get(str(event.get("previousEventId")))  # type: ignore[assignment]
        seen += 1
    return ""


def _scheduled_of(
    event: dict[str, Any], by_id: dict[str, dict[str, Any]], pending: dict[str, dict[str, Any]]
) -> dict[str, Any] | None:
    seen = 0
    while event is not None and seen < 20:
        found = pending.pop(str(event.get("previousEventId")), None)
        if found is not None:
            return found
        event = by_id.get(str(event.get("previousEventId")))  # type: ignore[assignment]
        seen += 1
    return None


def expected_of(events: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Status and output or error and cause from the closing event, and the event types."""
    last = events[-1]
    if last["type"] not in _CLOSING:
        return None
    status, field = _CLOSING[last["type"]]
    details = last.get(field, {})
    expected: dict[str, Any] = {"status": status}
    if status == "SUCCEEDED":
        expected["output"] = decoded(details.get("output"))
    else:
        for key in ("error", "cause"):
            if key in details:
                expected[key] = details[key]
    expected["history_types"] = [e["type"] for e in events]
    return expected


def category(test: str, definition: dict[str, Any]) -> str:
    folder = Path(test.partition("::")[0]).parts[-2]
    if task_states(definition.get("States", {})):
        return "task"
    text = json.dumps(definition)
    if folder in _CATEGORIES:
        return _CATEGORIES[folder]
    if '"Type": "Map"' in text:
        return "map"
    if '"Type": "Parallel"' in text:
        return "parallel"
    if "JSONata" in text:
        return "jsonata"
    return "pass-dataflow"


def unreproducible(expected: Any, answers: dict[str, list[dict[str, Any]]]) -> list[str]:
    """Placeholders in `expected` that neither AWS's answers nor the comparison supply."""
    given = set(_PLACEHOLDER.findall(json.dumps(answers)))
    found = set(_PLACEHOLDER.findall(json.dumps(expected)))
    return sorted(found - given - _ALLOWED_PLACEHOLDERS)


def build(  # noqa: C901 - one pass over the recordings, one reason for each case left out
    checkout: Path, recorded: list[dict[str, Any]], commit: str
) -> dict[str, Any]:
    snapshots, snapshot_files = load_json_files(checkout, ".snapshot.json")
    validations, _ = load_json_files(checkout, ".validation.json")
    public = {c["id"] for c in json.loads(PUBLIC.read_text(encoding="utf-8"))["cases"]}
    left_out: collections.Counter[str] = collections.Counter()
    cases: dict[str, dict[str, Any]] = {}
    for line in recorded:
        test, key = line["test"], line["key"]
        ident = case_id(test, key)
        if ident in public:
            left_out["already in /work/shared/conformance"] += 1
            continue
        if ident in _DRIVEN:
            left_out["the test acted on the running execution"] += 1
            continue
        if '"ItemReader"' in json.dumps(line["definition"]):
            left_out["a Map's ItemReader reads S3 itself (no Task state to stand in for)"] += 1
            continue
        if _distributed_tasks(line["definition"].get("States", {})):
            left_out["Task states in a Distributed Map: AWS records them in child executions"] += 1
            continue
        if ident in _REPLACED:
            left_out["expected result holds a value the recording replaced"] += 1
            continue
        if "last_validated_date" not in validations.get(test, {}):
            left_out["test not validated against AWS"] += 1
            continue
        snapshot = snapshots.get(test, {})
        content = snapshot.get("recorded-content", {})
        resources = [
            str(s.get("Resource"))
            for s in task_states(line["definition"].get("States", {})).values()
        ]
        if any(marker in r for r in resources for marker in _UNSUPPORTED_RESOURCE):
            left_out["waits for a callback, an activity or another execution"] += 1
            continue
        expected, answers = _expected_and_answers(content, key)
        if expected is None:
            left_out["no closing event recorded"] += 1
            continue
        missing = unreproducible(expected.get("output", expected.get("cause")), answers)
        if missing:
            left_out[f"expected result holds recording placeholders ({missing[0]})"] += 1
            continue
        cases[ident] = {
            "id": ident,
            "category": category(test, line["definition"]),
            "source": {
                "test": test,
                "snapshot_file": snapshot_files.get(test),
                "snapshot_key": key,
                "recorded_date": snapshot.get("recorded-date"),
                "last_validated_date": validations[test]["last_validated_date"],
            },
            "definition": line["definition"],
            "input": _input_of(content, key, line["input"]) if answers else line["input"],
            "expected": expected,
            **({"stand_in": answers} if answers else {}),
        }
    for reason, count in sorted(left_out.items()):
        print(f"left out {count:4d}: {reason}", file=sys.stderr)
    rows = sorted(cases.values(), key=lambda c: c["id"])
    return {
        "meta": {
            "source_repo": SOURCE_REPO,
            "commit": commit,
            "license": "Apache-2.0 (LocalStack's; see conformance/NOTICE)",
            "generated_by": "tests/acceptance/localstack_cases.py",
            "by_category": dict(collections.Counter(c["category"] for c in rows)),
            "total": len(rows),
        },
        "cases": rows,
    }


def _input_of(content: dict[str, Any], key: str, sent: Any) -> Any:
    """The input AWS's history shows (values the recording replaced stay replaced, as they
    are in the expected output), else the one the test sent."""
    value = content.get(key.partition("#")[0])
    if isinstance(value, dict) and value.get("events"):
        details = value["events"][0].get("executionStartedEventDetails", {})
        if "input" in details:
            return decoded(details["input"])
    return sent


def _distributed_tasks(states: dict[str, Any]) -> bool:
    for state in states.values():
        processor = state.get("ItemProcessor")
        if isinstance(processor, dict):
            mode = processor.get("ProcessorConfig", {}).get("Mode")
            if mode == "DISTRIBUTED" and task_states(processor.get("States", {})):
                return True
            if _distributed_tasks(processor.get("States", {})):
                return True
        for branch in state.get("Branches", []):
            if _distributed_tasks(branch.get("States", {})):
                return True
    return False


def _expected_and_answers(
    content: dict[str, Any], key: str
) -> tuple[dict[str, Any] | None, dict[str, list[dict[str, Any]]]]:
    name, _, number = key.partition("#")
    value = content.get(name)
    if number and isinstance(value, list):  # {input, output} rows: the output of a success
        row = value[int(number)]
        return {"status": "SUCCEEDED", "output": decoded(row["output"])}, {}
    if not isinstance(value, dict) or not value.get("events"):
        return None, {}
    return expected_of(value["events"]), stand_in_answers(value["events"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkout", type=Path, help="a LocalStack clone")
    parser.add_argument("--python", default=sys.executable, help="has pytest and json5")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--commit", help="the checkout's commit, when it is not a git clone")
    args = parser.parse_args()
    commit = (
        args.commit
        or subprocess.run(
            ["git", "-C", str(args.checkout), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
    )
    data = build(args.checkout, record(args.checkout, args.python), commit)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    print(f"{data['meta']['total']} cases -> {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
