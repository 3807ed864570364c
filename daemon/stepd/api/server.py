"""The control API over HTTP: AWS JSON 1.0 at `POST /`, serverless `events.http` routes, health
and metrics.

Listens on "host:port" or "unix:/path". Never answers a bad request with a 5xx: every refusal
has AWS's shape, `{"__type": ..., "message": ...}`.

Access (see `stepd.access` and `stepd.api.auth`): with key pairs configured, every request but
`/healthz` must be signed with SigV4 (`GET /metrics` may instead carry the metrics bearer
token), except that a browser may sign in at /ui/signin and then read the pages under /ui/
with its session cookie (`stepd.api.signin`); the cookie opens nothing else. A reload may
change the key pairs (`set_access`). Without them the server listens only on loopback or a
unix socket, and on loopback answers only requests addressed to a loopback name and not sent
from a web page.
"""

from __future__ import annotations

import json
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from stepd import logs
from stepd.access import ApiAccess, check_listen
from stepd.api.auth import Authenticator, Request, check_local_action, check_local_origin
from stepd.api.protocol import Operations
from stepd.api.signin import SignIn, is_action
from stepd.engine.executor import Engine
from stepd.errors import (
    ApiError,
    AuthError,
    InvalidExecutionInput,
    SerializationException,
    ServiceUnavailable,
    StepdError,
    StoreError,
    ValidationException,
)
from stepd.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from stepd.metrics import Metrics
from stepd.ui import Nodes, add_ui_routes
from stepd.ui.views import UI_PATH

log = logs.get_logger("stepd.api")

AMZ_JSON = "application/x-amz-json-1.0"
MAX_REQUEST_BYTES = 1024 * 1024  # a 256 KiB input, escaped, fits with room to spare
MAX_TIMETABLE_BYTES = 32 * 1024 * 1024  # Stepd.ApplyTimetable: a timetable of 100,000s of rows
TIMETABLE_TARGET = "Stepd.ApplyTimetable"
# who asked (the access key a request was signed with), for the history of updates
CALLER_KEY = web.RequestKey("stepd.caller", str)
SHUTDOWN_TIMEOUT_SECONDS = 5.0
HEALTH_PATH = "/healthz"
METRICS_PATH = "/metrics"
REQUEST_ID_HEADER = "x-amzn-RequestId"

_ids = random.Random()  # request ids: unique, not secret  # noqa: S311

Health = Callable[[], Awaitable[dict[str, Any]]]


def _error(exc: ApiError) -> web.Response:
    return web.json_response(
        {"__type": exc.aws_type, "message": exc.message},
        status=exc.status,
        content_type=AMZ_JSON,
    )


