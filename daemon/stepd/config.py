"""Configuration: one TOML file, `STEPD_SECTION__KEY` environment overrides.

Only the CLI and the daemon read configuration; everything else receives plain values, made
here from the settings: `machine_specs` for the catalog, `api_access` for the API,
`client_key` for the command-line client. Defaults that other modules also use are theirs
(the engine's region, account, workers and timeouts; the classroom server's base URL).
Relative paths in the file are relative to the file. Secrets are read from files (or systemd
credentials), never from the config text, and never logged.
"""

from __future__ import annotations

import difflib
import os
import re
import tomllib
from collections.abc import Mapping, Sequence
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from stepd.access import ApiAccess, KeyPair, check_listen, is_loopback, parse_key_pairs
from stepd.alerts import Target
from stepd.catalog import MachineSpec
from stepd.engine.arns import DEFAULT_ACCOUNT, DEFAULT_REGION
from stepd.engine.machines import (
    DEFAULT_LATE_THRESHOLD_SECONDS,
    DEFAULT_TASK_TIMEOUT_SECONDS,
    LATE_RUN,
)
from stepd.engine.queue import DEFAULT_WORKERS
from stepd.engine.testruns import MAX_TIME_SCALE, TestRuns, read_mock_config
from stepd.errors import ConfigError
from stepd.tasks.connections import (
    AUTH_API_KEY,
    AUTH_BASIC,
    Connection,
    Connections,
    auth_headers,
)
from stepd.tasks.endpoints import DEFAULT_BASE_URL

DEFAULT_DB_PATH = Path("/var/lib/stepd/stepd.db")
DEFAULT_LISTEN = "127.0.0.1:8300"
DEFAULT_RETENTION_DAYS = 90.0
EX_CONFIG = 78  # sysexits.h: configuration error
ENV_PREFIX = "STEPD_"
ENV_DELIMITER = "__"

# systemd credentials ($CREDENTIALS_DIRECTORY/<name>, from LoadCredential=) win over files.
SIGNING_CREDENTIAL = "signing_secret"
API_CREDENTIAL = "api_credentials"
METRICS_CREDENTIAL = "metrics_token"
STORE_CREDENTIAL = "store_password"
ACCESS_KEY_ENV = "AWS_ACCESS_KEY_ID"
SECRET_KEY_ENV = "AWS_SECRET_ACCESS_KEY"  # noqa: S105 - the variable's name, not a secret
# Keys that would put a secret in the config text: refused, with where the secret goes instead.
_INLINE_SECRETS = {
    "signing_secret": f"[http] signing_secret_file or the credential '{SIGNING_CREDENTIAL}'",
    "credentials": f"[api] credentials_file or the credential '{API_CREDENTIAL}'",
    "access_key_id": f"[api] credentials_file or the credential '{API_CREDENTIAL}'",
    "secret_access_key": f"[api] credentials_file or the credential '{API_CREDENTIAL}'",
    "api_secret_key": f"[api] credentials_file or the credential '{API_CREDENTIAL}'",
    "api_token": f"[api] credentials_file or the credential '{API_CREDENTIAL}'",
    "token": f"[api] credentials_file or the credential '{API_CREDENTIAL}'",
    "metrics_token": f"[api] metrics_token_file or the credential '{METRICS_CREDENTIAL}'",
    "secret": "a file named by a *_file setting, or a systemd credential",
    "password": "a file named by a *_file setting, or a systemd credential",
}

_config_file: ContextVar[dict[str, Any] | None] = ContextVar("stepd_config_file", default=None)


def _refuse_inline_secrets(data: Any) -> Any:
    if isinstance(data, dict):
        for key in data:
            where = _INLINE_SECRETS.get(str(key).lower())
            if where is not None:
                raise PydanticCustomError(
                    "inline_secret",
                    "{key}: secrets are never read from the config file or the environment; "
                    "put it in {where}",
                    {"key": str(key), "where": where},
                )
    return data


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _no_inline_secrets(cls, data: Any) -> Any:
        return _refuse_inline_secrets(data)


