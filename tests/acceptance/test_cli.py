"""The `stepd` command line against the real daemon: API clients, `check` and `run`.

Every command runs as `python -m stepd ...` in a subprocess, exactly as a person types it.
"""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
import time
import uuid
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from tests.acceptance.callback_support import callback_machine, records

from stepd import __version__
from stepd.store.schema import SCHEMA_VERSION
from stepd.store.sqlite import SqliteStore
from stepd.testing import free_port

REGION = "us-east-1"
ACCOUNT = "123456789012"
REPO = Path(__file__).resolve().parents[2]
SVG = "{http://www.w3.org/2000/svg}"
EX_OK = 0
EX_FAILURE = 1
EX_UNAVAILABLE = 69
EX_CONFIG = 78
FINDING = re.compile(r"^(?P<where>\S.*?): (?P<code>[A-Z][A-Z0-9_]*): (?P<message>\S.*)$")
QUICK_HISTORY = [
    "ExecutionStarted",
    "PassStateEntered",
    "PassStateExited",
    "TaskStateEntered",
    "LambdaFunctionScheduled",
    "LambdaFunctionStarted",
    "LambdaFunctionSucceeded",
    "TaskStateExited",
    "SucceedStateEntered",
    "SucceedStateExited",
    "ExecutionSucceeded",
]


def execution_arn(machine: str, name: str) -> str:
    return f"arn:aws:states:{REGION}:{ACCOUNT}:execution:{machine}:{name}"


def succeeded(result: Any) -> str:
    """stdout of a command that must have exited 0."""
    assert (result.returncode, result.stderr) == (EX_OK, "")
    return str(result.stdout)


def as_json(result: Any) -> Any:
    return json.loads(succeeded(result))


def fields(text: str) -> dict[str, str]:
    """`describe`'s human output, `key: value` per line, as a dict."""
    pairs = (line.strip().partition(": ") for line in text.splitlines())
    return {key: value for key, sep, value in pairs if sep}


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def class_input() -> str:
    """Seed-style input: a class that starts in an hour and ends in two."""
    now = datetime.now(UTC)
    return json.dumps(
        {"start": iso(now + timedelta(hours=1)), "end": iso(now + timedelta(hours=2))}
    )


@pytest.fixture(scope="module")
def finished(daemon, sfn, settle, stepd_cli) -> str:
    """The name of a `quick` execution started with `stepd start` and SUCCEEDED."""
    name = f"cli-quick-{uuid.uuid4().hex[:12]}"
    succeeded(stepd_cli("start", "quick", name, "--input", '{"room": 7}', "-c", str(daemon.config)))
    settle(sfn, execution_arn("quick", name), {"SUCCEEDED", "FAILED"})
    return name


# -- start / describe ----------------------------------------------------------------------


def test_start_json_answers_the_execution_arn(daemon, sfn, stepd_cli, new_name):
    """`stepd start M N --input J --json` prints StartExecution's answer and starts N with J."""
    name = new_name("cli-start")
    answer = as_json(
        stepd_cli(
            "start", "sleeper", name, "--input", '{"a": 1}', "--json", "-c", str(daemon.config)
        )
    )
    described = sfn.describe_execution(executionArn=execution_arn("sleeper", name))
    assert answer["executionArn"] == execution_arn("sleeper", name)
    assert isinstance(answer["startDate"], float)
    assert (described["status"], described["input"]) == ("RUNNING", '{"a": 1}')


def test_start_human_output_names_the_execution(daemon, stepd_cli, new_name):
    """`stepd start` without --json prints the execution ARN and when it started."""
    name = new_name("cli-human")
    out = succeeded(stepd_cli("start", "sleeper", name, "-c", str(daemon.config)))
    assert out.split()[:2] == [execution_arn("sleeper", name), "started"]


def test_describe_json_of_a_waiting_classroom(daemon, stepd_cli, new_name):
    """`stepd describe --json` shows a classroom waiting for its start: RUNNING, its input."""
    name = new_name("cli-class")
    payload = class_input()
    config = str(daemon.config)
    succeeded(stepd_cli("start", "classroom", name, "--input", payload, "-c", config))
    described = as_json(stepd_cli("describe", "classroom", name, "--json", "-c", config))
    assert (
        described["executionArn"],
        described["name"],
        described["status"],
        described["input"],
    ) == (
        execution_arn("classroom", name),
        name,
        "RUNNING",
        payload,
    )