@web.middleware
async def _request_id(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Give every answer an `x-amzn-RequestId`, as AWS does (the SDKs report it as the
    request id), and bind it to the log lines the request causes."""
    request_id = _new_request_id()
    # each connection is served by its own task, so the binding stays with this request (and
    # is replaced by the next one on the same connection)
    logs.bind(request_id=request_id)
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        exc.headers[REQUEST_ID_HEADER] = request_id
        raise
    response.headers[REQUEST_ID_HEADER] = request_id
    return response


@web.middleware
async def _timetable_size(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Let Stepd.ApplyTimetable (and nothing else) carry more than MAX_REQUEST_BYTES."""
    if request.path == "/" and request.headers.get("X-Amz-Target") == TIMETABLE_TARGET:
        request = request.clone(client_max_size=MAX_TIMETABLE_BYTES)
    return await handler(request)


def _new_request_id() -> str:
    """A random UUID (version 4), without a system call per request."""
    return str(uuid.UUID(int=_ids.getrandbits(128), version=4))


class ApiServer:
    """The HTTP side of the API.

    `access` says who may call it (default: anyone, which only a loopback or unix-socket
    `listen` allows: ConfigError otherwise); `metrics`, when given, is served at GET /metrics.
    `nodes`, on several nodes, gives the nodes' status for the pages (/ui/nodes).
    `clock` (unix seconds) dates signatures and browser sessions.
    """

    def __init__(
        self,
        engine: Engine,
        listen: str,
        health: Health,
        *,
        access: ApiAccess | None = None,
        metrics: Metrics | None = None,
        nodes: Nodes | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        access = access if access is not None else ApiAccess()
        check_listen(listen, access)
        self.engine = engine
        self.operations = Operations(engine)
        self.listen = listen
        self.health = health
        self.metrics = metrics
        self.nodes = nodes
        self._clock = clock
        self._unix = listen.startswith("unix:")
        self._authenticator = self._new_authenticator(access)
        self._signin = (
            SignIn(self._current_authenticator, unix=self._unix, clock=clock)
            if access.required
            else None
        )
        self._runner: web.AppRunner | None = None
        self.url = ""

    def app(self) -> web.Application:
        app = web.Application(
            client_max_size=MAX_REQUEST_BYTES,
            middlewares=[_timetable_size, _request_id, self._access],
        )
        app.router.add_post("/", self._aws)
        app.router.add_get(HEALTH_PATH, self._healthz)
        if self.metrics is not None:
            app.router.add_get(METRICS_PATH, self._metrics)
        for machine in self.engine.machines.values():
            for event in machine.http_events:
                app.router.add_route(
                    event.method, event.path, self._route(machine.name, event.action)
                )
        add_ui_routes(app, self.engine, nodes=self.nodes)
        if self._signin is not None:
            self._signin.add_routes(app)
        return app

    def set_access(self, access: ApiAccess) -> bool:
        """Check requests against `access` from now on: key pairs added, removed or given new
        secrets (sessions of a key pair removed or changed end with it), a new metrics token.

        Returns False, changing nothing, when `access` would turn authentication on or off:
        that needs a restart.
        """
        if access.required != (self._authenticator is not None):
            return False
        self._authenticator = self._new_authenticator(access)
        return True

    def _new_authenticator(self, access: ApiAccess) -> Authenticator | None:
        if not access.required:
            return None
        return Authenticator(access, region=self.engine.arns.region, clock=self._clock)

    def _current_authenticator(self) -> Authenticator:
        assert self._authenticator is not None  # sign-in is served only with key pairs
        return self._authenticator

    async def start(self) -> None:
        self._runner = web.AppRunner(
            self.app(), access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT_SECONDS
        )
        await self._runner.setup()
        site: web.BaseSite
        if self.listen.startswith("unix:"):
            path = Path(self.listen.removeprefix("unix:"))
            path.unlink(missing_ok=True)  # noqa: ASYNC240 - once, at start
            site = web.UnixSite(self._runner, str(path))
            self.url = self.listen
        else:
            host, _, port = self.listen.rpartition(":")
            site = web.TCPSite(self._runner, host.strip("[]"), int(port), reuse_address=True)
        await site.start()
        if not self.listen.startswith("unix:"):
            sockets = self._runner.addresses
            host, port = sockets[0][0], sockets[0][1]
            self.url = f"http://{host}:{port}"
        log.info("api.listening", url=self.url)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @web.middleware
    async def _access(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if request.path == HEALTH_PATH:
            return await handler(request)
        try:
            if self._signin is not None and _from_browser(request):
                return await self._signin.admit(request, handler)
            if self._authenticator is not None:
                await self._authenticate(request, self._authenticator)
            elif not self._unix:
                view = await _signed_view(request, with_body=False)
                if request.method == "POST" and is_action(request):
                    check_local_action(view)
                else:
                    check_local_origin(view)
        except AuthError as exc:
            log.info(
                "api.refused",
                reason=exc.aws_type,
                method=request.method,
                path=request.path,
                remote=request.remote,
            )
            return _error(exc)
        return await handler(request)

    async def _authenticate(self, request: web.Request, authenticator: Authenticator) -> None:
        if request.path == METRICS_PATH and authenticator.verify_metrics_token(
            request.headers.get("Authorization")
        ):
            return
        key = authenticator.verify(await _signed_view(request, with_body=True))
        request[CALLER_KEY] = f"key {key}"
        log.debug("api.authenticated", key=key, path=request.path)

    async def _metrics(self, _: web.Request) -> web.Response:
        assert self.metrics is not None
        try:
            body = await self.metrics.render()
        except StoreError as exc:
            log.error("api.store_error", path=METRICS_PATH, error=str(exc))  # noqa: TRY400
            return _error(_unavailable(exc))
        return web.Response(body=body, headers={"Content-Type": METRICS_CONTENT_TYPE})

    async def _aws(self, request: web.Request) -> web.Response:
        target = request.headers.get("X-Amz-Target")
        try:
            body = _json_body(await request.read())
            by = request.get(CALLER_KEY) or ("unix socket" if self._unix else "loopback")
            answer = await self.operations.handle(target, body, by)
        except ApiError as exc:
            return _error(exc)
        except web.HTTPRequestEntityTooLarge:
            return _error(_too_large(request.client_max_size))
        except web.HTTPException:
            raise
        except StoreError as exc:
            log.error("api.store_error", target=target, error=str(exc))  # noqa: TRY400
            return _error(_unavailable(exc))
        except StepdError as exc:
            return _error(ValidationException(exc.message))
        return web.json_response(answer, content_type=AMZ_JSON)

    def _route(self, machine: str, action: str) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def start(request: web.Request) -> web.Response:
            name = request.query.get("name") or request.headers.get("X-Stepd-Execution-Name")
            try:
                raw = _text(await request.read())
                if action == "StopExecution":
                    body = _json_body(raw.encode())
                    answer = await self.operations.stop_execution(
                        body if isinstance(body, dict) else {}
                    )
                else:
                    answer = await self.operations.start_execution(
                        {
                            "stateMachineArn": machine,
                            "name": name or str(uuid.uuid4()),
                            "input": raw or "{}",
                        }
                    )
            except ApiError as exc:
                return _error(exc)
            except web.HTTPRequestEntityTooLarge:
                return _error(_too_large())
            except StoreError as exc:
                return _error(_unavailable(exc))
            return web.json_response(answer)

        return start

    async def _healthz(self, _: web.Request) -> web.Response:
        try:
            report = await self.health()
        except StoreError as exc:
            return web.json_response({"status": "unavailable", "error": str(exc)}, status=503)
        # degraded (a task host is down): 503 too, so that a monitor reading status codes sees it
        return web.json_response(report, status=200 if report.get("status") == "ok" else 503)


def _from_browser(request: web.Request) -> bool:
    """A request for the pages without a SigV4 signature: a browser's (or one to refuse)."""
    path = request.path
    in_pages = path == UI_PATH.rstrip("/") or path.startswith(UI_PATH)
    return in_pages and "Authorization" not in request.headers


async def _signed_view(request: web.Request, *, with_body: bool) -> Request:
    """The request as sent, for checking its signature (the body stays readable)."""
    raw = request.raw_path
    if not raw.startswith("/"):  # absolute-form request target
        raw = "/" + raw.partition("://")[2].partition("/")[2]
    path, _, query = raw.partition("?")
    return Request(
        method=request.method,
        path=path,
        query=query,
        headers=tuple(request.headers.items()),
        body=await request.read() if with_body else b"",
    )


def _unavailable(exc: StoreError) -> ApiError:
    return ServiceUnavailable(f"The store cannot accept work right now: {exc.message}")


def _json_body(raw: bytes) -> Any:
    """The request body as JSON, strictly (no NaN or Infinity); SerializationException if not."""
    try:
        return json.loads(raw or b"{}", parse_constant=_not_json)
    except (ValueError, RecursionError):
        raise SerializationException("The request body is not valid JSON") from None


def _text(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidExecutionInput("Invalid execution input: the body is not UTF-8") from None


def _not_json(name: str) -> Any:
    raise ValueError(name)


def _too_large(limit: int = MAX_REQUEST_BYTES) -> ApiError:
    return ValidationException(f"The request is larger than {limit} bytes")
