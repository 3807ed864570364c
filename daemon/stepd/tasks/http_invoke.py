"""AWS's HTTP Task: from a state's rendered Parameters to a request, and from the answer to
the task's result or error.

Parameters (as AWS): ``ApiEndpoint`` (an http(s) URL), ``Method``, ``Headers``,
``QueryParameters`` (added to the URL's query), ``RequestBody`` (JSON, a string as it is, or
URL-encoded per ``Transform.RequestBodyEncoding`` and
``Transform.RequestEncodingOptions.ArrayFormat``), ``InvocationConfig.ConnectionArn`` or
``Authentication.ConnectionArn`` (a configured connection, whose headers are added). The
result is ``{StatusCode, StatusText, Headers, ResponseBody}``; a non-2xx answer fails with
``States.Http.StatusCode.<code>`` and that same object, as JSON, for its cause.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import quote, urlencode

from yarl import URL

from stepd import jsontext
from stepd.asl.http_task import (
    ARRAY_FORMATS,
    BODY_ENCODINGS,
    METHODS,
    connection,
    forbidden_header,
)
from stepd.errors import HttpTaskError
from stepd.tasks.connections import Connections

JSON_CONTENT_TYPE: Final = "application/json; charset=UTF-8"
FORM_CONTENT_TYPE: Final = "application/x-www-form-urlencoded"
MAX_CAUSE_CHARS: Final = 32_768  # AWS's limit on an error's cause


@dataclass(frozen=True, kw_only=True)
class HttpCall:
    """One HTTP Task request, ready to send (stepd's own headers are added by the caller)."""

    method: str
    url: str
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)  # may hold secrets
    body: bytes | None = None


def endpoint_of(payload: Any) -> str | None:
    """The ApiEndpoint of rendered Parameters, when it is a string."""
    if isinstance(payload, Mapping):
        endpoint = payload.get("ApiEndpoint")
        if isinstance(endpoint, str):
            return endpoint
    return None


def build_call(parameters: Any, connections: Connections) -> HttpCall:
    """The request `parameters` describe. Raises HttpTaskError saying what is wrong."""
    if not isinstance(parameters, Mapping):
        raise HttpTaskError("The HTTP Task's Parameters must be an object")
    endpoint = parameters.get("ApiEndpoint")
    if not isinstance(endpoint, str) or not endpoint.startswith(("http://", "https://")):
        raise HttpTaskError(f"ApiEndpoint must be an http(s) URL, not {_show(endpoint)}")
    method = parameters.get("Method")
    if method not in METHODS:
        raise HttpTaskError(
            f"Method must be one of {', '.join(sorted(METHODS))}, not {_show(method)}"
        )
    headers = _headers(parameters.get("Headers"))
    url = _url(endpoint, parameters.get("QueryParameters"))
    encoding, array_format = _transform(parameters.get("Transform"))
    body = _body(parameters.get("RequestBody"), encoding, array_format, headers)
    holder, arn = connection(parameters)
    if arn is not None:
        if not isinstance(arn, str):
            raise HttpTaskError(f"{holder}.ConnectionArn must be a string")
        configured = connections.find(arn)
        if configured is None:
            raise HttpTaskError(
                f"No connection is configured for the ConnectionArn '{arn}': add a "
                "[[connections]] table with that name or arn to the config"
            )
        for name, value in configured.headers.items():
            headers = replace_header(headers, name, value)
    return HttpCall(method=str(method), url=url, headers=headers, body=body)


def replace_header(headers: Mapping[str, str], name: str, value: str) -> dict[str, str]:
    """`headers` with `name` set to `value`, whatever the case it had there before."""
    kept = {k: v for k, v in headers.items() if k.lower() != name.lower()}
    kept[name] = value
    return kept


def result_of(status: int, reason: str, headers: Mapping[str, list[str]], body: bytes) -> Any:
    """The task's result (or, for a non-2xx, its cause) as AWS shapes it."""
    text = body.decode("utf-8", errors="replace")
    response: Any = text
    if text.strip():
        try:
            response = json.loads(text)
        except ValueError:
            response = text
    return {
        "StatusCode": status,
        "StatusText": reason,
        "Headers": dict(headers),
        "ResponseBody": response,
    }


def failure_cause(result: Mapping[str, Any]) -> str:
    """The cause of a non-2xx answer: its result as JSON, the body cut to fit AWS's limit."""
    cause = _dumps(result)
    if len(cause) <= MAX_CAUSE_CHARS:
        return cause
    body = result.get("ResponseBody")
    text = body if isinstance(body, str) else _dumps(body)
    room = max(0, len(text) - (len(cause) - MAX_CAUSE_CHARS) - 16)
    return _dumps({**result, "ResponseBody": text[:room]})[:MAX_CAUSE_CHARS]