def test_describe_human_shows_status_and_state(daemon, stepd_cli, new_name):
    """`stepd describe` prints the status and the state the execution is in."""
    name = new_name("cli-desc")
    payload = class_input()
    config = str(daemon.config)
    succeeded(stepd_cli("start", "classroom", name, "--input", payload, "-c", config))
    shown = fields(succeeded(stepd_cli("describe", "classroom", name, "-c", config)))
    assert (shown.get("name"), shown.get("status"), shown.get("state")) == (
        name,
        "RUNNING",
        "RecordingWait",
    )


def test_describe_human_of_a_succeeded_execution_shows_its_output(daemon, stepd_cli, finished):
    """`stepd describe` of a finished execution prints SUCCEEDED, its input and output."""
    shown = fields(succeeded(stepd_cli("describe", "quick", finished, "-c", str(daemon.config))))
    assert (shown.get("status"), shown.get("input")) == ("SUCCEEDED", '{"room": 7}')
    assert json.loads(shown["output"])["prepared"] == {"room": "blue"}


def test_a_machine_arn_works_where_a_name_does(daemon, stepd_cli, finished):
    """The MACHINE argument may be the state machine's ARN."""
    machine = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:quick"
    described = as_json(
        stepd_cli("describe", machine, finished, "--json", "-c", str(daemon.config))
    )
    assert described["executionArn"] == execution_arn("quick", finished)


def test_api_url_instead_of_a_config(daemon, stepd_cli, new_name):
    """`--api URL` finds the daemon without a config file."""
    name = new_name("cli-api")
    succeeded(stepd_cli("start", "sleeper", name, "--api", daemon.url))
    described = as_json(stepd_cli("describe", "sleeper", name, "--json", "--api", daemon.url))
    assert (described["name"], described["status"]) == (name, "RUNNING")


# -- list ----------------------------------------------------------------------------------


def test_list_json_with_status(daemon, stepd_cli, finished):
    """`stepd list M --status S --json` lists only M's executions in status S."""
    config = str(daemon.config)
    done = as_json(stepd_cli("list", "quick", "--status", "succeeded", "--json", "-c", config))
    running = as_json(stepd_cli("list", "quick", "--status", "RUNNING", "--json", "-c", config))
    assert {item["status"] for item in done["executions"]} == {"SUCCEEDED"}
    assert (
        finished in {item["name"] for item in done["executions"]},
        finished in {item["name"] for item in running["executions"]},
    ) == (True, False)


def test_list_human_shows_status_and_name(daemon, stepd_cli, finished):
    """`stepd list` prints a row per execution with its status, machine and name."""
    out = succeeded(stepd_cli("list", "quick", "--status", "SUCCEEDED", "-c", str(daemon.config)))
    rows = [line.split() for line in out.splitlines()[1:]]
    assert out.splitlines()[0].split() == ["STATUS", "STARTED", "MACHINE", "NAME"]
    assert ["SUCCEEDED", "quick", finished] in [[r[0], r[2], r[3]] for r in rows]


def test_list_without_a_machine_lists_every_machine(daemon, stepd_cli, finished, new_name):
    """`stepd list` without MACHINE lists the executions of every machine."""
    sleeping = new_name("cli-all")
    config = str(daemon.config)
    succeeded(stepd_cli("start", "sleeper", sleeping, "-c", config))
    listed = as_json(stepd_cli("list", "--json", "--max", "1000", "-c", config))
    names = {(i["stateMachineArn"].rsplit(":", 1)[1], i["name"]) for i in listed["executions"]}
    assert {("quick", finished), ("sleeper", sleeping)} <= names


# -- history -------------------------------------------------------------------------------


def test_history_json_lists_every_event(daemon, stepd_cli, finished):
    """`stepd history --json` gives every event of the execution, in order."""
    history = as_json(stepd_cli("history", "quick", finished, "--json", "-c", str(daemon.config)))
    assert [e["type"] for e in history["events"]] == QUICK_HISTORY
    assert [e["id"] for e in history["events"]] == list(range(1, len(QUICK_HISTORY) + 1))


