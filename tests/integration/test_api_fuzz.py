"""Bad input at the edges of the real daemon: the API and the config file.

The API is fuzzed with malformed, oversized, wrongly typed and unknown requests (a table of
named cases, then hypothesis-generated bodies, then raw bytes on the socket): every answer is
below 500 and a refusal has AWS's shape `{"__type", "message"}`; the daemon stays healthy and
keeps its executions. A config edit that is malformed, half-written or names a missing file is
refused by `stepd check` (exit 78, naming the file or key) and, sent SIGHUP, the running
daemon keeps its config and every execution.
"""

from __future__ import annotations

import asyncio
import json
import random
import signal
import socket
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import hypothesis.strategies as st
import pytest
from hypothesis import given
from tests.integration.chaos_support import Daemon, Lab, MachineSpec, write_machines_config
from tests.integration.harness import (
    AMZ_JSON,
    READY_SECONDS,
    STEP_PATHS,
    Classroom,
    records_of,
    run_cli,
    whole_second,
)

from stepd.config import EX_CONFIG
from stepd.testing import free_port

MAX_INPUT_BYTES = 262_144  # AWS's limit on an execution's input
OPERATIONS = (
    "StartExecution",
    "DescribeExecution",
    "StopExecution",
    "ListExecutions",
    "GetExecutionHistory",
    "ListStateMachines",
    "DescribeStateMachine",
)
FIELDS = {
    "StartExecution": ("stateMachineArn", "name", "input", "traceHeader"),
    "DescribeExecution": ("executionArn", "includedData"),
    "StopExecution": ("executionArn", "error", "cause"),
    "ListExecutions": ("stateMachineArn", "statusFilter", "maxResults", "nextToken"),
    "GetExecutionHistory": (
        "executionArn",
        "maxResults",
        "reverseOrder",
        "nextToken",
        "includeExecutionData",
    ),
    "ListStateMachines": ("maxResults", "nextToken"),
    "DescribeStateMachine": ("stateMachineArn",),
}
WRONG_VALUES: tuple[Any, ...] = (
    None,
    True,
    0,
    -1,
    2**64,
    1.5,
    "",
    "x" * 5000,
    [],
    ["classroom"],
    {},
    {"a": 1},
    "\u0000",
    "\U0001f600",
)
MACHINE_ARN = "arn:aws:states:us-east-1:123456789012:stateMachine:classroom"
AWS_ERROR_KEYS = {"__type", "message"}


# -- a daemon for the module ------------------------------------------------------------------


def wait_ready(daemon: Daemon) -> None:
    deadline = time.monotonic() + READY_SECONDS
    with httpx.Client(timeout=1.0, trust_env=False) as client:
        while True:
            assert daemon.process is not None
            assert daemon.process.poll() is None, daemon.tail()
            try:
                if client.get(daemon.url + "/healthz").status_code == httpx.codes.OK:
                    return
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, daemon.tail()
            time.sleep(0.05)


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """One daemon for every API fuzz test; its task calls go nowhere (no class is due)."""
    folder = tmp_path_factory.mktemp("fuzz")
    port = free_port()
    config = write_machines_config(
        folder,
        base_url=f"http://127.0.0.1:{free_port()}",
        port=port,
        machines=[MachineSpec(name="classroom")],
    )
    daemon = Daemon(config, port, folder / "stepd.log")
    daemon.spawn()
    wait_ready(daemon)
    yield daemon
    daemon.cleanup()


def post(
    client: httpx.Client,
    daemon: Daemon,
    content: bytes,
    target: str | None,
    content_type: str = AMZ_JSON,
) -> httpx.Response:
    headers = {"Content-Type": content_type}
    if target is not None:
        headers["X-Amz-Target"] = target
    return client.post(daemon.url + "/", content=content, headers=headers)


