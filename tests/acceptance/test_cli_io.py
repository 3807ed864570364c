"""The `stepd` command line's input and output at their limits, against the real daemon:
inputs too long for a command line, a reader that stops early, listings longer than a page.

Every command runs as `python -m stepd ...` in a subprocess, as a person types it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from stepd.testing import free_port

REGION = "us-east-1"
ACCOUNT = "123456789012"
REPO = Path(__file__).resolve().parents[2]
EX_OK = 0
EX_USAGE = 2
EX_CONFIG = 78
EX_SIGPIPE = 141  # 128 + SIGPIPE, as a shell reports a command that SIGPIPE ended
BIG_INPUT_BYTES = 200_000  # over what one command-line argument may hold (128 KiB on Linux)
CROWD = 1_005  # executions: more than one page of ListExecutions (1,000)
STARTERS = 8  # StartExecution calls in flight while the crowd is started
SLEEPER = {"StartAt": "Sleep", "States": {"Sleep": {"Type": "Wait", "Seconds": 3600, "End": True}}}


def execution_arn(machine: str, name: str) -> str:
    return f"arn:aws:states:{REGION}:{ACCOUNT}:execution:{machine}:{name}"


def succeeded(result: Any) -> str:
    """stdout of a command that must have exited 0 without a word on stderr."""
    assert (result.returncode, result.stderr) == (EX_OK, "")
    return str(result.stdout)


def big_input() -> str:
    return json.dumps({"room": "blue", "notes": "n" * BIG_INPUT_BYTES})


# -- --input from a file or stdin --------------------------------------------------------------


@pytest.mark.parametrize("how", ["@", "file://", "stdin"])
def test_a_long_input_is_read_from_a_file_or_stdin(daemon, sfn, stepd_cli, tmp_path, how):
    """`--input @FILE`, `--input file://FILE` and `--input -` (stdin) pass a 200 KB input that
    would not fit in a command line, unchanged."""
    name = f"cli-big-{uuid.uuid4().hex[:12]}"
    text = big_input()
    path = tmp_path / "input.json"
    path.write_text(text, encoding="utf-8")
    argument = "-" if how == "stdin" else f"{how}{path}"

    out = succeeded(
        stepd_cli(
            "start",
            "sleeper",
            name,
            "--input",
            argument,
            "-c",
            str(daemon.config),
            stdin=text if how == "stdin" else None,
        )
    )

    described = sfn.describe_execution(executionArn=execution_arn("sleeper", name))
    assert out.split()[0] == execution_arn("sleeper", name)
    assert described["input"] == text


def test_an_input_file_that_cannot_be_read_is_a_usage_error(daemon, stepd_cli, tmp_path):
    """`--input @FILE` of a file that is not there: exit 2, naming it; nothing starts."""
    missing = tmp_path / "missing.json"

    result = stepd_cli(
        "start", "sleeper", "never", "--input", f"@{missing}", "-c", str(daemon.config)
    )

    assert (result.returncode, result.stdout) == (EX_USAGE, "")
    assert f"--input @{missing}: cannot read: No such file or directory" in result.stderr


# -- a reader that stops early ------------------------------------------------------------------


def _with_stdout_closed(*args: str) -> subprocess.CompletedProcess[bytes]:
    """`python -m stepd ARGS` writing to a pipe whose reader has already gone (as `| head`
    leaves it once it has read enough)."""
    reader, writer = os.pipe()
    os.close(reader)
    try:
        return subprocess.run(
            [sys.executable, "-m", "stepd", *args],
            stdout=writer,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            timeout=60,
            check=False,
        )
    finally:
        os.close(writer)


@pytest.mark.parametrize("command", ["list", "graph"])
def test_a_reader_that_goes_away_ends_the_command_quietly(daemon, command):
    """`stepd list | head -1` and the like: exit 141 (as SIGPIPE would), no traceback."""
    args = ["list", "--max", "1000"] if command == "list" else ["graph", "classroom"]

    result = _with_stdout_closed(*args, "-c", str(daemon.config))

    assert (result.returncode, result.stderr.decode()) == (EX_SIGPIPE, "")


# -- listings longer than a page ---------------------------------------------------------------


@pytest.fixture(scope="module")
def crowded(tmp_path_factory, classroom, start_daemon):
    """A daemon of its own with CROWD executions of the machine `crowd`, and their names."""
    folder = tmp_path_factory.mktemp("crowded")
    definition = folder / "crowd.asl.json"
    definition.write_text(json.dumps(SLEEPER), encoding="utf-8")
    with start_daemon(folder, classroom.base_url, [("crowd", definition, {})]) as running:
        sfn = running.client()
        names = {f"c{i:04d}" for i in range(CROWD)}

        def start(name: str) -> None:
            sfn.start_execution(stateMachineArn="crowd", name=name, input="{}")

        with ThreadPoolExecutor(STARTERS) as pool:
            list(pool.map(start, sorted(names)))
        yield running, names


def _listed(result: Any) -> list[str]:
    return [item["name"] for item in json.loads(succeeded(result))["executions"]]


def test_list_shows_100_and_says_there_are_more(crowded, stepd_cli):
    """`stepd list` shows the newest 100 and says on stderr that there are more, and how to
    see them."""
    running, _ = crowded

    result = stepd_cli("list", "crowd", "-c", str(running.config))

    assert result.returncode == EX_OK
    assert len(result.stdout.splitlines()) == 1 + 100
    assert result.stderr == "stepd: 100 executions listed; there are more: use --max N or --all\n"


def test_list_all_follows_every_page(crowded, stepd_cli):
    """`stepd list --all --json` lists every execution across pages, newest first, with no
    nextToken."""
    running, names = crowded

    result = stepd_cli("list", "crowd", "--all", "--json", "-c", str(running.config))

    listed = json.loads(succeeded(result))
    dates = [item["startDate"] for item in listed["executions"]]
    assert sorted(item["name"] for item in listed["executions"]) == sorted(names)
    assert dates == sorted(dates, reverse=True)
    assert "nextToken" not in listed


def test_list_max_over_a_page_then_next_token_goes_on(crowded, stepd_cli):
    """`--max N` beyond one page gives exactly the newest N and a nextToken; `--next-token`
    goes on from there to the end."""
    running, _ = crowded
    config = str(running.config)
    everything = _listed(stepd_cli("list", "crowd", "--all", "--json", "-c", config))

    first = stepd_cli("list", "crowd", "--max", str(CROWD - 3), "--json", "-c", config)
    page = json.loads(first.stdout)
    rest = _listed(
        stepd_cli("list", "crowd", "--next-token", page["nextToken"], "--json", "-c", config)
    )

    assert first.returncode == EX_OK
    assert first.stderr == (
        f"stepd: {CROWD - 3} executions listed; there are more: "
        "--next-token NEXTTOKEN goes on from here\n"
    )
    assert [item["name"] for item in page["executions"]] == everything[: CROWD - 3]
    assert rest == everything[CROWD - 3 :]


def test_list_max_must_be_positive(stepd_cli):
    """`--max 0` is refused as a usage error before anything is asked."""
    result = stepd_cli("list", "--max", "0", "--api", f"http://127.0.0.1:{free_port()}")

    assert result.returncode == EX_USAGE
    assert "--max: expected a whole number of at least 1" in result.stderr