def test_history_human_shows_types_and_state_names(daemon, stepd_cli, finished):
    """`stepd history` prints one line per event with its type and the state's name."""
    out = succeeded(stepd_cli("history", "quick", finished, "-c", str(daemon.config)))
    lines = out.splitlines()
    assert [line.split()[2] for line in lines] == QUICK_HISTORY
    entered = [line.split("name=")[1].split()[0] for line in lines if "StateEntered" in line]
    assert entered == ["Prepare", "Call", "Done"]


# -- stop ----------------------------------------------------------------------------------


def test_stop_json_aborts_with_error_and_cause(daemon, sfn, stepd_cli, new_name):
    """`stepd stop --error E --cause C --json` aborts the execution and keeps E and C."""
    name = new_name("cli-stop")
    config = str(daemon.config)
    succeeded(stepd_cli("start", "sleeper", name, "-c", config))
    answer = as_json(
        stepd_cli(
            "stop", "sleeper", name, "--error", "E.x", "--cause", "why", "--json", "-c", config
        )
    )
    described = sfn.describe_execution(executionArn=execution_arn("sleeper", name))
    assert isinstance(answer["stopDate"], float)
    assert (described["status"], described.get("error"), described.get("cause")) == (
        "ABORTED",
        "E.x",
        "why",
    )


def test_stop_human_then_describe_shows_aborted(daemon, stepd_cli, new_name):
    """`stepd stop` prints when it stopped; `stepd describe` then shows ABORTED."""
    name = new_name("cli-stoph")
    config = str(daemon.config)
    succeeded(stepd_cli("start", "sleeper", name, "-c", config))
    out = succeeded(stepd_cli("stop", "sleeper", name, "-c", config))
    shown = fields(succeeded(stepd_cli("describe", "sleeper", name, "-c", config)))
    assert out.split()[0] == "stopped"
    assert shown.get("status") == "ABORTED"


def test_redrive_takes_a_failed_execution_up_again(daemon, sfn, stepd_cli, new_name):
    """`stepd redrive` redrives a FAILED execution; `describe` then shows the redrive count,
    and `--json` prints the API's answer."""
    name = new_name("cli-redrive")
    config = str(daemon.config)
    succeeded(stepd_cli("start", "failing", name, "-c", config))
    arn = execution_arn("failing", name)
    deadline = time.monotonic() + 30
    while sfn.describe_execution(executionArn=arn)["status"] == "RUNNING":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    out = succeeded(stepd_cli("redrive", "failing", name, "-c", config))
    assert out.split()[0] == "redriven"
    answer = as_json(stepd_cli("redrive", "failing", name, "--json", "-c", config))
    assert isinstance(answer["redriveDate"], float)
    shown = fields(succeeded(stepd_cli("describe", "failing", name, "-c", config)))
    assert shown.get("redriveCount") == "2"


def test_redrive_of_a_running_execution_exits_1_naming_the_aws_error(daemon, stepd_cli, new_name):
    """`stepd redrive` of a RUNNING execution exits 1 with ExecutionNotRedrivable."""
    name = new_name("cli-redrive-running")
    config = str(daemon.config)
    succeeded(stepd_cli("start", "sleeper", name, "-c", config))
    result = stepd_cli("redrive", "sleeper", name, "-c", config)
    assert (result.returncode, result.stdout) == (EX_FAILURE, "")
    assert "ExecutionNotRedrivable" in result.stderr
    assert "Execution is RUNNING and cannot be redriven" in result.stderr
    succeeded(stepd_cli("stop", "sleeper", name, "-c", config))


# -- graph -------------------------------------------------------------------------------


def test_graph_colours_an_execution_from_the_daemon(daemon, stepd_cli, finished):
    """`stepd graph quick --execution NAME --format svg` draws every state it passed as done."""
    out = succeeded(
        stepd_cli(
            "graph", "quick", "--execution", finished, "--format", "svg", "-c", str(daemon.config)
        )
    )
    states = {
        g.get("data-state"): (g.get("class") or "").split()
        for g in ET.fromstring(out).iter(f"{SVG}g")
        if g.get("data-state")
    }
    assert states == {name: ["state", "done"] for name in ("Prepare", "Call", "Done")}


