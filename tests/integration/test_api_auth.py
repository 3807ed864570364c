"""Access to the real daemon's API: boto3 signing with SigV4, refusals in AWS's shapes, where
the API may listen, and secrets that never reach the config text or the log."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from prometheus_client.parser import text_string_to_metric_families
from tests.integration.harness import (
    AMZ_JSON,
    MACHINE,
    Classroom,
    DaemonFactory,
    Stepd,
    execution_arn,
    run_cli,
    wait_until,
)

from stepd.access import KeyPair
from stepd.api.auth import sign
from stepd.boto3_update import update_execution
from stepd.classroom import ClassroomServer
from stepd.config import EX_CONFIG

REGION = "us-east-1"
KEY = KeyPair(
    access_key_id="AKIDSTEPDINTEGRATION", secret_access_key="integration-Secret/0123456789+abcdef"
)
OTHER_SECRET = "not-the-integration-secret-0123456789"
METRICS_TOKEN = "integration-metrics-token-0123456789"
SETTLE_SECONDS = 30.0
STALE_SECONDS = 16 * 60  # past AWS's 15-minute limit
HTTP_TIMEOUT_SECONDS = 10.0


@pytest.fixture
def credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """systemd-style credentials ($CREDENTIALS_DIRECTORY) that daemons started here inherit."""
    folder = tmp_path / "credentials"
    folder.mkdir()
    (folder / "api_credentials").write_text(f"{KEY.access_key_id}:{KEY.secret_access_key}\n")
    (folder / "metrics_token").write_text(f"{METRICS_TOKEN}\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(folder))
    return folder


@pytest.fixture
def no_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """No systemd credentials and no AWS keys in the environment."""
    for name in ("CREDENTIALS_DIRECTORY", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name, raising=False)


def edit_config(stepd: Stepd, **replacements: str) -> None:
    """Rewrite lines of the daemon's config: `old line` -> `new lines`, each found once."""
    text = stepd.config.read_text(encoding="utf-8")
    for old, new in replacements.items():
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    stepd.config.write_text(text, encoding="utf-8")


def port_of(stepd: Stepd) -> str:
    return stepd.url.rpartition(":")[2]


def sfn(
    stepd: Stepd, *, key_id: str = KEY.access_key_id, secret: str = KEY.secret_access_key
) -> Any:
    """boto3's Step Functions client for the daemon, without retries."""
    return boto3.client(
        "stepfunctions",
        endpoint_url=stepd.url,
        region_name=REGION,
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
        config=Config(retries={"total_max_attempts": 1}, connect_timeout=5, read_timeout=30),
    )


async def refused(call: Callable[[], Any]) -> tuple[str, int, str]:
    """Run a boto3 call expected to fail: (error code, HTTP status, message)."""
    with pytest.raises(ClientError) as caught:
        await asyncio.to_thread(call)
    response = caught.value.response
    return (
        response["Error"]["Code"],
        response["ResponseMetadata"]["HTTPStatusCode"],
        response["Error"]["Message"],
    )


async def post(
    stepd: Stepd, headers: dict[str, str], body: bytes = b"{}", path: str = "/"
) -> httpx.Response:
    async with httpx.AsyncClient(timeout=HTTP_TIMEOUT_SECONDS, trust_env=False) as client:
        return await client.post(stepd.url + path, content=body, headers=headers)


def call_headers(operation: str = "ListStateMachines") -> dict[str, str]:
    return {"Content-Type": AMZ_JSON, "X-Amz-Target": f"AWSStepFunctions.{operation}"}


def signed(stepd: Stepd, method: str, path: str, body: bytes, *, now: float) -> dict[str, str]:
    """Headers of a request signed by stepd's signer at `now`."""
    headers = {"Host": f"127.0.0.1:{port_of(stepd)}"}
    if method == "POST":
        headers |= call_headers()
    added = sign(
        key=KEY,
        method=method,
        path=path,
        query="",
        headers=headers,
        body=body,
        region=REGION,
        now=now,
    )
    return headers | added


# -- with credentials -----------------------------------------------------------------------


