"""A small client for the control API (the AWS Step Functions JSON protocol).

With a key pair it signs every request with AWS Signature Version 4, as the AWS SDKs do.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import httpx

from stepd import __version__
from stepd.access import KeyPair
from stepd.api.auth import sign
from stepd.engine.arns import DEFAULT_REGION
from stepd.errors import ApiClientError, StepdError

CLIENT_TIMEOUT_SECONDS = 30.0
CLIENT_USER_AGENT = f"stepd-cli/{__version__}"
STEPD_PREFIX = "Stepd."  # stepd's own operations (stepd.api.operations_stepd)


def api_url(listen: str) -> str:
    """The URL a client uses for a `[api] listen` value."""
    if listen.startswith(("unix:", "http://", "https://")):
        return listen
    host, _, port = listen.rpartition(":")
    if host in {"0.0.0.0", "::", "[::]", ""}:  # noqa: S104
        host = "127.0.0.1"
    return f"http://{host}:{port}"


def _target(operation: str) -> str:
    """`X-Amz-Target` of an operation: AWS's by its name, stepd's own as `Stepd.<Name>`."""
    return operation if operation.startswith(STEPD_PREFIX) else f"AWSStepFunctions.{operation}"


class Client:
    """Calls the API at `url`; signs with `key` (scoped to `region`) when one is given.

    `transport` replaces the network (tests use ``httpx.MockTransport``).
    """

    def __init__(
        self,
        url: str,
        *,
        key: KeyPair | None = None,
        region: str = DEFAULT_REGION,
        clock: Callable[[], float] = time.time,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._key = key
        self._region = region
        self._clock = clock
        self._url = url
        base_url = url
        if url.startswith("unix:"):
            base_url = "http://stepd"
            if transport is None:
                transport = httpx.HTTPTransport(uds=url.removeprefix("unix:"))
        self._client = httpx.Client(
            transport=transport, base_url=base_url, timeout=CLIENT_TIMEOUT_SECONDS
        )

    def call(self, operation: str, body: dict[str, Any]) -> dict[str, Any]:
        content = json.dumps(body).encode()
        request = self._client.build_request(
            "POST",
            "/",
            content=content,
            headers={
                "Content-Type": "application/x-amz-json-1.0",
                "X-Amz-Target": _target(operation),
                "User-Agent": CLIENT_USER_AGENT,
            },
        )
        if self._key is not None:
            self._sign(request, content, self._key)
        try:
            response = self._client.send(request)
        except httpx.HTTPError as exc:
            raise StepdError(
                f"cannot reach the stepd API at {self._url}: {exc} (is the daemon running? "
                "-c FILE finds it from the config's [api] listen, --api URL names it)"
            ) from exc
        try:
            answer = response.json()
        except ValueError as exc:
            raise StepdError(f"the API answered {response.status_code} without JSON") from exc
        if response.status_code >= 400:
            raise ApiClientError(str(answer.get("__type")), str(answer.get("message")))
        return dict(answer)

    def _sign(self, request: httpx.Request, content: bytes, key: KeyPair) -> None:
        signed = {name: request.headers[name] for name in ("Host", "Content-Type", "X-Amz-Target")}
        path, _, query = request.url.raw_path.decode("ascii").partition("?")
        request.headers.update(
            sign(
                key=key,
                method=request.method,
                path=path,
                query=query,
                headers=signed,
                body=content,
                region=self._region,
                now=self._clock(),
            )
        )

    def close(self) -> None:
        self._client.close()