def check_answer(response: httpx.Response, what: str) -> dict[str, Any]:
    """Below 500; a refusal is `{"__type", "message"}` JSON."""
    assert response.status_code < 500, f"{what}: {response.status_code} {response.text[:300]}"
    if response.status_code == httpx.codes.OK:
        return dict(response.json())
    try:
        body = response.json()
    except ValueError:
        raise AssertionError(
            f"{what}: {response.status_code} not JSON: {response.text[:300]}"
        ) from None
    assert isinstance(body, dict), f"{what}: {body}"
    assert set(body) == AWS_ERROR_KEYS, f"{what}: {body}"
    assert isinstance(body["__type"], str), f"{what}: {body}"
    assert body["__type"], f"{what}: {body}"
    assert isinstance(body["message"], str), f"{what}: {body}"
    return dict(body)


def check_still_serving(daemon: Daemon) -> None:
    """Alive, healthy, and a good request still works."""
    assert daemon.process is not None
    assert daemon.process.poll() is None, f"the daemon died\n{daemon.tail()}"
    with httpx.Client(timeout=5.0, trust_env=False) as client:
        assert client.get(daemon.url + "/healthz").status_code == httpx.codes.OK
        answer = post(
            client,
            daemon,
            json.dumps({"stateMachineArn": MACHINE_ARN}).encode(),
            "AWSStepFunctions.DescribeStateMachine",
        )
        assert answer.status_code == httpx.codes.OK, answer.text
    errors = daemon.log_events("engine.advance_failed") + daemon.log_events("api.store_error")
    assert errors == [], errors


# -- named cases --------------------------------------------------------------------------------

