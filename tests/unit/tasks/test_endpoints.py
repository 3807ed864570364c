"""Mapping Task states and their Resources to URLs."""

from __future__ import annotations

from typing import Any

import pytest

from stepd.errors import ConfigError
from stepd.tasks.endpoints import EndpointMap, resource_keys

LAMBDA_ARN = "arn:aws:lambda:ap-southeast-1:123:function:consult-api-dev-StartRecorder"
BASE = "http://127.0.0.1:8080"


@pytest.mark.parametrize(
    ("resource", "keys"),
    [
        pytest.param(LAMBDA_ARN, [LAMBDA_ARN, "consult-api-dev-StartRecorder"], id="lambda-arn"),
        pytest.param(
            f"{LAMBDA_ARN}:live",
            [f"{LAMBDA_ARN}:live", "consult-api-dev-StartRecorder"],
            id="alias",
        ),
        pytest.param(
            "arn:aws:states:::lambda:invoke", ["arn:aws:states:::lambda:invoke"], id="sfn-invoke"
        ),
        pytest.param("StartRecorder", ["StartRecorder"], id="plain-name"),
        pytest.param(
            {"Fn::GetAtt": ["startRecording", "Arn"]},
            ["startRecording.Arn", "startRecording"],
            id="getatt-list",
        ),
        pytest.param(
            {"Fn::GetAtt": "startRecording.Arn"},
            ["startRecording.Arn", "startRecording"],
            id="getatt-string",
        ),
        pytest.param({"Ref": "startRecording"}, ["startRecording"], id="ref"),
        pytest.param(
            {"Fn::Sub": "arn:aws:lambda:${AWS::Region}:${AWS::AccountId}:function:ping"},
            ["arn:aws:lambda:${AWS::Region}:${AWS::AccountId}:function:ping", "ping"],
            id="sub",
        ),
        pytest.param({"Fn::GetAtt": ["only-one"]}, [], id="getatt-malformed"),
        pytest.param({"Fn::Join": ["", ["a", "b"]]}, [], id="other-intrinsic"),
        pytest.param(None, [], id="none"),
        pytest.param("", [], id="empty"),
    ],
)
def test_resource_keys(resource: Any, keys: list[str]) -> None:
    """Each Resource form gives the names a config may use for it, most specific first."""
    assert keys == resource_keys(resource)


ROUTES = {
    "StartRecording": "/recording/start",
    LAMBDA_ARN: "/by-arn",
    "consult-api-dev-StopRecorder": "/recording/stop",
    "livePing": "ping",
    "startRecording.Arn": "/by-getatt",
    "otherHost": "https://other.example/hook",
}


@pytest.mark.parametrize(
    ("state_name", "resource", "url"),
    [
        pytest.param("StartRecording", LAMBDA_ARN, f"{BASE}/recording/start", id="state-wins"),
        pytest.param("Start", LAMBDA_ARN, f"{BASE}/by-arn", id="full-arn"),
        pytest.param(
            "Stop",
            "arn:aws:lambda:ap-southeast-1:123:function:consult-api-dev-StopRecorder:3",
            f"{BASE}/recording/stop",
            id="function-name-of-versioned-arn",
        ),
        pytest.param(
            "Start", {"Fn::GetAtt": ["startRecording", "Arn"]}, f"{BASE}/by-getatt", id="getatt"
        ),
        pytest.param("Ping", {"Ref": "livePing"}, f"{BASE}/ping", id="ref-path-without-slash"),
        pytest.param(
            "Other", {"Fn::GetAtt": ["otherHost", "Arn"]}, "https://other.example/hook", id="url"
        ),
        pytest.param(
            "StartRecording",
            "arn:aws:states:::lambda:invoke",
            f"{BASE}/recording/start",
            id="sfn-invoke-by-state",
        ),
        pytest.param("Unknown", "arn:aws:states:::lambda:invoke", None, id="unmapped"),
    ],
)
def test_resolve(state_name: str, resource: Any, url: str | None) -> None:
    """A state name wins over its Resource; paths join base_url; URLs are used as they are
    (the same answer every time: the map keeps what it resolved)."""
    endpoints = EndpointMap(base_url=BASE, routes=ROUTES)
    assert [endpoints.resolve(state_name, resource) for _ in range(3)] == [url] * 3


@pytest.mark.parametrize(
    ("state_name", "functions", "url"),
    [
        pytest.param("Add", ["adder"], f"{BASE}/add", id="by-function-name"),
        pytest.param("StartRecording", ["adder"], f"{BASE}/recording/start", id="state-wins"),
        pytest.param("Add", ["x", "adder"], f"{BASE}/add", id="second-key"),
        pytest.param("Add", ["nothing"], f"{BASE}/integration", id="resource-last"),
    ],
)
def test_resolve_a_lambda_invoke_task_by_its_function(
    state_name: str, functions: list[str], url: str
) -> None:
    """A `lambda:invoke` Task goes by its state name, then the function it names, then its
    Resource; the function is part of what the map keeps."""
    routes = {
        "StartRecording": "/recording/start",
        "adder": "/add",
        "arn:aws:states:::lambda:invoke": "/integration",
    }
    endpoints = EndpointMap(base_url=BASE, routes=routes)
    resource = "arn:aws:states:::lambda:invoke"
    assert [endpoints.resolve(state_name, resource, functions) for _ in range(2)] == [url] * 2
    assert endpoints.resolve("Add", resource) == f"{BASE}/integration"


def test_resolve_keeps_a_path_prefix_of_base_url() -> None:
    """A base_url with a path keeps it: routes are appended, not resolved against it."""
    endpoints = EndpointMap(base_url="https://host/api/", routes={"S": "/recording/start"})
    assert endpoints.resolve("S", None) == "https://host/api/recording/start"


@pytest.mark.parametrize(
    ("base_url", "routes"),
    [
        pytest.param("ftp://host", {}, id="base-not-http"),
        pytest.param("http://", {}, id="base-without-host"),
        pytest.param("http://[::1", {}, id="base-unparseable"),
        pytest.param(BASE, {"S": "ws://host/x"}, id="route-not-http"),
        pytest.param("", {"S": "/x"}, id="path-without-base"),
    ],
)
def test_invalid_endpoints_are_config_errors(base_url: str, routes: dict[str, str]) -> None:
    """URLs that cannot be POSTed to are refused when the map is built."""
    with pytest.raises(ConfigError):
        EndpointMap(base_url=base_url, routes=routes)


def test_absolute_routes_need_no_base_url() -> None:
    """A map of absolute URLs works without a base_url."""
    endpoints = EndpointMap(base_url="", routes={"S": "http://h/x"})
    assert endpoints.resolve("S", None) == "http://h/x"
