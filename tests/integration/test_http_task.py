"""AWS's HTTP Task through the real daemon: a machine of http:invoke Tasks against an aiohttp
server on loopback, with a connection whose API key never shows in the history or the log."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from tests.integration.harness import Stepd, execution_arn, run_cli

from stepd.testing import free_port

MACHINE = "api"
API_KEY = "sk-live-0123456789abcdef"
ARN = "arn:aws:events:eu-west-1:123456789012:connection/billing/0f1e2d"
RUN_SECONDS = 30.0


def definition(base: str) -> dict[str, Any]:
    auth = {"ConnectionArn": ARN}
    return {
        "StartAt": "Get",
        "States": {
            "Get": {
                "Type": "Task",
                "Resource": "arn:aws:states:::http:invoke",
                "Parameters": {
                    "ApiEndpoint": f"{base}/items",
                    "Method": "GET",
                    "QueryParameters": {"page.$": "$.page"},
                    "Authentication": auth,
                },
                "ResultSelector": {"status.$": "$.StatusCode", "body.$": "$.ResponseBody"},
                "ResultPath": "$.get",
                "Next": "Post",
            },
            "Post": {
                "Type": "Task",
                "Resource": "arn:aws:states:::http:invoke",
                "Parameters": {
                    "ApiEndpoint": f"{base}/items",
                    "Method": "POST",
                    "RequestBody": {"name.$": "$.name"},
                    "Authentication": auth,
                },
                "ResultSelector": {"body.$": "$.ResponseBody"},
                "ResultPath": "$.post",
                "Next": "Form",
            },
            "Form": {
                "Type": "Task",
                "Resource": "arn:aws:states:::http:invoke",
                "Parameters": {
                    "ApiEndpoint": f"{base}/form",
                    "Method": "PUT",
                    "RequestBody": {"tags": ["a", "b"]},
                    "Transform": {
                        "RequestBodyEncoding": "URL_ENCODED",
                        "RequestEncodingOptions": {"ArrayFormat": "BRACKETS"},
                    },
                    "Authentication": auth,
                },
                "ResultSelector": {"body.$": "$.ResponseBody"},
                "ResultPath": "$.form",
                "Next": "Missing",
            },
            "Missing": {
                "Type": "Task",
                "Resource": "arn:aws:states:::http:invoke",
                "Parameters": {"ApiEndpoint": f"{base}/missing", "Method": "GET"},
                "Catch": [
                    {
                        "ErrorEquals": ["States.Http.StatusCode.404"],
                        "ResultPath": "$.missing",
                        "Next": "Done",
                    }
                ],
                "End": True,
            },
            "Done": {"Type": "Succeed"},
        },
    }


@pytest.fixture
async def api() -> AsyncIterator[tuple[str, list[tuple[str, str, dict[str, str], bytes]]]]:
    seen: list[tuple[str, str, dict[str, str], bytes]] = []

    async def handle(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        seen.append((request.method, request.path_qs, dict(request.headers), body))
        if request.path == "/missing":
            return web.Response(status=404, text="no such item")
        if request.path == "/form":
            return web.Response(text=body.decode())
        return web.json_response(
            {
                "method": request.method,
                "query": dict(request.query),
                "body": json.loads(body) if body else None,
            }
        )

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield f"http://127.0.0.1:{port}", seen
    await runner.cleanup()


def write_config(folder: Path, base: str, port: int, *, connection: bool = True) -> Path:
    (folder / "api.asl.json").write_text(json.dumps(definition(base)), encoding="utf-8")
    (folder / "billing.key").write_text(API_KEY + "\n", encoding="utf-8")
    connections = """
[[connections]]
name = "billing"
auth = "api_key"
header = "x-api-key"
secret_file = "billing.key"
"""
    config = folder / "stepd.toml"
    config.write_text(
        f"""[store]
