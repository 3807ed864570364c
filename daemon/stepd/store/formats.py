"""How `Pending` records are written to disk, and read back from every release's format.

A record is JSON text. Each field has an explicit key here, so renaming a field in
`stepd.store.records` cannot change what is written or read: the key stays until a new
format version says otherwise. Reading is strict: an unknown key, a missing key or a
format version newer than `FORMAT_VERSION` raises `RecordError` naming the record, never a
silently defaulted value.

    format 6 (stepd 0.7):  format 5, and the fan-out record's optional key "map_run" (a
                           DISTRIBUTED Map's: the id of the MapRunStarted event of its run)
    format 5 (stepd 0.6):  format 4, and the task record's optional key "activity" (true: an
                           activity's task whose history has Activity* events)
    format 4 (stepd 0.5):  format 3, and the task record's optional keys "token",
                           "heartbeat", "answered_at", "heartbeat_at" (a `.waitForTaskToken`
                           task and its wait for a callback)
    format 3 (stepd 0.4):  format 2, and  {"v": 3, "resume": {}}  or
                           {"v": 3, "resume": {"fanout": {...}}}  (closed without succeeding:
                           where a redrive takes it up); and the variables record
                           {"v": 3, "variables": {...}}  (what `Assign` set; an execution's
                           and each cursor's own column)
    format 2 (stepd 0.3):  format 1, and  {"v": 2, "fanout": {...}}  (a Parallel or Map
                           state running its children)
    format 1 (stepd 0.2):  {"v": 1, "wait": {...}}  or  {"v": 1, "task": {...}}
    format 0 (stepd 0.1):  {}  or  {"then": {"next": ..., "output": ...}}
                           or  {"resource": ..., "payload": ..., "sent": ..., ...}
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from stepd import jsontext
from stepd.errors import RecordError
from stepd.store.records import Fanout, Pending, Resume, TaskCall, WaitThen

FORMAT_VERSION = 6
CALLBACK_SINCE = 4  # the first format with callback keys in task records
ACTIVITY_SINCE = 5  # the first format with the "activity" key in task records
FANOUT_SINCE = 2  # the first format with fan-out records
RESUME_SINCE = 3  # the first format with resume records
VARIABLES_SINCE = 3  # the first format with variables records
MAP_RUN_SINCE = 6  # the first format with the "map_run" key in fan-out records

_WAIT_KEYS: Mapping[str, str] = {"next_state": "next", "output": "output"}
_TASK_KEYS: Mapping[str, str] = {
    "resource": "resource",
    "payload": "payload",
    "timeout_seconds": "timeout",
    "due": "due",
    "first_due": "first_due",
    "sent": "sent",
    "sent_at": "sent_at",
    "waiting_since": "waiting_since",
    "token": "token",
    "heartbeat_seconds": "heartbeat",
    "answered_at": "answered_at",
    "heartbeat_at": "heartbeat_at",
    "activity_events": "activity",
}
_CALLBACK_KEYS = frozenset({"token", "heartbeat", "answered_at", "heartbeat_at"})
_FANOUT_KEYS: Mapping[str, str] = {
    "kind": "kind",
    "total": "total",
    "started_event": "started_event",
    "limit": "limit",
    "next_slot": "next_slot",
    "running": "running",
    "succeeded": "succeeded",
    "failed": "failed",
    "tolerated_count": "tolerated_count",
    "tolerated_percentage": "tolerated_percentage",
    "retry_at": "retry_at",
    "map_run": "map_run",
}
_FANOUT_INTS = ("total", "started_event", "limit", "next_slot", "running", "succeeded", "failed")
_FANOUT_REQUIRED = frozenset(_FANOUT_INTS) | {"kind"}
_FANOUT_KINDS = frozenset({"Parallel", "Map"})
_WAIT_REQUIRED = frozenset({"next", "output"})
_TASK_REQUIRED = frozenset({"resource", "payload", "timeout", "due", "sent"})


def encode_pending(pending: Pending) -> str | None:
    """The JSON text stored for `pending` (None for nothing pending)."""
    if pending is None:
        return None
    if isinstance(pending, WaitThen):
        body = {key: getattr(pending, name) for name, key in _WAIT_KEYS.items()}
        return jsontext.stored({"v": FORMAT_VERSION, "wait": body})
    if isinstance(pending, Fanout):
        return jsontext.stored({"v": FORMAT_VERSION, "fanout": _fanout_body(pending)})
    if isinstance(pending, Resume):
        resume = {} if pending.fanout is None else {"fanout": _fanout_body(pending.fanout)}
        return jsontext.stored({"v": FORMAT_VERSION, "resume": resume})
    fields = vars(pending)  # a plain dataclass: its fields without a getattr each
    body = {
        key: value
        for name, key in _TASK_KEYS.items()
        if ((value := fields[name]) is not None and value is not False) or key in _TASK_REQUIRED
    }
    return jsontext.stored({"v": FORMAT_VERSION, "task": body})


def _fanout_body(fanout: Fanout) -> dict[str, Any]:
    return {
        key: value
        for name, key in _FANOUT_KEYS.items()
        if (value := getattr(fanout, name)) is not None or key in _FANOUT_REQUIRED
    }


def decode_pending(text: str | None) -> Pending:
    """The record stored as `text`, in any format this stepd knows. Raises RecordError."""
    if not text:
        return None
    try:
        stored = json.loads(text)
    except ValueError as exc:
        raise RecordError(f"pending record is not JSON: {exc}") from None
    if not isinstance(stored, dict):
        raise RecordError("pending record is not a JSON object")
    version = stored.get("v", 0)
    if version == 0:
        return _decode_v0(stored)
    _check_version(version)
    kinds = _kinds(version)
    if len(stored.keys() & kinds) > 1:
        raise RecordError("pending record holds more than one record")
    _expect_keys(stored, {"v"}, kinds, "pending record")
    if "resume" in stored:
        return _resume(stored["resume"], "resume record", version)
    if "fanout" in stored:
        return _fanout(stored["fanout"], "fan-out record", version)
    if "wait" in stored:
        return _wait(stored["wait"], "wait record")
    if "task" in stored:
        return _task(stored["task"], "task record", version)
    raise RecordError("pending record holds neither a wait nor a task")


def _kinds(version: int) -> set[str]:
    """The record kinds a format holds."""
    kinds = {"wait", "task"}
    if version >= FANOUT_SINCE:
        kinds.add("fanout")
    if version >= RESUME_SINCE:
        kinds.add("resume")
    return kinds


def encode_variables(variables: str | None) -> str | None:
    """The JSON text stored for `variables` (a JSON object as compact text, as the engine
    writes it; None for none)."""
    if variables is None:
        return None
    return '{"v":' + str(FORMAT_VERSION) + ',"variables":' + variables + "}"


def decode_variables(text: str | None) -> str | None:
    """The variables (a JSON object as compact text) stored as `text`. Raises RecordError."""
    if not text:
        return None
    try:
        stored = json.loads(text)
    except ValueError as exc:
        raise RecordError(f"variables record is not JSON: {exc}") from None
    if not isinstance(stored, dict):
        raise RecordError("variables record is not a JSON object")
    version = stored.get("v", 0)
    _check_version(version)
    if version < VARIABLES_SINCE:
        raise RecordError(f"variables record has format {version}, before variables existed")
    _expect_keys(stored, {"v", "variables"}, set(), "variables record")
    _check(isinstance(stored["variables"], dict), "variables record", "variables")
    return jsontext.compact(stored["variables"])


def _check_version(version: Any) -> None:
    if not isinstance(version, int) or isinstance(version, bool) or version < 0:
        raise RecordError(f"pending record has no valid format number: {version!r}")
    if version > FORMAT_VERSION:
        raise RecordError(
            f"pending record has format {version}, newer than this stepd reads ({FORMAT_VERSION})"
        )


def _decode_v0(stored: dict[str, Any]) -> Pending:
    if not stored:
        return None
    if "then" in stored:
        _expect_keys(stored, {"then"}, set(), "pending record (format 0)")
        return _wait(stored["then"], "wait record (format 0)")
    return _task(stored, "task record (format 0)", 0)


def _wait(body: Any, what: str) -> WaitThen:
    fields = _fields(body, _WAIT_KEYS, _WAIT_REQUIRED, what)
    next_state = fields["next_state"]
    output = fields["output"]
    _check(next_state is None or isinstance(next_state, str), what, "next")
    _check(isinstance(output, str), what, "output")
    return WaitThen(next_state=next_state, output=output)


def _task(body: Any, what: str, version: int) -> TaskCall:
    keys = _TASK_KEYS
    if version < CALLBACK_SINCE:  # these keys are unknown to older formats
        keys = {name: key for name, key in _TASK_KEYS.items() if key not in _CALLBACK_KEYS}
    if version < ACTIVITY_SINCE:
        keys = {name: key for name, key in keys.items() if key != "activity"}
    fields = _fields(body, keys, _TASK_REQUIRED, what)
    _check(isinstance(fields["payload"], str), what, "payload")
    _check(isinstance(fields["sent"], bool), what, "sent")
    token = fields.get("token")
    _check(token is None or (isinstance(token, str) and token != ""), what, "token")
    _check(fields.get("activity_events") in (None, True), what, "activity")
    numbers = ("timeout_seconds", "due", "first_due", "sent_at", "waiting_since")
    for name in (*numbers, "heartbeat_seconds", "answered_at", "heartbeat_at"):
        value = fields.get(name)
        _check(value is None or _is_number(value), what, _TASK_KEYS[name])
    _check(fields.get("due") is not None, what, "due")
    return TaskCall(
        resource=fields["resource"],
        payload=fields["payload"],
        timeout_seconds=_float_or_none(fields["timeout_seconds"]),
        due=float(fields["due"]),
        first_due=_float_or_none(fields.get("first_due")),
        sent=fields["sent"],
        sent_at=_float_or_none(fields.get("sent_at")),
        waiting_since=_float_or_none(fields.get("waiting_since")),
        token=token,
        heartbeat_seconds=_float_or_none(fields.get("heartbeat_seconds")),
        answered_at=_float_or_none(fields.get("answered_at")),
        heartbeat_at=_float_or_none(fields.get("heartbeat_at")),
        activity_events=fields.get("activity_events") is True,
    )


def _fanout(body: Any, what: str, version: int) -> Fanout:
    keys = _FANOUT_KEYS
    if version < MAP_RUN_SINCE:  # unknown to older formats
        keys = {name: key for name, key in keys.items() if key != "map_run"}
    fields = _fields(body, keys, _FANOUT_REQUIRED, what)
    _check(fields["kind"] in _FANOUT_KINDS, what, "kind")
    for name in _FANOUT_INTS:
        value = fields[name]
        _check(_is_number(value) and value == int(value) and value >= 0, what, name)
    count = fields.get("tolerated_count")
    _check(count is None or (_is_number(count) and count == int(count)), what, "tolerated_count")
    run = fields.get("map_run")
    _check(run is None or (_is_number(run) and run == int(run) and run > 0), what, "map_run")
    for name in ("tolerated_percentage", "retry_at"):
        value = fields.get(name)
        _check(value is None or _is_number(value), what, name)
    return Fanout(
        kind=fields["kind"],
        **{name: int(fields[name]) for name in _FANOUT_INTS},
        tolerated_count=None if count is None else int(count),
        tolerated_percentage=_float_or_none(fields.get("tolerated_percentage")),
        retry_at=_float_or_none(fields.get("retry_at")),
        map_run=None if run is None else int(run),
    )


def _resume(body: Any, what: str, version: int) -> Resume:
    if not isinstance(body, dict):
        raise RecordError(f"{what} is not a JSON object")
    _expect_keys(body, set(), {"fanout"}, what)
    fanout = body.get("fanout")
    if fanout is None:
        return Resume()
    return Resume(fanout=_fanout(fanout, f"{what}: fan-out record", version))


def _fields(
    body: Any, keys: Mapping[str, str], required: frozenset[str], what: str
) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise RecordError(f"{what} is not a JSON object")
    _expect_keys(body, required, set(keys.values()) - required, what)
    return {name: body.get(key) for name, key in keys.items()}


def _expect_keys(
    body: Mapping[str, Any], required: set[str] | frozenset[str], optional: set[str], what: str
) -> None:
    missing = sorted(required - body.keys())
    if missing:
        raise RecordError(f"{what} lacks {', '.join(missing)}")
    unknown = sorted(body.keys() - required - optional)
    if unknown:
        known = ", ".join(sorted(required | optional))
        raise RecordError(f"{what} has unknown keys {', '.join(unknown)} (known: {known})")


def _check(ok: bool, what: str, key: str) -> None:
    if not ok:
        raise RecordError(f"{what}: {key} has the wrong type")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _float_or_none(value: Any) -> float | None:
    return None if value is None else float(value)
