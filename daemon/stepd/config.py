"""Configuration: one TOML file, `STEPD_SECTION__KEY` environment overrides.

Only the CLI and the daemon read configuration; everything else receives plain values.
Relative paths in the file are relative to the file. Secrets are read from files (or systemd
credentials), never from the config text, and never logged.
"""

from __future__ import annotations

import os
import tomllib
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from stepd.errors import ConfigError

DEFAULT_DB_PATH = Path("/var/lib/stepd/stepd.db")
DEFAULT_LISTEN = "127.0.0.1:8300"
DEFAULT_HTTP_TIMEOUT_SECONDS = 10.0
DEFAULT_MAX_CONCURRENCY = 64  # task calls in flight at once
DEFAULT_LATE_THRESHOLD_SECONDS = 60.0
EX_CONFIG = 78  # sysexits.h: configuration error

_config_file: ContextVar[dict[str, Any] | None] = ContextVar("stepd_config_file", default=None)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StoreSettings(_Section):
    path: Path = DEFAULT_DB_PATH


class ApiSettings(_Section):
    listen: str = DEFAULT_LISTEN  # "host:port" or "unix:/path/to.sock"
    region: str = "us-east-1"
    account: str = "123456789012"

    @field_validator("listen")
    @classmethod
    def _listen_shape(cls, value: str) -> str:
        if value.startswith("unix:"):
            if len(value) <= len("unix:"):
                raise ValueError("unix: needs a socket path")
            return value
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ValueError(f"expected HOST:PORT or unix:/PATH, got {value!r}")
        return value


class HttpSettings(_Section):
    base_url: str = "http://127.0.0.1:8080"
    timeout_seconds: float = Field(default=DEFAULT_HTTP_TIMEOUT_SECONDS, gt=0)
    max_concurrency: int = Field(default=DEFAULT_MAX_CONCURRENCY, ge=1, le=10_000)
    signing_secret_file: Path | None = None


class LogSettings(_Section):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["auto", "json", "console"] = "auto"


class MachineSettings(_Section):
    name: str
    definition: Path
    key: str | None = None  # which machine of a serverless.yml
    endpoints: dict[str, str] = Field(default_factory=dict)
    late_threshold_seconds: float = Field(default=DEFAULT_LATE_THRESHOLD_SECONDS, gt=0)
    late_policy: Literal["run", "fail"] = "run"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="STEPD_", env_nested_delimiter="__", extra="forbid", frozen=True
    )

    store: StoreSettings = StoreSettings()
    api: ApiSettings = ApiSettings()
    http: HttpSettings = HttpSettings()
    log: LogSettings = LogSettings()
    machines: list[MachineSettings] = Field(default_factory=list)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,  # noqa: ARG003
        file_secret_settings: PydanticBaseSettingsSource,  # noqa: ARG003
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _TomlSource(settings_cls))


class _TomlSource(PydanticBaseSettingsSource):
    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:  # noqa: ARG002
        return (_config_file.get() or {}).get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(_config_file.get() or {})


def load_settings(path: Path) -> Settings:
    """Read, validate and resolve the config file. Raises ConfigError saying what and where."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    token = _config_file.set(raw)
    try:
        settings = Settings()
    except ValidationError as exc:
        raise ConfigError(f"{path}: {describe_errors(exc)}") from None
    finally:
        _config_file.reset(token)
    return resolve_paths(settings, path.parent)


def describe_errors(exc: ValidationError) -> str:
    """Each problem as `where: message`, without the offending values (they may be secret)."""
    parts = []
    for error in exc.errors(include_input=False, include_url=False):
        where = ".".join(str(p) for p in error["loc"]) or "config"
        parts.append(f"{where}: {error['msg']}")
    return "; ".join(parts)


def resolve_paths(settings: Settings, base: Path) -> Settings:
    def resolve(path: Path) -> Path:
        return path if path.is_absolute() else (base / path).resolve()

    store = settings.store.model_copy(update={"path": resolve(settings.store.path)})
    http = settings.http
    if http.signing_secret_file is not None:
        http = http.model_copy(update={"signing_secret_file": resolve(http.signing_secret_file)})
    machines = [
        m.model_copy(update={"definition": resolve(m.definition)}) for m in settings.machines
    ]
    names = [m.name for m in machines]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigError(f"machines: the name {duplicates[0]!r} is used more than once")
    return settings.model_copy(update={"store": store, "http": http, "machines": machines})


def read_secret(path: Path | None, credential: str) -> str | None:
    """A secret from systemd's $CREDENTIALS_DIRECTORY/<credential>, else from `path`."""
    directory = os.environ.get("CREDENTIALS_DIRECTORY")
    if directory and (Path(directory) / credential).is_file():
        return (Path(directory) / credential).read_text(encoding="utf-8").strip()
    if path is None:
        return None
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the secret: {exc.strerror or exc}") from None