LARGE_INPUT = json.dumps({"pad": "x" * MAX_INPUT_BYTES})
CASES: list[tuple[str, bytes, str | None, set[str]]] = [
    ("empty body", b"", "AWSStepFunctions.ListStateMachines", {"OK"}),
    ("not JSON", b"{", "AWSStepFunctions.ListExecutions", {"SerializationException"}),
    ("JSON null", b"null", "AWSStepFunctions.ListExecutions", {"SerializationException"}),
    ("JSON list", b"[1, 2]", "AWSStepFunctions.StartExecution", {"SerializationException"}),
    ("NaN", b'{"maxResults": NaN}', "AWSStepFunctions.ListExecutions", {"SerializationException"}),
    (
        "not UTF-8",
        b'{"name": "\xff\xfe"}',
        "AWSStepFunctions.StartExecution",
        {"SerializationException"},
    ),
    (
        "lone surrogate",
        b'{"name": "\\ud800"}',
        "AWSStepFunctions.StartExecution",
        {"InvalidName", "ValidationException"},
    ),
    (
        "nested deep",
        b"[" * 100_000 + b"]" * 100_000,
        "AWSStepFunctions.ListExecutions",
        {"SerializationException"},
    ),
    ("no target", b"{}", None, {"UnknownOperationException"}),
    (
        "unknown operation",
        b"{}",
        "AWSStepFunctions.NoSuchOperation",
        {"UnknownOperationException"},
    ),
    (
        "machines come from the config",
        b"{}",
        "AWSStepFunctions.CreateStateMachine",
        {"ValidationException"},
    ),
    ("other service", b"{}", "AmazonSQS.SendMessage", {"UnknownOperationException"}),
    ("target without operation", b"{}", "AWSStepFunctions.", {"UnknownOperationException"}),
    (
        "unknown fields",
        json.dumps({"stateMachineArn": MACHINE_ARN, "bogus": [1]}).encode(),
        "AWSStepFunctions.DescribeStateMachine",
        {"OK"},
    ),
    (
        "unknown machine",
        json.dumps({"stateMachineArn": "nope"}).encode(),
        "AWSStepFunctions.DescribeStateMachine",
        {"StateMachineDoesNotExist"},
    ),
    (
        "foreign ARN",
        json.dumps(
            {"stateMachineArn": "arn:aws:states:eu-west-1:1:stateMachine:classroom"}
        ).encode(),
        "AWSStepFunctions.DescribeStateMachine",
        {"StateMachineDoesNotExist", "InvalidArn"},
    ),
    (
        "input over 256 KiB",
        json.dumps({"stateMachineArn": MACHINE_ARN, "name": "big", "input": LARGE_INPUT}).encode(),
        "AWSStepFunctions.StartExecution",
        {"InvalidExecutionInput", "ValidationException"},
    ),
    (
        "body over 1 MiB",
        json.dumps(
            {"stateMachineArn": MACHINE_ARN, "input": json.dumps({"pad": "x" * 2_000_000})}
        ).encode(),
        "AWSStepFunctions.StartExecution",
        {"ValidationException", "InvalidExecutionInput"},
    ),
    (
        "input not JSON",
        json.dumps({"stateMachineArn": MACHINE_ARN, "name": "bad", "input": "{"}).encode(),
        "AWSStepFunctions.StartExecution",
        {"InvalidExecutionInput"},
    ),
    (
        "input NaN",
        json.dumps({"stateMachineArn": MACHINE_ARN, "name": "nan", "input": '{"a": NaN}'}).encode(),
        "AWSStepFunctions.StartExecution",
        {"InvalidExecutionInput"},
    ),
    (
        "input deep",
        json.dumps(
            {"stateMachineArn": MACHINE_ARN, "name": "deep", "input": "[" * 50_000 + "]" * 50_000}
        ).encode(),
        "AWSStepFunctions.StartExecution",
        {"InvalidExecutionInput"},
    ),
    (
        "name too long",
        json.dumps({"stateMachineArn": MACHINE_ARN, "name": "n" * 81}).encode(),
        "AWSStepFunctions.StartExecution",
        {"InvalidName"},
    ),
    (
        "name with space",
        json.dumps({"stateMachineArn": MACHINE_ARN, "name": "a b"}).encode(),
        "AWSStepFunctions.StartExecution",
        {"InvalidName"},
    ),
    (
        "bad token",
        json.dumps({"nextToken": "!!!"}).encode(),
        "AWSStepFunctions.ListExecutions",
        {"InvalidToken"},
    ),
    (
        "huge token value",
        json.dumps({"nextToken": "c3RlcGQ6OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5"}).encode(),
        "AWSStepFunctions.ListExecutions",
        {"InvalidToken"},
    ),
    (
        "huge maxResults",
        json.dumps({"maxResults": 10**100}).encode(),
        "AWSStepFunctions.ListExecutions",
        {"ValidationException"},
    ),
    (
        "bad status filter",
        json.dumps({"statusFilter": "DONE"}).encode(),
        "AWSStepFunctions.ListExecutions",
        {"ValidationException"},
    ),
    (
        "execution ARN of 1 MB",
        json.dumps({"executionArn": "a" * 900_000}).encode(),
        "AWSStepFunctions.DescribeExecution",
        {"ExecutionDoesNotExist", "InvalidArn", "ValidationException"},
    ),
    (
        "stop unknown execution",
        json.dumps(
            {"executionArn": "arn:aws:states:us-east-1:123456789012:execution:classroom:nobody"}
        ).encode(),
        "AWSStepFunctions.StopExecution",
        {"ExecutionDoesNotExist"},
    ),
]


