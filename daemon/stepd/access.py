"""Who may use the control API, as plain values: key pairs, and whether an address is local.

The pure parsers that turn what the configuration holds into these values live here, so that
`config` (which reads the files) and `api.auth` (which checks requests against the values)
both use them without one importing the other.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from stepd.errors import ConfigError

MIN_SECRET_CHARS = 16  # AWS's own secret access keys have 40
MAX_ACCESS_KEY_ID_CHARS = 128
LOCAL_HOST_NAMES = frozenset({"localhost", "localhost.", "ip6-localhost"})


@dataclass(frozen=True, kw_only=True)
class KeyPair:
    """One access key id and its secret access key (never shown in a repr)."""

    access_key_id: str
    secret_access_key: str = field(repr=False)


@dataclass(frozen=True, kw_only=True)
class ApiAccess:
    """What the API accepts: with no key pairs, anything (loopback and unix sockets only)."""

    keys: tuple[KeyPair, ...] = ()
    metrics_token: str | None = field(default=None, repr=False)  # Bearer, for GET /metrics only

    @property
    def required(self) -> bool:
        return len(self.keys) > 0


def parse_key_pairs(text: str, where: str) -> tuple[KeyPair, ...]:
    """Key pairs from `ACCESS_KEY_ID:SECRET_ACCESS_KEY` lines (`#` comments, blank lines).

    Raises ConfigError naming the line, never its content.
    """
    pairs: list[KeyPair] = []
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        key_id, sep, secret = stripped.partition(":")
        key_id, secret = key_id.strip(), secret.strip()
        if not sep or not key_id or not secret:
            raise ConfigError(f"{where}: line {number}: expected ACCESS_KEY_ID:SECRET_ACCESS_KEY")
        if not _valid_key_id(key_id):
            raise ConfigError(
                f"{where}: line {number}: an access key id has 1 to {MAX_ACCESS_KEY_ID_CHARS} "
                "letters, digits, '_', '.' or '-'"
            )
        if len(secret) < MIN_SECRET_CHARS or any(c.isspace() for c in secret):
            raise ConfigError(
                f"{where}: line {number}: the secret access key must have at least "
                f"{MIN_SECRET_CHARS} characters and no spaces"
            )
        if any(p.access_key_id == key_id for p in pairs):
            raise ConfigError(f"{where}: line {number}: the access key id {key_id} appears twice")
        pairs.append(KeyPair(access_key_id=key_id, secret_access_key=secret))
    if not pairs:
        raise ConfigError(f"{where}: no ACCESS_KEY_ID:SECRET_ACCESS_KEY line")
    return tuple(pairs)


def _valid_key_id(key_id: str) -> bool:
    return len(key_id) <= MAX_ACCESS_KEY_ID_CHARS and all(
        c.isascii() and (c.isalnum() or c in "_.-") for c in key_id
    )


def is_loopback(listen: str) -> bool:
    """Whether a `[api] listen` value ("host:port" or "unix:/path") reaches this host only."""
    if listen.startswith("unix:"):
        return True
    host = listen.rpartition(":")[0].strip("[]")
    return is_local_host(host)


def is_local_host(host: str) -> bool:
    """Whether `host` (a name or an address, without brackets or port) is this host."""
    if host.lower() in LOCAL_HOST_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_listen(listen: str, access: ApiAccess) -> None:
    """Raise ConfigError when `listen` is reachable from other hosts and no key pair is set."""
    if access.required or is_loopback(listen):
        return
    raise ConfigError(
        f"api.listen: {listen} is reachable from other hosts, so the API needs authentication: "
        "put ACCESS_KEY_ID:SECRET_ACCESS_KEY lines in the systemd credential 'api_credentials' "
        "or in a file named by [api] credentials_file, or listen on 127.0.0.1:PORT or "
        "unix:/PATH"
    )
