"""AWS's HTTP Task: requests built from Parameters, results and errors shaped as AWS's, and
the caller making them against a server on loopback."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from structlog.testing import capture_logs

from stepd.asl.http_task import forbidden_header, static_problems
from stepd.errors import ConfigError, HttpTaskError
from stepd.tasks.caller import TaskCaller, TaskRequest
from stepd.tasks.connections import Connection, Connections, auth_headers, connection_name
from stepd.tasks.http_invoke import build_call, encode_form, failure_cause, result_of

API_KEY = "k3y-that-never-shows"
ARN = "arn:aws:events:eu-west-1:123456789012:connection/billing/0f1e2d"
CONNECTIONS = Connections((Connection(name="billing", headers={"x-api-key": API_KEY}),))
KEY = "m/e/uid/3"


def call(**parameters: Any) -> Any:
    return build_call(
        {"ApiEndpoint": "https://api.example/v1", "Method": "GET", **parameters}, CONNECTIONS
    )


# -- request building ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("parameters", "url"),
    [
        ({}, "https://api.example/v1"),
        ({"QueryParameters": {"q": "a b", "n": 2}}, "https://api.example/v1?q=a+b&n=2"),
        ({"QueryParameters": {"tag": ["x", "y"]}}, "https://api.example/v1?tag=x&tag=y"),
        (
            {"ApiEndpoint": "https://api.example/v1?a=1", "QueryParameters": {"b": True}},
            "https://api.example/v1?a=1&b=true",
        ),
    ],
)
def test_url_with_query_parameters(parameters: dict[str, Any], url: str) -> None:
    assert call(**parameters).url == url


def test_a_json_body_has_a_json_content_type() -> None:
    made = call(Method="POST", RequestBody={"a": [1, "é"]})
    assert made.body == '{"a":[1,"é"]}'.encode()
    assert made.headers == {"Content-Type": "application/json; charset=UTF-8"}


def test_a_content_type_given_is_kept_and_a_string_body_sent_as_it_is() -> None:
    made = call(Method="PUT", RequestBody="<x/>", Headers={"content-type": "text/xml"})
    assert made.body == b"<x/>"
    assert made.headers == {"content-type": "text/xml"}


@pytest.mark.parametrize(
    ("array_format", "body"),
    [
        ("INDICES", "a=1&t%5B0%5D=x&t%5B1%5D=y&o%5Bk%5D=v%20w"),
        ("BRACKETS", "a=1&t%5B%5D=x&t%5B%5D=y&o%5Bk%5D=v%20w"),
        ("REPEAT", "a=1&t=x&t=y&o%5Bk%5D=v%20w"),
        ("COMMAS", "a=1&t=x%2Cy&o%5Bk%5D=v%20w"),
    ],
)
def test_url_encoded_bodies(array_format: str, body: str) -> None:
    made = call(
        Method="POST",
        RequestBody={"a": 1, "t": ["x", "y"], "o": {"k": "v w"}},
        Transform={
            "RequestBodyEncoding": "URL_ENCODED",
            "RequestEncodingOptions": {"ArrayFormat": array_format},
        },
    )
    assert made.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert made.body is not None
    assert made.body.decode().replace("[", "%5B").replace("]", "%5D") == body


def test_indices_is_the_default_array_format() -> None:
    assert encode_form({"t": ["x"]}) == "t[0]=x"


@pytest.mark.parametrize("holder", ["InvocationConfig", "Authentication"])
def test_a_connection_adds_its_headers(holder: str) -> None:
    """AWS names the connection in either field (and recommends InvocationConfig)."""
    made = call(**{holder: {"ConnectionArn": ARN}}, Headers={"X-Tenant": "a"})
    assert made.headers == {"X-Tenant": "a", "x-api-key": API_KEY}
    assert API_KEY not in repr(made)


def test_a_connection_header_wins_whatever_its_case() -> None:
    made = call(Authentication={"ConnectionArn": ARN}, Headers={"X-API-KEY": "mine"})
    assert made.headers == {"x-api-key": API_KEY}


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        ({"Method": "FETCH"}, "Method must be one of"),
        ({"ApiEndpoint": "ftp://x/"}, "ApiEndpoint must be an http(s) URL"),
        ({"ApiEndpoint": None}, "ApiEndpoint must be an http(s) URL, not nothing"),
        ({"Headers": {"Authorization": "Bearer x"}}, 'The header "Authorization" may not'),
        ({"Headers": {"X-Amz-Date": "x"}}, 'The header "X-Amz-Date" may not'),
        ({"Headers": {"X-Forwarded-For": "x"}}, "may not be set"),
        ({"Headers": {"Host": "x"}}, "may not be set"),
        ({"Headers": []}, "Headers must be an object"),
        ({"QueryParameters": {"a": {"b": 1}}}, 'query parameter "a"'),
        ({"Transform": {"RequestBodyEncoding": "GZIP"}}, "RequestBodyEncoding must be"),
        (
            {"Transform": {"RequestEncodingOptions": {"ArrayFormat": "PIPES"}}},
            "ArrayFormat must be",
        ),
        (
            {"Authentication": {"ConnectionArn": "arn:aws:events:x:1:connection/nope/1"}},
            (
                "No connection is configured for the ConnectionArn "
                "'arn:aws:events:x:1:connection/nope/1'"
            ),
        ),
    ],
)
def test_parameters_that_make_no_request(parameters: dict[str, Any], message: str) -> None:
    with pytest.raises(HttpTaskError) as refused:
        call(**parameters)
    assert message in refused.value.message


@pytest.mark.parametrize(
    ("name", "forbidden"),
    [
        ("Content-Type", False),
        ("X-Api-Key", False),
        ("Accept", False),
        ("content-length", True),
        ("x-amzn-trace-id", True),
        ("Cookie", False),
        ("Range", True),
    ],
)
def test_forbidden_headers(name: str, forbidden: bool) -> None:
    assert forbidden_header(name) is forbidden


# -- result and errors ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "response"),
    [(b'{"id": 7}', {"id": 7}), (b"OK", "OK"), (b"", ""), (b"[1]", [1])],
)
def test_result_shape(body: bytes, response: Any) -> None:
    assert result_of(200, "OK", {"Content-Type": ["x"]}, body) == {
        "StatusCode": 200,
        "StatusText": "OK",
        "Headers": {"Content-Type": ["x"]},
        "ResponseBody": response,
    }


def test_a_cause_is_the_answer_as_json_cut_to_fit() -> None:
    small = result_of(404, "Not Found", {}, b"no such thing")
    assert json.loads(failure_cause(small)) == small
    big = result_of(500, "Internal Server Error", {}, b"x" * 100_000)
    cause = failure_cause(big)
    assert len(cause) <= 32_768
    assert json.loads(cause)["StatusCode"] == 500


# -- connections ---------------------------------------------------------------------------


def test_a_connection_is_found_by_arn_or_by_the_name_in_it() -> None:
    exact = Connection(name="other", arn="arn:custom")
    named = Connection(name="billing")
    found = Connections((exact, named))
    assert found.find("arn:custom") is exact
    assert found.find(ARN) is named
    assert found.find("billing") is named
    assert found.find("arn:aws:events:x:1:connection/other/1") is None  # has its own arn
    assert connection_name(ARN) == "billing"


def test_auth_headers() -> None:
    assert auth_headers("api_key", "s", header="X-Key") == {"X-Key": "s"}
    assert auth_headers("basic", "pw", username="u") == {"Authorization": "Basic dTpwdw=="}
    assert auth_headers("headers", "A: 1\n# note\n\nB:2") == {"A": "1", "B": "2"}
    with pytest.raises(ConfigError) as refused:
        auth_headers("headers", "no colon here-secret", where="connections.x")
    assert "secret" in refused.value.message
    assert "no colon" not in refused.value.message


# -- stepd check ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("parameters", "problems"),
    [
        ({"ApiEndpoint": "https://x", "Method": "GET"}, []),
        ({"ApiEndpoint.$": "$.url", "Method.$": "$.m"}, []),
        ({"Method": "GET"}, ["ApiEndpoint"]),
        ({"ApiEndpoint": "https://x"}, ["Method"]),
        ({"ApiEndpoint": "x.example", "Method": "get"}, ["ApiEndpoint", "Method"]),
        (
            {"ApiEndpoint": "https://x", "Method": "GET", "Headers": {"Host.$": "$.h"}},
            ["Headers/Host.$"],
        ),
        (
            {
                "ApiEndpoint": "https://x",
                "Method": "GET",
                "Transform": {"RequestBodyEncoding": "X"},
            },
            ["Transform/RequestBodyEncoding"],
        ),
        ("not an object", [""]),
    ],
)
def test_static_problems(parameters: Any, problems: list[str]) -> None:
    assert [where for where, _ in static_problems(parameters)] == problems


# -- the caller, against a server on loopback ----------------------------------------------


@pytest.fixture
async def server(unused_tcp_port: int) -> AsyncIterator[tuple[str, list[web.Request], list[bytes]]]:
    seen: list[web.Request] = []
    bodies: list[bytes] = []

    async def handle(request: web.Request) -> web.StreamResponse:
        seen.append(request)
        bodies.append(await request.read())
        if request.path == "/missing":
            return web.Response(status=404, text="no such item")
        if request.path == "/text":
            return web.Response(text="plain", headers={"X-Trace": "t1"})
        return web.json_response({"method": request.method, "query": dict(request.query)})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", unused_tcp_port)
    await site.start()
    yield f"http://127.0.0.1:{unused_tcp_port}", seen, bodies
    await runner.cleanup()


def request(parameters: dict[str, Any]) -> TaskRequest:
    return TaskRequest(
        url=str(parameters.get("ApiEndpoint")),
        payload=parameters,
        idempotency_key=KEY,
        timeout_seconds=5,
        http_invoke=True,
    )


async def test_a_get_with_a_query_and_a_connection(
    server: tuple[str, list[web.Request], list[bytes]],
) -> None:
    base, seen, _ = server
    async with TaskCaller(user_agent="stepd/test", connections=CONNECTIONS) as caller:
        with capture_logs() as logs:
            outcome = await caller.call(
                request(
                    {
                        "ApiEndpoint": f"{base}/items",
                        "Method": "GET",
                        "QueryParameters": {"page": 2},
                        "Authentication": {"ConnectionArn": ARN},
                    }
                )
            )
    assert outcome.ok
    assert outcome.result["StatusCode"] == 200
    assert outcome.result["StatusText"] == "OK"
    assert outcome.result["ResponseBody"] == {"method": "GET", "query": {"page": "2"}}
    assert outcome.result["Headers"]["Content-Type"] == ["application/json; charset=utf-8"]
    sent = seen[0].headers
    assert sent["x-api-key"] == API_KEY
    assert sent["Idempotency-Key"] == KEY
    assert sent["webhook-id"] == KEY
    assert "Content-Type" not in sent
    assert API_KEY not in repr(logs)


async def test_stepd_headers_cannot_be_overridden_but_user_agent_can(
    server: tuple[str, list[web.Request], list[bytes]],
) -> None:
    base, seen, _ = server
    async with TaskCaller(user_agent="stepd/test") as caller:
        outcome = await caller.call(
            request(
                {
                    "ApiEndpoint": f"{base}/x",
                    "Method": "GET",
                    "Headers": {"idempotency-key": "mine", "User-Agent": "theirs/1"},
                }
            )
        )
    assert outcome.ok
    assert seen[0].headers.getall("Idempotency-Key") == [KEY]
    assert seen[0].headers["User-Agent"] == "theirs/1"


async def test_a_post_and_a_url_encoded_post(
    server: tuple[str, list[web.Request], list[bytes]],
) -> None:
    base, seen, bodies = server
    async with TaskCaller(user_agent="stepd/test") as caller:
        posted = await caller.call(
            request({"ApiEndpoint": f"{base}/p", "Method": "POST", "RequestBody": {"a": 1}})
        )
        form = await caller.call(
            request(
                {
                    "ApiEndpoint": f"{base}/f",
                    "Method": "PATCH",
                    "RequestBody": {"a": [1, 2]},
                    "Transform": {"RequestBodyEncoding": "URL_ENCODED"},
                }
            )
        )
    assert posted.ok
    assert form.ok
    assert bodies == [b'{"a":1}', b"a[0]=1&a[1]=2"]
    assert seen[0].headers["Content-Type"] == "application/json; charset=UTF-8"
    assert seen[1].method == "PATCH"
    assert seen[1].headers["Content-Type"] == "application/x-www-form-urlencoded"


async def test_a_404_and_a_text_answer(
    server: tuple[str, list[web.Request], list[bytes]],
) -> None:
    base, _, _ = server
    async with TaskCaller(user_agent="stepd/test") as caller:
        missing = await caller.call(request({"ApiEndpoint": f"{base}/missing", "Method": "DELETE"}))
        text = await caller.call(request({"ApiEndpoint": f"{base}/text", "Method": "GET"}))
    assert missing.error == "States.Http.StatusCode.404"
    cause = json.loads(missing.cause or "")
    assert (cause["StatusCode"], cause["StatusText"]) == (404, "Not Found")
    assert cause["ResponseBody"] == "no such item"
    assert text.result["ResponseBody"] == "plain"
    assert text.result["Headers"]["X-Trace"] == ["t1"]


async def test_nothing_listening_is_a_socket_error(unused_tcp_port: int) -> None:
    async with TaskCaller(user_agent="stepd/test") as caller:
        outcome = await caller.call(
            request({"ApiEndpoint": f"http://127.0.0.1:{unused_tcp_port}/", "Method": "GET"})
        )
    assert outcome.error == "States.Http.Socket"


async def test_bad_parameters_fail_without_a_request(
    server: tuple[str, list[web.Request], list[bytes]],
) -> None:
    base, seen, _ = server
    async with TaskCaller(user_agent="stepd/test") as caller:
        outcome = await caller.call(
            request(
                {
                    "ApiEndpoint": f"{base}/x",
                    "Method": "GET",
                    "Authentication": {"ConnectionArn": "arn:aws:events:x:1:connection/gone/1"},
                }
            )
        )
    assert outcome.error == "States.Runtime"
    assert "No connection is configured" in (outcome.cause or "")
    assert seen == []
