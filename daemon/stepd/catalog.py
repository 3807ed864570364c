"""The state machines a config names: loaded, validated and mapped to endpoints.

`build_catalog` takes plain values (the cli and the daemon make them from the settings with
`config.machine_specs`) and never stops at the first problem: every finding is reported.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stepd.asl import jsonata
from stepd.asl.http_task import connection, is_http_invoke
from stepd.asl.integrations import (
    FUNCTION_NAME,
    function_keys,
    is_lambda_invoke,
    runs_inside,
    waits_for_result,
)
from stepd.asl.loader import load_definition
from stepd.asl.validate import Finding, validate
from stepd.engine.arns import check_name
from stepd.engine.inputs import InputSchema
from stepd.engine.machines import (
    DEFAULT_LATE_THRESHOLD_SECONDS,
    EXPRESS,
    LATE_RUN,
    STANDARD,
    Machine,
)
from stepd.errors import ApiError, ConfigError, DefinitionError
from stepd.tasks.connections import Connections
from stepd.tasks.endpoints import (
    EndpointMap,
    base_url_problem,
    check_route,
    is_absolute,
    resource_keys,
    route_key,
)

SUGGESTIONS = 3  # Task states an UNUSED_ENDPOINT finding names at most as what was meant


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
    type: str = STANDARD


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
    specs: Sequence[MachineSpec],
    *,
    base_url: str,
    config_source: str = "config",
    connections: Connections | None = None,
) -> Catalog:
    """Load every machine in `specs`, its relative endpoints joined to `base_url`; collect
    every finding rather than stop at the first. Findings are located in `config_source`.
    An HTTP Task's ConnectionArn must name one of `connections`."""
    known = connections if connections is not None else Connections()
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
    problem = base_url_problem(base_url)
    if problem is not None:  # said once here, not again for every endpoint that needs it
        reports.append(
            Report(
                where=f"{config_source}#/http/base_url", code="INVALID_BASE_URL", message=problem
            )
        )
    for index, spec in enumerate(specs):
        where = f"{config_source}#/machines/{index}"
        machine, found = _load_machine(spec, base_url if problem is None else None, where, known)
        reports.extend(found)
        if machine is not None and not any(r.severity == "error" for r in found):
            machines[machine.name] = machine
    return Catalog(machines=machines, reports=tuple(reports))