class StoreSettings(_Section):
    path: Path = DEFAULT_DB_PATH
    # A PostgreSQL database shared by several nodes, instead of the SQLite file at `path`:
    # postgresql://USER@HOST:PORT/DATABASE; the password comes from `password_file` or the
    # credential 'store_password', never from the URL.
    url: str | None = None
    password_file: Path | None = None
    # Closed executions and their history are deleted this long after they closed (AWS keeps
    # 90 days); their names can be used again after that. 0 keeps everything.
    retention_days: float = Field(default=DEFAULT_RETENTION_DAYS, ge=0)
    # Several nodes: whether they tell each other (LISTEN/NOTIFY) when new work falls due;
    # false for a database or pooler without LISTEN (PgBouncer in transaction mode).
    notify: bool = True
    # Several nodes: how often each looks at what falls due next (the fallback for NOTIFY).
    watch_seconds: float = Field(default=0.5, gt=0, le=60)

    @field_validator("url")
    @classmethod
    def _url_shape(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.startswith(("postgresql://", "postgres://")):
            raise ValueError("expected postgresql://USER@HOST:PORT/DATABASE")
        _, _, rest = value.partition("://")
        userinfo, at, _ = rest.partition("@")
        import psycopg  # noqa: PLC0415 - only for a PostgreSQL store: SQLite's needs none
        from psycopg.conninfo import conninfo_to_dict  # noqa: PLC0415

        try:
            parts = conninfo_to_dict(value)
        except psycopg.Error as exc:
            raise ValueError(f"not a PostgreSQL URL: {exc}") from None
        if (at and ":" in userinfo.split("/")[0]) or parts.get("password") is not None:
            raise ValueError(
                "the password is never read from the URL; put it in [store] password_file "
                f"or the credential '{STORE_CREDENTIAL}'"
            )
        return value


class ApiSettings(_Section):
    listen: str = DEFAULT_LISTEN  # "host:port" or "unix:/path/to.sock"
    region: str = DEFAULT_REGION
    account: str = DEFAULT_ACCOUNT
    # ACCESS_KEY_ID:SECRET_ACCESS_KEY lines; the credential 'api_credentials' wins over it
    credentials_file: Path | None = None
    # a bearer token Prometheus may scrape /metrics with; the credential 'metrics_token' wins
    metrics_token_file: Path | None = None
    # where people reach the API and its pages: the links in notifications (default: listen)
    public_url: str | None = Field(default=None, pattern=r"^https?://")

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
    base_url: str = DEFAULT_BASE_URL
    timeout_seconds: float = Field(default=DEFAULT_TASK_TIMEOUT_SECONDS, gt=0)
    # task calls in flight at once: the engine's workers and the pool's connections
    max_concurrency: int = Field(default=DEFAULT_WORKERS, ge=1, le=10_000)
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
    late_policy: Literal["run", "fail"] = LATE_RUN
    wait_for_host_seconds: float = Field(default=0, ge=0, le=31_622_400)
    input_schema: Path | None = None  # a JSON Schema file StartExecution checks input against
    # waits of its executions last 1/time_scale of their time: for tests, needs [testing]
    time_scale: float | None = Field(default=None, gt=0, le=MAX_TIME_SCALE)
    # EXPRESS: also runs within a StartSyncExecution request, nothing kept
    type: Literal["STANDARD", "EXPRESS"] = "STANDARD"


class TestingSettings(_Section):
    """Testing definitions in seconds: time scales and mocked task results."""

    enabled: bool = False  # never in production: executions could skip their waits
    mock_config: Path | None = None  # a MockConfigFile in AWS Step Functions Local's format


class TracingSettings(_Section):
    """OpenTelemetry spans of executions and task calls, sent by OTLP/HTTP (JSON)."""

    otlp_endpoint: str | None = None  # e.g. "http://127.0.0.1:4318"; None: no tracing
    service_name: str = Field(default="stepd", min_length=1)

    @field_validator("otlp_endpoint")
    @classmethod
    def _http(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError(
                f"expected an http(s) URL such as http://127.0.0.1:4318, got {value!r}"
            )
        return value


class ConnectionSettings(_Section):
    """What an HTTP Task's Authentication.ConnectionArn stands for (tasks/connections.py)."""

    name: str = Field(min_length=1)
    arn: str | None = None  # matched exactly; without it, the name an EventBridge ARN carries
    auth: Literal["api_key", "basic", "headers"]
    header: str | None = None  # api_key: the header that carries the key
    username: str | None = None  # basic: the user; the secret is the password
    # the secret: the systemd credential of this name wins over the file
    secret_file: Path | None = None
    credential: str | None = None

    @model_validator(mode="after")
    def _complete(self) -> ConnectionSettings:
        if self.auth == AUTH_API_KEY and not self.header:
            raise ValueError("auth = 'api_key' needs header = 'Header-Name'")
        if self.auth == AUTH_BASIC and not self.username:
            raise ValueError("auth = 'basic' needs a username")
        if self.secret_file is None and self.credential is None:
            raise ValueError("the secret comes from secret_file or a systemd credential")
        return self


NoticedStatus = Literal["FAILED", "TIMED_OUT", "ABORTED"]


class NotifySettings(_Section):
    """A `[[notify]]` entry: who hears of executions that end FAILED, TIMED_OUT or ABORTED."""

    url: str = Field(pattern=r"^https?://")
    machines: list[str] | None = None  # None: every machine
    statuses: list[NoticedStatus] = Field(
        default_factory=lambda: list(get_args(NoticedStatus)), min_length=1
    )
    # the Standard Webhooks signing secret: the credential wins over the file; neither: the
    # task calls' secret ([http] signing_secret_file), if any
    secret_file: Path | None = None
    credential: str | None = None


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter=ENV_DELIMITER, extra="forbid", frozen=True
    )

    store: StoreSettings = StoreSettings()
    api: ApiSettings = ApiSettings()
    http: HttpSettings = HttpSettings()
    log: LogSettings = LogSettings()
    machines: list[MachineSettings] = Field(default_factory=list)
    connections: list[ConnectionSettings] = Field(default_factory=list)
    notify: list[NotifySettings] = Field(default_factory=list)
    testing: TestingSettings = TestingSettings()
    tracing: TracingSettings = TracingSettings()

    @model_validator(mode="before")
    @classmethod
    def _no_inline_secrets(cls, data: Any) -> Any:
        return _refuse_inline_secrets(data)

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
    """Read, validate and resolve the config file. Raises ConfigError saying what and where:
    the file, or the environment variable that overrides it."""
    where = str(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError("config file not found", where=where) from exc
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror or exc}", where=where) from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML: {exc}", where=where) from exc
    token = _config_file.set(raw)
    try:
        settings = Settings()
    except ValidationError as exc:  # not chained: it holds the values, which may be secrets
        raise _config_error(exc, where) from None
    except SettingsError as exc:  # an environment variable that is not the JSON it should be
        raise _environment_error(exc) from None
    finally:
        _config_file.reset(token)
    return resolve_paths(settings, path.parent)


