"""Pending records on disk: every release's format is read, unknown shapes are refused."""

from __future__ import annotations

import json
import re
from dataclasses import fields, replace

import pytest

from stepd.errors import RecordError
from stepd.store.formats import (
    FORMAT_VERSION,
    decode_pending,
    decode_variables,
    encode_pending,
    encode_variables,
)
from stepd.store.records import (
    PROGRESS_FIELDS,
    Fanout,
    NewEvent,
    Pending,
    Progress,
    Resume,
    TaskCall,
    WaitThen,
    new_event,
    progress_of,
)
from stepd.store.rows import PROGRESS_COLUMNS, progress_values

# What stepd 0.1 wrote in the `pending` column, in each position an execution can be in.
FORMAT_0 = [
    ("nothing pending", "{}", None),
    (
        "a Wait going on",
        '{"then": {"next": "StartRecording", "output": "{\\"a\\": 1}"}}',
        WaitThen(next_state="StartRecording", output='{"a": 1}'),
    ),
    (
        "a Wait that ends the execution",
        '{"then": {"next": null, "output": "{}"}}',
        WaitThen(next_state=None, output="{}"),
    ),
    (
        "a task due, not sent",
        (
            '{"resource": "arn:aws:lambda:us-east-1:1:function:f", "payload": "{}",'
            ' "timeout": null, "sent": false, "due": 100.5}'
        ),
        TaskCall(
            resource="arn:aws:lambda:us-east-1:1:function:f",
            payload="{}",
            timeout_seconds=None,
            due=100.5,
        ),
    ),
    (
        "a task call in flight",
        (
            '{"resource": "r", "payload": "{\\"x\\": 2}", "timeout": 30, "sent": true,'
            ' "due": 100, "sent_at": 100.25}'
        ),
        TaskCall(
            resource="r",
            payload='{"x": 2}',
            timeout_seconds=30.0,
            due=100.0,
            sent=True,
            sent_at=100.25,
        ),
    ),
    (
        "a task in a Retry back-off",
        (
            '{"resource": {"Fn::GetAtt": ["f", "Arn"]}, "payload": "{}", "timeout": null,'
            ' "sent": false, "due": 105.0, "sent_at": 100.1, "first_due": 100.0}'
        ),
        TaskCall(
            resource={"Fn::GetAtt": ["f", "Arn"]},
            payload="{}",
            timeout_seconds=None,
            due=105.0,
            first_due=100.0,
            sent_at=100.1,
        ),
    ),
    (
        "a task waiting for its host",
        (
            '{"resource": "r", "payload": "{}", "timeout": null, "sent": false, "due": 100.0,'
            ' "waiting_since": 101.0}'
        ),
        TaskCall(resource="r", payload="{}", timeout_seconds=None, due=100.0, waiting_since=101.0),
    ),
]


@pytest.mark.parametrize(
    ("text", "expected"),
    [(text, expected) for _, text, expected in FORMAT_0],
    ids=[name for name, _, _ in FORMAT_0],
)
def test_records_written_by_stepd_0_1_are_read(text: str, expected: Pending):
    """Every position stepd 0.1 stored an execution in reads back as the same record."""
    assert decode_pending(text) == expected


@pytest.mark.parametrize(
    "record", [expected for _, _, expected in FORMAT_0], ids=[name for name, _, _ in FORMAT_0]
)
def test_records_round_trip_through_the_current_format(record: Pending):
    """What is written is read back unchanged, and carries the format version."""
    text = encode_pending(record)
    assert decode_pending(text) == record
    if text is not None:
        assert json.loads(text)["v"] == FORMAT_VERSION


