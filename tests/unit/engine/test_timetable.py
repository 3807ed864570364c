"""Timetables (`stepd apply`): reading CSV and JSON lines, and the plan against executions."""

from __future__ import annotations

import json

import pytest

from stepd.engine.timetable import Row, parse, plan
from stepd.errors import ValidationException
from stepd.store.records import ABORTED, RUNNING, SUCCEEDED, Execution


def execution(name: str, status: str = RUNNING, **fields: str) -> Execution:
    return Execution(
        id=abs(hash(name)) % 10_000 + 1,
        machine="classroom",
        name=name,
        definition_id=1,
        input=json.dumps(fields),
        start_date=1.0,
        status=status,
    )


def test_csv_rows_carry_their_line_and_leave_empty_cells_out() -> None:
    text = 'name,start,room\n\nc1,2027-01-15T09:00:00Z,\nc2,2027-01-15T10:00:00Z,"r,2"\n'
    assert parse(text, "csv") == [
        Row(line=3, name="c1", fields={"start": "2027-01-15T09:00:00Z"}),
        Row(line=4, name="c2", fields={"start": "2027-01-15T10:00:00Z", "room": "r,2"}),
    ]


def test_json_lines_keep_their_values() -> None:
    text = '{"name": "c1", "start": "x", "seats": 30}\n\n{"name": "c2", "tags": ["a"]}\n'
    assert parse(text, "jsonl") == [
        Row(line=1, name="c1", fields={"start": "x", "seats": 30}),
        Row(line=3, name="c2", fields={"tags": ["a"]}),
    ]


@pytest.mark.parametrize(
    ("text", "fmt", "says"),
    [
        pytest.param("start\n1\n", "csv", "line 1: the header has no 'name'", id="no-name-column"),
        pytest.param("name,start\nc1\n", "csv", "line 2: 1 cells, the header has 2", id="cells"),
        pytest.param(
            "name\nc1\nc1\n", "csv", "line 3: 'c1' is listed already on line 2", id="twice"
        ),
        pytest.param("name\nbad name\n", "csv", "line 2: Invalid Name", id="name"),
        pytest.param('{"name": "a"}\n[1]\n', "jsonl", "line 2: not a JSON object", id="array"),
        pytest.param('{"name": "a"}\n{"name"\n', "jsonl", "line 2: not JSON", id="json"),
        pytest.param('{"start": "x"}\n', "jsonl", "line 1: no 'name'", id="no-name"),
        pytest.param("", "csv", "no header row", id="empty"),
        pytest.param("name\n", "yaml", "'format' must be one of", id="format"),
    ],
)
def test_bad_rows_are_named_by_line(text: str, fmt: str, says: str) -> None:
    with pytest.raises(ValidationException, match=says):
        parse(text, fmt)


def test_every_bad_line_is_reported_at_once() -> None:
    with pytest.raises(ValidationException) as refused:
        parse("name,start\na\nb,1\nc\n", "csv")
    assert refused.value.message.startswith("2 bad row(s); nothing was applied")
    assert "line 2:" in refused.value.message
    assert "line 4:" in refused.value.message


def test_the_plan_starts_new_rows_updates_moved_ones_and_keeps_the_rest() -> None:
    rows = [
        Row(line=2, name="new", fields={"start": "9"}),
        Row(line=3, name="same", fields={"start": "9"}),
        Row(line=4, name="moved", fields={"start": "10"}),
        Row(line=5, name="done", fields={"start": "1"}),
    ]
    executions = [
        execution("same", start="9", end="11"),
        execution("moved", start="9", end="11"),
        execution("done", SUCCEEDED, start="0"),
        execution("gone", start="8"),
        execution("stopped-before", ABORTED, start="8"),
    ]
    made = plan(rows, executions, prune=False)
    assert [r.name for r in made.start] == ["new"]
    assert [(r.name, old) for r, old in made.update] == [("moved", {"start": "9"})]
    assert (made.unchanged, made.closed, made.kept, made.stop) == (1, ["done"], ["gone"], [])
    assert plan(rows, executions, prune=True).stop == ["gone"]


def test_a_field_the_input_lacks_is_a_change() -> None:
    made = plan([Row(line=2, name="c", fields={"room": "r1"})], [execution("c")], prune=False)
    assert [r.name for r, _ in made.update] == ["c"]


def test_a_spreadsheets_byte_order_mark_is_not_part_of_the_header() -> None:
    assert parse("\ufeffname,start\nc1,x\n", "csv") == [
        Row(line=2, name="c1", fields={"start": "x"})
    ]