def describe_errors(exc: ValidationError) -> str:
    """Each problem as `where: message`, without the offending values (they may be secret)."""
    return "; ".join(text for _, text in _problems(exc, os.environ))


def _config_error(exc: ValidationError, file: str) -> ConfigError:
    """One ConfigError for every problem, each blamed on the file or on the environment
    variable it came from; `where` is the file when it has a problem, else a variable."""
    by_origin: dict[str, list[str]] = {}
    for origin, text in _problems(exc, os.environ):
        by_origin.setdefault(origin or file, []).append(text)
    (where, first), *others = sorted(by_origin.items(), key=lambda item: item[0] != file)
    parts = ["; ".join(first), *(f"{o}: {'; '.join(texts)}" for o, texts in others)]
    return ConfigError("; ".join(parts), where=where)


def _problems(exc: ValidationError, environ: Mapping[str, str]) -> list[tuple[str, str]]:
    """(the environment variable that set it, or "" for the file; `key: message`) each."""
    problems = []
    for error in exc.errors(include_input=False, include_url=False):
        loc, ctx = tuple(error["loc"]), error.get("ctx") or {}
        message = error["msg"]
        if error["type"] == "extra_forbidden":
            message = _unknown_key(loc)
        if error["type"] == "inline_secret":  # its message begins with its key
            loc += (str(ctx["key"]),)
            message = message.removeprefix(f"{ctx['key']}: ")
        key = ".".join(str(p) for p in loc) or "config"
        variable = _environment_variable(loc, environ)
        problems.append((variable, f"{'sets ' if variable else ''}{key}: {message}"))
    return problems


