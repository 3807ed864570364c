"""Reload of a daemon started by hand (`stepd run -c FILE`, no service manager).

`stepd reload -c FILE` finds the daemon from the same config file wherever it put its control
socket, applies a good change and reports a bad one; the outcome of a SIGHUP is kept, and
GET /healthz and `stepd reload --status` show it.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.integration.harness import (
    ENDPOINTS,
    EXIT_SECONDS,
    PING_PATH,
    START_PATH,
    STOP_PATH,
    Classroom,
    Stepd,
    clean_env,
    records_of,
    rename_task,
    run_cli,
    wait_until,
    whole_second,
)

from stepd.classroom import ClassroomServer
from stepd.config import EX_CONFIG

EX_OK = 0
RELOAD_SECONDS = 10.0  # for a SIGHUP's outcome to show in /healthz
CLASS_AHEAD_SECONDS = 10  # a class's start, after it was started: room for a reload before it
RUN_SECONDS = 30.0  # for a short class to run to its end
BEGIN_PATH = "/recording/begin"  # the endpoint of the renamed Task state
SECOND_MACHINE = '\n[[machines]]\nname = "second"\ndefinition = "classroom.asl.json"\n' + (
    "[machines.endpoints]\n" + "".join(f'{state} = "{path}"\n' for state, path in ENDPOINTS.items())
)
BAD_SECTION = "\n[http2]\nx = 1\n"


@dataclass(frozen=True, kw_only=True)
class Place:
    """The environment a daemon and its client share, and the folder the socket should be in."""

    env: dict[str, str]
    folder: Path


def _private_folder(label: str) -> Path:
    """A new short folder of our own under /tmp, as a session's runtime folder is."""
    return Path(tempfile.mkdtemp(prefix=f"stepd-{label}-", dir="/tmp"))


@pytest.fixture(params=["session", "no-session", "session-path-too-long"])
def place(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Place]:
    """With $XDG_RUNTIME_DIR, without it, and with one too deep for a socket path."""
    tmpdir = _private_folder("tmp")
    made = [tmpdir]
    env = {"TMPDIR": str(tmpdir)}
    folder = tmpdir / f"stepd-{os.getuid()}"
    if request.param == "session":
        xdg = _private_folder("xdg")
        made.append(xdg)
        env["XDG_RUNTIME_DIR"] = str(xdg)
        folder = xdg / "stepd"
    elif request.param == "session-path-too-long":
        deep = tmp_path / ("d" * 100)
        deep.mkdir(mode=0o700)
        env["XDG_RUNTIME_DIR"] = str(deep)
    yield Place(env=env, folder=folder)
    for path in made:
        shutil.rmtree(path, ignore_errors=True)


def _reload_cli(stepd: Stepd, *args: str) -> subprocess.CompletedProcess[str]:
    """`stepd reload ARGS -c FILE` in the daemon's session, without its STEPD_ overrides."""
    session = {k: v for k, v in stepd.extra_env.items() if not k.startswith("STEPD_")}
    return subprocess.run(
        [sys.executable, "-m", "stepd", "reload", *args, "-c", str(stepd.config)],
        capture_output=True,
        text=True,
        timeout=EXIT_SECONDS * 3,
        env=clean_env() | session,
        check=False,
    )


async def _last_reload(stepd: Stepd) -> Any:
    async with httpx.AsyncClient(timeout=5.0, trust_env=False) as client:
        response = await client.get(stepd.url + "/healthz")
    assert response.status_code == httpx.codes.OK
    return response.json()["last_reload"]


async def test_stepd_reload_dash_c_applies_a_good_change_and_reports_a_bad_one(
    stepd: Stepd, place: Place
) -> None:
    """`stepd reload -c FILE` reaches a daemon started as `stepd run -c FILE` (its store moved
    by a STEPD_ override the client does not have, as with `make run`): exit 0 once a good
    file is applied, 78 and the findings for a bad one; the daemon keeps serving."""
    stepd.extra_env = place.env | {"STEPD_STORE__PATH": str(stepd.config.parent / "moved.db")}
    await stepd.start()
    good = stepd.config.read_text(encoding="utf-8") + SECOND_MACHINE
    stepd.config.write_text(good, encoding="utf-8")

    applied = await asyncio.to_thread(_reload_cli, stepd)
    await stepd.ok("DescribeStateMachine", {"stateMachineArn": "second"})
    stepd.config.write_text(good + BAD_SECTION, encoding="utf-8")
    rejected = await asyncio.to_thread(_reload_cli, stepd)
    status = await asyncio.to_thread(_reload_cli, stepd, "--status")

    assert (applied.returncode, applied.stderr) == (EX_OK, ""), stepd.tail()
    assert rejected.returncode == EX_CONFIG, rejected.stderr
    assert "http2" in rejected.stderr
    assert "reload rejected" in rejected.stderr
    assert status.returncode == EX_CONFIG, status.stderr
    assert "by stepd reload: rejected" in status.stdout
    assert "http2" in status.stdout
    await stepd.ok("DescribeStateMachine", {"stateMachineArn": "second"})
    (ready,) = stepd.log_events("daemon.ready")
    assert Path(ready["control"]).parent == place.folder


