"""The outbound HTTP call of a Task state.

One POST per attempt; `TaskCaller.call` turns whatever happens into a `TaskOutcome` and
never raises for HTTP or network problems (only cancellation propagates). Error names:

    States.Http.StatusCode.<code>  the server answered with a non-2xx status (3xx included;
                                   redirects are not followed)
    States.Http.Socket             connect refused/reset, TLS or protocol error, dropped
                                   connection
    States.Timeout                 connecting or reading timed out, or the whole attempt
                                   took longer than `TaskRequest.timeout_seconds`
    States.DataLimitExceeded       a 2xx body larger than MAX_RESULT_BYTES
    States.Runtime                 the request cannot be made at all (task input that is not
                                   JSON, a URL that is not http(s)); retrying cannot help

A 2xx answer with AWS Lambda's `X-Amz-Function-Error` header is a function's error, as
Lambda's Invoke API reports one: the body's `errorType` names the error (Lambda.Unknown when
it has none) and the whole body is the cause, so Retry and Catch can name the error the
function raised. An answer (of any status) with the header `Stepd-Error: <name>` fails the
task with that error and its body as the cause, for a server that fails a task the way an
AWS service does (`DynamoDB.ResourceNotFoundException` and its message). Any other 2xx
answer is a success whatever its body: JSON is the task's result; a body that is not JSON
(``OK``, an HTML page) is the result as a string, as AWS's HTTP Task hands back its
ResponseBody; an empty body (e.g. 204) is ``null``, as a Lambda function that returns nothing
gives. A success is never retried, so a server that answers
``200 OK`` in plain text gets each call once.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from dataclasses import dataclass, field
from datetime import UTC
from email.utils import parsedate_to_datetime
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, Protocol, Self

from yarl import URL

from stepd import __version__, jsontext, logs
from stepd.asl.failures import (
    STATES_DATA_LIMIT_EXCEEDED,
    STATES_RUNTIME,
    STATES_TIMEOUT,
)
from stepd.errors import HttpTaskError, TransportError, TransportTimeout, UnsupportedUrl
from stepd.frozen import quick_init
from stepd.tasks.connections import Connections
from stepd.tasks.deadlines import Deadlines
from stepd.tasks.http1 import Answer
from stepd.tasks.http_invoke import (
    HttpCall,
    build_call,
    failure_cause,
    replace_header,
    result_of,
)
from stepd.tasks.signing import ID_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, secret_key, sign
from stepd.tasks.transport import AiohttpTransport

if TYPE_CHECKING:
    from collections.abc import Callable
    from types import TracebackType

DEFAULT_USER_AGENT = f"stepd/{__version__}"
DEFAULT_MAX_CONNECTIONS = 100
CONNECT_TIMEOUT_SECONDS = 5.0  # capped by the request's own timeout
MAX_CACHED_URLS = 10_000  # parsed endpoint URLs kept for reuse
MAX_RESULT_BYTES = 256 * 1024  # AWS's quota for a task result
CAUSE_BODY_CHARS = 256

ERROR_SOCKET = "States.Http.Socket"
FUNCTION_ERROR_UNKNOWN = "Lambda.Unknown"  # a function error whose body names no errorType
MAX_ERROR_CHARS = 256  # AWS's limit on an error name
MAX_CAUSE_CHARS = 32_768  # AWS's limit on a cause
STATUS_ERROR_PREFIX = "States.Http.StatusCode."

IDEMPOTENCY_KEY_HEADER = "Idempotency-Key"
TRACEPARENT_HEADER = "traceparent"  # W3C Trace Context, when tracing is on
JSON_CONTENT_TYPE = "application/json"

_DELTA_SECONDS = re.compile(r"[0-9]+")

logger = logs.get_logger(__name__)


@quick_init
@dataclass(frozen=True, kw_only=True)
class TaskRequest:
    """One attempt of a Task call: POST `payload` as JSON to `url`."""

    url: str
    payload: Any
    idempotency_key: str  # the same for every attempt of one state entry
    timeout_seconds: float  # for the whole attempt: connect, send, wait, read
    # An HTTP Task (arn:aws:states:::http:invoke): `payload` is its rendered Parameters, which
    # say where and how to call; `url` is their ApiEndpoint (or the Resource, when it has none).
    http_invoke: bool = False
    trace_parent: str | None = None  # W3C `traceparent` of the call's span, when traced

    def __post_init__(self) -> None:
        if not self.timeout_seconds > 0:
            raise ValueError(f"timeout_seconds must be positive, not {self.timeout_seconds!r}")


@quick_init
@dataclass(frozen=True, kw_only=True)
class TaskOutcome:
    """What one attempt came to: a `result` when `error` is None, else an ASL error name."""

    result: Any = None
    error: str | None = None
    cause: str | None = None  # short human text: status line and body start, or the network error
    status: int | None = None  # HTTP status, when the server answered
    retry_after: float | None = None  # seconds, from Retry-After on a non-2xx answer
    # bytes of a 2xx answer's body as it came (a Lambda Invoke answer's Content-Length): a
    # measurement of the answer, not what the attempt came to, so outcomes compare without it
    size: int | None = field(default=None, compare=False)
    # the task's own result even for a task that waits for a callback (a mocked answer; a
    # nested execution that ended): not just the answer to its call
    final: bool = False
    # the call's own answer when `final` settles a task that would have waited (a `.sync`
    # nested execution that had ended by the time it was started): recorded in TaskSubmitted
    submitted: Any = None

    def __post_init__(self) -> None:
        if self.error is not None and self.result is not None:
            raise ValueError("a TaskOutcome holds a result or an error, not both")

    @property
    def ok(self) -> bool:
        return self.error is None


class Caller(Protocol):
    """What the engine needs of a task caller: `TaskCaller` over HTTP in the daemon,
    `stepd.testing.FakeCaller` in tests."""

    async def call(self, request: TaskRequest) -> TaskOutcome:
        """Make one attempt of `request` and report what it came to. Raises nothing but
        cancellation: every failure, of the network or of the server, is an outcome."""

    async def probe(self, url: str, timeout_seconds: float) -> int | None:
        """The status of a request to `url` that has no side effects (HEAD); None when the
        host cannot be reached within `timeout_seconds`. Raises nothing but cancellation."""

    async def aclose(self) -> None:
        """Release connections; the caller is not used afterwards."""


class TaskCaller:
    """Makes Task calls over one pooled aiohttp session (`AiohttpTransport`) of up to
    `max_connections` connections. Safe to share between tasks.

    `signing_secret` (``whsec_<base64>`` or a plain string) adds ``webhook-signature``;
    an invalid one raises ConfigError here, not at the first call. `clock` gives unix seconds
    for ``webhook-timestamp`` and for Retry-After dates. Tests of code that makes calls use
    `stepd.testing.FakeCaller`; this class is tested against servers on loopback.
    """

    def __init__(
        self,
        *,
        user_agent: str,
        signing_secret: str | None = None,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        clock: Callable[[], float] = time.time,
        connections: Connections | None = None,
    ) -> None:
        if signing_secret is not None:
            secret_key(signing_secret)
        self._secret = signing_secret
        self._connections = connections if connections is not None else Connections()
        self._clock = clock
        # No cookies, no redirects, no proxies or .netrc from the environment: each call goes
        # exactly where it is configured.
        self._transport = AiohttpTransport(max_connections=max_connections)
        self._user_agent = user_agent
        self._urls: dict[str, str] = {}
        self._deadlines = Deadlines()  # one timer for the calls whose deadlines fall together

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close pooled connections. The caller cannot be used afterwards."""
        await self._transport.aclose()

    async def call(self, request: TaskRequest) -> TaskOutcome:
        """POST the request once (or, for an HTTP Task, make the request its Parameters
        describe) and report the outcome. Raises only on cancellation."""
        url, key = request.url, request.idempotency_key
        call: HttpCall | None = None
        try:
            if request.http_invoke:
                call = build_call(request.payload, self._connections)
                url, body = call.url, call.body or b""
            else:
                body = encode_json(request.payload)
        except HttpTaskError as exc:
            return _not_sent(url, key, exc.message)
        except (TypeError, ValueError) as exc:
            return _not_sent(url, key, f"task input is not JSON: {exc}")
        logger.debug(
            "task.call", url=url, key=key, timeout_seconds=request.timeout_seconds, bytes=len(body)
        )
        started = time.perf_counter()
        if call is None:
            outcome = await self._post(request, body)
        else:
            outcome = await self._invoke(request, call)
        duration_ms = round((time.perf_counter() - started) * 1000, 1)
        if outcome.ok:
            logger.info(
                "task.result", url=url, key=key, status=outcome.status, duration_ms=duration_ms
            )
        else:
            logger.warning(
                "task.failed",
                url=url,
                key=key,
                status=outcome.status,
                error=outcome.error,
                cause=outcome.cause,
                retry_after=outcome.retry_after,
                duration_ms=duration_ms,
            )
        return outcome

    async def probe(self, url: str, timeout_seconds: float) -> int | None:
        """The status of a HEAD request to `url` (which has no side effects); None when the
        host cannot be reached within `timeout_seconds`."""
        try:
            async with asyncio.timeout(timeout_seconds):
                return await self._transport.head(
                    self._url(url),
                    {"User-Agent": self._user_agent},
                    timeout=timeout_seconds,
                )
        except (TimeoutError, TransportError):
            return None

    def _headers(self, request: TaskRequest, body: bytes) -> dict[str, str]:
        idempotency_key = request.idempotency_key
        timestamp = int(self._clock())
        headers = {
            "User-Agent": self._user_agent,
            "Accept": JSON_CONTENT_TYPE,
            "Content-Type": JSON_CONTENT_TYPE,
            IDEMPOTENCY_KEY_HEADER: idempotency_key,
            ID_HEADER: idempotency_key,
            TIMESTAMP_HEADER: str(timestamp),
        }
        if self._secret is not None:
            headers[SIGNATURE_HEADER] = sign(self._secret, idempotency_key, timestamp, body)
        if request.trace_parent is not None:
            headers[TRACEPARENT_HEADER] = request.trace_parent
        return headers

    def _url(self, url: str) -> str:
        """`url` as sent (normalised once); UnsupportedUrl unless it is http(s) with a host."""
        normal = self._urls.get(url)
        if normal is None:
            try:
                parsed = URL(url)
            except ValueError as exc:
                raise UnsupportedUrl("InvalidURL", str(exc)) from exc
            if parsed.scheme not in {"http", "https"} or not parsed.host:
                raise UnsupportedUrl("UnsupportedProtocol", f"not an http(s) URL: {url!r}")
            normal = str(parsed)
            if len(self._urls) < MAX_CACHED_URLS:
                self._urls[url] = normal
        return normal

    async def _post(self, request: TaskRequest, body: bytes) -> TaskOutcome:
        answer = await self._exchange(
            "POST", request.url, self._headers(request, body), body, request
        )
        return answer if isinstance(answer, TaskOutcome) else _outcome(answer, clock=self._clock)

    async def _invoke(self, request: TaskRequest, call: HttpCall) -> TaskOutcome:
        """An HTTP Task's request: its own headers (a connection's too), then stepd's
        Idempotency-Key and webhook headers, which it cannot override."""
        body = call.body or b""
        own = self._headers(request, body)
        headers = dict(call.headers)
        names = {name.lower() for name in headers}
        for name, value in own.items():
            if name in {"Accept", "Content-Type", "User-Agent"} and name.lower() in names:
                continue
            if name == "Content-Type" and call.body is None:
                continue
            headers = replace_header(headers, name, value)
        answer = await self._exchange(call.method, call.url, headers, call.body, request)
        if isinstance(answer, TaskOutcome):
            return answer
        return _http_outcome(answer, clock=self._clock)

    async def _exchange(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        body: bytes | None,
        request: TaskRequest,
    ) -> Answer | TaskOutcome:
        """The answer to one request, or the outcome of getting none."""
        limit = request.timeout_seconds
        try:
            with self._deadlines.limit(limit):
                return await self._transport.send(
                    method,
                    self._url(url),
                    headers,
                    body,
                    connect_timeout=min(CONNECT_TIMEOUT_SECONDS, limit),
                    read_timeout=limit,
                    max_bytes=MAX_RESULT_BYTES,
                    keep_headers=request.http_invoke,
                    bounded=True,  # by the time limit above
                )
        except (TimeoutError, TransportTimeout) as exc:
            return TaskOutcome(
                error=STATES_TIMEOUT, cause=f"no answer within {limit:g} s ({_describe(exc)})"
            )
        except UnsupportedUrl as exc:
            return TaskOutcome(error=STATES_RUNTIME, cause=f"cannot call {url!r}: {exc}")
        except TransportError as exc:
            return TaskOutcome(error=ERROR_SOCKET, cause=_describe(exc))