def _environment_variable(loc: tuple[int | str, ...], environ: Mapping[str, str]) -> str:
    """The STEPD_ variable a problem at `loc` came from, or "" when it is the file's."""
    keys = [part for part in loc if isinstance(part, str)]
    present = {name.upper(): name for name in environ if name.upper().startswith(ENV_PREFIX)}
    for end in range(len(keys), 0, -1):
        name = present.get((ENV_PREFIX + ENV_DELIMITER.join(keys[:end])).upper())
        if name is not None:
            return name
    return ""


def _unknown_key(loc: tuple[int | str, ...]) -> str:
    """Why a key is refused: where it is, the keys known there, the closest one."""
    key, section = str(loc[-1]) if loc else "", _section_model(loc[:-1])
    if section is None:
        return "unknown key"
    known = list(section.model_fields)
    if loc[:-1]:
        text = f"unknown key in {_section_name(loc[:-1])} (known keys: {', '.join(known)})"
    else:
        text = f"unknown section (known sections: {', '.join(known)})"
    close = difflib.get_close_matches(key, known, n=1)
    return f"{text}; did you mean {close[0]}?" if close else text


def _section_model(loc: tuple[int | str, ...]) -> type[BaseModel] | None:
    """The model of the table at `loc` (Settings for the top level), if it is one."""
    model: type[BaseModel] = Settings
    for part in loc:
        if isinstance(part, int):  # an entry of a list of tables: its model is the item's
            continue
        field = model.model_fields.get(part)
        annotation = None if field is None else field.annotation
        if get_origin(annotation) is list:
            (annotation,) = get_args(annotation)
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return None
        model = annotation
    return model


def _section_name(loc: tuple[int | str, ...]) -> str:
    """`[http]`, or `[[machines]] number 2` for the second machines table."""
    names = [str(part) for part in loc if isinstance(part, str)]
    indexes = [part for part in loc if isinstance(part, int)]
    if indexes:
        return f"[[{'.'.join(names)}]] number {indexes[-1] + 1}"
    return f"[{'.'.join(names)}]"


_SETTINGS_FIELD = re.compile(r'field "(?P<field>\w+)"')


def _environment_error(exc: SettingsError) -> ConfigError:
    """A STEPD_SECTION variable whose value is not the JSON object a section needs."""
    match = _SETTINGS_FIELD.search(str(exc))
    field = match["field"] if match else ""
    variable = _environment_variable((field,), os.environ) if field else ""
    return ConfigError(
        f"not valid JSON for {field or 'a section'}; set one key at a time with "
        f"{ENV_PREFIX}{field.upper() or 'SECTION'}{ENV_DELIMITER}KEY",
        where=variable or "environment",
    )


def _checked_testing(testing: TestingSettings, machines: list[MachineSettings]) -> TestingSettings:
    """`[testing]`, unless what only tests may use is asked for without it switched on."""
    if not testing.enabled:
        for m in machines:
            if m.time_scale is not None:
                raise ConfigError(
                    f"machines.{m.name}.time_scale: a time scale is for tests only; set "
                    "[testing] enabled = true to use one"
                )
        if testing.mock_config is not None:
            raise ConfigError(
                "testing.mock_config: mocked task results are for tests only; set "
                "[testing] enabled = true to use them"
            )
    return testing