def encode_form(data: Any, array_format: str = "INDICES") -> str:
    """`data` URL-encoded: nested objects as ``a[b]=…``, arrays per `array_format`."""
    if isinstance(data, str):
        return data
    if not isinstance(data, Mapping):
        raise HttpTaskError("A URL_ENCODED RequestBody must be an object or a string")
    pairs: list[tuple[str, str]] = []
    for key, value in data.items():
        _form_pairs(str(key), value, array_format, pairs)
    return "&".join(f"{quote(k, safe='[]')}={quote(v, safe='')}" for k, v in pairs)


def _form_pairs(key: str, value: Any, array_format: str, out: list[tuple[str, str]]) -> None:
    if isinstance(value, Mapping):
        for name, item in value.items():
            _form_pairs(f"{key}[{name}]", item, array_format, out)
    elif isinstance(value, list):
        if array_format == "COMMAS":
            out.append((key, ",".join(_scalar(item) for item in value)))
            return
        for index, item in enumerate(value):
            name = {"BRACKETS": f"{key}[]", "REPEAT": key}.get(array_format, f"{key}[{index}]")
            _form_pairs(name, item, array_format, out)
    else:
        out.append((key, _scalar(value)))


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return json.dumps(value)
    return _dumps(value)


def _headers(raw: Any) -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise HttpTaskError("Headers must be an object")
    headers: dict[str, str] = {}
    for name, value in raw.items():
        if forbidden_header(str(name)):
            raise HttpTaskError(f'The header "{name}" may not be set by an HTTP Task')
        if isinstance(value, Mapping | list):
            raise HttpTaskError(f'The header "{name}" must have a string value')
        headers[str(name)] = _scalar(value)
    return headers


def _url(endpoint: str, query: Any) -> str:
    try:
        url = URL(endpoint)
    except ValueError as exc:
        raise HttpTaskError(f"ApiEndpoint is not a URL: {exc}") from exc
    if not url.host:
        raise HttpTaskError(f"ApiEndpoint has no host: {endpoint!r}")
    if query is None:
        return str(url)
    if not isinstance(query, Mapping):
        raise HttpTaskError("QueryParameters must be an object")
    pairs: list[tuple[str, str]] = []
    for name, value in query.items():
        values = value if isinstance(value, list) else [value]
        for item in values:
            if isinstance(item, Mapping | list):
                raise HttpTaskError(f'The query parameter "{name}" must be a string or a list')
            pairs.append((str(name), _scalar(item)))
    extra = urlencode(pairs)
    joined = f"{url.raw_query_string}&{extra}" if url.raw_query_string else extra
    return str(url.with_query(None)) + (f"?{joined}" if joined else "")


def _transform(raw: Any) -> tuple[str, str]:
    if raw is None:
        return "NONE", "INDICES"
    if not isinstance(raw, Mapping):
        raise HttpTaskError("Transform must be an object")
    encoding = raw.get("RequestBodyEncoding", "NONE")
    if encoding not in BODY_ENCODINGS:
        raise HttpTaskError(
            f"RequestBodyEncoding must be NONE or URL_ENCODED, not {_show(encoding)}"
        )
    options = raw.get("RequestEncodingOptions") or {}
    array_format = options.get("ArrayFormat", "INDICES") if isinstance(options, Mapping) else None
    if array_format not in ARRAY_FORMATS:
        raise HttpTaskError(
            f"ArrayFormat must be one of {', '.join(sorted(ARRAY_FORMATS))}, "
            f"not {_show(array_format)}"
        )
    return str(encoding), str(array_format)


def _body(body: Any, encoding: str, array_format: str, headers: dict[str, str]) -> bytes | None:
    if body is None:
        return None
    content_type = next((k for k in headers if k.lower() == "content-type"), None)
    if encoding == "URL_ENCODED":
        if content_type is None:
            headers["Content-Type"] = FORM_CONTENT_TYPE
        return encode_form(body, array_format).encode()
    if content_type is None:
        headers["Content-Type"] = JSON_CONTENT_TYPE
    if isinstance(body, str):
        return body.encode()
    try:
        return jsontext.strict(body).encode()
    except ValueError as exc:
        raise HttpTaskError(f"RequestBody is not JSON: {exc}") from exc


def _dumps(value: Any) -> str:
    return jsontext.compact(value)


def _show(value: Any) -> str:
    return "nothing" if value is None else _dumps(value)