def test_the_format_on_disk_is_pinned():
    """The keys on disk do not follow field names: renaming a field cannot change them."""
    task = TaskCall(
        resource="r",
        payload="{}",
        timeout_seconds=5.0,
        due=1.0,
        first_due=0.5,
        sent=True,
        sent_at=1.5,
        waiting_since=0.75,
    )
    assert json.loads(encode_pending(task) or "") == {
        "v": 6,
        "task": {
            "resource": "r",
            "payload": "{}",
            "timeout": 5.0,
            "due": 1.0,
            "first_due": 0.5,
            "sent": True,
            "sent_at": 1.5,
            "waiting_since": 0.75,
        },
    }
    wait = WaitThen(next_state="B", output="[]")
    assert json.loads(encode_pending(wait) or "") == {
        "v": 6,
        "wait": {"next": "B", "output": "[]"},
    }
    fanout = Fanout(kind="Map", total=3, started_event=4, limit=2, next_slot=2, running=1)
    assert json.loads(encode_pending(fanout) or "") == {
        "v": 6,
        "fanout": {
            "kind": "Map",
            "total": 3,
            "started_event": 4,
            "limit": 2,
            "next_slot": 2,
            "running": 1,
            "succeeded": 0,
            "failed": 0,
        },
    }


def test_resume_records_are_pinned_and_round_trip():
    """A closed execution's resume record, with or without its fan-out, is written as format 6
    and read back unchanged."""
    assert json.loads(encode_pending(Resume()) or "") == {"v": 6, "resume": {}}
    fanout = Fanout(kind="Parallel", total=2, started_event=7, limit=2, next_slot=2, failed=1)
    text = encode_pending(Resume(fanout=fanout))
    assert json.loads(text or "")["resume"]["fanout"]["started_event"] == 7
    assert decode_pending(text) == Resume(fanout=fanout)


def test_records_written_by_stepd_0_3_are_read():
    """Format 2 (main before redrive) fan-out records read back as written."""
    text = (
        '{"v": 2, "fanout": {"kind": "Map", "total": 3, "started_event": 4, "limit": 2,'
        ' "next_slot": 2, "running": 1, "succeeded": 0, "failed": 0}}'
    )
    assert decode_pending(text) == Fanout(
        kind="Map", total=3, started_event=4, limit=2, next_slot=2, running=1
    )


def test_records_written_by_stepd_0_2_are_read():
    """Format 1 (stepd 0.2) wait and task records read back as written."""
    text = '{"v": 1, "wait": {"next": "B", "output": "[]"}}'
    assert decode_pending(text) == WaitThen(next_state="B", output="[]")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"v": 7, "task": {}}', "format 7, newer than this stepd reads (6)"),
        ('{"v": 1, "fanout": {}}', "unknown keys fanout"),
        ('{"v": 2, "resume": {}}', "unknown keys resume"),
        ('{"v": 3, "resume": {"state": "A"}}', "unknown keys state"),
        ('{"v": 3, "resume": {"fanout": {"kind": "Map"}}}', "lacks failed, limit"),
        ('{"v": 3, "variables": {}}', "unknown keys variables"),
        ('{"v": 3, "resume": {}, "wait": {"next": "B", "output": "{}"}}', "more than one"),
        ('{"v": 2, "fanout": {"kind": "Map"}}', "lacks failed, limit"),
        (
            (
                '{"v": 2, "fanout": {"kind": "Loop", "total": 1, "started_event": 1,'
                ' "limit": 1, "next_slot": 0, "running": 0, "succeeded": 0, "failed": 0}}'
            ),
            "kind has the wrong type",
        ),
        (
            (
                '{"v": 2, "fanout": {"kind": "Map", "total": -1, "started_event": 1,'
                ' "limit": 1, "next_slot": 0, "running": 0, "succeeded": 0, "failed": 0}}'
            ),
            "total has the wrong type",
        ),
        ('{"v": 2, "wait": {"next": "B", "output": "{}"}, "task": {}}', "more than one"),
        ('{"v": 1, "wait": {"next": "B", "output": "{}", "extra": 1}}', "unknown keys extra"),
        ('{"v": 1, "wait": {"output": "{}"}}', "lacks next"),
        ('{"v": 1, "task": {"resource": "r", "payload": "{}", "timeout": null}}', "lacks due"),
        (
            (
                '{"v": 1, "task": {"resource": "r", "payload": 3, "timeout": null, "due": 1,'
                ' "sent": false}}'
            ),
            "payload has the wrong type",
        ),
        ('{"v": 1}', "neither a wait nor a task"),
        ('{"v": 1, "wait": {"next": 1, "output": "{}"}}', "next has the wrong type"),
        ('{"then": {"next": "B", "output": "{}"}, "other": 1}', "unknown keys other"),
        ("[1]", "not a JSON object"),
        ("{oops", "not JSON"),
    ],
)
def test_a_record_of_unknown_shape_is_refused_by_name(text: str, message: str):
    """A record this stepd cannot read raises RecordError saying what is wrong, never a
    defaulted value."""
    with pytest.raises(RecordError, match=re.escape(message)):
        decode_pending(text)


