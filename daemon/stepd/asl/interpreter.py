"""The pure ASL interpreter: what to do when a state is entered and when its task ends.

Every function takes the definition (a plain dict), the state's name and its raw input, and
returns a decision from `stepd.asl.decisions`; nothing here reads a clock, does I/O or draws
randomness it was not given. A state that cannot run returns `Fail(error="States.Runtime")`
with the cause AWS gives; the engine adds the "An error occurred while executing the state"
prefix itself.

Choices where AWS is silent or unverified:
- `Seconds[Path]` waits end at exactly `now + seconds` (not truncated); `Timestamp[Path]`
  waits end at the timestamp truncated to whole seconds. A past instant is returned as is.
- A timestamp with a numeric offset (`+02:00`) is accepted (the spec allows it).
- `SecondsPath` must reference a JSON integer: `"10"`, `1.0` and `true` fail.
- An `InputPath` or `OutputPath` starting `$$` reads the context object (statelint allows it).
- `TimeoutSecondsPath`, `SecondsPath` and `TimestampPath` read the input after `InputPath`;
  they are reference paths (no `*`), and a `$$…` path reads the context object.
- A path, intrinsic call or timestamp the parsers refuse fails the state with States.Runtime
  and a cause starting "The definition is invalid: "; `stepd check` reports the same problem.
- A `ResultSelector` or `ResultPath` failure after a task succeeded is never retried (the
  task must not run twice); `States.ResultPathMatchFailure` can be caught by a catcher.
- A Fail state without `Error` fails with `error=""` (AWS reports no error name).
- A Choice with no match and no Default fails with `States.Runtime` (not NoChoiceMatched).
- A catcher's `{"Error", "Cause"}` output has no `Cause` when the task gave none.
- Parallel and Map: the children run in stepd's engine; here a `FanOut` lists their inputs.
  A Map whose ItemsPath is not an array fails with States.Runtime ("...must reference a JSON
  array"; AWS's exact wording is unverified). At most 40 Map children run at once
  (MaxConcurrency 0 or above 40 means 40), as AWS runs inline Maps; Parallel branches all run.
  ItemBatcher (MaxItemsPerBatch[Path], MaxInputBytesPerBatch[Path], BatchInput) batches the
  items after ItemSelector. Exceeding ToleratedFailureCount/Percentage fails with
  States.ExceedToleratedFailureThreshold; without them any failed child fails the state.
- `States.UUID` and `States.MathRandom` draw from a generator seeded by the execution, the
  state, its entry time and its retry count, so evaluating a state again gives the same values.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final, TypeAlias

from stepd.asl import jsonata, paths, payload
from stepd.asl.choice import matches
from stepd.asl.decisions import (
    CallTask,
    Caught,
    Context,
    ContextObject,
    Fail,
    FanOut,
    GoTo,
    RetryAt,
    Succeed,
    Variables,
    WaitUntil,
    iso_millis,
)
from stepd.asl.failures import STATES_RUNTIME, reported
from stepd.asl.intrinsics import Random, seeded_random
from stepd.asl.retry import error_output, find_catcher, next_retry
from stepd.asl.timestamps import parse_literal, parse_timestamp, truncate_to_seconds
from stepd.errors import (
    DefinitionError,
    InvalidTimestampError,
    ItemReaderNotRun,
    MapRunNotStarted,
    PathError,
    QueryEvaluationError,
    ResultPathMatchError,
    StateError,
    StatesRuntimeError,
)

MAX_TIMEOUT_SECONDS: Final = 99_999_999  # AWS's bound on TimeoutSeconds, HeartbeatSeconds
ITEM_READER_NOT_RUN: Final = (
    "The Map state reads its items with an ItemReader, which stepd does not run (it reads no "
    "S3 object or listing): give the items in the state's input (ItemsPath, or Items in "
    "JSONata)"
)
MAX_WAIT_DELAY_SECONDS: Final = 2**31 - 1  # AWS: now + 24855 days is accepted, 24856 is not
MAX_LONG: Final = 2**63 - 1  # SecondsPath is read as a Java long
WAIT_TOO_LONG: Final = "Wait state delay is too long."
NO_CHOICE_MATCHED: Final = (
    "No choice rule matched and the Choice state has no Default (States.NoChoiceMatched)."
)
MAX_INLINE_CONCURRENCY: Final = 40  # AWS runs at most 40 inline Map iterations at once
MAX_ASSIGN_BYTES: Final = 256 * 1024  # bytes of JSON one state's Assign may set
MAX_VARIABLES_BYTES: Final = 10 * 1024 * 1024  # bytes of JSON of every variable of an execution
JSONATA: Final = "JSONata"

Definition: TypeAlias = Mapping[str, Any]
State: TypeAlias = Mapping[str, Any]
Entered: TypeAlias = GoTo | Succeed | Fail | WaitUntil | CallTask | FanOut


# --- public API -------------------------------------------------------------------------


def start_state(definition: Definition) -> str:
    """The name of the state an execution starts in."""
    start = definition.get("StartAt")
    if not isinstance(start, str):
        raise DefinitionError("The definition has no StartAt")
    return start


def enter(
    definition: Definition, state_name: str, state_input: Any, ctx: Context, now: datetime
) -> Entered | Caught:
    """Run `state_name` on entry: everything but a Task completes here; a Task asks to be called.

    `now` is the aware UTC instant of entry; Wait states measure from it.
    """
    try:
        state = _state(definition, state_name)
        kind = state.get("Type")
        table = _ENTER_JSONATA if is_jsonata(definition, state) else _ENTER
        handler = table.get(kind) if isinstance(kind, str) else None
        if handler is None:
            raise StatesRuntimeError(f"The state type '{kind}' is unknown")
        return handler(state, state_input, ctx, now)
    except MapRunNotStarted as failure:
        return Fail(error=failure.error, cause=failure.message, map_items=failure.items)
    except ItemReaderNotRun as failure:  # a Catch of the state takes it
        return _catch(definition, state, state_input, failure.error, failure.message, ctx, now)
    except StateError as failure:
        return Fail(error=failure.error, cause=failure.message)


def branch(definition: Definition, state_name: str, slot: int) -> Definition:
    """The definition a child of the Parallel or Map state `state_name` runs, in `slot`."""
    state = _state(definition, state_name)
    if state.get("Type") == "Parallel":
        branches = state.get("Branches")
        if not isinstance(branches, list) or not 0 <= slot < len(branches):
            raise DefinitionError(f"The Parallel state '{state_name}' has no branch {slot}")
        child = branches[slot]
    else:
        child = state.get("ItemProcessor", state.get("Iterator"))
    if not isinstance(child, Mapping):
        raise DefinitionError(f"The state '{state_name}' has no definition for its children")
    language = definition.get("QueryLanguage")
    if language is not None and "QueryLanguage" not in child:
        return {**child, "QueryLanguage": language}  # nested states default to the machine's
    return child


def distributed(definition: Definition, state_name: str) -> bool:
    """Whether `state_name` is a Map state whose children run in DISTRIBUTED mode (a Map Run:
    its own history events, the children's apart)."""
    states = definition.get("States")
    state = states.get(state_name) if isinstance(states, (dict, Mapping)) else None
    return (
        isinstance(state, (dict, Mapping))
        and state.get("Type") == "Map"
        and _runs_distributed(state)
    )


def _runs_distributed(state: State) -> bool:
    processor = state.get("ItemProcessor", state.get("Iterator"))
    config = processor.get("ProcessorConfig") if isinstance(processor, Mapping) else None
    return isinstance(config, Mapping) and config.get("Mode") == "DISTRIBUTED"


def map_label(definition: Definition, state_name: str) -> str | None:
    """The Label of the Map state `state_name`, if it has one."""
    label = _state(definition, state_name).get("Label")
    return label if isinstance(label, str) and label else None


def map_inputs(  # noqa: PLR0917 - the engine's call, one value per fact
    definition: Definition,
    state_name: str,
    state_input: Any,
    ctx: Context,
    now: datetime,
    start: int,
    stop: int,
) -> list[Any]:
    """The inputs of the children in slots [start, stop) of the Map state `state_name` that
    `enter` fanned out with `state_input`, `ctx` and `now`: the same values its FanOut listed
    for these slots, evaluating ItemSelector and ItemBatcher for them only. Raises StateError
    when the state cannot give them (it could when entered: the definition changed)."""
    state = _state(definition, state_name)
    if is_jsonata(definition, state):
        items = _field(state, "Items", _scope(ctx, now, input=state_input), state_input)
        if not isinstance(items, list):
            raise StatesRuntimeError("The Map state's Items is not an array any more")
        return _jsonata_map_inputs(state, state_input, items, ctx, now, start, stop)
    effective = _apply_input_path(state, state_input, ctx)
    context = ctx.as_json()
    items = paths.resolve(state.get("ItemsPath", paths.ROOT), effective, context)
    if not isinstance(items, list):
        raise StatesRuntimeError("The Map state's ItemsPath no longer references an array")
    return _map_inputs(state, items, effective, context, ctx, start, stop)


def passed_through(definition: Definition, state_name: str, result: Any) -> GoTo | Succeed | None:
    """Where a state goes with `result` as its output, when its result becomes its output as
    it is (JSONPath, no ResultSelector, Assign, or ResultPath or OutputPath other than `$`),
    so that the result need not be read; None otherwise (`task_succeeded` decides)."""
    state = _state(definition, state_name)
    if is_jsonata(definition, state) or "ResultSelector" in state or "Assign" in state:
        return None
    if state.get("ResultPath", paths.ROOT) != paths.ROOT:
        return None
    if state.get("OutputPath", paths.ROOT) != paths.ROOT:
        return None
    try:
        return _transition(state, result)
    except StateError:
        return None


def is_jsonata(definition: Definition, state: State) -> bool:
    """Whether `state` is written in JSONata (its own QueryLanguage, else its machine's)."""
    language = state.get("QueryLanguage", definition.get("QueryLanguage"))
    return bool(language == JSONATA)


def task_succeeded(  # noqa: PLR0917 - the engine's call, one value per fact
    definition: Definition,
    state_name: str,
    state_input: Any,
    result: Any,
    ctx: Context,
    now: datetime | None = None,
) -> GoTo | Succeed | Fail | Caught:
    """A Task returned `result`: ResultSelector, Assign, ResultPath, OutputPath, then Next or
    End (in JSONata: Assign and Output)."""
    try:
        state = _state(definition, state_name)
        if is_jsonata(definition, state):
            at = ctx.state_entered_time if now is None else now
            scope = _scope(ctx, at, input=state_input, result=result)
            output = _jsonata_output(state, scope, result)
            return _transition(state, output, _assign_jsonata(state, scope))
        if "ResultSelector" in state:
            random = _random(ctx, "ResultSelector")
            result = payload.render(state["ResultSelector"], result, ctx.as_json(), random)
        variables = _assign_jsonpath(state, result, ctx)
        try:
            combined = _apply_result_path(state, state_input, result)
        except ResultPathMatchError as failure:
            return _catch(definition, state, state_input, failure.error, failure.message, ctx)
        return _transition(state, _apply_output_path(state, combined, ctx), variables)
    except StateError as failure:
        return Fail(error=failure.error, cause=failure.message)


def task_failed(  # noqa: PLR0917 - the engine's call, one value per fact
    definition: Definition,
    state_name: str,
    state_input: Any,
    error: str,
    cause: str | None,
    retry_counts: tuple[int, ...],
    now: datetime,
    random: Callable[[], float],
    ctx: Context | None = None,
) -> RetryAt | Caught | Fail:
    """A Task failed with `error`: retry it, hand the error to a catcher, or fail.

    `retry_counts` holds one counter per retrier of this visit (shorter tuples, such as `()`
    on the first failure, count as zeros); the RetryAt returned carries the updated counters.
    """
    if error == STATES_RUNTIME:
        return Fail(error=error, cause=cause)
    try:
        state = _state(definition, state_name)
        retry = next_retry(_rules(state, "Retry"), error, retry_counts, random)
        if retry is not None:
            return RetryAt(
                until=now + timedelta(seconds=retry.delay_seconds),
                retry_counts=retry.retry_counts,
                error=reported(error),
                cause=cause,
            )
        return _catch(definition, state, state_input, error, cause, ctx, now)
    except StateError as failure:
        return Fail(error=failure.error, cause=failure.message)
    except (TypeError, AttributeError, ValueError, OverflowError) as exc:
        # only a definition that skipped validation gets here
        return Fail(
            error=STATES_RUNTIME,
            cause=f"The state's Retry or Catch is malformed ({type(exc).__name__}: {exc})",
        )


# --- states -----------------------------------------------------------------------------


def _pass(state: State, state_input: Any, ctx: Context, _now: datetime) -> Entered:
    effective = _apply_input_path(state, state_input, ctx)
    if "Parameters" in state:
        effective = payload.render(state["Parameters"], effective, ctx.as_json(), _random(ctx))
    result = state.get("Result", effective)
    variables = _assign_jsonpath(state, result, ctx)  # Assign's `$` is the state's result
    combined = _apply_result_path(state, state_input, result)
    return _transition(state, _apply_output_path(state, combined, ctx), variables)


def _choice(state: State, state_input: Any, ctx: Context, _now: datetime) -> Entered:
    effective = _apply_input_path(state, state_input, ctx)
    context = ctx.as_json()
    choices = state.get("Choices", ())
    if not isinstance(choices, list):
        raise StatesRuntimeError("Choices must be an array of rules")
    for rule in choices:
        if matches(rule, effective, context):
            variables = _assign_jsonpath(rule, effective, ctx)
            output = _apply_output_path(state, effective, ctx)
            return GoTo(next_state=_target(rule), output=output, variables=variables)
    default = state.get("Default")
    if isinstance(default, str):
        variables = _assign_jsonpath(state, effective, ctx)
        output = _apply_output_path(state, effective, ctx)
        return GoTo(next_state=default, output=output, variables=variables)
    raise StatesRuntimeError(NO_CHOICE_MATCHED)


def _succeed(state: State, state_input: Any, ctx: Context, _now: datetime) -> Entered:
    effective = _apply_input_path(state, state_input, ctx)
    return Succeed(output=_apply_output_path(state, effective, ctx))


def _fail(state: State, state_input: Any, ctx: Context, _now: datetime) -> Entered:
    error = _fail_field(state, "Error", state_input, ctx)
    cause = _fail_field(state, "Cause", state_input, ctx)
    return Fail(error=error or "", cause=cause)


def _wait(state: State, state_input: Any, ctx: Context, now: datetime) -> Entered:
    effective = _apply_input_path(state, state_input, ctx)
    until = _wait_until(state, effective, ctx.as_json(), now)
    variables = _assign_jsonpath(state, effective, ctx)
    output = _apply_output_path(state, effective, ctx)
    return WaitUntil(until=until, then=_transition(state, output, variables))


def _task(state: State, state_input: Any, ctx: Context, _now: datetime) -> Entered:
    resource = state.get("Resource")
    if not isinstance(resource, str | Mapping):
        raise StatesRuntimeError("The Task state has no Resource")
    effective = _apply_input_path(state, state_input, ctx)
    timeout = _timeout_seconds(state, effective, ctx)
    heartbeat = _timeout_seconds(state, effective, ctx, "HeartbeatSeconds")
    if "Parameters" in state:
        effective = payload.render(state["Parameters"], effective, ctx.as_json(), _random(ctx))
    return CallTask(
        resource=resource, payload=effective, timeout_seconds=timeout, heartbeat_seconds=heartbeat
    )


def _parallel(state: State, state_input: Any, ctx: Context, _now: datetime) -> Entered:
    branches = state.get("Branches")
    if not isinstance(branches, list) or not branches:
        raise StatesRuntimeError("Branches must be a non-empty array of state machines")
    effective = _apply_input_path(state, state_input, ctx)
    if "Parameters" in state:
        effective = payload.render(state["Parameters"], effective, ctx.as_json(), _random(ctx))
    return FanOut(kind="Parallel", inputs=tuple(effective for _ in branches), limit=len(branches))


def _map(state: State, state_input: Any, ctx: Context, _now: datetime) -> Entered:
    if not isinstance(state.get("ItemProcessor", state.get("Iterator")), Mapping):
        raise StatesRuntimeError("The Map state has neither ItemProcessor nor Iterator")
    if "ItemReader" in state:
        raise ItemReaderNotRun(ITEM_READER_NOT_RUN)
    effective = _apply_input_path(state, state_input, ctx)
    context = ctx.as_json()
    items_path = state.get("ItemsPath", paths.ROOT)
    items = paths.resolve(items_path, effective, context)
    if not isinstance(items, list):
        raise StatesRuntimeError(
            f"The ItemsPath field must reference a JSON array: {items_path} == {_show(items)}"
        )
    inputs = _map_inputs(state, items, effective, context, ctx, 0, None)
    concurrency = _count_field(state, "MaxConcurrency", effective, context, default=0)
    try:
        tolerated_count, percentage = _tolerance(state, effective, context)
    except StatesRuntimeError as failure:
        if _runs_distributed(state):
            raise MapRunNotStarted(failure.message, len(inputs)) from failure
        raise
    return _map_fan_out(inputs, concurrency, tolerated_count, percentage)


def _map_fan_out(
    inputs: Sequence[Any], concurrency: int, tolerated_count: int | None, percentage: float | None
) -> FanOut:
    """A Map state's children: at most MAX_INLINE_CONCURRENCY at once (MaxConcurrency 0: as
    many as that)."""
    limit = MAX_INLINE_CONCURRENCY if concurrency == 0 else min(concurrency, MAX_INLINE_CONCURRENCY)
    return FanOut(
        kind="Map",
        inputs=tuple(inputs),
        limit=limit,
        max_concurrency=concurrency,
        tolerated_count=tolerated_count,
        tolerated_percentage=None if percentage is None else float(percentage),
    )


def _tolerance(state: State, effective: Any, context: Any) -> tuple[int | None, float | None]:
    """(ToleratedFailureCount, ToleratedFailurePercentage) of a JSONPath Map state, each
    None when not set."""
    tolerated_count: int | None = None
    if "ToleratedFailureCount" in state or "ToleratedFailureCountPath" in state:
        tolerated_count = _count_field(state, "ToleratedFailureCount", effective, context)
    percentage = state.get("ToleratedFailurePercentage")
    if "ToleratedFailurePercentagePath" in state:
        path = state["ToleratedFailurePercentagePath"]
        percentage = _number_text(paths.resolve_reference(path, effective, context))
        if not isinstance(percentage, int | float) or isinstance(percentage, bool):
            raise StatesRuntimeError(
                f'The ToleratedFailurePercentagePath field refers to value "{_show(percentage)}" '
                f"which is not a valid float: {path}"
            )
    if percentage is not None and (
        not isinstance(percentage, int | float)
        or isinstance(percentage, bool)
        or not 0 <= percentage <= 100
    ):
        raise StatesRuntimeError("ToleratedFailurePercentage must be between 0 and 100.")
    return tolerated_count, None if percentage is None else float(percentage)


def _number_text(value: Any) -> Any:
    """A number written as a string (`"1"`, as a variable often holds it) read as a number."""
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return value
        return int(number) if number.is_integer() else number
    return value


def _with_item(context: ContextObject, index: int, value: Any) -> ContextObject:
    """The context object of a Map's ItemSelector: with `Map.Item.Index` and `.Value`."""
    item = {"Map": {"Item": {"Index": index, "Value": value}}}
    return ContextObject(context.variables, {**context, **item})


def _map_inputs(  # noqa: PLR0917 - one value per fact
    state: State,
    items: list[Any],
    effective: Any,
    context: ContextObject,
    ctx: Context,
    start: int,
    stop: int | None,
) -> list[Any]:
    """The inputs of the children in slots [start, stop) (stop None: to the last) of a Map
    state over `items`: each item through ItemSelector, then ItemBatcher's batches. Only the
    items these slots hold are evaluated, each with randomness of its own (its index), so that
    any slots give what the whole would."""
    selector = state.get("ItemSelector", state.get("Parameters"))

    def selected(first: int, last: int) -> list[Any]:
        if selector is None:
            return items[first:last]
        return [
            payload.render(
                selector,
                effective,
                _with_item(context, index, items[index]),
                _random(ctx, f"ItemSelector:{index}"),
            )
            for index in range(first, min(last, len(items)))
        ]

    if "ItemBatcher" not in state:
        return selected(start, len(items) if stop is None else stop)
    batcher = state["ItemBatcher"]
    if not isinstance(batcher, Mapping):
        raise StatesRuntimeError("ItemBatcher must be an object")
    size = _count_field(batcher, "MaxItemsPerBatch", effective, context, default=0)
    max_bytes = _count_field(batcher, "MaxInputBytesPerBatch", effective, context, default=0)
    batch_input = None
    if "BatchInput" in batcher:
        batch_input = payload.render(
            batcher["BatchInput"], effective, context, _random(ctx, "BatchInput")
        )
    return _batches(selected, len(items), Batching(size, max_bytes, batch_input), start, stop)


@dataclass(frozen=True)
class Batching:
    """An ItemBatcher as evaluated: at most `size` items a batch and `max_bytes` of input (0:
    no such bound), each batch with `batch_input` (None: none)."""

    size: int
    max_bytes: int
    batch_input: Any

    def batch(self, items: list[Any]) -> dict[str, Any]:
        """A child's input: `items` (and the BatchInput)."""
        if self.batch_input is None:
            return {"Items": items}
        return {"Items": items, "BatchInput": self.batch_input}


def _batches(
    selected: Callable[[int, int], list[Any]],
    count: int,
    batching: Batching,
    start: int,
    stop: int | None,
) -> list[Any]:
    """The batches in slots [start, stop) (stop None: to the last) of `count` items, `selected`
    giving the selected items [first, last). Batches of MaxItemsPerBatch (all the items when
    0); with MaxInputBytesPerBatch, a batch also ends before an item that would take its input
    (as compact JSON, with the BatchInput) beyond that many bytes, each batch taking at least
    one item: the batches then depend on every item before them, so all are selected."""
    size = batching.size if batching.size > 0 else count or 1
    if batching.max_bytes <= 0:
        total = -(-count // size)
        return [
            batching.batch(selected(slot * size, (slot + 1) * size))
            for slot in range(start, total if stop is None else min(stop, total))
        ]
    every = selected(0, count)
    batches: list[list[Any]] = []
    used = 0
    empty = len(paths.to_json(batching.batch([])).encode())
    for item in every:
        weight = len(paths.to_json(item).encode())
        current = batches[-1] if batches else None
        if current is not None and len(current) < size and used + 1 + weight <= batching.max_bytes:
            current.append(item)
            used += 1 + weight
        else:
            batches.append([item])
            used = empty + weight
    return [batching.batch(b) for b in batches[start:stop]]


def _count_field(
    state: Mapping[str, Any],
    name: str,
    effective: Any,
    context: Mapping[str, Any],
    default: int | None = None,
) -> int:
    """A non-negative integer field, or the value its `...Path` twin references."""
    if name in state:
        value = state[name]
    elif f"{name}Path" in state:
        path = state[f"{name}Path"]
        value = _number_text(paths.resolve_reference(path, effective, context))
        if not _is_int(value):
            raise StatesRuntimeError(
                f'The {name}Path field refers to value "{_show(value)}" which is not a valid '
                f"integer: {path}"
            )
        if value < 0:
            raise StatesRuntimeError(f"{name} cannot be negative.")
    elif default is not None:
        return default
    else:
        raise StatesRuntimeError(f"The field {name} is missing")
    if not _is_int(value) or value < 0:
        raise StatesRuntimeError(f"{name} must be a non-negative integer: {_show(value)}")
    return int(value)


_ENTER: Final[Mapping[str, Callable[[State, Any, Context, datetime], Entered]]] = {
    "Parallel": _parallel,
    "Map": _map,
    "Pass": _pass,
    "Choice": _choice,
    "Succeed": _succeed,
    "Fail": _fail,
    "Wait": _wait,
    "Task": _task,
}


# --- input and output processing --------------------------------------------------------


def _state(definition: Definition, name: str) -> State:
    states = definition.get("States")
    # dict first: a plain isinstance check, where Mapping's goes through the ABC machinery
    state = states.get(name) if isinstance(states, (dict, Mapping)) else None
    if not isinstance(state, (dict, Mapping)):
        raise StatesRuntimeError(f"The state '{name}' does not exist in the definition")
    return state


def _apply_input_path(state: State, data: Any, ctx: Context) -> Any:
    return _apply_io_path(state, "InputPath", data, ctx)


def _apply_output_path(state: State, data: Any, ctx: Context) -> Any:
    return _apply_io_path(state, "OutputPath", data, ctx)


def _apply_io_path(state: State, field: str, data: Any, ctx: Context) -> Any:
    """InputPath or OutputPath: absent keeps the data, null gives {}, `$$…` reads the context."""
    if field not in state:
        return data
    path = state[field]
    return {} if path is None else paths.resolve(path, data, ctx.as_json())


def _apply_result_path(state: State, state_input: Any, result: Any) -> Any:
    if "ResultPath" not in state:
        return result
    path = state["ResultPath"]
    return state_input if path is None else paths.write(state_input, path, result)


def _transition(
    state: State, output: Any, variables: Mapping[str, Any] | None = None
) -> GoTo | Succeed:
    if state.get("End") is True:
        return Succeed(output=output, variables=variables)
    next_state = state.get("Next")
    if not isinstance(next_state, str):
        raise StatesRuntimeError("The state has neither Next nor End")
    return GoTo(next_state=next_state, output=output, variables=variables)


def _target(rule: Mapping[str, Any]) -> str:
    next_state = rule.get("Next")
    if not isinstance(next_state, str):
        raise StatesRuntimeError("A choice rule or catcher has no Next")
    return next_state


def _rules(state: State, field: str) -> list[Mapping[str, Any]]:
    """A state's Retry or Catch list; a malformed one (only unvalidated input) is a failure."""
    rules = state.get(field, [])
    if not isinstance(rules, list) or not all(isinstance(rule, dict) for rule in rules):
        raise StatesRuntimeError(f"{field} must be an array of objects")
    for rule in rules:
        error_equals = rule.get("ErrorEquals", [])
        if not isinstance(error_equals, list) or not all(isinstance(e, str) for e in error_equals):
            raise StatesRuntimeError(f"ErrorEquals in {field} must be an array of strings")
    return rules


def _catch(  # noqa: PLR0917 - one value per fact
    definition: Definition,
    state: State,
    state_input: Any,
    error: str,
    cause: str | None,
    ctx: Context | None,
    now: datetime | None = None,
) -> Caught | Fail:
    catcher = find_catcher(_rules(state, "Catch"), error)
    error = reported(error)
    if catcher is None:
        return Fail(error=error, cause=cause)
    try:
        variables: Mapping[str, Any] | None = None
        details = error_output(error, cause)
        if is_jsonata(definition, state):
            if ctx is None:
                raise StatesRuntimeError("The catcher has no context to evaluate in")
            at = ctx.state_entered_time if now is None else now
            scope = _scope(ctx, at, input=state_input, errorOutput=details)
            output = _jsonata_output(catcher, scope, details)
            variables = _assign_jsonata(catcher, scope)
        else:
            output = _apply_result_path(
                {"ResultPath": catcher.get("ResultPath", paths.ROOT)}, state_input, details
            )
            if ctx is not None:
                variables = _assign_jsonpath(catcher, details, ctx)
        return Caught(
            next_state=_target(catcher),
            output=output,
            error=error,
            cause=cause,
            variables=variables,
        )
    except StateError as failure:
        return Fail(error=failure.error, cause=failure.message)


# --- variables --------------------------------------------------------------------------


def _assign_jsonpath(owner: Mapping[str, Any], data: Any, ctx: Context) -> Mapping[str, Any] | None:
    """Every variable once `owner`'s Assign (`.$` values read `data`) is done; None: no Assign."""
    if "Assign" not in owner:
        return None
    assigned = payload.render(owner["Assign"], data, ctx.as_json(), _random(ctx, "Assign"))
    return _assigned(ctx, assigned)


def _assign_jsonata(owner: Mapping[str, Any], scope: jsonata.Scope) -> Mapping[str, Any] | None:
    """Every variable once `owner`'s JSONata Assign is done; None: no Assign."""
    if "Assign" not in owner:
        return None
    assigned = jsonata.render(owner["Assign"], "Assign", scope)
    return _assigned_to(scope.variables, assigned)


def _assigned(ctx: Context, assigned: Any) -> Mapping[str, Any]:
    return _assigned_to(ctx.variables, assigned)


def _assigned_to(variables: Mapping[str, Any], assigned: Any) -> Mapping[str, Any]:
    """`variables` with `assigned` set, within AWS's limits (States.Runtime beyond them)."""
    if not isinstance(assigned, Mapping):
        raise StatesRuntimeError("The Assign field must be an object")
    size = len(paths.to_json(assigned).encode())
    if size > MAX_ASSIGN_BYTES:
        raise StatesRuntimeError(
            f"The variables assigned by the state are {size} bytes; the limit is "
            f"{MAX_ASSIGN_BYTES} bytes"
        )
    merged = Variables({**variables, **assigned}, assigned)
    total = len(paths.to_json(merged).encode())
    if total > MAX_VARIABLES_BYTES:
        raise StatesRuntimeError(
            f"The execution's variables would be {total} bytes; the limit is "
            f"{MAX_VARIABLES_BYTES} bytes"
        )
    return merged


def _random(ctx: Context, purpose: str = "Parameters") -> Random:
    entered = iso_millis(ctx.state_entered_time)
    seed = f"{ctx.execution_id}|{ctx.state_name}|{entered}|{ctx.retry_count}|{purpose}"
    return seeded_random(seed)


def _fail_field(state: State, name: str, state_input: Any, ctx: Context) -> str | None:
    if name in state:
        return _string_field(name, state[name])
    path_name = f"{name}Path"
    if path_name not in state:
        return None
    random = _random(ctx, path_name)
    context = ctx.as_json()
    expression = state[path_name]
    try:
        value = payload.evaluate(expression, state_input, context, random)
    except PathError:
        source = context if paths.is_context_path(expression) else state_input
        raise StatesRuntimeError(
            f"The JSONPath '{expression}' specified for the field '{path_name}' "
            f"could not be found in the input '{paths.to_json(source)}'"
        ) from None
    return _string_field(path_name, value)


def _string_field(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise StatesRuntimeError(f"The {name} field must be a string, got {_show(value)}")
    return value


def _show(value: Any) -> str:
    return value if isinstance(value, str) else paths.to_json(value)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# --- Task timeout -----------------------------------------------------------------------


def _timeout_seconds(
    state: State, effective: Any, ctx: Context, name: str = "TimeoutSeconds"
) -> float | None:
    """TimeoutSeconds (or HeartbeatSeconds, by `name`), or the value its Path twin reads."""
    if name in state:
        value = state[name]
        if not _is_int(value) or not 0 < value <= MAX_TIMEOUT_SECONDS:
            raise StatesRuntimeError(f"{name} must be a positive integer: {_show(value)}")
        return float(value)
    if f"{name}Path" in state:
        path = state[f"{name}Path"]
        value = paths.resolve_reference(path, effective, ctx.as_json())
        if not _is_int(value) or not 0 < value <= MAX_TIMEOUT_SECONDS:
            raise StatesRuntimeError(
                f"The {name}Path parameter references an invalid value: {path} == {_show(value)}"
            )
        return float(value)
    return None


# --- Wait -------------------------------------------------------------------------------


def _wait_until(state: State, data: Any, context: Mapping[str, Any], now: datetime) -> datetime:
    if "Seconds" in state:
        seconds = state["Seconds"]
        if not _is_int(seconds) or seconds < 0:
            raise StatesRuntimeError(f"Seconds must be a non-negative integer: {_show(seconds)}")
        return _after(now, seconds)
    if "SecondsPath" in state:
        return _after(now, _seconds_at(state["SecondsPath"], data, context))
    if "Timestamp" in state:
        return _at(now, parse_literal(state["Timestamp"]))
    if "TimestampPath" in state:
        return _at(now, _timestamp_at(state["TimestampPath"], data, context))
    raise StatesRuntimeError(
        "The Wait state has none of Seconds, SecondsPath, Timestamp, TimestampPath"
    )


def _after(now: datetime, seconds: int) -> datetime:
    if seconds > MAX_WAIT_DELAY_SECONDS:
        raise StatesRuntimeError(WAIT_TOO_LONG)
    return now + timedelta(seconds=seconds)


def _at(now: datetime, moment: datetime) -> datetime:
    until = truncate_to_seconds(moment)
    if (until - now).total_seconds() > MAX_WAIT_DELAY_SECONDS:
        raise StatesRuntimeError(WAIT_TOO_LONG)
    return until


def _seconds_at(path: str, data: Any, context: Mapping[str, Any]) -> int:
    try:
        value = paths.resolve_reference(path, data, context)
    except PathError:
        raise StatesRuntimeError(
            f"The SecondsPath parameter does not reference an input value: {path}"
        ) from None
    if not _is_int(value) or value > MAX_LONG:
        raise StatesRuntimeError(
            f"The SecondsPath parameter cannot be parsed as a long value: {path} == {_show(value)}"
        )
    if value < 0:
        raise StatesRuntimeError(
            f"The SecondsPath parameter references a negative value: {path} == {value}"
        )
    return int(value)


def _timestamp_at(path: str, data: Any, context: Mapping[str, Any]) -> datetime:
    try:
        value = paths.resolve_reference(path, data, context)
    except PathError:
        raise StatesRuntimeError(
            f"The TimestampPath parameter does not reference an input value: {path}"
        ) from None
    try:
        moment = parse_timestamp(value)
    except InvalidTimestampError:
        raise StatesRuntimeError(
            "The TimestampPath parameter does not reference a valid ISO-8601 extended offset "
            f"date-time format string: {path} == {_show(value)}"
        ) from None
    return moment


# --- JSONata states ---------------------------------------------------------------------


def _scope(ctx: Context, now: datetime, purpose: str = "JSONata", **states: Any) -> jsonata.Scope:
    """What a JSONata expression of this visit reads: `$states` holds `states` and the context."""
    return jsonata.Scope(
        states=states,
        context=ctx.as_json,  # made only for an expression that may read it
        variables=ctx.variables,
        now=now,
        random=_random(ctx, purpose),
    )


def _field(state: Mapping[str, Any], name: str, scope: jsonata.Scope, default: Any) -> Any:
    """The value of a JSONata-mode field: `{% … %}` strings evaluated, at any depth."""
    return jsonata.render(state[name], name, scope) if name in state else default


def _jsonata_output(state: Mapping[str, Any], scope: jsonata.Scope, default: Any) -> Any:
    return _field(state, "Output", scope, default)


def _jsonata_pass(state: State, state_input: Any, ctx: Context, now: datetime) -> Entered:
    scope = _scope(ctx, now, input=state_input)
    output = _jsonata_output(state, scope, state_input)
    return _transition(state, output, _assign_jsonata(state, scope))


def _jsonata_choice(state: State, state_input: Any, ctx: Context, now: datetime) -> Entered:
    scope = _scope(ctx, now, input=state_input)
    choices = state.get("Choices", ())
    if not isinstance(choices, list):
        raise StatesRuntimeError("Choices must be an array of rules")
    for rule in choices:
        if not isinstance(rule, Mapping):
            raise StatesRuntimeError("A choice rule must be an object")
        condition = _field(rule, "Condition", scope, None)
        if not isinstance(condition, bool):
            text = rule.get("Condition")
            raise QueryEvaluationError(
                f"The JSONata expression '{_show(text)}' specified for the field 'Condition' "
                f"returned an unexpected result type. Expected 'boolean', but was "
                f"'{jsonata.type_name(condition)}' for value: {_show_json(condition)}"
            )
        if condition:
            output = _jsonata_output(rule, scope, state_input)
            return GoTo(
                next_state=_target(rule), output=output, variables=_assign_jsonata(rule, scope)
            )
    default = state.get("Default")
    if isinstance(default, str):
        output = _jsonata_output(state, scope, state_input)
        return GoTo(next_state=default, output=output, variables=_assign_jsonata(state, scope))
    raise StatesRuntimeError(NO_CHOICE_MATCHED)


def _jsonata_succeed(state: State, state_input: Any, ctx: Context, now: datetime) -> Entered:
    scope = _scope(ctx, now, input=state_input)
    return Succeed(output=_jsonata_output(state, scope, state_input))


def _jsonata_fail(state: State, state_input: Any, ctx: Context, now: datetime) -> Entered:
    scope = _scope(ctx, now, input=state_input)
    error = _field(state, "Error", scope, None)
    cause = _field(state, "Cause", scope, None)
    for name, value in (("Error", error), ("Cause", cause)):
        if value is not None and not isinstance(value, str):
            raise StatesRuntimeError(f"The {name} field must be a string, got {_show(value)}")
    return Fail(error=error or "", cause=cause)


def _jsonata_wait(state: State, state_input: Any, ctx: Context, now: datetime) -> Entered:
    scope = _scope(ctx, now, input=state_input)
    if "Seconds" in state:
        seconds = _field(state, "Seconds", scope, None)
        if not _is_int(seconds) or seconds < 0:
            raise QueryEvaluationError(
                f"The Seconds field must be a non-negative integer: {_show_json(seconds)}"
            )
        until = _after(now, seconds)
    elif "Timestamp" in state:
        stamp = _field(state, "Timestamp", scope, None)
        try:
            until = _at(now, parse_timestamp(stamp))
        except InvalidTimestampError:
            raise QueryEvaluationError(
                "The Timestamp field cannot be parsed as an ISO-8601 extended offset date-time "
                f"format string: {_show(stamp)}"
            ) from None
    else:
        raise StatesRuntimeError("The Wait state has neither Seconds nor Timestamp")
    output = _jsonata_output(state, scope, state_input)
    return WaitUntil(until=until, then=_transition(state, output, _assign_jsonata(state, scope)))


def _jsonata_task(state: State, state_input: Any, ctx: Context, now: datetime) -> Entered:
    resource = state.get("Resource")
    if not isinstance(resource, str | Mapping):
        raise StatesRuntimeError("The Task state has no Resource")
    scope = _scope(ctx, now, input=state_input)
    timeout = _jsonata_seconds(state, "TimeoutSeconds", scope)
    heartbeat = _jsonata_seconds(state, "HeartbeatSeconds", scope)
    arguments = _field(state, "Arguments", scope, state_input)
    return CallTask(
        resource=resource, payload=arguments, timeout_seconds=timeout, heartbeat_seconds=heartbeat
    )


def _jsonata_seconds(state: State, name: str, scope: jsonata.Scope) -> float | None:
    """A JSONata Task's TimeoutSeconds or HeartbeatSeconds: a number or an expression."""
    if name not in state:
        return None
    value = _field(state, name, scope, None)
    if not _is_int(value) or not 0 < value <= MAX_TIMEOUT_SECONDS:
        raise QueryEvaluationError(
            f"The {name} field must be a positive integer: {_show_json(value)}"
        )
    return float(value)


def _jsonata_parallel(state: State, state_input: Any, ctx: Context, now: datetime) -> Entered:
    branches = state.get("Branches")
    if not isinstance(branches, list) or not branches:
        raise StatesRuntimeError("Branches must be a non-empty array of state machines")
    arguments = _field(state, "Arguments", _scope(ctx, now, input=state_input), state_input)
    return FanOut(kind="Parallel", inputs=tuple(arguments for _ in branches), limit=len(branches))


def _jsonata_map(state: State, state_input: Any, ctx: Context, now: datetime) -> Entered:
    if not isinstance(state.get("ItemProcessor", state.get("Iterator")), Mapping):
        raise StatesRuntimeError("The Map state has neither ItemProcessor nor Iterator")
    if "ItemReader" in state:
        raise ItemReaderNotRun(ITEM_READER_NOT_RUN)
    scope = _scope(ctx, now, input=state_input)
    items = _field(state, "Items", scope, state_input)
    if not isinstance(items, list) and "Items" not in state:  # the state's input itself
        raise QueryEvaluationError(f"Map state input must be an array but was: {_show_json(items)}")
    if not isinstance(items, list):
        text = state.get("Items")
        shown = jsonata.body(text) if isinstance(text, str) else _show_json(text)
        raise QueryEvaluationError(
            f"The JSONata expression '{shown}' specified for the field 'Items' returned an "
            f"unexpected result type. Expected 'array', but was '{jsonata.type_name(items)}' "
            f"for value: {_show_json(items)}"
        )
    inputs = _jsonata_map_inputs(state, state_input, items, ctx, now, 0, None)
    concurrency = _jsonata_count(state, "MaxConcurrency", scope, 0)
    tolerated_count = (
        _jsonata_count(state, "ToleratedFailureCount", scope, 0)
        if "ToleratedFailureCount" in state
        else None
    )
    percentage = _number_text(_field(state, "ToleratedFailurePercentage", scope, None))
    if percentage is not None and (
        not isinstance(percentage, int | float)
        or isinstance(percentage, bool)
        or not 0 <= percentage <= 100
    ):
        raise QueryEvaluationError(
            f"ToleratedFailurePercentage must be a number from 0 to 100: {_show_json(percentage)}"
        )
    return _map_fan_out(inputs, concurrency, tolerated_count, percentage)


def _jsonata_map_inputs(  # noqa: PLR0917 - one value per fact
    state: State,
    state_input: Any,
    items: list[Any],
    ctx: Context,
    now: datetime,
    start: int,
    stop: int | None,
) -> list[Any]:
    """The inputs of a JSONata Map's children in slots [start, stop) (stop None: to the
    last): ItemSelector on each item, then ItemBatcher's batches."""
    context = ctx.as_json()

    def selected(first: int, last: int) -> list[Any]:
        if "ItemSelector" not in state:
            return items[first:last]
        return [
            jsonata.render(
                state["ItemSelector"],
                "ItemSelector",
                jsonata.Scope(
                    states={
                        "input": state_input,
                        "context": _with_item(context, index, items[index]),
                    },
                    variables=ctx.variables,
                    now=now,
                    random=_random(ctx, f"ItemSelector:{index}"),
                ),
            )
            for index in range(first, min(last, len(items)))
        ]

    if "ItemBatcher" not in state:
        return selected(start, len(items) if stop is None else stop)
    batcher = state["ItemBatcher"]
    if not isinstance(batcher, Mapping):
        raise StatesRuntimeError("ItemBatcher must be an object")
    scope = _scope(ctx, now, input=state_input)
    batch_input = None
    if "BatchInput" in batcher:
        batch_input = jsonata.render(
            batcher["BatchInput"], "BatchInput", _scope(ctx, now, "BatchInput", input=state_input)
        )
    batching = Batching(
        _jsonata_count(batcher, "MaxItemsPerBatch", scope, 0),
        _jsonata_count(batcher, "MaxInputBytesPerBatch", scope, 0),
        batch_input,
    )
    return _batches(selected, len(items), batching, start, stop)


def _jsonata_count(state: State, name: str, scope: jsonata.Scope, default: int) -> int:
    value = _number_text(_field(state, name, scope, default))
    if not _is_int(value) or value < 0:
        raise QueryEvaluationError(f"{name} must be a non-negative integer: {_show_json(value)}")
    return int(value)


def _show_json(value: Any) -> str:
    return paths.to_json(value)


_ENTER_JSONATA: Final[Mapping[str, Callable[[State, Any, Context, datetime], Entered]]] = {
    "Parallel": _jsonata_parallel,
    "Map": _jsonata_map,
    "Pass": _jsonata_pass,
    "Choice": _jsonata_choice,
    "Succeed": _jsonata_succeed,
    "Fail": _jsonata_fail,
    "Wait": _jsonata_wait,
    "Task": _jsonata_task,
}