def test_graph_of_the_shipped_classroom_is_the_readme_diagram(stepd_cli):
    """`stepd graph classroom -c config/stepd.toml` prints the Mermaid block of the README."""
    out = succeeded(stepd_cli("graph", "classroom", "-c", str(REPO / "config" / "stepd.toml")))
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert re.findall(r"```mermaid\n(.*?)```", readme, re.DOTALL) == [out]


def test_graph_of_an_unknown_execution_fails_with_the_aws_error(daemon, stepd_cli):
    """`stepd graph --execution` of an execution never started exits 1, naming the AWS error."""
    result = stepd_cli("graph", "quick", "--execution", "never-started", "-c", str(daemon.config))
    assert (result.returncode, result.stdout) == (EX_FAILURE, "")
    assert "ExecutionDoesNotExist" in result.stderr


def test_graph_without_a_config_exits_78(stepd_cli, tmp_path):
    """`stepd graph` with a config file that is not there exits 78 and says so."""
    result = stepd_cli("graph", "quick", "-c", str(tmp_path / "none.toml"))
    assert (result.returncode, result.stdout) == (EX_CONFIG, "")
    assert "config file not found" in result.stderr


# -- errors --------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["describe", "history", "stop"])
def test_an_unknown_execution_fails_with_the_aws_error(daemon, stepd_cli, command):
    """A command on an execution never started exits 1 with ExecutionDoesNotExist on stderr."""
    result = stepd_cli(command, "quick", "never-started", "-c", str(daemon.config))
    assert (result.returncode, result.stdout) == (EX_FAILURE, "")
    assert "ExecutionDoesNotExist" in result.stderr


@pytest.mark.parametrize(
    "case",
    [
        ("nosuchmachine", "{}", "StateMachineDoesNotExist"),
        ("sleeper", "not json", "InvalidExecutionInput"),
    ],
    ids=["unknown-machine", "bad-input"],
)
def test_a_refused_start_fails_with_the_aws_error(daemon, stepd_cli, new_name, case):
    """A start the API refuses exits 1 with the AWS error name on stderr."""
    machine, payload, error = case
    result = stepd_cli(
        "start", machine, new_name("cli-bad"), "--input", payload, "-c", str(daemon.config)
    )
    assert (result.returncode, result.stdout) == (EX_FAILURE, "")
    assert error in result.stderr


def test_a_starting_name_taken_fails_with_execution_already_exists(daemon, stepd_cli, finished):
    """Starting a finished execution's name again exits 1 with ExecutionAlreadyExists."""
    result = stepd_cli(
        "start", "quick", finished, "--input", '{"room": 7}', "-c", str(daemon.config)
    )
    assert (result.returncode, "ExecutionAlreadyExists" in result.stderr) == (EX_FAILURE, True)


def test_an_unreachable_api_exits_unavailable(stepd_cli):
    """When nothing listens at --api, the client exits 69 and says which URL it could not
    reach."""
    url = f"http://127.0.0.1:{free_port()}"
    result = stepd_cli("list", "--api", url)
    assert (result.returncode, result.stdout) == (EX_UNAVAILABLE, "")
    assert f"cannot reach the stepd API at {url}" in result.stderr


# -- check / run ---------------------------------------------------------------------------


def test_check_a_good_config(daemon, stepd_cli):
    """`stepd check -c` of the running daemon's config exits 0 with no findings on stdout."""
    result = stepd_cli("check", "-c", str(daemon.config))
    assert (result.returncode, result.stdout) == (EX_OK, "")


def test_check_the_shipped_example_config(stepd_cli):
    """The example config/stepd.toml passes `stepd check`."""
    result = stepd_cli("check", "-c", str(REPO / "config" / "stepd.toml"))
    assert (result.returncode, result.stdout) == (EX_OK, "")