def test_every_progress_field_has_a_column():
    """The SQLite store writes every field of Progress, each to its own column."""
    assert tuple(PROGRESS_COLUMNS) == PROGRESS_FIELDS
    assert len(set(PROGRESS_COLUMNS.values())) == len(PROGRESS_COLUMNS)
    assert {f.name for f in fields(Progress)} == set(PROGRESS_FIELDS)
    # each field's own value lands in its column (distinct values, read back in order)
    distinct = Progress(
        status="RUNNING",
        state="S",
        phase="wait",
        data='{"d":1}',
        state_entered_event=7,
        state_entered_at=1.5,
        attempt=2,
        retry_counts=(1, 2),
        due_at=9.5,
        stop_date=10.5,
        output='{"o":1}',
        error="E",
        cause="C",
        variables='{"x":1}',
    )
    values = dict(zip(PROGRESS_COLUMNS, progress_values(distinct), strict=True))
    for name in PROGRESS_FIELDS:
        if name not in {"pending", "retry_counts", "variables"}:
            assert values[name] == getattr(distinct, name), name
    assert (values["pending"], values["retry_counts"]) == (None, "[1, 2]")
    assert decode_variables(values["variables"]) == '{"x":1}'


def test_variables_are_written_as_a_current_format_record():
    """The variables column holds `{"v": 6, "variables": {...}}`, read back as the object."""
    text = encode_variables('{"x":1}')
    assert json.loads(text or "") == {"v": 6, "variables": {"x": 1}}
    assert decode_variables(text) == '{"x":1}'
    assert decode_variables(None) is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"v": 2, "variables": {}}', "format 2, before variables existed"),
        ('{"v": 7, "variables": {}}', "format 7, newer than this stepd reads (6)"),
        ('{"v": 3, "variables": []}', "variables has the wrong type"),
        ('{"v": 3, "variables": {}, "x": 1}', "unknown keys x"),
        ('{"v": 3}', "lacks variables"),
        ('{"v": 3, "resume": {}}', "lacks variables"),
        ('{"v": 3, "variables": {}, "resume": {}}', "unknown keys resume"),
        ("[1]", "not a JSON object"),
    ],
)
def test_a_variables_record_of_unknown_shape_is_refused(text: str, message: str):
    """A variables record this stepd cannot read raises RecordError saying what is wrong."""
    with pytest.raises(RecordError, match=re.escape(message)):
        decode_variables(text)


def test_callback_tasks_are_pinned_and_round_trip():
    """A `.waitForTaskToken` task keeps its token, heartbeat and callback wait (format 4 on)."""
    task = TaskCall(
        resource="arn:aws:states:::lambda:invoke.waitForTaskToken",
        payload="{}",
        timeout_seconds=60.0,
        due=1.0,
        sent=True,
        sent_at=1.5,
        token="tok",
        heartbeat_seconds=10.0,
        answered_at=2.0,
        heartbeat_at=3.0,
    )
    stored = json.loads(encode_pending(task) or "")
    assert stored["v"] == FORMAT_VERSION
    assert {
        k: stored["task"][k] for k in ("token", "heartbeat", "answered_at", "heartbeat_at")
    } == {
        "token": "tok",
        "heartbeat": 10.0,
        "answered_at": 2.0,
        "heartbeat_at": 3.0,
    }
    assert decode_pending(encode_pending(task)) == task


