"""Named connections: what an HTTP Task's `Authentication.ConnectionArn` stands for.

AWS keeps an HTTP Task's credentials in an EventBridge connection; stepd keeps them in the
config (``[[connections]]``) with the secret in a file or a systemd credential. A
ConnectionArn finds its connection by the configured ``arn``, else by the connection name an
EventBridge ARN carries (``arn:aws:events:<region>:<account>:connection/<name>/<id>``), else
by being that name. The headers a connection adds are secret: they never appear in a repr,
a log line or the history.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from stepd.errors import ConfigError

AUTH_API_KEY: Final = "api_key"
AUTH_BASIC: Final = "basic"
AUTH_HEADERS: Final = "headers"
AUTH_KINDS: Final = (AUTH_API_KEY, AUTH_BASIC, AUTH_HEADERS)
CONNECTION_MARKER: Final = ":connection/"


@dataclass(frozen=True, kw_only=True)
class Connection:
    name: str
    arn: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)  # secret


@dataclass(frozen=True)
class Connections:
    """The configured connections, looked up by ConnectionArn."""

    items: tuple[Connection, ...] = ()

    def find(self, arn: str) -> Connection | None:
        for connection in self.items:
            if connection.arn is not None and connection.arn == arn:
                return connection
        name = connection_name(arn)
        return next((c for c in self.items if c.arn is None and c.name == name), None)


def connection_name(arn: str) -> str:
    """The connection name an EventBridge connection ARN carries; `arn` itself otherwise."""
    if CONNECTION_MARKER in arn:
        return arn.split(CONNECTION_MARKER, 1)[1].split("/", 1)[0]
    return arn


def auth_headers(
    kind: str,
    secret: str,
    *,
    header: str | None = None,
    username: str | None = None,
    where: str = "connection",
) -> dict[str, str]:
    """The headers a connection of `kind` sends, made from its secret.

    - ``api_key``: `header` carries the secret;
    - ``basic``: ``Authorization: Basic`` of `username` and the secret as password;
    - ``headers``: the secret holds ``Name: value`` lines.

    Raises ConfigError, never with the secret in it.
    """
    if kind == AUTH_API_KEY:
        if not header:
            raise ConfigError(f"{where}: auth = 'api_key' needs header = 'Header-Name'")
        return {header: secret}
    if kind == AUTH_BASIC:
        if not username:
            raise ConfigError(f"{where}: auth = 'basic' needs a username")
        token = base64.b64encode(f"{username}:{secret}".encode()).decode("ascii")
        return {"Authorization": f"Basic {token}"}
    if kind == AUTH_HEADERS:
        headers: dict[str, str] = {}
        for number, line in enumerate(secret.splitlines(), start=1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            name, sep, value = line.partition(":")
            if not sep or not name.strip():
                raise ConfigError(f"{where}: line {number} of the secret is not 'Name: value'")
            headers[name.strip()] = value.strip()
        return headers
    raise ConfigError(f"{where}: auth must be one of {', '.join(AUTH_KINDS)}")
