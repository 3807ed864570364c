"""The control API over HTTP: AWS JSON 1.0 at `POST /`, serverless `events.http` routes, health.

Listens on "host:port" or "unix:/path". Never answers a bad request with a 5xx: every refusal
has AWS's shape, `{"__type": ..., "message": ...}`.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import structlog
from aiohttp import web

from stepd.api.protocol import Operations
from stepd.engine.executor import Engine
from stepd.errors import (
    ApiError,
    ServiceUnavailable,
    StepdError,
    StoreError,
    ValidationException,
)

log = structlog.get_logger("stepd.api")

AMZ_JSON = "application/x-amz-json-1.0"
MAX_REQUEST_BYTES = 1024 * 1024  # a 256 KiB input, escaped, fits with room to spare
SHUTDOWN_TIMEOUT_SECONDS = 5.0

Health = Callable[[], Awaitable[dict[str, Any]]]


def _error(exc: ApiError) -> web.Response:
    return web.json_response(
        {"__type": exc.aws_type, "message": exc.message},
        status=exc.status,
        content_type=AMZ_JSON,
    )


class ApiServer:
    def __init__(self, engine: Engine, listen: str, health: Health) -> None:
        self.engine = engine
        self.operations = Operations(engine)
        self.listen = listen
        self.health = health
        self._runner: web.AppRunner | None = None
        self.url = ""

    def app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_REQUEST_BYTES)
        app.router.add_post("/", self._aws)
        app.router.add_get("/healthz", self._healthz)
        for machine in self.engine.machines.values():
            for event in machine.http_events:
                app.router.add_route(
                    event.method, event.path, self._route(machine.name, event.action)
                )
        return app

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

    async def _aws(self, request: web.Request) -> web.Response:
        target = request.headers.get("X-Amz-Target")
        try:
            raw = await request.read()
            try:
                body = json.loads(raw or b"{}")
            except ValueError:
                raise ValidationException("The request body is not valid JSON") from None
            answer = await self.operations.handle(target, body)
        except ApiError as exc:
            return _error(exc)
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
            raw = await request.text()
            name = request.query.get("name") or request.headers.get("X-Stepd-Execution-Name")
            try:
                if action == "StopExecution":
                    body = json.loads(raw or "{}")
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
            except ValueError:
                return _error(ValidationException("The request body is not valid JSON"))
            except StoreError as exc:
                return _error(_unavailable(exc))
            return web.json_response(answer)

        return start

    async def _healthz(self, _: web.Request) -> web.Response:
        try:
            report = await self.health()
        except StoreError as exc:
            return web.json_response({"status": "unavailable", "error": str(exc)}, status=503)
        return web.json_response(report)


def _unavailable(exc: StoreError) -> ApiError:
    return ServiceUnavailable(f"The store cannot accept work right now: {exc.message}")
