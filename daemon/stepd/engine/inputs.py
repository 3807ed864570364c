"""An execution's input, checked at StartExecution: AWS's rules, and a machine's own schema.

AWS refuses input that is not JSON or is larger than 256 KiB (`InvalidExecutionInput`). A
machine may also name a JSON Schema (`input_schema` in its config entry): input that does not
match it is refused the same way, naming where it is wrong, and nothing is stored. A schema's
`"format": "date-time"` is checked with the timestamp parser the Wait state uses, so input
the schema accepts is input the machine's Waits can read.
"""

from __future__ import annotations

import json
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import SchemaError
from jsonschema.validators import validator_for

from stepd import jsontext
from stepd.asl.timestamps import is_timestamp
from stepd.errors import ConfigError, InvalidExecutionInput
from stepd.jsontext import may_hold_surrogate, unpaired_surrogate

MAX_INPUT_BYTES = 262_144  # AWS's payload limit
MAX_SCHEMA_PROBLEMS = 5  # problems named in one refusal; the rest are counted

_FORMATS = FormatChecker()


@_FORMATS.checks("date-time")
def _is_date_time(value: object) -> bool:
    return not isinstance(value, str) or is_timestamp(value)


def parse_input(input_text: str) -> Any:
    """The input as a JSON value. Raises InvalidExecutionInput saying why it is refused."""
    try:
        size = len(input_text.encode())
    except UnicodeEncodeError:
        raise InvalidExecutionInput("Invalid execution input: not valid Unicode") from None
    if size > MAX_INPUT_BYTES:
        raise InvalidExecutionInput(
            f"Invalid execution input: {size} bytes is more than the limit of {MAX_INPUT_BYTES}"
        )
    try:
        value = jsontext.STRICT.decode(input_text)
    except RecursionError:
        raise InvalidExecutionInput("Invalid execution input: nested too deeply") from None
    except ValueError as exc:
        raise InvalidExecutionInput(f"Invalid execution input: not JSON: {exc}") from None
    if may_hold_surrogate(input_text) and unpaired_surrogate(value):
        raise InvalidExecutionInput(
            "Invalid execution input: a string in it holds an unpaired UTF-16 surrogate"
            " (an escape such as \\ud800 alone): it is not Unicode text"
        )
    return value


def same_input(stored: str, given: Any) -> bool:
    """Whether `given` is the input stored as `stored` (for an idempotent StartExecution)."""
    try:
        return bool(json.loads(stored) == given)
    except ValueError:
        return False


class InputSchema:
    """A machine's JSON Schema for its executions' input."""

    def __init__(self, schema: dict[str, Any], *, source: str) -> None:
        """Raises ConfigError, naming `source`, for a schema that is not valid."""
        cls = validator_for(schema, default=Draft202012Validator)
        try:
            cls.check_schema(schema)
        except SchemaError as exc:
            where = "/".join(str(part) for part in exc.absolute_path)
            raise ConfigError(
                f"{source}#/{where}: not a valid JSON Schema: {exc.message}"
            ) from None
        self.source = source
        self._validator = cls(schema, format_checker=_FORMATS)

    def check(self, value: Any) -> None:
        """Raises InvalidExecutionInput naming each place where `value` does not match."""
        errors = sorted(self._validator.iter_errors(value), key=lambda e: list(e.absolute_path))
        if not errors:
            return
        named = [f"{error.json_path}: {error.message}" for error in errors[:MAX_SCHEMA_PROBLEMS]]
        more = len(errors) - len(named)
        if more:
            named.append(f"and {more} more")
        raise InvalidExecutionInput(
            f"Invalid execution input: it does not match {self.source}: {'; '.join(named)}"
        )