def write_bad_config(folder: Path) -> Path:
    """A config whose machine has an unmapped Task and an unreachable state."""
    definition = {
        "StartAt": "Wait",
        "States": {
            "Wait": {"Type": "Wait", "Seconds": 1, "Next": "Stop"},
            "Ping": {"Type": "Pass", "Next": "Stop"},
            "Stop": {
                "Type": "Task",
                "Resource": "arn:aws:lambda:us-east-1:1:function:s",
                "End": True,
            },
        },
    }
    (folder / "bad.asl.json").write_text(json.dumps(definition), encoding="utf-8")
    config = folder / "bad.toml"
    config.write_text(
        "\n".join(
            [
                "[store]",
                'path = "bad.db"',
                "[api]",
                f'listen = "127.0.0.1:{free_port()}"',
                "[http]",
                'base_url = "http://127.0.0.1:9"',
                "[[machines]]",
                'name = "bad"',
                'definition = "bad.asl.json"',
            ]
        )
        + "\n",
        encoding="utf-8",
    )
    return config


def test_check_a_bad_config_reports_each_finding(stepd_cli, tmp_path):
    """`stepd check -c` of a bad config exits 78 with one `where: CODE: message` line each."""
    result = stepd_cli("check", "-c", str(write_bad_config(tmp_path)))
    lines = result.stdout.splitlines()
    matches = [FINDING.match(line) for line in lines]
    assert result.returncode == EX_CONFIG
    assert [line for line, m in zip(lines, matches, strict=True) if m is None] == []
    found = sorted((m["where"].rsplit("#", 1)[1], m["code"]) for m in matches if m)
    assert found == [
        ("/States/Ping", "MISSING_TRANSITION_TARGET"),
        ("/States/Stop", "UNMAPPED_TASK"),
    ]


def test_check_names_the_file_of_each_finding(stepd_cli, tmp_path):
    """Each finding's `where` names the definition file it is about."""
    result = stepd_cli("check", "-c", str(write_bad_config(tmp_path)))
    wheres = {FINDING.match(line)["where"].rsplit("#", 1)[0] for line in result.stdout.splitlines()}
    assert wheres == {str(tmp_path / "bad.asl.json")}


def test_check_a_config_that_is_not_toml(stepd_cli, tmp_path):
    """A config that is not TOML exits 78 with a CONFIG finding."""
    config = tmp_path / "broken.toml"
    config.write_text("[[machines\n", encoding="utf-8")
    result = stepd_cli("check", "-c", str(config))
    match = FINDING.match(result.stdout.strip())
    assert (result.returncode, match is not None and match["code"]) == (EX_CONFIG, "CONFIG")


def test_run_refuses_a_bad_config(stepd_cli, tmp_path):
    """`stepd run -c` of a bad config exits 78 at once, the findings on stderr."""
    result = stepd_cli("run", "-c", str(write_bad_config(tmp_path)))
    assert result.returncode == EX_CONFIG
    assert "UNMAPPED_TASK" in result.stderr


def write_config(folder: Path, definition: dict[str, Any] | None) -> Path:
    """A config with one machine of `definition`, or with no [[machines]] at all for None."""
    lines = [
        "[store]",
        'path = "x.db"',
        "[api]",
        f'listen = "127.0.0.1:{free_port()}"',
        "[http]",
        'base_url = "http://127.0.0.1:9"',
    ]
    if definition is not None:
        (folder / "m.asl.json").write_text(json.dumps(definition), encoding="utf-8")
        lines += ["[[machines]]", 'name = "m"', 'definition = "m.asl.json"']
    config = folder / "stepd.toml"
    config.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return config


def test_check_accepts_a_parallel_state(stepd_cli, tmp_path):
    """A Parallel state is valid ASL that stepd runs: `stepd check` passes without a finding."""
    branch = {"StartAt": "A", "States": {"A": {"Type": "Pass", "End": True}}}
    definition = {
        "StartAt": "Fan",
        "States": {"Fan": {"Type": "Parallel", "Branches": [branch], "End": True}},
    }
    result = stepd_cli("check", "-c", str(write_config(tmp_path, definition)))
    assert result.returncode == 0, result.stdout
    assert FINDING.match(result.stdout.strip()) is None, result.stdout


def test_check_refuses_a_config_without_machines(stepd_cli, tmp_path):
    """A config with no [[machines]] would run nothing: refused, exit 78, NO_MACHINES."""
    result = stepd_cli("check", "-c", str(write_config(tmp_path, None)))
    match = FINDING.match(result.stdout.strip())
    assert result.returncode == EX_CONFIG
    assert match is not None, result.stdout
    assert match["code"] == "NO_MACHINES", result.stdout


