"""Read a state machine definition from ASL JSON, ASL YAML or a serverless.yml.

The loader only parses and picks the machine; `stepd.asl.validate` judges the definition.

Duplicate keys cannot survive parsing (a mapping keeps the last one), so the loader rejects
them itself with a `DefinitionError`. A duplicate state name within one `States` block is
reported as `DUPLICATE_STATE_NAME`; the same name used in two different blocks (a branch and
the top level, say) parses fine and is reported by `validate()`.

YAML is read as serverless (js-yaml) reads it, not as YAML 1.1: CloudFormation short tags
become their long form (`!GetAtt fn.Arn` is `{"Fn::GetAtt": ["fn", "Arn"]}`), timestamps stay
strings, and only `true`/`false` are booleans (`yes`, `on` stay strings). Serverless
variables such as `${self:custom.x}`, `${opt:stage}` and `#{AWS::Region}` are kept verbatim.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from stepd.asl.validate import MAX_DEFINITION_BYTES  # applied to the file, before parsing
from stepd.errors import DefinitionError, DuplicateKeyError

if TYPE_CHECKING:
    from collections.abc import Mapping

MAX_DOCUMENT_VALUES = 1_000_000  # values in the parsed document once YAML aliases are expanded
DEFAULT_HTTP_ACTION = "StartExecution"
DEFAULT_SERVERLESS_STAGE = "dev"

_JSON_SUFFIXES = frozenset({".json"})
_YAML_SUFFIXES = frozenset({".yaml", ".yml"})
_STATES_KEY = "States"
_YAML_BOOL = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")
_YAML_BOOL_FIRST_CHARS = "tTfF"
_DROPPED_RESOLVERS = frozenset({"tag:yaml.org,2002:bool", "tag:yaml.org,2002:timestamp"})


@dataclass(frozen=True, kw_only=True)
class HttpEvent:
    """A serverless `http` event that starts (or stops) executions."""

    path: str  # normalised with a leading "/"
    method: str  # upper case
    action: str = DEFAULT_HTTP_ACTION  # serverless `action:`, e.g. StopExecution


@dataclass(frozen=True, kw_only=True)
class LoadedDefinition:
    """One state machine definition and what its file says about it."""

    definition: dict[str, Any]  # the ASL object (StartAt, States, ...)
    source: str  # file path as given, for messages
    machine_key: str | None = None  # serverless key when from serverless.yml
    machine_name: str | None = None  # serverless `name:` if any
    http_events: tuple[HttpEvent, ...] = ()
    lambda_names: Mapping[str, str] = field(default_factory=dict)  # function key -> name


def load_definition(path: Path, key: str | None = None) -> LoadedDefinition:
    """Read `path` and return its definition (for serverless.yml, the machine `key`).

    Raises `DefinitionError` when the file is missing, too large, unreadable or malformed,
    or when `key` does not pick exactly one state machine.
    """
    source = str(path)
    try:
        size = path.stat().st_size
        _check_size(size, source)
        text = path.read_text(encoding="utf-8-sig")  # a BOM is not part of the text
    except FileNotFoundError as exc:
        raise DefinitionError("file not found", where=source) from exc
    except UnicodeDecodeError as exc:
        raise DefinitionError(f"file is not UTF-8 text: {exc.reason}", where=source) from exc
    except OSError as exc:
        raise DefinitionError(f"cannot read file: {exc.strerror}", where=source) from exc
    return parse_definition_text(text, source, key)


def parse_definition_text(text: str, source: str, key: str | None = None) -> LoadedDefinition:
    """Parse `text` (ASL JSON, ASL YAML or serverless.yml); `source` names it in messages."""
    _check_size(len(text.encode("utf-8")), source)
    document = _parse_document(text, source)
    _require_json(document, source)
    if not isinstance(document, dict):
        raise DefinitionError("the file must hold an object (a mapping)", where=source)
    if "stepFunctions" in document and _STATES_KEY not in document:
        return _from_serverless(document, source, key)
    if _STATES_KEY not in document and "StartAt" not in document:
        raise DefinitionError(
            "neither an ASL definition (no StartAt/States) nor a serverless.yml "
            "(no stepFunctions.stateMachines)",
            where=source,
        )
    if key is not None:
        raise DefinitionError(
            f'a state machine key ("{key}") only applies to a serverless.yml; '
            "this file is a plain ASL definition",
            where=source,
        )
    return LoadedDefinition(definition=document, source=source)


def parse_json_text(text: str, source: str) -> Any:
    """Parse `text` as strict JSON, as the API receives a definition: duplicate keys, NaN and
    documents over the size limit raise `DefinitionError` (a duplicate key's
    `DuplicateKeyError` is its `__cause__`). The document may be any JSON value."""
    _check_size(len(text.encode("utf-8")), source)
    document = _parse_json(text, source)
    _require_json(document, source)
    return document


def _check_size(size: int, source: str) -> None:
    if size > MAX_DEFINITION_BYTES:
        raise DefinitionError(
            f"file is {size} bytes; a definition may be at most {MAX_DEFINITION_BYTES} bytes",
            where=source,
        )


def _parse_document(text: str, source: str) -> Any:
    suffix = Path(source).suffix.lower()
    if suffix in _JSON_SUFFIXES:
        return _parse_json(text, source)
    if suffix not in _YAML_SUFFIXES and text.lstrip().startswith("{"):
        return _parse_json(text, source)
    return _parse_yaml(text, source)


def _require_json(document: Any, source: str) -> None:
    """Refuse what JSON cannot hold: binary, sets, non-string keys, NaN, alias loops."""
    pending: list[tuple[Any, _Location]] = [(document, None)]
    for _ in range(MAX_DOCUMENT_VALUES):
        if not pending:
            return
        value, at = pending.pop()
        if isinstance(value, dict):
            for key, item in value.items():
                if not isinstance(key, str):
                    message = f"key {key!r} at {_pointer(at)} is not a string; quote it"
                    raise DefinitionError(message, where=source)
                pending.append((item, (at, key)))
        elif isinstance(value, list):
            pending.extend((item, (at, index)) for index, item in enumerate(value))
        elif not _is_json_scalar(value):
            message = f"the value at {_pointer(at)} is not JSON ({type(value).__name__})"
            raise DefinitionError(message, where=source)
    message = f"the document holds more than {MAX_DOCUMENT_VALUES} values (recursive aliases?)"
    raise DefinitionError(message, where=source)


_Location = tuple[Any, str | int] | None  # (parent location, key), built only when needed


def _pointer(location: _Location) -> str:
    tokens: list[str] = []
    while location is not None:
        location, token = location
        tokens.append(str(token))
    return "/" + "/".join(reversed(tokens))


def _is_json_scalar(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    return value is None or isinstance(value, str | int)


# JSON ---------------------------------------------------------------------------------------


def _unique_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            is_state = _looks_like_state(result[key]) and _looks_like_state(value)
            raise DuplicateKeyError(key, is_state=is_state)
        result[key] = value
    return result


def _looks_like_state(value: Any) -> bool:
    return isinstance(value, dict) and "Type" in value


def _parse_json(text: str, source: str, what: str = "") -> Any:
    try:
        return json.loads(text, object_pairs_hook=_unique_object)
    except json.JSONDecodeError as exc:
        where = f"{source}:{exc.lineno}:{exc.colno}" if not what else source
        at = f" (line {exc.lineno}, column {exc.colno})" if what else ""
        raise DefinitionError(f"{what}invalid JSON: {exc.msg}{at}", where=where) from exc
    except DuplicateKeyError as exc:
        raise DefinitionError(_duplicate_message(exc.key, exc.is_state), where=source) from exc
    except RecursionError as exc:
        raise DefinitionError(f"{what}JSON is nested too deeply", where=source) from exc


def _duplicate_message(key: str, is_state: bool, first_line: int | None = None) -> str:
    first = f" (first on line {first_line})" if first_line is not None else ""
    if is_state:
        return f'DUPLICATE_STATE_NAME: state "{key}" is defined more than once{first}'
    return f'duplicate key "{key}"{first}'


# YAML ---------------------------------------------------------------------------------------


class _ServerlessYamlLoader(yaml.SafeLoader):
    """A SafeLoader that reads CloudFormation short tags and YAML the way serverless does."""


_ServerlessYamlLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag not in _DROPPED_RESOLVERS]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_ServerlessYamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", _YAML_BOOL, list(_YAML_BOOL_FIRST_CHARS)
)


def _construct_short_tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    """`!Ref x` is {"Ref": x}, `!GetAtt a.b` {"Fn::GetAtt": [a, b]}, `!Tag v` {"Fn::Tag": v}."""
    value: Any
    if isinstance(node, yaml.MappingNode):
        value = loader.construct_mapping(node, deep=True)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_scalar(node)  # type: ignore[arg-type]
    if suffix in {"Ref", "Condition"}:
        return {suffix: value}
    if suffix == "GetAtt" and isinstance(value, str):
        resource, _, attribute = value.partition(".")
        value = [resource, attribute]
    return {f"Fn::{suffix}": value}


_ServerlessYamlLoader.add_multi_constructor("!", _construct_short_tag)


def _parse_yaml(text: str, source: str) -> Any:
    loader: _ServerlessYamlLoader | None = None
    try:
        loader = _ServerlessYamlLoader(text)
        node = loader.get_single_node()
        if node is None:
            return None
        _reject_duplicate_keys(node, source)
        return loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        raise DefinitionError(_yaml_message(exc), where=_yaml_where(exc, source)) from exc
    except yaml.YAMLError as exc:
        raise DefinitionError(f"invalid YAML: {exc}", where=source) from exc
    except RecursionError as exc:
        raise DefinitionError("YAML is nested too deeply", where=source) from exc
    finally:
        if loader is not None:
            loader.dispose()


def _yaml_message(exc: yaml.MarkedYAMLError) -> str:
    parts = [part for part in (exc.context, exc.problem) if part]
    return "invalid YAML: " + ", ".join(parts)


def _yaml_where(exc: yaml.MarkedYAMLError, source: str) -> str:
    mark = exc.problem_mark or exc.context_mark
    if mark is None:
        return source
    return f"{source}:{mark.line + 1}:{mark.column + 1}"


def _reject_duplicate_keys(root: yaml.Node, source: str) -> None:
    """Raise on the first key that appears twice in one mapping (merge keys `<<` aside)."""
    pending: list[tuple[yaml.Node, str | None]] = [(root, None)]
    visited: set[int] = set()
    while pending:
        node, parent_key = pending.pop()
        if id(node) in visited:
            continue
        visited.add(id(node))
        if isinstance(node, yaml.SequenceNode):
            pending.extend((child, None) for child in node.value)
        elif isinstance(node, yaml.MappingNode):
            _check_mapping_keys(node, parent_key, source)
            pending.extend(
                (value, key.value if isinstance(key, yaml.ScalarNode) else None)
                for key, value in node.value
            )


def _check_mapping_keys(node: yaml.MappingNode, parent_key: str | None, source: str) -> None:
    first_seen: dict[str, yaml.Mark] = {}
    for key_node, _ in node.value:
        if not isinstance(key_node, yaml.ScalarNode) or key_node.value == "<<":
            continue
        key = str(key_node.value)
        mark = key_node.start_mark
        if key in first_seen:
            message = _duplicate_message(key, parent_key == _STATES_KEY, first_seen[key].line + 1)
            raise DefinitionError(message, where=f"{source}:{mark.line + 1}:{mark.column + 1}")
        first_seen[key] = mark


# serverless.yml -----------------------------------------------------------------------------


def _from_serverless(document: dict[str, Any], source: str, key: str | None) -> LoadedDefinition:
    machines = _state_machines(document, source)
    chosen = _choose_machine(machines, source, key)
    machine = machines[chosen]
    if not isinstance(machine, dict):
        raise DefinitionError(
            f"stepFunctions.stateMachines.{chosen} must be a mapping", where=source
        )
    name = machine.get("name")
    return LoadedDefinition(
        definition=_machine_definition(machine, chosen, source),
        source=source,
        machine_key=chosen,
        machine_name=name if isinstance(name, str) else None,
        http_events=_http_events(machine.get("events"), chosen, source),
        lambda_names=_lambda_names(document),
    )


def _state_machines(document: dict[str, Any], source: str) -> dict[str, Any]:
    step_functions = document.get("stepFunctions")
    machines = step_functions.get("stateMachines") if isinstance(step_functions, dict) else None
    if not isinstance(machines, dict) or not machines:
        raise DefinitionError("serverless.yml has no stepFunctions.stateMachines", where=source)
    return machines


def _choose_machine(machines: dict[str, Any], source: str, key: str | None) -> str:
    available = ", ".join(sorted(str(name) for name in machines))
    if key is None:
        if len(machines) == 1:
            return str(next(iter(machines)))
        raise DefinitionError(
            f"serverless.yml defines several state machines; choose one of: {available}",
            where=source,
        )
    if key not in machines:
        raise DefinitionError(
            f'serverless.yml has no state machine "{key}"; available: {available}', where=source
        )
    return key


def _machine_definition(machine: dict[str, Any], key: str, source: str) -> dict[str, Any]:
    what = f"stepFunctions.stateMachines.{key}.definition"
    definition = machine.get("definition")
    if isinstance(definition, str) and definition.lstrip().startswith("${file("):
        message = f"{what} uses ${{file(...)}}, which stepd does not resolve; inline it"
        raise DefinitionError(message, where=source)
    if isinstance(definition, str):
        definition = _parse_json(definition, source, what=f"{what} is a string but ")
    if not isinstance(definition, dict):
        raise DefinitionError(f"{what} must be an object or a JSON string", where=source)
    return definition


def _http_events(events: Any, key: str, source: str) -> tuple[HttpEvent, ...]:
    if events is None:
        return ()
    if not isinstance(events, list):
        raise DefinitionError(
            f"stepFunctions.stateMachines.{key}.events must be a list", where=source
        )
    return tuple(
        _http_event(event["http"], key, source)
        for event in events
        if isinstance(event, dict) and "http" in event
    )


def _http_event(spec: Any, key: str, source: str) -> HttpEvent:
    if isinstance(spec, str) and len(spec.split()) == 2:  # "METHOD path"
        method_word, path_word = spec.split()
        return HttpEvent(path=_normalise_path(path_word), method=method_word.upper())
    if isinstance(spec, dict) and isinstance(spec.get("path"), str):
        path, method = spec["path"], spec.get("method")
        action = spec.get("action", DEFAULT_HTTP_ACTION)
        if isinstance(method, str) and isinstance(action, str):
            return HttpEvent(path=_normalise_path(path), method=method.upper(), action=action)
    raise DefinitionError(
        f"stepFunctions.stateMachines.{key}.events: an http event needs a path and a method "
        '(a mapping, or a string like "POST classroom/create")',
        where=source,
    )


def _normalise_path(path: str) -> str:
    return "/" + path.strip().lstrip("/")


def _lambda_names(document: dict[str, Any]) -> dict[str, str]:
    """Function key -> deployed Lambda name (`name:`, else `<service>-<stage>-<key>`)."""
    functions = document.get("functions")
    if not isinstance(functions, dict):
        return {}
    prefix = _default_name_prefix(document)
    names: dict[str, str] = {}
    for function_key, spec in functions.items():
        explicit = spec.get("name") if isinstance(spec, dict) else None
        if isinstance(explicit, str):
            names[str(function_key)] = explicit
        elif prefix is not None:
            names[str(function_key)] = f"{prefix}-{function_key}"
    return names


def _default_name_prefix(document: dict[str, Any]) -> str | None:
    service = document.get("service")
    if isinstance(service, dict):
        service = service.get("name")
    if not isinstance(service, str):
        return None
    provider = document.get("provider")
    stage = provider.get("stage") if isinstance(provider, dict) else None
    return f"{service}-{stage if isinstance(stage, str) else DEFAULT_SERVERLESS_STAGE}"
