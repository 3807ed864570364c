"""The real daemon end to end: API, task calls, history, config errors and the store lock."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from tests.integration.harness import (
    ENDPOINTS,
    STEP_PATHS,
    Classroom,
    DaemonFactory,
    Delivery,
    Stepd,
    check_history,
    execution_arn,
    records_of,
    run_cli,
    whole_second,
)

from stepd.classroom import ClassroomServer
from stepd.config import EX_CONFIG

ROOT = Path(__file__).resolve().parents[2]
SEED_SERVERLESS = ROOT / "tests" / "unit" / "asl" / "fixtures" / "seed-serverless.yml"
SHIPPED_CONFIG = ROOT / "config" / "stepd.toml"
RUN_SECONDS = 30.0  # generous bound past a class's end for its execution to close


async def test_classroom_runs_end_to_end(
    stepd: Stepd, classroom: ClassroomServer, figures: Callable[[str], None]
) -> None:
    """A classroom started through the API posts each step once, in order, never early."""
    await stepd.start()
    start = whole_second(2)
    room = Classroom(name="happy-path", start=start, end=start + 3)

    started = await stepd.start_execution(room)

    assert started["executionArn"] == execution_arn(room.name)
    await stepd.wait_status([room.name], "SUCCEEDED", timeout=room.end - time.time() + RUN_SECONDS)
    described = await stepd.describe(room.name)
    assert described["status"] == "SUCCEEDED"
    assert json.loads(described["input"]) == room.input
    assert json.loads(described["output"]) == room.input  # every Task has ResultPath null
    assert described["startDate"] <= described["stopDate"]
    events = await stepd.history(room.name)
    check_history(events, stepd.tail())
    delivery = Delivery(
        classroom=room,
        events=events,
        records=records_of(classroom.records, room.name),
        uid=described["stepd"]["uid"],
    )
    delivery.check(explain=stepd.tail())
    assert [r.path for r in classroom.records] == list(STEP_PATHS)
    results = [
        json.loads(e["lambdaFunctionSucceededEventDetails"]["output"])
        for e in events
        if e["type"] == "LambdaFunctionSucceeded"
    ]
    assert results == [
        {"ok": True, "path": r.path, "received_at": r.received_at} for r in classroom.records
    ]
    lateness = delivery.lateness()
    figures(
        "lateness on time (ms): " + ", ".join(f"{p} {s * 1000:.1f}" for p, s in lateness.items())
    )


async def test_start_execution_is_idempotent_across_restart(
    stepd: Stepd, classroom: ClassroomServer
) -> None:
    """The same name and input gives the same execution, before and after a SIGKILL."""
    await stepd.start()
    start = whole_second(2)
    room = Classroom(name="idempotent", start=start, end=start + 2)
    first = await stepd.start_execution(room)

    again = await stepd.start_execution(room)
    await stepd.restart()
    after_restart = await stepd.start_execution(room)
    other_input = {**room.start_request(), "input": json.dumps({**room.input, "end": "later"})}
    status, refused = await stepd.call("StartExecution", other_input)

    assert again == first
    assert after_restart == first
    listed = await stepd.ok("ListExecutions", {"stateMachineArn": "classroom"})
    assert [e["executionArn"] for e in listed["executions"]] == [first["executionArn"]]
    assert (status, refused["__type"]) == (400, "ExecutionAlreadyExists"), refused
    assert room.name in refused["message"]
    # the log says why it was refused
    [logged] = stepd.log_events("execution.start_refused")
    assert (logged["name"], logged["error"]) == (room.name, "ExecutionAlreadyExists")
    await stepd.wait_status([room.name], "SUCCEEDED", timeout=room.end - time.time() + RUN_SECONDS)
    status, closed = await stepd.call("StartExecution", room.start_request())
    assert (status, closed["__type"]) == (400, "ExecutionAlreadyExists"), closed
    assert [r.path for r in records_of(classroom.records, room.name)] == list(STEP_PATHS)


def write_seed_config(folder: Path) -> Path:
    config = folder / "seed.toml"
    config.write_text(
        f"""[store]