path = "stepd.db"
[api]
listen = "127.0.0.1:{port}"
[log]
level = "debug"
format = "json"
[[machines]]
name = "{MACHINE}"
definition = "api.asl.json"
{connections if connection else ""}""",
        encoding="utf-8",
    )
    return config


async def test_http_tasks_through_the_daemon(
    tmp_path: Path, api: tuple[str, list[tuple[str, str, dict[str, str], bytes]]]
) -> None:
    base, seen = api
    port = free_port()
    daemon = Stepd(write_config(tmp_path, base, port), port, tmp_path / "stepd.log")
    try:
        await daemon.start()
        await daemon.ok(
            "StartExecution",
            {
                "stateMachineArn": f"arn:aws:states:us-east-1:123456789012:stateMachine:{MACHINE}",
                "name": "one",
                "input": json.dumps({"page": 2, "name": "Ada"}),
            },
        )
        deadline = time.monotonic() + RUN_SECONDS
        while (described := await daemon.describe_in(MACHINE, "one"))["status"] == "RUNNING":
            assert time.monotonic() < deadline, daemon.tail()
            await asyncio.sleep(0.1)
        assert described["status"] == "SUCCEEDED", daemon.tail()
        output = json.loads(described["output"])
        history = await daemon.history_in(MACHINE, "one")
    finally:
        daemon.cleanup()
    assert output["get"] == {
        "status": 200,
        "body": {"method": "GET", "query": {"page": "2"}, "body": None},
    }
    assert output["post"]["body"]["body"] == {"name": "Ada"}
    assert output["form"] == {"body": "tags[]=a&tags[]=b"}
    assert output["missing"]["Error"] == "States.Http.StatusCode.404"
    cause = json.loads(output["missing"]["Cause"])
    assert (cause["StatusCode"], cause["StatusText"], cause["ResponseBody"]) == (
        404,
        "Not Found",
        "no such item",
    )
    assert [(method, path) for method, path, _, _ in seen] == [
        ("GET", "/items?page=2"),
        ("POST", "/items"),
        ("PUT", "/form"),
        ("GET", "/missing"),
    ]
    assert [headers.get("x-api-key") for _, _, headers, _ in seen] == [API_KEY] * 3 + [None]
    keys = [headers["Idempotency-Key"] for _, _, headers, _ in seen]
    assert len(set(keys)) == 4
    assert all(key.startswith(f"{MACHINE}/one/") for key in keys)
    assert API_KEY not in json.dumps(history)
    assert API_KEY not in daemon.log_text()
    assert execution_arn("one", MACHINE) in described["executionArn"]


async def _run(daemon: Stepd, name: str) -> dict[str, Any]:
    await daemon.ok(
        "StartExecution",
        {
            "stateMachineArn": f"arn:aws:states:us-east-1:123456789012:stateMachine:{MACHINE}",
            "name": name,
            "input": json.dumps({"page": 1, "name": name}),
        },
    )
    deadline = time.monotonic() + RUN_SECONDS
    while (described := await daemon.describe_in(MACHINE, name))["status"] == "RUNNING":
        assert time.monotonic() < deadline, daemon.tail()
        await asyncio.sleep(0.1)
    return described


async def test_a_reload_reads_a_rotated_secret(
    tmp_path: Path, api: tuple[str, list[tuple[str, str, dict[str, str], bytes]]]
) -> None:
    base, seen = api
    port = free_port()
    config = write_config(tmp_path, base, port)
    daemon = Stepd(config, port, tmp_path / "stepd.log")
    try:
        await daemon.start()
        assert (await _run(daemon, "before"))["status"] == "SUCCEEDED", daemon.tail()
        (tmp_path / "billing.key").write_text("rotated-key\n", encoding="utf-8")
        reloaded = await asyncio.to_thread(run_cli, "reload", "-c", config)
        assert reloaded.returncode == 0, reloaded.stdout + reloaded.stderr + daemon.tail()
        assert (await _run(daemon, "after"))["status"] == "SUCCEEDED", daemon.tail()
    finally:
        daemon.cleanup()
    keys = [headers.get("x-api-key") for _, _, headers, _ in seen]
    assert keys == [API_KEY] * 3 + [None] + ["rotated-key"] * 3 + [None]
    assert "rotated-key" not in daemon.log_text()


def test_check_reports_an_unknown_connection(tmp_path: Path) -> None:
    config = write_config(tmp_path, "http://127.0.0.1:9", free_port(), connection=False)
    checked = run_cli("check", "-c", config)
    assert checked.returncode == 78, checked.stderr
    findings = [
        line
        for line in checked.stdout.splitlines() + checked.stderr.splitlines()
        if "UNKNOWN_CONNECTION" in line
    ]
    assert len(findings) == 3  # Get, Post and Form use it; Missing has none
    assert "UNMAPPED_TASK" not in checked.stdout + checked.stderr
