"""Moved classes, timetables and the hour ahead, through the real daemon and the `stepd` CLI:
`stepd update`, `stepd apply`, `stepd agenda`."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import boto3
import httpx
import pytest
from botocore.exceptions import ClientError
from tests.integration.harness import (
    EARLY_SLACK_SECONDS,
    START_PATH,
    Classroom,
    Stepd,
    records_of,
    rfc3339,
    run_cli,
    wait_until,
    whole_second,
)

from stepd.boto3_update import update_execution
from stepd.classroom import ClassroomServer

GENEROUS_SECONDS = 10.0  # a step that runs within this of its instant ran "at" it
UPDATE_LEAD_SECONDS = 10  # a class's start after it was started: room for `stepd update` before it


async def cli(*args: str | Path) -> tuple[int, str, str]:
    done = await asyncio.to_thread(run_cli, *args)
    return done.returncode, done.stdout, done.stderr


def starts(classroom: ClassroomServer, name: str) -> list[float]:
    return [r.received_at for r in records_of(classroom.records, name) if r.path == START_PATH]


async def test_a_class_moved_from_an_hour_ahead_to_3_s_ahead_records_at_the_new_time(
    stepd: Stepd, classroom: ClassroomServer
) -> None:
    await stepd.start()
    now = whole_second(0)
    lesson = Classroom(name="moved-earlier", start=now + 3600, end=now + 7200)
    await stepd.start_execution(lesson)
    new_start = whole_second(3)
    code, out, err = await cli(
        "update", "-c", stepd.config, "classroom", lesson.name,
        "--input", json.dumps({"start": rfc3339(new_start)}), "--merge",
    )  # fmt: skip
    assert code == 0, err
    assert "updated" in out
    await wait_until(
        lambda: _has(starts(classroom, lesson.name)),
        timeout=3 + GENEROUS_SECONDS,
        what="StartRecording at the new time",
        explain=stepd.tail(),
    )
    sent = starts(classroom, lesson.name)
    assert len(sent) == 1
    assert new_start - EARLY_SLACK_SECONDS <= sent[0] < new_start + GENEROUS_SECONDS
    events = await stepd.history(lesson.name)
    updated = [e for e in events if e["type"] == "ExecutionUpdated"]
    details = updated[0]["executionUpdatedEventDetails"]
    assert (details["previousDueAt"], details["dueAt"]) == (lesson.start, new_start)
    assert details["updatedBy"] == "loopback"
    assert json.loads(details["input"])["start"] == rfc3339(new_start)


async def _has(items: list[float]) -> bool:
    return bool(items)


async def test_a_class_moved_later_does_not_record_at_the_old_time(
    stepd: Stepd, classroom: ClassroomServer
) -> None:
    await stepd.start()
    old_start = whole_second(UPDATE_LEAD_SECONDS)
    lesson = Classroom(name="moved-later", start=old_start, end=old_start + 7200)
    await stepd.start_execution(lesson)
    later = rfc3339(old_start + 3600)
    code, _, err = await cli(
        "update", "-c", stepd.config, "classroom", lesson.name,
        "--input", json.dumps({"start": later}), "--merge",
    )  # fmt: skip
    assert code == 0, err
    assert time.time() < old_start, "the update ended after the old start: nothing was tested"
    while time.time() < old_start + 3:  # past the old instant, with room for a late timer
        await asyncio.sleep(0.2)
    assert starts(classroom, lesson.name) == []
    described = await stepd.describe(lesson.name)
    assert (described["status"], described["stepd"]["dueAt"]) == ("RUNNING", old_start + 3600)


async def test_updates_that_would_change_nothing_good_are_refused(
    stepd: Stepd, classroom: ClassroomServer
) -> None:
    await stepd.start()
    now = whole_second(0)
    lesson = Classroom(name="kept", start=now + 3600, end=now + 7200)
    await stepd.start_execution(lesson)
    code, _, err = await cli(
        "update", "-c", stepd.config, "classroom", lesson.name,
        "--input", json.dumps({"start": "next tuesday"}), "--merge",
    )  # fmt: skip
    assert code == 1
    assert "RecordingWait" in err
    await stepd.ok("StopExecution", {"executionArn": _arn(lesson.name)})
    code, _, err = await cli(
        "update", "-c", stepd.config, "classroom", lesson.name, "--input", "{}", "--merge"
    )
    assert (code, "ExecutionNotRunning" in err) == (1, True)
    described = await stepd.describe(lesson.name)
    assert json.loads(described["input"]) == lesson.input


def _arn(name: str) -> str:
    return f"arn:aws:states:us-east-1:123456789012:execution:classroom:{name}"


def _timetable(path: Path, rows: list[tuple[str, int, int]]) -> Path:
    lines = ["name,classroom,start,end"]
    lines += [f"{name},{name},{rfc3339(start)},{rfc3339(end)}" for name, start, end in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


async def test_apply_starts_updates_and_prunes_and_a_second_apply_changes_nothing(
    stepd: Stepd, tmp_path: Path
) -> None:
    await stepd.start()
    hour = whole_second(3600)
    rows = [(f"class-{n}", hour + 60 * n, hour + 3600) for n in range(3)]
    table = _timetable(tmp_path / "week.csv", rows)
    code, out, err = await cli("apply", "-c", stepd.config, "classroom", table)
    assert code == 0, err
    assert "3 to start, 0 to update, 0 to stop, 0 unchanged" in out
    code, out, err = await cli("apply", "-c", stepd.config, "classroom", table)
    assert code == 0, err
    assert "0 to start, 0 to update, 0 to stop, 3 unchanged" in out
    for name, *_ in rows:
        types = [e["type"] for e in await stepd.history(name)]
        assert "ExecutionUpdated" not in types

    moved = [rows[0], (rows[1][0], rows[1][1] + 600, rows[1][2])]  # class-2 unlisted
    table = _timetable(tmp_path / "week.csv", moved)
    code, out, err = await cli("apply", "-c", stepd.config, "classroom", table, "--dry-run")
    assert code == 0, err
    assert "update  class-1" in out
    assert "dry run" in out
    assert (await stepd.describe("class-1"))["stepd"]["dueAt"] == rows[1][1]
    code, out, err = await cli("apply", "-c", stepd.config, "classroom", table, "--prune")
    assert code == 0, err
    assert "0 to start, 1 to update, 1 to stop, 1 unchanged" in out
    assert (await stepd.describe("class-1"))["stepd"]["dueAt"] == rows[1][1] + 600
    assert (await stepd.describe("class-2"))["status"] == "ABORTED"


async def test_apply_with_a_bad_row_names_its_line_and_applies_nothing(
    stepd: Stepd, tmp_path: Path
) -> None:
    await stepd.start()
    table = tmp_path / "bad.jsonl"
    good = {"start": rfc3339(whole_second(3600)), "end": rfc3339(whole_second(7200))}
    table.write_text(
        json.dumps({"name": "fine", **good}) + "\n\n" + '{"name": "broken", "start": \n',
        encoding="utf-8",
    )
    code, _, err = await cli("apply", "-c", stepd.config, "classroom", table)
    assert code == 1
    assert "line 3: not JSON" in err
    listed = await stepd.ok("ListExecutions", {"stateMachineArn": "classroom"})
    assert listed["executions"] == []


async def test_apply_reports_bad_rows_of_every_kind_at_once(stepd: Stepd, tmp_path: Path) -> None:
    """A bad name, a line that is not JSON and a move the engine refuses: all three are
    named in one answer, in line order, and nothing is applied."""
    await stepd.start()
    good = {"start": rfc3339(whole_second(3600)), "end": rfc3339(whole_second(7200))}
    await stepd.ok(
        "StartExecution",
        {"stateMachineArn": "classroom", "name": "moved", "input": json.dumps(good)},
    )
    table = tmp_path / "bad.jsonl"
    lines = [
        json.dumps({"name": "moved", "start": "tomorrow"}),
        '{"name": "broken", "start": ',
        json.dumps({"name": "has space", **good}),
        json.dumps({"name": "fine", **good}),
    ]
    table.write_text("\n".join(lines) + "\n", encoding="utf-8")
    code, _, err = await cli("apply", "-c", stepd.config, "classroom", table)
    assert code == 1
    assert "3 bad row(s)" in err, err
    said = [line.split(":", 1)[0] for line in err.splitlines() if line.startswith("line ")]
    assert said == ["line 1", "line 2", "line 3"], err
    listed = await stepd.ok("ListExecutions", {"stateMachineArn": "classroom"})
    assert [e["name"] for e in listed["executions"]] == ["moved"]


async def test_agenda_counts_what_falls_due_per_minute(stepd: Stepd, tmp_path: Path) -> None:
    await stepd.start()
    hour = whole_second(3600)
    top = hour - hour % 60 + 60
    rows = [(f"c{n}", top, top + 3600) for n in range(4)] + [("late", top + 120, top + 3600)]
    code, _, err = await cli(
        "apply", "-c", stepd.config, "classroom", _timetable(tmp_path / "t.csv", rows)
    )
    assert code == 0, err
    code, out, err = await cli(
        "agenda", "-c", stepd.config, "--from", str(top - 60), "--to", "+3h", "--json"
    )
    assert code == 0, err
    counts = {m["minute"]: m["count"] for m in json.loads(out)["minutes"]}
    assert counts == {top: 4, top + 120: 1}
    code, out, _ = await cli("agenda", "-c", stepd.config, "--from", "now", "--to", "+3h")
    assert code == 0
    assert f"{rfc3339(top)[:16]}Z       4  classroom/c0" in out


async def test_boto3_users_update_with_the_helper_and_get_client_errors(
    stepd: Stepd,
) -> None:
    await stepd.start()
    now = whole_second(0)
    lesson = Classroom(name="from-boto3", start=now + 3600, end=now + 7200)
    await stepd.start_execution(lesson)
    sfn = boto3.client(
        "stepfunctions",
        endpoint_url=stepd.url,
        region_name="us-east-1",
        aws_access_key_id="stepd",
        aws_secret_access_key="stepd",
    )
    later = rfc3339(now + 5400)
    answer = await asyncio.to_thread(
        update_execution, sfn, _arn(lesson.name), {"start": later}, merge=True
    )
    assert (answer["dueAt"], answer["previousDueAt"]) == (now + 5400, now + 3600)
    described = await asyncio.to_thread(sfn.describe_execution, executionArn=_arn(lesson.name))
    assert json.loads(described["input"])["start"] == later
    with pytest.raises(ClientError) as refused:
        await asyncio.to_thread(update_execution, sfn, _arn("nobody"), {}, merge=True)
    assert refused.value.response["Error"]["Code"] == "ExecutionDoesNotExist"


async def test_an_update_answered_survives_a_sigkill_right_after(
    stepd: Stepd, classroom: ClassroomServer
) -> None:
    await stepd.start()
    now = whole_second(0)
    lesson = Classroom(name="moved-then-killed", start=now + 3600, end=now + 7200)
    await stepd.start_execution(lesson)
    new_start = whole_second(4)
    status, answer = await _stepd_call(
        stepd,
        "Stepd.UpdateExecution",
        {
            "executionArn": _arn(lesson.name),
            "input": json.dumps({"start": rfc3339(new_start)}),
            "merge": True,
        },
    )
    stepd.kill()
    assert (status, answer["dueAt"]) == (200, new_start)
    await stepd.start()
    await wait_until(
        lambda: _has(starts(classroom, lesson.name)),
        timeout=4 + GENEROUS_SECONDS,
        what="StartRecording at the updated time after the restart",
        explain=stepd.tail(),
    )
    (sent,) = starts(classroom, lesson.name)
    assert new_start - EARLY_SLACK_SECONDS <= sent < new_start + GENEROUS_SECONDS


async def _stepd_call(stepd: Stepd, target: str, body: dict[str, object]) -> tuple[int, dict]:
    async with httpx.AsyncClient(timeout=10.0, trust_env=False) as client:
        response = await client.post(
            stepd.url + "/",
            content=json.dumps(body),
            headers={"Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": target},
        )
    return response.status_code, response.json()