@pytest.mark.parametrize(
    ("content", "target", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_bad_requests_get_aws_shaped_refusals(
    fuzzed: Daemon, content: bytes, target: str | None, expected: set[str]
) -> None:
    """Each malformed, oversized, wrongly typed or unknown request gets the AWS error it
    deserves (HTTP 4xx, `{"__type", "message"}`), and the daemon keeps serving."""
    with httpx.Client(timeout=20.0, trust_env=False) as client:
        response = post(client, fuzzed, content, target)

    answer = check_answer(response, target or "(no target)")
    got = "OK" if response.status_code == httpx.codes.OK else answer["__type"]
    assert got in expected, f"{response.status_code} {answer}"
    check_still_serving(fuzzed)


def test_every_field_of_every_operation_refuses_wrong_types(fuzzed: Daemon) -> None:
    """Each field of each operation, given each wrongly typed value: never a 5xx."""
    refused = 0
    with httpx.Client(timeout=10.0, trust_env=False) as client:
        for operation in OPERATIONS:
            for name in FIELDS[operation]:
                for value in WRONG_VALUES:
                    body = {"stateMachineArn": MACHINE_ARN, "executionArn": "x", name: value}
                    response = post(
                        client, fuzzed, json.dumps(body).encode(), f"AWSStepFunctions.{operation}"
                    )
                    check_answer(response, f"{operation} {name}={value!r:.40}")
                    refused += response.status_code != httpx.codes.OK
    assert refused > 0
    check_still_serving(fuzzed)


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=10,
)
REQUEST_BODIES = st.one_of(
    st.fixed_dictionaries(
        {},
        optional={
            "stateMachineArn": st.sampled_from([MACHINE_ARN, "classroom", "x"]) | JSON_VALUES,
            "executionArn": st.just(
                "arn:aws:states:us-east-1:123456789012:execution:classroom:fuzz"
            )
            | JSON_VALUES,
            "name": st.text(max_size=90) | JSON_VALUES,
            "input": JSON_VALUES.map(json.dumps) | st.text(max_size=50) | JSON_VALUES,
            "maxResults": st.integers(-5, 2000) | JSON_VALUES,
            "nextToken": st.text(max_size=40) | JSON_VALUES,
            "statusFilter": st.sampled_from(["RUNNING", "SUCCEEDED", "nope"]) | JSON_VALUES,
            "reverseOrder": JSON_VALUES,
            "includeExecutionData": JSON_VALUES,
            "error": st.text(max_size=300) | JSON_VALUES,
            "cause": JSON_VALUES,
        },
    ).map(lambda body: json.dumps(body).encode()),
    JSON_VALUES.map(lambda value: json.dumps(value).encode()),
    st.binary(max_size=200),
)
TARGETS = st.sampled_from([f"AWSStepFunctions.{op}" for op in OPERATIONS]) | st.text(max_size=40)


@given(REQUEST_BODIES, TARGETS, st.sampled_from([AMZ_JSON, "application/json", "text/plain", ""]))
def test_generated_requests_never_get_a_5xx(
    fuzzed: Daemon, content: bytes, target: str, content_type: str
) -> None:
    """Generated bodies, targets and content types: never a 5xx, always AWS-shaped."""
    header_ok = target == target.strip() and all(" " <= c <= "~" for c in target)
    with httpx.Client(timeout=10.0, trust_env=False) as client:
        response = post(client, fuzzed, content, target if header_ok else None, content_type)
    check_answer(response, f"{target!r} {content[:80]!r}")


def test_raw_garbage_on_the_socket_does_not_hurt(fuzzed: Daemon) -> None:
    """Random bytes, a truncated request, an enormous header line and a request that never
    finishes: the daemon answers 4xx or closes, and goes on serving."""
    rng = random.Random(4)
    host, port = "127.0.0.1", int(fuzzed.url.rsplit(":", 1)[1])
    payloads = [bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 4000))) for _ in range(30)]
    payloads += [
        b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\n{",
        b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 100,  # a TLS ClientHello
    ]
    for payload in payloads:
        with socket.create_connection((host, port), timeout=5) as sock:
            try:
                sock.sendall(payload)
                sock.shutdown(socket.SHUT_WR)
                answer = sock.recv(65536)
            except OSError:
                answer = b""
        if answer.startswith(b"HTTP/1."):
            status = int(answer.split(b" ", 2)[1])
            assert status < 500, answer[:200]
    check_still_serving(fuzzed)


# -- config edits -------------------------------------------------------------------------------


@pytest.fixture
async def lab(tmp_path: Path) -> AsyncIterator[Lab]:
    async with Lab(tmp_path) as world:
        yield world


def bad_edits(folder: Path, good: str) -> list[tuple[str, str, str]]:
    """(what, config text, what `stepd check` must name) for each bad edit."""
    definition = (folder / "classroom.asl.json").read_text(encoding="utf-8")
    (folder / "half.asl.json").write_text(definition[: len(definition) // 2], encoding="utf-8")
    (folder / "zeros.asl.yaml").write_bytes(
        definition[: len(definition) // 2].encode() + b"\0" * 512
    )  # written in place over a preallocated file, and cut short
    cut = good.index("[machines.endpoints]") + 12  # in the middle of a line
    before_machines = good.index("[[machines]]")  # at a line's end: valid TOML, no machine
    return [
        ("malformed TOML", good.replace("[http]", "[http"), "stepd.toml"),
        ("config cut mid-line", good[:cut], "stepd.toml"),
        ("config cut before [[machines]]", good[:before_machines], "machines"),
        ("unknown key", good.replace("timeout_seconds", "timout_seconds"), "timout_seconds"),
        (
            "wrong type",
            good.replace("timeout_seconds = 10", 'timeout_seconds = "soon"'),
            "timeout_seconds",
        ),
        (
            "missing definition",
            good.replace("classroom.asl.json", "missing.asl.json"),
            "missing.asl.json",
        ),
        (
            "half-written definition",
            good.replace("classroom.asl.json", "half.asl.json"),
            "half.asl.json",
        ),
        (
            "definition ending in zeros",
            good.replace("classroom.asl.json", "zeros.asl.yaml"),
            "zeros.asl.yaml",
        ),
        ("empty config", "", "machines"),
    ]


async def reload(daemon: Daemon) -> str:
    """SIGHUP; the event that ends the reload (config.reloaded or config.reload_rejected)."""
    ends = ("config.reloaded", "config.reload_rejected")
    before = {event: len(daemon.log_events(event)) for event in ends}
    daemon.signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while True:
        for event in ends:
            if len(daemon.log_events(event)) > before[event]:
                return event
        assert time.monotonic() < deadline, f"SIGHUP: no reload\n{daemon.tail()}"
        await asyncio.sleep(0.05)


async def test_bad_config_edits_are_refused_and_the_running_daemon_keeps_everything(
    lab: Lab,
) -> None:
    """Each bad edit: `stepd check` exits 78 naming the file or key; SIGHUP is refused and
    the daemon keeps its machines and executions, which finish as planned."""
    daemon = lab.daemon()
    good = daemon.config.read_text(encoding="utf-8")
    edits = bad_edits(lab.folder, good)
    await daemon.start()
    start = whole_second(3)  # the classes run while the bad edits come and go
    rooms = [Classroom(name=f"kept-{i}", start=start + i, end=start + i + 3) for i in range(3)]
    for room in rooms:
        await daemon.start_execution(room)
    machines = await daemon.ok("ListStateMachines", {})
    problems = []
    for what, text, named in edits:
        daemon.config.write_text(text, encoding="utf-8")
        checked = await asyncio.to_thread(run_cli, "check", "-c", daemon.config)
        said = checked.stdout + checked.stderr
        if checked.returncode != EX_CONFIG or named not in said or "Traceback" in said:
            problems.append(f"{what}: `stepd check` exited {checked.returncode}: {said[-400:]}")
        outcome = await reload(daemon)
        if outcome != "config.reload_rejected":
            problems.append(f"{what}: SIGHUP gave {outcome}, not config.reload_rejected")
        elif named not in daemon.log_events("config.reload_rejected")[-1]["finding"]:
            finding = daemon.log_events("config.reload_rejected")[-1]["finding"]
            problems.append(f"{what}: the refusal does not name {named}: {finding}")
        assert await daemon.healthy(), f"{what}\n{daemon.tail()}"
        if await daemon.ok("ListStateMachines", {}) != machines:
            problems.append(f"{what}: the running daemon's machines changed")
            daemon.config.write_text(good, encoding="utf-8")
            assert await reload(daemon) == "config.reloaded", daemon.tail()
            assert await daemon.ok("ListStateMachines", {}) == machines
    daemon.config.write_text(good, encoding="utf-8")

    await daemon.wait_status(
        [r.name for r in rooms], "SUCCEEDED", timeout=start + 6 - time.time() + 30
    )
    for room in rooms:
        assert [r.path for r in records_of(lab.server.records, room.name)] == list(STEP_PATHS)
    assert not problems, "\n".join(problems)
