"""A small client for the control API (the AWS Step Functions JSON protocol)."""

from __future__ import annotations

import json
from typing import Any

import httpx

from stepd import __version__
from stepd.errors import StepdError

CLIENT_TIMEOUT_SECONDS = 30.0


class ApiClientError(StepdError):
    """The API refused the request."""

    def __init__(self, aws_type: str, message: str) -> None:
        super().__init__(f"{aws_type}: {message}")
        self.aws_type = aws_type


def api_url(listen: str) -> str:
    """The URL a client uses for a `[api] listen` value."""
    if listen.startswith(("unix:", "http://", "https://")):
        return listen
    host, _, port = listen.rpartition(":")
    if host in {"0.0.0.0", "::", "[::]", ""}:  # noqa: S104
        host = "127.0.0.1"
    return f"http://{host}:{port}"


class Client:
    def __init__(self, url: str) -> None:
        if url.startswith("unix:"):
            transport = httpx.HTTPTransport(uds=url.removeprefix("unix:"))
            self._client = httpx.Client(
                transport=transport, base_url="http://stepd", timeout=CLIENT_TIMEOUT_SECONDS
            )
        else:
            self._client = httpx.Client(base_url=url, timeout=CLIENT_TIMEOUT_SECONDS)

    def call(self, operation: str, body: dict[str, Any]) -> dict[str, Any]:
        try:
            response = self._client.post(
                "/",
                content=json.dumps(body),
                headers={
                    "Content-Type": "application/x-amz-json-1.0",
                    "X-Amz-Target": f"AWSStepFunctions.{operation}",
                    "User-Agent": f"stepd-cli/{__version__}",
                },
            )
        except httpx.HTTPError as exc:
            raise StepdError(f"cannot reach the stepd API: {exc}") from exc
        try:
            answer = response.json()
        except ValueError:
            raise StepdError(f"the API answered {response.status_code} without JSON") from None
        if response.status_code >= 400:
            raise ApiClientError(str(answer.get("__type")), str(answer.get("message")))
        return dict(answer)

    def close(self) -> None:
        self._client.close()