def write_newer_store(config: Path, written_by: str) -> Path:
    """The config's store, as a stepd `written_by` with a newer schema left it."""
    database = config.parent / "x.db"
    store = SqliteStore(database)
    asyncio.run(store.open())
    asyncio.run(store.close())
    conn = sqlite3.connect(database)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.execute("UPDATE meta SET value = ? WHERE key = 'written_by'", (written_by,))
    conn.commit()
    conn.close()
    return database


def test_check_and_run_refuse_a_store_written_by_a_newer_stepd(stepd_cli, tmp_path):
    """`stepd check` and `stepd run` both refuse a newer stepd's store, naming both versions,
    with exit 78 (so that systemd does not restart into it)."""
    definition = {"StartAt": "A", "States": {"A": {"Type": "Pass", "End": True}}}
    config = write_config(tmp_path, definition)
    database = write_newer_store(config, "7.3.0")
    check = stepd_cli("check", "-c", str(config))
    match = FINDING.match(check.stdout.strip())
    assert check.returncode == EX_CONFIG
    assert match is not None, check.stdout
    assert (match["where"], match["code"]) == (str(database), "STORE_TOO_NEW")
    assert "stepd 7.3.0" in match["message"]
    assert f"this is stepd {__version__}" in match["message"]
    run = stepd_cli("run", "-c", str(config))
    assert run.returncode == EX_CONFIG
    assert "stepd 7.3.0" in run.stderr
    assert f"this is stepd {__version__}" in run.stderr


CALLBACK_MACHINE = callback_machine(HeartbeatSeconds=60)


def test_task_callbacks_from_the_command_line(
    start_daemon, classroom, tmp_path_factory, stepd_cli, settle
):
    """`stepd task-heartbeat`, `task-failure --error --cause` and `task-success --output`
    settle `.waitForTaskToken` tasks; a closed task's token is refused with TaskTimedOut."""
    folder = tmp_path_factory.mktemp("cli-callbacks")
    path = folder / "asker.asl.json"
    path.write_text(json.dumps(CALLBACK_MACHINE), encoding="utf-8")
    rooms = {kind: f"cli-{kind}-{uuid.uuid4().hex[:8]}" for kind in ("ok", "fail")}
    with start_daemon(folder, classroom.base_url, [("asker", path, {"Ask": "/quick"})]) as d:
        sfn = d.client()
        for room in rooms.values():
            sfn.start_execution(
                stateMachineArn="arn:aws:states:us-east-1:123456789012:stateMachine:asker",
                name=room,
                input=json.dumps({"room": room}),
            )
        tokens: dict[str, str] = {}
        end = time.monotonic() + 10
        while len(tokens) < len(rooms) and time.monotonic() < end:
            for record in records(classroom):
                for kind, room in rooms.items():
                    if isinstance(record.body, dict) and record.body.get("room") == room:
                        tokens[kind] = record.body["token"]
            time.sleep(0.05)
        config = str(d.config)
        beat = stepd_cli("task-heartbeat", tokens["ok"], "-c", config)
        assert (beat.returncode, beat.stdout.strip()) == (0, "heartbeat sent"), beat.stderr
        ok = stepd_cli("task-success", tokens["ok"], "--output", '{"v": 1}', "-c", config)
        assert ok.returncode == 0, ok.stderr
        failed = stepd_cli(
            "task-failure",
            tokens["fail"],
            "--error",
            "Room.Closed",
            "--cause",
            "ill",
            "--json",
            "-c",
            config,
        )
        assert (failed.returncode, as_json(failed)) == (0, {}), failed.stderr
        done = settle(sfn, execution_arn("asker", rooms["ok"]), {"SUCCEEDED"})
        assert json.loads(done["output"]) == {"v": 1}
        closed = settle(sfn, execution_arn("asker", rooms["fail"]), {"FAILED"})
        assert (closed["error"], closed["cause"]) == ("Room.Closed", "ill")
        late = stepd_cli("task-success", tokens["ok"], "-c", config)
        assert late.returncode != 0
        assert "TaskTimedOut" in late.stderr