path = "stepd.db"
[[machines]]
name = "classroom"
definition = "{SEED_SERVERLESS}"
[machines.endpoints]
StartRecording = "/recording/start"
SendLivePing = "/recording/ping"
StopRecording = "/recording/stop"
""",
        encoding="utf-8",
    )
    return config


def test_check_finds_the_seeds_unreachable_ping(tmp_path: Path) -> None:
    """`stepd check` on the seed's serverless.yml exits 78 and names SendLivePing unreachable."""
    done = run_cli("check", "-c", write_seed_config(tmp_path))

    assert done.returncode == EX_CONFIG, done
    findings = done.stdout.splitlines()
    unreachable = [line for line in findings if "SendLivePing" in line and "reachable" in line]
    assert len(unreachable) == 1, done.stdout
    where, code, message = unreachable[0].split(": ", 2)
    assert where.endswith("/States/SendLivePing"), where
    assert code == "MISSING_TRANSITION_TARGET"
    assert "not reachable" in message


def test_check_accepts_the_shipped_config() -> None:
    """`stepd check` on config/stepd.toml exits 0."""
    done = run_cli("check", "-c", SHIPPED_CONFIG)

    assert done.returncode == 0, done
    assert "OK" in done.stderr, done


GOOD_CONFIG = """[store]
path = "stepd.db"
[api]
listen = "127.0.0.1:1"
[[machines]]
name = "classroom"
definition = "classroom.asl.yaml"
[machines.endpoints]
StartRecording = "/recording/start"
SendLivePing = "/recording/ping"
StopRecording = "/recording/stop"
StopAfterFailure = "/recording/stop"
"""


@pytest.mark.parametrize(
    ("config_text", "named"),
    [
        pytest.param(
            GOOD_CONFIG.replace('path = "stepd.db"', 'path = "stepd.db"\ncolour = "blue"'),
            "store.colour",
            id="unknown-key",
        ),
        pytest.param(
            GOOD_CONFIG.replace("[store]", "[storage]"),
            "storage",
            id="unknown-section",
        ),
        pytest.param(
            GOOD_CONFIG.replace("[api]", "[api"),
            "not valid TOML",
            id="malformed-toml",
        ),
        pytest.param(
            GOOD_CONFIG.replace("classroom.asl.yaml", "missing.asl.yaml"),
            "missing.asl.yaml",
            id="missing-definition",
        ),
    ],
)
def test_run_refuses_a_bad_config(tmp_path: Path, config_text: str, named: str) -> None:
    """`stepd run` on a bad config exits 78 with a message naming the key or file."""
    (tmp_path / "classroom.asl.yaml").write_text(
        (ROOT / "config" / "classroom.asl.yaml").read_text(encoding="utf-8"), encoding="utf-8"
    )
    config = tmp_path / "stepd.toml"
    config.write_text(config_text, encoding="utf-8")

    done = run_cli("run", "-c", config)

    assert done.returncode == EX_CONFIG, done
    assert named in done.stderr, done.stderr
    assert not (tmp_path / "stepd.db").exists()


def test_run_refuses_a_missing_config_file(tmp_path: Path) -> None:
    """`stepd run` on a config file that does not exist exits 78 naming the file."""
    missing = tmp_path / "nowhere.toml"

    done = run_cli("run", "-c", missing)

    assert done.returncode == EX_CONFIG, done
    assert str(missing) in done.stderr, done.stderr


async def test_second_daemon_on_the_same_database_refuses(
    stepd: Stepd, make_stepd: DaemonFactory, classroom: ClassroomServer
) -> None:
    """A second daemon on a database in use exits non-zero; the first keeps working."""
    await stepd.start()
    second = make_stepd(name="second")  # same database, its own API port

    second.spawn()
    status = await second.exited()

    assert status != 0, second.tail()
    assert "database is in use" in second.log_text(), second.tail()
    room = Classroom(name="after-refusal", start=whole_second(0), end=whole_second(1))
    await stepd.start_execution(room)
    await stepd.wait_status([room.name], "SUCCEEDED", timeout=RUN_SECONDS)
    assert [r.path for r in records_of(classroom.records, room.name)] == list(STEP_PATHS)
    assert stepd.process is not None
    assert stepd.process.poll() is None


async def test_task_call_logs_name_the_task_state(stepd: Stepd) -> None:
    """Each task.result log event carries the Task state that made the call."""
    await stepd.start()
    start = whole_second(0)
    room = Classroom(name="logged", start=start, end=start)
    await stepd.start_execution(room)
    await stepd.wait_status([room.name], "SUCCEEDED", timeout=RUN_SECONDS)

    logged = stepd.log_events("task.result")

    states = {path: state for state, path in ENDPOINTS.items()}
    assert len(logged) == len(STEP_PATHS), stepd.tail()
    assert [e["state"] for e in logged] == [states[urlsplit(e["url"]).path] for e in logged]