def _not_sent(url: str, key: str, cause: str) -> TaskOutcome:
    logger.error("task.failed", url=url, key=key, error=STATES_RUNTIME, cause=cause)
    return TaskOutcome(error=STATES_RUNTIME, cause=cause)


def encode_json(payload: Any) -> bytes:
    """The request body: compact JSON in UTF-8. Raises ValueError for NaN or infinities."""
    return jsontext.strict(payload).encode()


def parse_retry_after(value: str | None, *, now: float) -> float | None:
    """Seconds to wait from a Retry-After value (delta-seconds or HTTP-date), never negative.

    None when absent or unreadable.
    """
    if value is None:
        return None
    value = value.strip()
    if _DELTA_SECONDS.fullmatch(value):
        return float(value)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if moment.tzinfo is None:  # "-0000": UTC by RFC 5322
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, moment.timestamp() - now)


def _outcome(answer: Answer, *, clock: Callable[[], float]) -> TaskOutcome:
    status = answer.status
    if answer.named_error is not None and answer.named_error.strip():
        return _named_error(answer)
    if not 200 <= status < 300:
        return TaskOutcome(
            error=f"{STATUS_ERROR_PREFIX}{status}",
            cause=_cause(answer),
            status=status,
            retry_after=None
            if answer.retry_after is None
            else parse_retry_after(answer.retry_after, now=clock()),
        )
    if not answer.complete:
        return TaskOutcome(
            error=STATES_DATA_LIMIT_EXCEEDED,
            cause=f"the answer is larger than {MAX_RESULT_BYTES} bytes",
            status=status,
        )
    if answer.function_error is not None:
        return _function_error(answer)
    size = len(answer.body)
    if not answer.body.strip():
        return TaskOutcome(result=None, status=status, size=size)
    try:
        body = answer.body
        result = jsontext.STRICT.decode(body.decode(json.detect_encoding(body), "surrogatepass"))
    except ValueError:
        result = answer.body.decode("utf-8", errors="replace")
    return TaskOutcome(result=result, status=status, size=size)


