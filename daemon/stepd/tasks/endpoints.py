"""Which URL a Task state POSTs to.

The config maps names to endpoints::

    [machines.endpoints]
    StartRecording = "/recording/start"                  # a Task state name
    consult-api-dev-StartRecorder = "/recording/start"   # a Lambda function name
    "startRecording.Arn" = "https://other.example/rec"   # a Fn::GetAtt, absolute URL

A state name wins over its Resource. A Task using AWS's Lambda integration
(``arn:aws:states:::lambda:invoke``) is also mapped by the function its Parameters name
(``FunctionName``: as written, or the function's name), after its state name and before its
Resource. A value is a path appended to ``base_url`` (which may carry a path prefix of its
own) or an absolute ``http(s)`` URL.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from stepd.errors import ConfigError

DEFAULT_PORT = 8080  # of the classroom server `base_url` names unless configured
DEFAULT_BASE_URL = f"http://127.0.0.1:{DEFAULT_PORT}"
HTTP_SCHEMES = frozenset({"http", "https"})
LAMBDA_FUNCTION_MARKER = ":function:"
MAX_RESOLVED = 4096  # (state, Resource) pairs whose URL is kept


@dataclass(frozen=True, kw_only=True)
class EndpointMap:
    """Task state names and Resources mapped to URLs on the classroom server.

    Raises ConfigError when ``base_url`` or an absolute route is not an http(s) URL.
    """

    base_url: str
    routes: Mapping[str, str]
    # by (state name, Resource, function keys) when the Resource is text: the URL, or None
    _resolved: dict[tuple[str, str, tuple[str, ...]] | None, str | None] = field(
        default_factory=dict, init=False, compare=False, repr=False
    )

    def __post_init__(self) -> None:
        if self.base_url:
            _check_http_url(self.base_url, where="base_url")
        for name, route in self.routes.items():
            check_route(name, route, has_base_url=bool(self.base_url))

    def resolve(self, state_name: str, resource: Any, functions: Sequence[str] = ()) -> str | None:
        """The URL for a Task state: by state name, else by one of `functions` (the keys of
        the function a `lambda:invoke` Task names), else by a key of its Resource.

        None when none is mapped.
        """
        kept = (state_name, resource, tuple(functions)) if isinstance(resource, str) else None
        if kept in self._resolved:
            return self._resolved[kept]
        key = route_key(self.routes, state_name, resource, functions)
        url = None if key is None else self._url(self.routes[key])
        if kept is not None and len(self._resolved) < MAX_RESOLVED:
            self._resolved[kept] = url
        return url

    def url(self, route: str) -> str | None:
        """The URL of `route` (a path or URL, as configured): itself when absolute, else
        joined to ``base_url``; None for a path when there is no base URL."""
        if not is_absolute(route) and not self.base_url:
            return None
        return self._url(route)

    def _url(self, route: str) -> str:
        if is_absolute(route):
            return route
        return f"{self.base_url.rstrip('/')}/{route.lstrip('/')}"


def route_key(
    routes: Mapping[str, str], state_name: str, resource: Any, functions: Sequence[str] = ()
) -> str | None:
    """The key of `routes` a Task state goes by: its name, else one of `functions`, else a
    key of its Resource."""
    keys = (state_name, *functions, *resource_keys(resource))
    return next((k for k in keys if k in routes), None)


def check_route(name: str, route: str, *, has_base_url: bool) -> None:
    """Raises ConfigError unless `route` is an http(s) URL, or a path and there is a base URL."""
    if is_absolute(route):
        _check_http_url(route, where=f"endpoints.{name}")
    elif not has_base_url:
        raise ConfigError(f"endpoints.{name}: path {route!r} needs a base_url")


def base_url_problem(url: str) -> str | None:
    """What is wrong with `url` as the base URL of relative endpoints; None when nothing is
    (an empty one is allowed: then every endpoint must be a whole URL)."""
    if not url:
        return None
    if not is_absolute(url):
        return f"{url!r} needs http:// or https:// (such as 'http://{url.lstrip('/')}')"
    try:
        _check_http_url(url, where="base_url")
    except ConfigError as exc:
        return exc.message.removeprefix("base_url: ")
    return None


def resource_keys(resource: Any) -> list[str]:
    """The names a config may use for a Task `Resource`, most specific first.

    - ``"arn:aws:lambda:…:function:Name[:alias]"`` → the ARN, then ``Name``
    - ``{"Fn::GetAtt": ["Logical", "Arn"]}`` (or ``"Logical.Arn"``) → ``Logical.Arn``, ``Logical``
    - ``{"Ref": "Logical"}`` → ``Logical``
    - ``{"Fn::Sub": template}`` → as the template string
    - any other string → itself; anything else → nothing
    """
    keys: list[str] = []
    if isinstance(resource, str):
        keys = [resource]
        if LAMBDA_FUNCTION_MARKER in resource:
            function = resource.rsplit(LAMBDA_FUNCTION_MARKER, 1)[1].split(":", 1)[0]
            keys.append(function)
    elif isinstance(resource, Mapping) and len(resource) == 1:
        ((intrinsic, argument),) = resource.items()
        if intrinsic == "Fn::GetAtt":
            keys = _getatt_keys(argument)
        elif intrinsic == "Ref" and isinstance(argument, str):
            keys = [argument]
        elif intrinsic == "Fn::Sub":
            template = argument[0] if isinstance(argument, list) and argument else argument
            keys = resource_keys(template) if isinstance(template, str) else []
    return list(dict.fromkeys(key for key in keys if key))


def _getatt_keys(argument: Any) -> list[str]:
    if isinstance(argument, str):
        logical_id, _, attribute = argument.partition(".")
    elif (
        isinstance(argument, list)
        and len(argument) == 2
        and all(isinstance(part, str) for part in argument)
    ):
        logical_id, attribute = argument
    else:
        return []
    return [f"{logical_id}.{attribute}", logical_id] if attribute else [logical_id]


def is_absolute(route: str) -> bool:
    return "://" in route


def _check_http_url(url: str, *, where: str) -> None:
    try:
        parts = urlsplit(url)
        valid = parts.scheme in HTTP_SCHEMES and bool(parts.hostname)
    except ValueError:
        valid = False
    if not valid:
        raise ConfigError(f"{where}: {url!r} is not an http(s) URL")