def resolve_paths(settings: Settings, base: Path) -> Settings:
    def resolve(path: Path) -> Path:
        return path if path.is_absolute() else (base / path).resolve()

    store = settings.store.model_copy(
        update={
            "path": resolve(settings.store.path),
            "password_file": None
            if settings.store.password_file is None
            else resolve(settings.store.password_file),
        }
    )
    http = settings.http
    if http.signing_secret_file is not None:
        http = http.model_copy(update={"signing_secret_file": resolve(http.signing_secret_file)})
    api = settings.api
    for name in ("credentials_file", "metrics_token_file"):
        value = getattr(api, name)
        if value is not None:
            api = api.model_copy(update={name: resolve(value)})
    machines = [
        m.model_copy(
            update={
                "definition": resolve(m.definition),
                "input_schema": None if m.input_schema is None else resolve(m.input_schema),
            }
        )
        for m in settings.machines
    ]
    names = [m.name for m in machines]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigError(f"machines: the name {duplicates[0]!r} is used more than once")
    connections = [
        c.model_copy(
            update={"secret_file": None if c.secret_file is None else resolve(c.secret_file)}
        )
        for c in settings.connections
    ]
    names = [c.name for c in connections]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigError(f"connections: the name {duplicates[0]!r} is used more than once")
    notify = [
        n.model_copy(
            update={"secret_file": None if n.secret_file is None else resolve(n.secret_file)}
        )
        for n in settings.notify
    ]
    testing = _checked_testing(settings.testing, machines)
    if testing.mock_config is not None:
        testing = testing.model_copy(update={"mock_config": resolve(testing.mock_config)})
    return settings.model_copy(
        update={
            "store": store,
            "api": api,
            "http": http,
            "machines": machines,
            "connections": connections,
            "notify": notify,
            "testing": testing,
        }
    )


def test_runs(settings: Settings) -> TestRuns:
    """The engine's view of `[testing]`: reads the mock config file (ConfigError if it
    cannot be used)."""
    testing = settings.testing
    mocks = None if testing.mock_config is None else read_mock_config(testing.mock_config)
    scales = {m.name: m.time_scale for m in settings.machines if m.time_scale is not None}
    return TestRuns(enabled=testing.enabled, mocks=mocks, time_scales=scales)


def machine_specs(settings: Settings) -> tuple[MachineSpec, ...]:
    """The configured machines as the catalog takes them."""
    return tuple(
        MachineSpec(
            name=machine.name,
            definition=machine.definition,
            key=machine.key,
            endpoints=dict(machine.endpoints),
            late_threshold_seconds=machine.late_threshold_seconds,
            late_policy=machine.late_policy,
            wait_for_host_seconds=machine.wait_for_host_seconds,
            input_schema=machine.input_schema,
            type=machine.type,
        )
        for machine in settings.machines
    )


def service_credential(credential: str) -> Path | None:
    """Where systemd put the credential (`$CREDENTIALS_DIRECTORY/<credential>`), if given."""
    directory = os.environ.get("CREDENTIALS_DIRECTORY")
    return Path(directory) / credential if directory else None


def read_secret(path: Path | None, credential: str) -> str | None:
    """A secret from systemd's $CREDENTIALS_DIRECTORY/<credential>, else from `path`."""
    given = service_credential(credential)
    if given is not None:
        try:
            if given.is_file():
                return given.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(
                f"the credential {credential} ({given}): cannot read it: {exc.strerror or exc}"
            ) from exc
    if path is None:
        return None
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the secret: {exc.strerror or exc}") from exc


def store_password(settings: Settings) -> str | None:
    """The PostgreSQL store's password: the credential 'store_password', else [store]
    password_file, else None (the server asks for none, or ~/.pgpass has it)."""
    return read_secret(settings.store.password_file, STORE_CREDENTIAL) or None


def connection_names(settings: Settings) -> Connections:
    """The configured connections without their secrets: what `stepd check` looks up."""
    return Connections(tuple(Connection(name=c.name, arn=c.arn) for c in settings.connections))


def read_connections(settings: Settings) -> Connections:
    """The configured connections with the headers their secrets make. Raises ConfigError
    naming the connection and where its secret was looked for, never the secret."""
    found = []
    for c in settings.connections:
        where = f"connections.{c.name}"
        secret = read_secret(c.secret_file, c.credential or "")
        if not secret:
            source = " or ".join(
                part
                for part in (
                    None if c.credential is None else f"the credential {c.credential!r}",
                    None if c.secret_file is None else str(c.secret_file),
                )
                if part
            )
            raise ConfigError(f"{where}: no secret in {source}")
        headers = auth_headers(c.auth, secret, header=c.header, username=c.username, where=where)
        found.append(Connection(name=c.name, arn=c.arn, headers=headers))
    return Connections(tuple(found))


