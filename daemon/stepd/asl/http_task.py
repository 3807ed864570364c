"""AWS's HTTP Task (`Resource: arn:aws:states:::http:invoke`): what its Parameters may hold.

Shared by `stepd check` (asl/validate.py), which looks at what a definition writes, and the
caller (tasks/http_invoke.py), which looks at the Parameters a state rendered at run time.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Final

HTTP_INVOKE: Final = "arn:aws:states:::http:invoke"
# AWS cuts an HTTP Task's request off after this (a shorter TimeoutSeconds cuts it sooner)
HTTP_TASK_TIMEOUT_SECONDS: Final = 60.0
METHODS: Final = frozenset({"GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"})
BODY_ENCODINGS: Final = frozenset({"NONE", "URL_ENCODED"})
ARRAY_FORMATS: Final = frozenset({"BRACKETS", "COMMAS", "REPEAT", "INDICES"})

# Request headers an HTTP Task may not set (AWS's list), by exact name or by prefix.
FORBIDDEN_HEADERS: Final = frozenset(
    {
        "a-im",
        "accept-charset",
        "accept-datetime",
        "accept-encoding",
        "authorization",
        "cache-control",
        "connection",
        "content-encoding",
        "content-length",
        "content-md5",
        "date",
        "expect",
        "forwarded",
        "from",
        "host",
        "http2-settings",
        "if-match",
        "if-modified-since",
        "if-none-match",
        "if-range",
        "if-unmodified-since",
        "max-forwards",
        "origin",
        "pragma",
        "proxy-authorization",
        "range",
        "referer",
        "server",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "via",
        "warning",
    }
)
FORBIDDEN_PREFIXES: Final = ("x-forwarded", "x-amz-", "x-amzn-")


def is_http_invoke(resource: Any) -> bool:
    return isinstance(resource, str) and resource == HTTP_INVOKE


def forbidden_header(name: str) -> bool:
    lower = name.strip().lower()
    return lower in FORBIDDEN_HEADERS or lower.startswith(FORBIDDEN_PREFIXES)


CONNECTION_FIELDS: Final = ("InvocationConfig", "Authentication")  # AWS takes either


def connection(parameters: Any) -> tuple[str, Any]:
    """The field naming the task's connection and its `ConnectionArn` as written: AWS's
    `InvocationConfig.ConnectionArn` or `Authentication.ConnectionArn` (None when neither)."""
    if isinstance(parameters, Mapping):
        for name in CONNECTION_FIELDS:
            holder = parameters.get(name)
            if isinstance(holder, Mapping) and "ConnectionArn" in holder:
                return name, holder["ConnectionArn"]
    return CONNECTION_FIELDS[1], None


def connection_arn(parameters: Any) -> Any:
    """The task's ConnectionArn as written (None when absent)."""
    return connection(parameters)[1]


def static_problems(parameters: Any, *, dynamic_suffix: str = ".$") -> Iterator[tuple[str, str]]:
    """What is wrong with an HTTP Task's Parameters as a definition writes them, as
    (field, message). A field given by a path (``"Method.$"``) or an expression is only
    checked for being there."""
    if not isinstance(parameters, Mapping):
        yield "", "an HTTP Task's Parameters must be an object with ApiEndpoint and Method"
        return
    for name in ("ApiEndpoint", "Method"):
        if name not in parameters and f"{name}{dynamic_suffix}" not in parameters:
            yield name, f"an HTTP Task needs {name}"
    endpoint = _static(parameters, "ApiEndpoint")
    if endpoint is not None and not (
        isinstance(endpoint, str) and endpoint.startswith(("http://", "https://"))
    ):
        yield "ApiEndpoint", f"ApiEndpoint must be an http(s) URL, not {endpoint!r}"
    method = _static(parameters, "Method")
    if method is not None and method not in METHODS:
        yield "Method", f"Method must be one of {', '.join(sorted(METHODS))}, not {method!r}"
    headers = parameters.get("Headers")
    if isinstance(headers, Mapping):
        for header in headers:
            name = str(header).removesuffix(dynamic_suffix)
            if forbidden_header(name):
                yield f"Headers/{header}", f'the header "{name}" may not be set by an HTTP Task'
    yield from _transform_problems(parameters.get("Transform"))


def _static(parameters: Mapping[str, Any], name: str) -> Any:
    """The value of `name` when the definition writes it out; None for a path or expression."""
    value = parameters.get(name)
    return None if _is_expression(value) else value


def _transform_problems(transform: Any) -> Iterator[tuple[str, str]]:
    if not isinstance(transform, Mapping):
        return
    encoding = transform.get("RequestBodyEncoding")
    if isinstance(encoding, str) and encoding not in BODY_ENCODINGS:
        message = f"RequestBodyEncoding must be NONE or URL_ENCODED, not {encoding!r}"
        yield "Transform/RequestBodyEncoding", message
    options = transform.get("RequestEncodingOptions")
    array_format = options.get("ArrayFormat") if isinstance(options, Mapping) else None
    if isinstance(array_format, str) and array_format not in ARRAY_FORMATS:
        choices = ", ".join(sorted(ARRAY_FORMATS))
        message = f"ArrayFormat must be one of {choices}, not {array_format!r}"
        yield "Transform/RequestEncodingOptions/ArrayFormat", message


def _is_expression(value: Any) -> bool:
    return isinstance(value, str) and value.startswith("{%") and value.rstrip().endswith("%}")
