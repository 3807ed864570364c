"""Reading the fields of an API request: each refusal is a ValidationException naming the field."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from stepd.errors import InvalidToken, ValidationException
from stepd.store.records import STATUSES

Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]
MAX_PAGE = 1000
REDRIVE_FILTERS = {"REDRIVEN": True, "NOT_REDRIVEN": False}  # redriveFilter: redriven or not
MAX_TOKEN_VALUE = 2**62  # page tokens carry a row or event id


MAX_NEXT_TOKEN = 3096  # AWS's PageToken: at most this many characters


def string(body: dict[str, Any], key: str, *, required: bool = False) -> str | None:
    """`body[key]` as a string; None when absent (ValidationException if `required`)."""
    value = body.get(key)
    if value is None:
        if required:
            raise ValidationException(f"1 validation error detected: '{key}' must not be null")
        return None
    if not isinstance(value, str):
        raise ValidationException(f"'{key}' must be a string")
    if key == "nextToken" and len(value) > MAX_NEXT_TOKEN:  # AWS's model, checked first
        raise ValidationException(
            f"1 validation error detected: Value '{value[:64]}' at 'nextToken' failed to satisfy "
            f"constraint: Member must have length less than or equal to {MAX_NEXT_TOKEN}"
        )
    return value


def required_string(body: dict[str, Any], key: str) -> str:
    value = string(body, key, required=True)
    assert value is not None
    return value


# AWS's ExecutionStatus also has PENDING_REDRIVE (a redrive not begun yet): stepd begins a
# redrive as it answers RedriveExecution, so that filter lists none
LISTED_STATUSES = (*STATUSES, "PENDING_REDRIVE")


def execution_filters(body: dict[str, Any]) -> tuple[str | None, str | None]:
    """ListExecutions' `statusFilter` and `redriveFilter` (None when absent), each one of its
    enum (`STATUSES`, `REDRIVE_FILTERS`)."""
    status = string(body, "statusFilter")
    if status is not None and status not in LISTED_STATUSES:
        raise ValidationException(
            f"'statusFilter' must be one of {', '.join(LISTED_STATUSES)}, not '{status}'"
        )
    redriven = string(body, "redriveFilter")
    if redriven is not None and redriven not in REDRIVE_FILTERS:
        raise ValidationException(
            f"'redriveFilter' must be one of {', '.join(REDRIVE_FILTERS)}, not '{redriven}'"
        )
    return status, redriven


def choice(body: dict[str, Any], key: str, allowed: Sequence[str], default: str) -> str:
    """One of `allowed` (an enum of the model), `default` when absent."""
    value = string(body, key)
    if value is None:
        return default
    if value not in allowed:
        raise ValidationException(
            f"1 validation error detected: Value '{value}' at '{key}' failed to satisfy "
            f"constraint: Member must satisfy enum value set: [{', '.join(allowed)}]"
        )
    return value


def integer(body: dict[str, Any], key: str, *, default: int, maximum: int) -> int:
    """An integer from 0 to `maximum`; absent or 0 means `default`."""
    value = body.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationException(f"'{key}' must be an integer")
    if not 0 <= value <= maximum:
        raise ValidationException(
            f"1 validation error detected: Value '{value}' at '{key}' failed to satisfy "
            f"constraint: Member must have value between 0 and {maximum}"
        )
    return value or default


def counter(mapping: dict[str, Any], key: str) -> int | None:
    """A non-negative integer, or None when absent."""
    value = mapping.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValidationException(f"'{key}' must be an integer of at least 0")
    return value


def boolean(body: dict[str, Any], key: str) -> bool | None:
    value = body.get(key)
    if value is not None and not isinstance(value, bool):
        raise ValidationException(f"'{key}' must be a boolean")
    return value


def structure(body: dict[str, Any], key: str) -> dict[str, Any] | None:
    value = body.get(key)
    if value is not None and not isinstance(value, dict):
        raise ValidationException(f"'{key}' must be an object")
    return value


def page_token(body: dict[str, Any]) -> None:
    """Check `nextToken` of a list that has only one, empty page: any token is not ours."""
    token = string(body, "nextToken")
    integer(body, "maxResults", default=MAX_PAGE, maximum=MAX_PAGE)
    if token is not None:
        raise InvalidToken(f"Invalid Token: '{token[:64]}'")


def page_token_for(value: int, scope: str) -> str:
    """A page token: where the next page starts, and the request it belongs to (`scope`)."""
    return base64.urlsafe_b64encode(f"stepd:{value}:{_scope(scope)}".encode()).decode()


def page_start(token: str | None, scope: str) -> int | None:
    """Where the page a token names starts; InvalidToken for a token that is not ours or was
    given by another request (another execution, machine, filter or order)."""
    if token is None:
        return None
    prefix, number, given = "", "", ""
    try:
        text = base64.urlsafe_b64decode(token.encode()).decode()
        prefix, number, given = [*text.split(":"), "", ""][:3]
        value = int(number)
    except ValueError:
        value = None
    in_scope = given in ("", _scope(scope))  # "": a token from before tokens named a request
    if prefix != "stepd" or value is None or not 0 < value < MAX_TOKEN_VALUE or not in_scope:
        raise InvalidToken(f"Invalid Token: '{token[:64]}'")
    return value


def _scope(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:12]