async def test_boto3_with_the_configured_key_runs_an_execution(
    stepd: Stepd, classroom: ClassroomServer, credentials: Path
) -> None:
    """The right key pair starts, describes and lists executions, which then run for real."""
    await stepd.start()
    client = sfn(stepd)
    now = int(time.time())
    room = Classroom(name="signed", start=now, end=now + 3)

    machines = await asyncio.to_thread(client.list_state_machines)
    started = await asyncio.to_thread(
        client.start_execution,
        stateMachineArn=f"arn:aws:states:{REGION}:123456789012:stateMachine:{MACHINE}",
        name=room.name,
        input=json.dumps(room.input),
    )

    assert [m["name"] for m in machines["stateMachines"]] == [MACHINE]
    assert started["executionArn"] == execution_arn(room.name)

    async def succeeded() -> bool:
        described = await asyncio.to_thread(
            client.describe_execution, executionArn=execution_arn(room.name)
        )
        return bool(described["status"] == "SUCCEEDED")

    await wait_until(succeeded, timeout=SETTLE_SECONDS, what="the signed execution to succeed")
    assert [r.path for r in classroom.records] == [
        "/recording/start",
        "/recording/ping",
        "/recording/stop",
    ]


@pytest.mark.parametrize(
    ("key_id", "secret", "expected"),
    [
        pytest.param(
            KEY.access_key_id,
            OTHER_SECRET,
            ("InvalidSignatureException", 400, "The request signature we calculated"),
            id="wrong-secret",
        ),
        pytest.param(
            "AKIDUNKNOWN000000",
            KEY.secret_access_key,
            ("UnrecognizedClientException", 400, "The security token included"),
            id="unknown-key",
        ),
    ],
)
async def test_boto3_with_a_bad_key_is_refused_as_aws_refuses(
    stepd: Stepd, credentials: Path, key_id: str, secret: str, expected: tuple[str, int, str]
) -> None:
    """A wrong secret or an unknown key id gets AWS's error code, status and wording."""
    await stepd.start()
    client = sfn(stepd, key_id=key_id, secret=secret)

    code, status, message = await refused(client.list_state_machines)

    assert (code, status) == expected[:2]
    assert message.startswith(expected[2])


async def test_an_unsigned_request_is_refused(stepd: Stepd, credentials: Path) -> None:
    """No Authorization header: HTTP 403 MissingAuthenticationTokenException, JSON 1.0 shape."""
    await stepd.start()

    response = await post(stepd, call_headers())

    assert response.status_code == httpx.codes.FORBIDDEN
    assert response.headers["content-type"].startswith(AMZ_JSON)
    assert response.json() == {
        "__type": "MissingAuthenticationTokenException",
        "message": "Request is missing Authentication Token",
    }


async def test_a_stale_signature_is_refused(stepd: Stepd, credentials: Path) -> None:
    """A request signed 16 minutes ago is refused as expired, as AWS refuses it."""
    await stepd.start()
    body = b"{}"

    response = await post(
        stepd, signed(stepd, "POST", "/", body, now=time.time() - STALE_SECONDS), body
    )

    assert response.status_code == httpx.codes.BAD_REQUEST
    answer = response.json()
    assert answer["__type"] == "InvalidSignatureException"
    assert answer["message"].startswith("Signature expired: ")


async def test_health_stays_open_and_metrics_need_a_credential(
    stepd: Stepd, credentials: Path
) -> None:
    """/healthz answers anyone; /metrics wants the bearer token or a SigV4 signature."""
    await stepd.start()
    async with httpx.AsyncClient(timeout=HTTP_TIMEOUT_SECONDS, trust_env=False) as client:
        health = await client.get(stepd.url + "/healthz")
        anonymous = await client.get(stepd.url + "/metrics")
        wrong = await client.get(stepd.url + "/metrics", headers={"Authorization": "Bearer nope"})
        bearer = await client.get(
            stepd.url + "/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}
        )
        sigv4 = await client.get(
            stepd.url + "/metrics", headers=signed(stepd, "GET", "/metrics", b"", now=time.time())
        )

    assert health.status_code == httpx.codes.OK
    assert anonymous.status_code == httpx.codes.FORBIDDEN
    assert anonymous.json()["__type"] == "MissingAuthenticationTokenException"
    assert wrong.status_code == httpx.codes.BAD_REQUEST
    assert wrong.json()["__type"] == "UnrecognizedClientException"
    for response in (bearer, sigv4):
        assert response.status_code == httpx.codes.OK
        names = {f.name for f in text_string_to_metric_families(response.text)}
        assert "stepd_task_calls_in_flight" in names