async def test_a_sighups_outcome_shows_in_healthz_and_reload_status(
    stepd: Stepd, place: Place
) -> None:
    """After a SIGHUP, GET /healthz and `stepd reload --status` say when it was and whether
    it was applied, with the findings of a rejected file."""
    stepd.extra_env = place.env
    await stepd.start()
    before = await _last_reload(stepd)
    original = stepd.config.read_text(encoding="utf-8")
    stepd.config.write_text(original + BAD_SECTION, encoding="utf-8")
    assert stepd.process is not None

    stepd.process.send_signal(signal.SIGHUP)
    await wait_until(
        lambda: _changed(stepd, None),
        timeout=RELOAD_SECONDS,
        what="the SIGHUP's outcome",
        explain=stepd.tail(),
    )
    rejected = await _last_reload(stepd)
    status = await asyncio.to_thread(_reload_cli, stepd, "--status")
    stepd.config.write_text(original, encoding="utf-8")
    stepd.process.send_signal(signal.SIGHUP)
    await wait_until(
        lambda: _changed(stepd, rejected),
        timeout=RELOAD_SECONDS,
        what="the second SIGHUP's outcome",
        explain=stepd.tail(),
    )
    applied = await _last_reload(stepd)
    applied_status = await asyncio.to_thread(_reload_cli, stepd, "--status", "--json")

    assert before is None
    assert (rejected["trigger"], rejected["ok"]) == ("SIGHUP", False)
    assert any("http2" in finding for finding in rejected["findings"])
    assert rejected["at"].endswith("Z")
    assert status.returncode == EX_CONFIG
    assert f"last reload: {rejected['at']} by SIGHUP: rejected" in status.stdout
    assert (applied["trigger"], applied["ok"], applied["findings"]) == ("SIGHUP", True, [])
    assert applied["at"] > rejected["at"]
    assert applied_status.returncode == EX_OK, applied_status.stderr
    assert applied_status.stdout.strip().startswith("{")
    assert '"ok": true' in applied_status.stdout


async def test_a_change_that_needs_a_restart_is_reported_until_it_is_taken_back(
    stepd: Stepd,
) -> None:
    """`[http] max_concurrency` applies at a restart: a reload that changes it says so, and a
    reload of the file set back as it runs says nothing more is waiting for a restart."""
    await stepd.start()
    original = stepd.config.read_text(encoding="utf-8")
    changed = original.replace("[http]\n", "[http]\nmax_concurrency = 7\n", 1)
    assert changed != original
    stepd.config.write_text(changed, encoding="utf-8")
    first = await asyncio.to_thread(_reload_cli, stepd)
    stepd.config.write_text(original, encoding="utf-8")
    back = await asyncio.to_thread(_reload_cli, stepd)

    waiting = "http.max_concurrency: changed; takes effect at the next restart"
    assert (first.returncode, waiting in first.stderr + first.stdout) == (EX_OK, True), first
    assert (back.returncode, back.stderr + back.stdout) == (EX_OK, ""), back


async def _changed(stepd: Stepd, last: Any) -> bool:
    return await _last_reload(stepd) not in (None, last)


async def test_an_execution_keeps_the_endpoint_of_a_task_state_renamed_and_unmapped_by_a_reload(
    stepd: Stepd, classroom: ClassroomServer
) -> None:
    """A reload renames the Task state StartRecording and drops its endpoint line (as `stepd
    check`'s UNUSED_ENDPOINT suggests). An execution started before, waiting in front of
    StartRecording, still calls StartRecording's endpoint and succeeds; one started after
    calls the renamed state's."""
    await stepd.start()
    start = whole_second(CLASS_AHEAD_SECONDS)
    before = Classroom(name="started-before", start=start, end=start + 3)
    await stepd.start_execution(before)
    rename_task(stepd.config, old="StartRecording", new="BeginRecording", path=BEGIN_PATH)
    assert "StartRecording" not in stepd.config.read_text(encoding="utf-8")

    reloaded = await asyncio.to_thread(run_cli, "reload", "-c", stepd.config)
    assert reloaded.returncode == EX_OK, reloaded.stdout + reloaded.stderr
    assert records_of(classroom.records, before.name) == []  # still waiting: nothing sent yet
    after = Classroom(name="started-after", start=start, end=start + 3)
    await stepd.start_execution(after)
    await stepd.wait_status([before.name, after.name], "SUCCEEDED", timeout=RUN_SECONDS)

    assert [r.path for r in records_of(classroom.records, before.name)] == [
        START_PATH,
        PING_PATH,
        STOP_PATH,
    ]
    assert [r.path for r in records_of(classroom.records, after.name)] == [
        BEGIN_PATH,
        PING_PATH,
        STOP_PATH,
    ]
