"""The state machines a config names: loaded, validated and mapped to endpoints.

`build_catalog` takes plain values (the cli and the daemon make them from the settings with
`config.machine_specs`) and never stops at the first problem: every finding is reported.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stepd.asl.loader import load_definition
from stepd.asl.validate import Finding, validate
from stepd.engine.arns import check_name
from stepd.engine.inputs import InputSchema
from stepd.engine.machines import DEFAULT_LATE_THRESHOLD_SECONDS, LATE_RUN, Machine
from stepd.errors import ApiError, ConfigError, DefinitionError
from stepd.tasks.endpoints import EndpointMap


@dataclass(frozen=True, kw_only=True)
class MachineSpec:
    """One state machine as configured: its name, where its definition is, how it runs."""

    name: str
    definition: Path  # an ASL JSON/YAML file, or a serverless.yml
    key: str | None = None  # which machine of a serverless.yml
    endpoints: Mapping[str, str] = field(default_factory=dict)  # Task name or Resource -> URL
    late_threshold_seconds: float = DEFAULT_LATE_THRESHOLD_SECONDS
    late_policy: str = LATE_RUN
    wait_for_host_seconds: float = 0.0
    input_schema: Path | None = None  # a JSON Schema file for StartExecution's input


@dataclass(frozen=True, kw_only=True)
class Report:
    """One finding about the config, located as `where: CODE: message`."""

    where: str
    code: str
    message: str
    severity: str = "error"

    def __str__(self) -> str:
        return f"{self.where}: {self.code}: {self.message}"


@dataclass(frozen=True, kw_only=True)
class Catalog:
    machines: Mapping[str, Machine]
    reports: tuple[Report, ...]

    @property
    def errors(self) -> tuple[Report, ...]:
        return tuple(r for r in self.reports if r.severity == "error")


def build_catalog(
    specs: Sequence[MachineSpec], *, base_url: str, config_source: str = "config"
) -> Catalog:
    """Load every machine in `specs`, its relative endpoints joined to `base_url`; collect
    every finding rather than stop at the first. Findings are located in `config_source`."""
    machines: dict[str, Machine] = {}
    reports: list[Report] = []
    if not specs:
        reports.append(
            Report(
                where=f"{config_source}#/machines",
                code="NO_MACHINES",
                message="no state machine is configured: add a [[machines]] table with a name "
                "and a definition",
            )
        )
    for index, spec in enumerate(specs):
        where = f"{config_source}#/machines/{index}"
        machine, found = _load_machine(spec, base_url, where)
        reports.extend(found)
        if machine is not None and not any(r.severity == "error" for r in found):
            machines[machine.name] = machine
    return Catalog(machines=machines, reports=tuple(reports))


def _load_machine(
    spec: MachineSpec, base_url: str, where: str
) -> tuple[Machine | None, list[Report]]:
    reports: list[Report] = []
    try:
        check_name(spec.name, "state machine")
    except ApiError as exc:
        reports.append(Report(where=f"{where}/name", code="INVALID_NAME", message=exc.message))
    try:
        endpoints = EndpointMap(base_url=base_url, routes=dict(spec.endpoints))
    except ConfigError as exc:
        reports.append(
            Report(where=f"{where}/endpoints", code="INVALID_ENDPOINT", message=str(exc))
        )
        endpoints = EndpointMap(base_url="", routes={})
    try:
        loaded = load_definition(spec.definition, spec.key)
    except DefinitionError as exc:
        reports.append(
            Report(
                where=exc.where or str(spec.definition),
                code="INVALID_DEFINITION",
                message=exc.message,
            )
        )
        return None, reports
    input_schema, schema_reports = _input_schema(spec.input_schema, f"{where}/input_schema")
    reports.extend(schema_reports)
    source = str(spec.definition)
    reports.extend(_report(source, finding) for finding in validate(loaded.definition))
    reports.extend(_unmapped_tasks(source, loaded.definition, endpoints))
    machine = Machine(
        name=spec.name,
        definition=loaded.definition,
        definition_text=json.dumps(loaded.definition, separators=(",", ":"), sort_keys=True),
        endpoints=endpoints,
        source=source,
        http_events=loaded.http_events,
        late_threshold_seconds=spec.late_threshold_seconds,
        late_policy=spec.late_policy,
        wait_for_host_seconds=spec.wait_for_host_seconds,
        input_schema=input_schema,
    )
    return machine, reports


def _input_schema(path: Path | None, where: str) -> tuple[InputSchema | None, list[Report]]:
    """The machine's input schema read from `path`, or the finding that says why it cannot be."""
    if path is None:
        return None, []
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        message = f"{path}: {exc.strerror or exc}"
        return None, [Report(where=where, code="INVALID_SCHEMA", message=message)]
    except ValueError as exc:
        message = f"{path}: not JSON: {exc}"
        return None, [Report(where=where, code="INVALID_SCHEMA", message=message)]
    if not isinstance(document, dict):
        message = f"{path}: a JSON Schema is an object"
        return None, [Report(where=where, code="INVALID_SCHEMA", message=message)]
    try:
        return InputSchema(document, source=path.name), []
    except ConfigError as exc:
        return None, [Report(where=str(path), code="INVALID_SCHEMA", message=str(exc))]


def _report(source: str, finding: Finding) -> Report:
    return Report(
        where=f"{source}#{finding.where}",
        code=finding.code,
        message=finding.message,
        severity=finding.severity,
    )


def _unmapped_tasks(
    source: str, definition: Mapping[str, Any], endpoints: EndpointMap
) -> Iterator[Report]:
    for pointer, name, state in _task_states(definition, ""):
        if endpoints.resolve(name, state.get("Resource")) is None:
            yield Report(
                where=f"{source}#{pointer}",
                code="UNMAPPED_TASK",
                message=f'Task state "{name}" has no endpoint: add it (or its Resource) '
                "to [machines.endpoints]",
            )


def _task_states(
    definition: Mapping[str, Any], prefix: str
) -> Iterator[tuple[str, str, Mapping[str, Any]]]:
    states = definition.get("States")
    if not isinstance(states, Mapping):
        return
    for name, state in states.items():
        if not isinstance(state, Mapping):
            continue
        pointer = f"{prefix}/States/{name}"
        if state.get("Type") == "Task":
            yield pointer, str(name), state
        for index, branch in enumerate(state.get("Branches") or []):
            if isinstance(branch, Mapping):
                yield from _task_states(branch, f"{pointer}/Branches/{index}")
        for key in ("Iterator", "ItemProcessor"):
            nested = state.get(key)
            if isinstance(nested, Mapping):
                yield from _task_states(nested, f"{pointer}/{key}")