def _named_error(answer: Answer) -> TaskOutcome:
    """`Stepd-Error: <name>` on any answer: the task fails with that error, the body (as text,
    cut at AWS's 32,768 characters) its cause, none when the body is empty."""
    error = (answer.named_error or "").strip()[:MAX_ERROR_CHARS]
    cause = answer.body.decode("utf-8", errors="replace")[:MAX_CAUSE_CHARS]
    return TaskOutcome(error=error, cause=cause or None, status=answer.status)


def _function_error(answer: Answer) -> TaskOutcome:
    """A Lambda-style function error: `errorType` of the body as the error, the body the cause."""
    cause = answer.body.decode("utf-8", errors="replace")
    try:
        body = json.loads(cause)
    except ValueError:
        body = None
    name = body.get("errorType") if isinstance(body, dict) else None
    error = name if isinstance(name, str) and name else FUNCTION_ERROR_UNKNOWN
    return TaskOutcome(error=error, cause=cause, status=answer.status)


def _http_outcome(answer: Answer, *, clock: Callable[[], float]) -> TaskOutcome:
    """An HTTP Task's outcome: `{StatusCode, StatusText, Headers, ResponseBody}` as its
    result, or (for a non-2xx) as the JSON cause of States.Http.StatusCode.<code>."""
    status = answer.status
    headers: dict[str, list[str]] = {}
    for name, value in answer.headers:
        headers.setdefault(name, []).append(value)
    result = result_of(status, answer.reason or _reason_phrase(status), headers, answer.body)
    if not 200 <= status < 300:
        return TaskOutcome(
            error=f"{STATUS_ERROR_PREFIX}{status}",
            cause=failure_cause(result),
            status=status,
            retry_after=None
            if answer.retry_after is None
            else parse_retry_after(answer.retry_after, now=clock()),
        )
    if not answer.complete:
        return TaskOutcome(
            error=STATES_DATA_LIMIT_EXCEEDED,
            cause=f"the answer is larger than {MAX_RESULT_BYTES} bytes",
            status=status,
        )
    return TaskOutcome(result=result, status=status)


def _cause(answer: Answer) -> str:
    reason = answer.reason or _reason_phrase(answer.status)
    line = f"HTTP {answer.status} {reason}".rstrip()
    text = answer.body.decode("utf-8", errors="replace").strip()[:CAUSE_BODY_CHARS]
    return f"{line}: {text}" if text else line


def _reason_phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TransportError):
        return str(exc)
    detail = str(exc)
    return f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__