def test_callback_keys_are_unknown_to_format_3():
    """A format 3 task record with a token was not written by any stepd: refused."""
    body = {"resource": "r", "payload": "{}", "timeout": None, "due": 1, "sent": True}
    text = json.dumps({"v": 3, "task": {**body, "token": "t"}})
    with pytest.raises(RecordError, match="unknown keys token"):
        decode_pending(text)


def test_activity_tasks_are_pinned_and_round_trip():
    """An activity's task recorded with Activity* events says so (format 5); a task that is
    not writes no key for it."""
    task = TaskCall(
        resource="arn:aws:states:us-east-1:123456789012:activity:grade",
        payload="{}",
        timeout_seconds=None,
        due=1.0,
        sent=True,
        token="tok",
        activity_events=True,
    )
    stored = json.loads(encode_pending(task) or "")
    assert stored["v"] == 6
    assert stored["task"]["activity"] is True
    assert decode_pending(encode_pending(task)) == task
    plain = json.loads(encode_pending(replace(task, activity_events=False)) or "")
    assert "activity" not in plain["task"]


def test_activity_tasks_of_format_4_keep_their_task_events():
    """A format 4 activity task (stored by a stepd that recorded Task* events for it) reads
    back as one that goes on recording Task* events; the key is unknown to format 4."""
    body = {"resource": "r", "payload": "{}", "timeout": None, "due": 1, "sent": True}
    assert decode_pending(json.dumps({"v": 4, "task": {**body, "token": "t"}})) == TaskCall(
        resource="r", payload="{}", timeout_seconds=None, due=1.0, sent=True, token="t"
    )
    with pytest.raises(RecordError, match="unknown keys activity"):
        decode_pending(json.dumps({"v": 4, "task": {**body, "activity": True}}))
    with pytest.raises(RecordError, match="activity"):
        decode_pending(json.dumps({"v": 5, "task": {**body, "activity": "yes"}}))


def test_the_quick_constructors_make_what_the_dataclasses_make() -> None:
    """A Progress made from every field's value, and a new event, are equal to the ones the
    dataclasses' own constructors make (a field added to Progress and not to the values
    fails here)."""
    values = {name: getattr(Progress(status="RUNNING"), name) for name in PROGRESS_FIELDS}
    values.update(state="Ping", due_at=5.0, retry_counts=(1, 2), variables='{"a":1}')
    assert progress_of(values) == Progress(**values)
    assert vars(progress_of(values)) == vars(Progress(**values))
    assert new_event("TaskStarted", {"resource": "ping"}, 3.5) == NewEvent(
        type="TaskStarted", details={"resource": "ping"}, ts=3.5
    )


def test_a_map_runs_fan_out_keeps_its_run_and_older_formats_know_no_run():
    """A DISTRIBUTED Map's fan-out record keeps the id of its MapRunStarted (format 6); the key
    is unknown to format 5, whose fan-outs read back as running no Map Run."""
    fanout = Fanout(kind="Map", total=3, started_event=4, limit=2, map_run=5)
    text = encode_pending(fanout)
    assert json.loads(text or "")["fanout"]["map_run"] == 5
    assert decode_pending(text) == fanout
    body = {"kind": "Map", "total": 3, "started_event": 4, "limit": 2, "next_slot": 0}
    body |= {"running": 0, "succeeded": 0, "failed": 0}
    assert decode_pending(json.dumps({"v": 5, "fanout": body})) == replace(fanout, map_run=None)
    with pytest.raises(RecordError, match="unknown keys map_run"):
        decode_pending(json.dumps({"v": 5, "fanout": {**body, "map_run": 5}}))
    with pytest.raises(RecordError, match="map_run"):
        decode_pending(json.dumps({"v": 6, "fanout": {**body, "map_run": "five"}}))