def _load_machine(
    spec: MachineSpec, base_url: str | None, where: str, connections: Connections
) -> tuple[Machine | None, list[Report]]:
    """The machine of `spec` and the findings about it; `base_url` None when it is invalid."""
    reports: list[Report] = []
    try:
        check_name(spec.name, "state machine")
    except ApiError as exc:
        reports.append(Report(where=f"{where}/name", code="INVALID_NAME", message=exc.message))
    endpoints = _endpoints(spec.endpoints, base_url, where, reports)
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
    reports.extend(_unmapped_tasks(source, loaded.definition, spec.endpoints))
    if spec.type == EXPRESS:
        reports.extend(_not_for_express(source, loaded.definition))
    reports.extend(_unknown_connections(source, loaded.definition, connections))
    reports.extend(_unused_endpoints(where, spec.name, loaded.definition, spec.endpoints))
    machine = Machine(
        name=spec.name,
        definition=loaded.definition,
        definition_text=json.dumps(loaded.definition, separators=(",", ":"), sort_keys=True),
        endpoints=endpoints,
        state_endpoints=_state_endpoints(loaded.definition, endpoints.routes),
        source=source,
        http_events=loaded.http_events,
        late_threshold_seconds=spec.late_threshold_seconds,
        late_policy=spec.late_policy,
        wait_for_host_seconds=spec.wait_for_host_seconds,
        input_schema=input_schema,
        type=spec.type,
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


def _endpoints(
    routes: Mapping[str, str], base_url: str | None, where: str, reports: list[Report]
) -> EndpointMap:
    """The routes that can be called; a finding for each of the others.

    With no valid `base_url` (None), paths are left out without a finding of their own:
    INVALID_BASE_URL already says why."""
    usable = {}
    for key, route in routes.items():
        if base_url is None and not is_absolute(route):
            continue
        try:
            check_route(key, route, has_base_url=bool(base_url))
        except ConfigError as exc:
            reports.append(
                Report(where=f"{where}/endpoints", code="INVALID_ENDPOINT", message=str(exc))
            )
            continue
        usable[key] = route
    return EndpointMap(base_url=base_url or "", routes=usable)


def _state_endpoints(definition: Mapping[str, Any], routes: Mapping[str, str]) -> dict[str, str]:
    """Each Task state's endpoint in `routes` (by its name, the function it names or its
    Resource), by state name. A `lambda:invoke` Task whose function is named only when it runs
    is there only when mapped by its name: its endpoint depends on the call."""
    found = {}
    for _, name, state in _task_states(definition, ""):
        functions = _function_keys(state)
        if functions is None:
            key = name if name in routes else None
        else:
            key = route_key(routes, name, state.get("Resource"), functions)
        if key is not None:
            found[name] = routes[key]
    return found


def _unmapped_tasks(
    source: str, definition: Mapping[str, Any], routes: Mapping[str, str]
) -> Iterator[Report]:
    for pointer, name, state in _task_states(definition, ""):
        if is_http_invoke(state.get("Resource")):  # goes to its ApiEndpoint
            continue
        if runs_inside(state.get("Resource")):  # an activity or a nested execution
            continue
        functions = _function_keys(state)
        if functions is None:  # a function named when it runs: mapped by name, or not
            continue
        if route_key(routes, name, state.get("Resource"), functions) is None:
            yield Report(
                where=f"{source}#{pointer}",
                code="UNMAPPED_TASK",
                message=f'Task state "{name}" has no endpoint: add it (or its Resource) '
                "to [machines.endpoints]",
            )


def _not_for_express(source: str, definition: Mapping[str, Any]) -> Iterator[Report]:
    """An error for each Task an EXPRESS machine cannot run: one that waits for a callback,
    an activity's worker or a nested execution."""
    for pointer, name, state in _task_states(definition, ""):
        if waits_for_result(state.get("Resource")):
            yield Report(
                where=f"{source}#{pointer}/Resource",
                code="EXPRESS_UNSUPPORTED",
                message=f'Task state "{name}" waits for a result (a callback, an activity or '
                "a .sync execution), which an EXPRESS machine cannot: make the machine "
                'type = "STANDARD"',
            )


def _unknown_connections(
    source: str, definition: Mapping[str, Any], connections: Connections
) -> Iterator[Report]:
    """An error for each HTTP Task whose ConnectionArn no [[connections]] table names."""
    for pointer, name, state in _task_states(definition, ""):
        if not is_http_invoke(state.get("Resource")):
            continue
        for key in ("Parameters", "Arguments"):
            holder, arn = connection(state.get(key))
            if isinstance(arn, str) and not arn.startswith("{%") and connections.find(arn) is None:
                yield Report(
                    where=f"{source}#{pointer}/{key}/{holder}/ConnectionArn",
                    code="UNKNOWN_CONNECTION",
                    message=f'HTTP Task "{name}" uses the connection {arn!r}, which is not '
                    "configured: add a [[connections]] table with that name or arn",
                )


def _unused_endpoints(
    where: str, machine: str, definition: Mapping[str, Any], routes: Mapping[str, str]
) -> Iterator[Report]:
    """A warning for each endpoint key that no Task state goes by (a misspelt name, or the
    name of a state renamed since), naming the Task states it may have meant, the closest
    first. Removing such a line leaves the executions of an earlier definition their
    endpoints: each definition's are stored with it when it is served (Engine.register)."""
    tasks = list(_task_states(definition, ""))
    names = list(dict.fromkeys(name for _, name, _ in tasks))
    used = {
        key
        for _, name, state in tasks
        for key in (name, *(_function_keys(state) or ()), *resource_keys(state.get("Resource")))
    }
    for key in routes:
        if key in used:
            continue
        message = (
            f'"{key}" is neither a Task state nor a Task Resource of machine "{machine}", so '
            "executions of this definition never call it; executions still running an earlier "
            "definition keep the endpoints it was served with, so removing the line does not "
            f"stop them (unless only stepd 0.1 ran that definition); {_meant(key, names)}"
        )
        yield Report(
            where=f"{where}/endpoints/{key}",
            code="UNUSED_ENDPOINT",
            message=message,
            severity="warning",
        )


def _meant(key: str, names: Sequence[str]) -> str:
    """The Task states `key` may have meant: the close ones, else all, the closest first."""
    if not names:
        return "the machine has no Task state"
    close = difflib.get_close_matches(key, names, n=SUGGESTIONS)
    if close:
        return f"did you mean {_either(close)}?"
    ranked = sorted(names, key=lambda n: -difflib.SequenceMatcher(None, key, n).ratio())
    return f"its Task states are {', '.join(_quoted(ranked))}"


def _quoted(names: Sequence[str]) -> list[str]:
    return [f'"{name}"' for name in names]


def _either(names: Sequence[str]) -> str:
    quoted = _quoted(names)
    return quoted[0] if len(quoted) == 1 else f"{', '.join(quoted[:-1])} or {quoted[-1]}"


def _function_keys(state: Mapping[str, Any]) -> list[str] | None:
    """The keys of the function a `lambda:invoke` Task names in its Parameters or Arguments
    (none for another Task); None when the name is known only when it runs (`FunctionName.$`,
    a JSONata expression)."""
    if not is_lambda_invoke(state.get("Resource")):
        return []
    parameters = state.get("Parameters", state.get("Arguments"))
    if not isinstance(parameters, Mapping):
        return [] if not jsonata.is_expression(parameters) else None
    if f"{FUNCTION_NAME}.$" in parameters:
        return None
    name = parameters.get(FUNCTION_NAME)
    return None if jsonata.is_expression(name) else function_keys(name)


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