def read_notify(settings: Settings, signing_secret: str | None) -> tuple[Target, ...]:
    """The `[[notify]]` targets with their secrets (`signing_secret`, the task calls' one,
    where an entry names none). Raises ConfigError when a named secret cannot be read."""
    targets = []
    for n in settings.notify:
        secret = signing_secret
        if n.secret_file is not None or n.credential is not None:
            secret = read_secret(n.secret_file, n.credential or "")
            if not secret:
                raise ConfigError(f"notify {n.url}: no secret in {n.secret_file or n.credential}")
        targets.append(
            Target(
                url=n.url,
                machines=None if n.machines is None else frozenset(n.machines),
                statuses=frozenset(n.statuses),
                secret=secret,
            )
        )
    return tuple(targets)


def read_api_keys(settings: Settings) -> tuple[KeyPair, ...]:
    """The API's key pairs: the credential 'api_credentials', else `[api] credentials_file`.

    Empty when neither is set. Raises ConfigError for an unreadable or malformed source,
    without its content.
    """
    given = service_credential(API_CREDENTIAL)
    if given is not None and given.is_file():
        where = f"credential {API_CREDENTIAL}"
    elif settings.api.credentials_file is not None:
        where = str(settings.api.credentials_file)
    else:
        return ()
    text = read_secret(settings.api.credentials_file, API_CREDENTIAL)
    return parse_key_pairs(text or "", where)


# where the shipped unit's `LoadCredential=api_credentials:stepd.api_credentials` finds it
CREDENTIAL_STORES = (
    "/etc/credstore",
    "/run/credstore",
    "/usr/local/lib/credstore",
    "/usr/lib/credstore",
    "/etc/credstore.encrypted",
    "/run/credstore.encrypted",
    "/usr/local/lib/credstore.encrypted",
    "/usr/lib/credstore.encrypted",
)


def open_api_problem(settings: Settings, stores: Sequence[str] = CREDENTIAL_STORES) -> str | None:
    """Why `stepd run` would refuse this config's API (`[api] listen` reachable from other
    hosts with no key pair anywhere), as `stepd check` reports it before a restart does; None
    when key pairs are configured somewhere the daemon may read them (a file, the credential
    of the running service, or a credential store the shipped unit loads from), whether or
    not this process may read them."""
    if is_loopback(settings.api.listen) or settings.api.credentials_file is not None:
        return None
    given = service_credential(API_CREDENTIAL)
    if given is not None and given.is_file():
        return None
    if any(_may_exist(Path(store) / f"stepd.{API_CREDENTIAL}") for store in stores):
        return None
    try:
        check_listen(settings.api.listen, ApiAccess(keys=()))
    except ConfigError as exc:
        return exc.message
    return None


def _may_exist(path: Path) -> bool:
    """Whether `path` exists, or this user may not look (a credential store is root's)."""
    try:
        path.stat()
    except PermissionError:
        return True
    except OSError:
        return False
    return True


def api_access(settings: Settings) -> ApiAccess:
    """Who may use the API, read from credentials and files.

    Raises ConfigError (exit 78) when `[api] listen` is reachable from other hosts and no key
    pair is configured, or when a secret cannot be read.
    """
    access = ApiAccess(
        keys=read_api_keys(settings),
        metrics_token=read_secret(settings.api.metrics_token_file, METRICS_CREDENTIAL) or None,
    )
    check_listen(settings.api.listen, access)
    return access


def client_key(settings: Settings | None) -> KeyPair | None:
    """The key pair a command-line client signs with: $AWS_ACCESS_KEY_ID and
    $AWS_SECRET_ACCESS_KEY when both are set, else the first of the daemon's own (when this
    user can read them), else None."""
    key_id, secret = os.environ.get(ACCESS_KEY_ENV), os.environ.get(SECRET_KEY_ENV)
    if key_id and secret:
        return KeyPair(access_key_id=key_id, secret_access_key=secret)
    if settings is None:
        return None
    keys = read_api_keys(settings)
    return keys[0] if keys else None