async def test_the_cli_signs_with_the_aws_environment_or_the_daemons_keys(
    stepd: Stepd, credentials: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`stepd list` works with $AWS_* keys and --api, or with -c reading the credentials."""
    await stepd.start()
    monkeypatch.delenv("AWS_ACCESS_KEY_ID", raising=False)
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY", raising=False)

    anonymous = await asyncio.to_thread(run_cli, "list", "--api", stepd.url)
    with_config = await asyncio.to_thread(run_cli, "list", "-c", stepd.config, "--json")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", KEY.access_key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", KEY.secret_access_key)
    with_env = await asyncio.to_thread(run_cli, "list", "--api", stepd.url, "--json")

    assert anonymous.returncode != 0
    assert "MissingAuthenticationTokenException" in anonymous.stderr
    assert (with_config.returncode, with_env.returncode) == (0, 0), (
        with_config.stderr + with_env.stderr
    )
    assert json.loads(with_config.stdout) == json.loads(with_env.stdout) == {"executions": []}


async def test_secrets_never_reach_the_log(
    stepd: Stepd, classroom: ClassroomServer, credentials: Path
) -> None:
    """At debug level, through good and refused requests, no secret appears in the output."""
    edit_config(stepd, **{'level = "info"': 'level = "debug"'})
    await stepd.start()
    await asyncio.to_thread(sfn(stepd).list_state_machines)
    await refused(sfn(stepd, secret=OTHER_SECRET).list_state_machines)
    await post(stepd, call_headers())
    await post(stepd, {**call_headers(), "Authorization": f"Bearer {METRICS_TOKEN}"})
    async with httpx.AsyncClient(timeout=HTTP_TIMEOUT_SECONDS, trust_env=False) as client:
        await client.get(
            stepd.url + "/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}
        )
        await client.get(stepd.url + "/metrics", headers={"Authorization": "Bearer wrong"})

    text = stepd.log_text()

    assert stepd.log_events("api.refused")
    assert stepd.log_events("api.authenticated")
    for secret in (KEY.secret_access_key, OTHER_SECRET, METRICS_TOKEN):
        assert secret not in text


# -- where the API listens ------------------------------------------------------------------


async def test_a_public_listen_without_credentials_does_not_start(
    stepd: Stepd, no_credentials: None
) -> None:
    """listen = 0.0.0.0 with no key pair exits 78 (no restart loop) saying what to configure."""
    port = port_of(stepd)
    edit_config(stepd, **{f'listen = "127.0.0.1:{port}"': f'listen = "0.0.0.0:{port}"'})
    stepd.spawn()

    assert await stepd.exited() == EX_CONFIG
    assert "needs authentication" in stepd.log_text()
    assert "api_credentials" in stepd.log_text()


async def test_a_public_listen_with_a_credentials_file_serves_signed_calls(
    stepd: Stepd, no_credentials: None
) -> None:
    """listen = 0.0.0.0 with `[api] credentials_file` starts; signed calls work, others don't."""
    keys = stepd.config.parent / "api.keys"
    keys.write_text(f"# stepd API keys\n{KEY.access_key_id}:{KEY.secret_access_key}\n")
    keys.chmod(0o600)
    port = port_of(stepd)
    edit_config(
        stepd,
        **{
            f'listen = "127.0.0.1:{port}"': (
                f'listen = "0.0.0.0:{port}"\ncredentials_file = "{keys.name}"'
            )
        },
    )
    await stepd.start()

    machines = await asyncio.to_thread(sfn(stepd).list_state_machines)
    unsigned = await post(stepd, call_headers())

    assert [m["name"] for m in machines["stateMachines"]] == [MACHINE]
    assert unsigned.status_code == httpx.codes.FORBIDDEN


async def test_a_secret_in_the_config_text_does_not_start(
    stepd: Stepd, no_credentials: None
) -> None:
    """An inline secret exits 78 naming where it belongs; its value is not repeated."""
    inline = "whsec_aW5saW5lLXNlY3JldC12YWx1ZS0wMTIzNDU2Nzg5"
    edit_config(stepd, **{"[http]\n": f'[http]\nsigning_secret = "{inline}"\n'})
    stepd.spawn()

    assert await stepd.exited() == EX_CONFIG
    assert "signing_secret_file" in stepd.log_text()
    assert inline not in stepd.log_text()


# -- loopback without credentials -----------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "status"),
    [
        pytest.param({}, httpx.codes.OK, id="plain-local-call"),
        pytest.param({"Host": "attacker.example"}, httpx.codes.FORBIDDEN, id="rebound-host"),
        pytest.param({"Origin": "http://attacker.example"}, httpx.codes.FORBIDDEN, id="web-page"),
    ],
)
async def test_an_open_loopback_api_answers_local_callers_only(
    stepd: Stepd, no_credentials: None, extra: dict[str, str], status: int
) -> None:
    """Without credentials, another Host name (DNS rebinding) or a web page's Origin is refused."""
    await stepd.start()

    response = await post(stepd, {**call_headers(), **extra})

    assert response.status_code == status
    if status == httpx.codes.FORBIDDEN:
        assert response.json()["__type"] == "AccessDeniedException"


