"""`stepd check` on HTTP Tasks, and the [[connections]] that their ConnectionArn names."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from stepd.asl.validate import validate
from stepd.catalog import MachineSpec, build_catalog
from stepd.config import connection_names, load_settings, read_connections
from stepd.errors import ConfigError
from stepd.tasks.connections import Connection, Connections

HTTP = "arn:aws:states:::http:invoke"
ARN = "arn:aws:events:eu-west-1:123456789012:connection/billing/0f1e2d"


def machine(parameters: Any, *, field: str = "Parameters", **more: Any) -> dict[str, Any]:
    task = {"Type": "Task", "Resource": HTTP, field: parameters, "End": True}
    return {"StartAt": "Call", "States": {"Call": task}, **more}


@pytest.mark.parametrize(
    ("definition", "findings"),
    [
        (machine({"ApiEndpoint": "https://x", "Method": "GET"}), []),
        (machine({"ApiEndpoint.$": "$.u", "Method": "POST"}), []),
        (
            machine({"Method": "GET"}),
            [("/States/Call/Parameters/ApiEndpoint", "an HTTP Task needs ApiEndpoint")],
        ),
        (
            machine({"ApiEndpoint": "https://x", "Method": "FETCH"}),
            [("/States/Call/Parameters/Method", "Method must be one of")],
        ),
        (
            machine({"ApiEndpoint": "https://x", "Method": "GET", "Headers": {"Host": "y"}}),
            [("/States/Call/Parameters/Headers/Host", 'the header "Host" may not be set')],
        ),
        (
            {
                "StartAt": "Call",
                "States": {"Call": {"Type": "Task", "Resource": HTTP, "End": True}},
            },
            [("/States/Call", "an HTTP Task needs Parameters")],
        ),
        (
            machine(
                {"ApiEndpoint": "{% $states.input.u %}"},
                field="Arguments",
                QueryLanguage="JSONata",
            ),
            [("/States/Call/Arguments/Method", "an HTTP Task needs Method")],
        ),
        (machine("{% $states.input %}", field="Arguments", QueryLanguage="JSONata"), []),
    ],
)
def test_validate_an_http_task(definition: dict[str, Any], findings: list[tuple[str, str]]) -> None:
    found = [(f.where, f.message) for f in validate(definition) if f.code == "INVALID_HTTP_TASK"]
    assert len(found) == len(findings), found
    for (where, message), (want_where, want_message) in zip(found, findings, strict=True):
        assert where == want_where
        assert want_message in message


def test_http_status_errors_may_be_retried_and_caught() -> None:
    definition = machine({"ApiEndpoint": "https://x", "Method": "GET"})
    definition["States"]["Call"]["Retry"] = [{"ErrorEquals": ["States.Http.StatusCode.503"]}]
    assert [f for f in validate(definition) if f.severity == "error"] == []
    definition["States"]["Call"]["Retry"] = [{"ErrorEquals": ["States.Http.StatusCode.5xx"]}]
    assert [f.code for f in validate(definition)] == ["SCHEMA_VALIDATION_FAILED"]


def _catalog(
    tmp_path: Path, connections: Connections, holder: str = "Authentication"
) -> list[tuple[str, str]]:
    path = tmp_path / "api.asl.json"
    parameters = {"ApiEndpoint": "https://x", "Method": "GET", holder: {"ConnectionArn": ARN}}
    path.write_text(json.dumps(machine(parameters)), encoding="utf-8")
    catalog = build_catalog(
        [MachineSpec(name="api", definition=path)],
        base_url="",
        config_source="stepd.toml",
        connections=connections,
    )
    return [(r.code, r.where.split("#")[1]) for r in catalog.reports]


@pytest.mark.parametrize("holder", ["InvocationConfig", "Authentication"])
def test_an_http_task_needs_no_endpoint_but_a_known_connection(tmp_path: Path, holder: str) -> None:
    assert _catalog(tmp_path, Connections((Connection(name="billing"),)), holder) == []
    assert _catalog(tmp_path, Connections(), holder) == [
        ("UNKNOWN_CONNECTION", f"/States/Call/Parameters/{holder}/ConnectionArn")
    ]


CONFIG = """
[[machines]]
name = "api"
definition = "api.asl.json"
[[connections]]
name = "billing"
"""


def test_connections_are_read_from_the_config_with_their_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    (tmp_path / "key").write_text("s3cr3t\n", encoding="utf-8")
    config = tmp_path / "stepd.toml"
    config.write_text(
        CONFIG + 'auth = "api_key"\nheader = "X-Api-Key"\nsecret_file = "key"\n', encoding="utf-8"
    )
    settings = load_settings(config)
    assert connection_names(settings) == Connections((Connection(name="billing"),))
    read = read_connections(settings)
    assert read.items[0].headers == {"X-Api-Key": "s3cr3t"}
    assert "s3cr3t" not in repr(read)
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / "billing").write_text("from-systemd", encoding="utf-8")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(credentials))
    config.write_text(
        CONFIG + 'auth = "basic"\nusername = "u"\ncredential = "billing"\n', encoding="utf-8"
    )
    headers = read_connections(load_settings(config)).items[0].headers
    assert headers["Authorization"].startswith("Basic ")


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('auth = "api_key"\nsecret_file = "k"\n', "needs header"),
        ('auth = "basic"\nsecret_file = "k"\n', "needs a username"),
        ('auth = "headers"\n', "secret_file or a systemd credential"),
        ('auth = "headers"\npassword = "x"\n', "secrets are never read from the config"),
    ],
)
def test_incomplete_connections_are_refused(tmp_path: Path, table: str, message: str) -> None:
    config = tmp_path / "stepd.toml"
    config.write_text(CONFIG + table, encoding="utf-8")
    with pytest.raises(ConfigError) as refused:
        load_settings(config)
    assert message in str(refused.value)


def test_a_missing_secret_is_named_without_its_value(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    config = tmp_path / "stepd.toml"
    config.write_text(CONFIG + 'auth = "headers"\nsecret_file = "absent"\n', encoding="utf-8")
    with pytest.raises(ConfigError) as refused:
        read_connections(load_settings(config))
    assert "absent" in str(refused.value)
