"""Syncing a machine's executions with a timetable: `stepd apply MACHINE FILE`.

A timetable is CSV with a header row, or JSON lines (one object per line); each row is one
execution: its `name` and the fields of its input (CSV cells are strings; an empty cell leaves
its field out). Against the machine's executions it makes a plan: start the rows that have no
execution, update the running ones whose listed fields differ (merged into their input, as
`stepd update --merge`), and with `prune` stop the running executions no row names. A name
whose execution has closed is left alone (a name stays taken until retention purges it).
Every row is checked first (name, JSON, the machine's input schema, and for an update what the
engine would refuse); a bad row is reported by its line and nothing is applied.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from stepd.engine.arns import check_name
from stepd.engine.executor import Engine
from stepd.engine.history import dumps
from stepd.engine.inputs import parse_input
from stepd.errors import ApiError, ValidationException
from stepd.store.records import RUNNING, Execution

FORMATS = ("csv", "jsonl")
NAME_FIELD = "name"
LIST_PAGE = 1000  # executions read per store call
CONCURRENCY = 256  # starts, updates or stops in flight at once (the store commits them in groups)
MAX_ERRORS_SHOWN = 20

T = TypeVar("T")


@dataclass(frozen=True, kw_only=True)
class Row:
    line: int  # 1-based line of the file the row starts on
    name: str
    fields: dict[str, Any]


@dataclass(kw_only=True)
class Plan:
    start: list[Row] = field(default_factory=list)
    update: list[tuple[Row, dict[str, Any]]] = field(default_factory=list)  # row, old values
    stop: list[str] = field(default_factory=list)
    unchanged: int = 0
    closed: list[str] = field(default_factory=list)  # listed, but their execution has closed
    kept: list[str] = field(default_factory=list)  # running, unlisted, not stopped (no prune)

    def as_json(self) -> dict[str, Any]:
        return {
            "start": [{"name": r.name, "line": r.line, "input": r.fields} for r in self.start],
            "update": [
                {
                    "name": r.name,
                    "line": r.line,
                    "changes": {k: {"from": old.get(k), "to": v} for k, v in r.fields.items()},
                }
                for r, old in self.update
            ],
            "stop": self.stop,
            "unchanged": self.unchanged,
            "closed": self.closed,
            "kept": self.kept,
        }


def parse(text: str, fmt: str) -> list[Row]:
    """The rows of a timetable. Raises ValidationException listing each bad line."""
    rows, errors = _rows(text, fmt)
    _raise(errors)
    return rows


def _rows(text: str, fmt: str) -> tuple[list[Row], list[str]]:
    """The good rows of a timetable, and what is wrong with each bad one."""
    if fmt not in FORMATS:
        raise ValidationException(f"'format' must be one of {', '.join(FORMATS)}, not '{fmt}'")
    text = text.removeprefix("\ufeff")  # a spreadsheet's byte order mark
    errors: list[str] = []
    rows: list[Row] = []
    seen: dict[str, int] = {}
    for line, item in _csv_rows(text, errors) if fmt == "csv" else _json_rows(text, errors):
        name = item.pop(NAME_FIELD, None)
        if not isinstance(name, str) or not name:
            errors.append(f"line {line}: no '{NAME_FIELD}'")
            continue
        try:
            check_name(name)
        except ApiError as exc:
            errors.append(f"line {line}: {exc.message}")
            continue
        if name in seen:
            errors.append(f"line {line}: '{name}' is listed already on line {seen[name]}")
            continue
        seen[name] = line
        rows.append(Row(line=line, name=name, fields=item))
    return rows, errors


def _csv_rows(text: str, errors: list[str]) -> Iterator[tuple[int, dict[str, Any]]]:
    reader = csv.reader(io.StringIO(text))
    header: list[str] | None = None
    for cells in reader:
        line = reader.line_num
        if not any(cell.strip() for cell in cells):
            continue
        if header is None:
            header = [cell.strip() for cell in cells]
            if NAME_FIELD not in header:
                errors.append(f"line {line}: the header has no '{NAME_FIELD}' column")
                return
            continue
        if len(cells) != len(header):
            errors.append(f"line {line}: {len(cells)} cells, the header has {len(header)}")
            continue
        yield line, {k: v for k, v in zip(header, cells, strict=True) if v != ""}
    if header is None:
        errors.append("line 1: no header row (CSV needs one, with a 'name' column)")


def _json_rows(text: str, errors: list[str]) -> Iterator[tuple[int, dict[str, Any]]]:
    for line, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            item = json.loads(raw)
        except ValueError as exc:
            errors.append(f"line {line}: not JSON: {exc}")
            continue
        if not isinstance(item, dict):
            errors.append(f"line {line}: not a JSON object")
            continue
        yield line, item


def _raise(errors: Sequence[str]) -> None:
    if not errors:
        return
    errors = sorted(errors, key=_line)
    shown = list(errors[:MAX_ERRORS_SHOWN])
    if len(errors) > MAX_ERRORS_SHOWN:
        shown.append(f"and {len(errors) - MAX_ERRORS_SHOWN} more")
    raise ValidationException(
        f"{len(errors)} bad row(s); nothing was applied:\n" + "\n".join(shown)
    )


def _line(error: str) -> int:
    """The line number an error (`line N: ...`) names."""
    return int(error.split(":", 1)[0].removeprefix("line "))


def plan(rows: Sequence[Row], executions: Sequence[Execution], *, prune: bool) -> Plan:
    """What applying `rows` to a machine with `executions` does."""
    made = Plan()
    by_name = {e.name: e for e in executions}
    listed = set()
    for row in rows:
        listed.add(row.name)
        execution = by_name.get(row.name)
        if execution is None:
            made.start.append(row)
        elif execution.status != RUNNING:
            made.closed.append(row.name)
        else:
            current = _object(execution.input)
            if all(k in current and current[k] == v for k, v in row.fields.items()):
                made.unchanged += 1
            else:
                made.update.append((row, {k: current.get(k) for k in row.fields}))
    unlisted = sorted(e.name for e in executions if e.status == RUNNING and e.name not in listed)
    if prune:
        made.stop = unlisted
    else:
        made.kept = unlisted
    return made


def _object(text: str) -> dict[str, Any]:
    value = json.loads(text)
    return value if isinstance(value, dict) else {}


async def apply(
    engine: Engine,
    machine: str,
    text: str,
    fmt: str,
    *,
    prune: bool,
    dry_run: bool,
    by: str,
) -> dict[str, Any]:
    """Check `text` and make `machine`'s executions match it; the plan, and what failed.
    Every row is checked before anything is applied: a bad one of any kind is reported with
    the others, by line."""
    rows, errors = _rows(text, fmt)
    schema = engine.machine(machine).input_schema
    executions = await _all_executions(engine, machine)
    made = plan(rows, executions, prune=prune)
    by_name = {e.name: e for e in executions}
    for row in made.start:
        try:
            parse_input(dumps(row.fields))
            if schema is not None:
                schema.check(row.fields)
        except ApiError as exc:
            errors.append(f"line {row.line}: {exc.message}")
    for row, _ in made.update:
        try:
            await engine.preview_update(by_name[row.name], row.fields, merge=True, by=by)
        except ApiError as exc:
            errors.append(f"line {row.line}: {exc.message}")
    _raise(errors)
    answer: dict[str, Any] = {"plan": made.as_json(), "applied": not dry_run, "failed": []}
    if dry_run:
        return answer

    async def start(row: Row) -> None:
        await engine.start_execution(machine, row.name, dumps(row.fields))

    async def update(item: tuple[Row, dict[str, Any]]) -> None:
        row = item[0]
        await engine.update_execution(machine, row.name, dumps(row.fields), merge=True, by=by)

    async def stop(name: str) -> None:
        await engine.stop_execution(machine, name, "Stepd.Unlisted", f"not in the timetable ({by})")

    failed: list[dict[str, str]] = []
    await _each(made.start, start, lambda r: r.name, failed)
    await _each(made.update, update, lambda item: item[0].name, failed)
    await _each(made.stop, stop, lambda name: name, failed)
    answer["failed"] = failed
    return answer


async def _all_executions(engine: Engine, machine: str) -> list[Execution]:
    found: list[Execution] = []
    before: int | None = None
    while True:
        page = await engine.list_executions(
            machine=machine, status=None, limit=LIST_PAGE, before_id=before
        )
        found.extend(page)
        if len(page) < LIST_PAGE:
            return found
        before = page[-1].id


async def _each(
    items: Sequence[T],
    action: Callable[[T], Awaitable[None]],
    name_of: Callable[[T], str],
    failed: list[dict[str, str]],
) -> None:
    """Run `action` on every item, CONCURRENCY at a time; what raised goes to `failed`."""
    for first in range(0, len(items), CONCURRENCY):
        chunk = items[first : first + CONCURRENCY]
        results = await asyncio.gather(*(action(item) for item in chunk), return_exceptions=True)
        for item, result in zip(chunk, results, strict=True):
            if isinstance(result, ApiError):
                failed.append({"name": name_of(item), "error": result.message})
            elif isinstance(result, BaseException):
                raise result