async def test_boto3_needs_no_real_key_on_an_open_loopback_api(
    make_stepd: DaemonFactory, no_credentials: None
) -> None:
    """With no credentials configured, any key (as in local development) is accepted."""
    stepd = make_stepd()
    await stepd.start()

    machines = await asyncio.to_thread(sfn(stepd, key_id="x", secret="y").list_state_machines)

    assert [m["name"] for m in machines["stateMachines"]] == [MACHINE]


async def test_stepd_operations_are_signed_and_the_history_names_the_key(
    stepd: Stepd, credentials: Path
) -> None:
    """Stepd.UpdateExecution needs a signature like AWS's operations; the boto3 helper signs
    with the client's key, and ExecutionUpdated names it."""
    await stepd.start()
    start = int(time.time()) + 3600
    lesson = Classroom(name="signed-update", start=start, end=start + 3600)
    client = sfn(stepd)
    await asyncio.to_thread(client.start_execution, **lesson.start_request())
    arn = execution_arn(lesson.name)
    unsigned = await post(
        stepd,
        {"Content-Type": AMZ_JSON, "X-Amz-Target": "Stepd.UpdateExecution"},
        json.dumps({"executionArn": arn, "input": "{}", "merge": True}).encode(),
    )
    assert unsigned.json()["__type"] == "MissingAuthenticationTokenException"
    await asyncio.to_thread(update_execution, client, arn, {"room": "B12"}, merge=True)
    events = await asyncio.to_thread(client.get_execution_history, executionArn=arn)
    raw = [e for e in events["events"] if e["type"] == "ExecutionUpdated"]
    assert len(raw) == 1
    history = await stepd_history(stepd, arn)
    assert history["updatedBy"] == f"key {KEY.access_key_id}"


async def stepd_history(stepd: Stepd, arn: str) -> dict[str, Any]:
    """The ExecutionUpdated details, read with a signed raw request (botocore's model drops
    the event details it does not know)."""
    body = json.dumps({"executionArn": arn}).encode()
    headers = {"Host": f"127.0.0.1:{port_of(stepd)}"} | call_headers("GetExecutionHistory")
    headers |= sign(
        key=KEY, method="POST", path="/", query="", headers=headers, body=body,
        region=REGION, now=time.time(),
    )  # fmt: skip
    answer = (await post(stepd, headers, body)).json()
    (event,) = [e for e in answer["events"] if e["type"] == "ExecutionUpdated"]
    return dict(event["executionUpdatedEventDetails"])
