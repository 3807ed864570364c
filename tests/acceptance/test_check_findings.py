"""What `stepd check` says about mistakes people make in the config, through the real CLI:
one finding per mistake, where it is, in words that say how to fix it.

Every command runs as `python -m stepd check -c FILE` in a subprocess.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from stepd.config import CREDENTIAL_STORES

REPO = Path(__file__).resolve().parents[2]
CLASSROOM_DEFINITION = REPO / "config" / "classroom.asl.yaml"
EX_OK = 0
EX_CONFIG = 78
FINDING = re.compile(r"^(?P<where>\S.*?): (?P<code>[A-Z][A-Z0-9_]*): (?P<message>\S.*)$")
ENDPOINTS = {
    "StartRecording": "/recording/start",
    "SendLivePing": "/recording/ping",
    "StopRecording": "/recording/stop",
    "StopAfterFailure": "/recording/stop",
}


def write_config(
    folder: Path,
    *,
    base_url: str = "http://127.0.0.1:8080",
    endpoints: dict[str, str] = ENDPOINTS,
    http_extra: str = "",
) -> Path:
    """The shipped classroom machine with `endpoints`, the classroom server at `base_url`."""
    routes = "".join(f'{key} = "{path}"\n' for key, path in endpoints.items())
    config = folder / "stepd.toml"
    config.write_text(
        f'[store]\npath = "stepd.db"\n[http]\nbase_url = "{base_url}"\n{http_extra}\n'
        f'[[machines]]\nname = "classroom"\ndefinition = "{CLASSROOM_DEFINITION}"\n'
        f"[machines.endpoints]\n{routes}",
        encoding="utf-8",
    )
    return config


def findings(stdout: str) -> list[tuple[str, str, str]]:
    """(where, code, message) of each line; every line must be a finding."""
    lines = stdout.splitlines()
    matches = [FINDING.match(line) for line in lines]
    assert None not in matches, stdout
    return [(m["where"], m["code"], m["message"]) for m in matches if m]


def test_a_base_url_without_a_scheme_is_one_finding(stepd_cli, tmp_path):
    """`base_url = "127.0.0.1:8080"`: one INVALID_BASE_URL at http.base_url saying what it
    needs, and no Task reported as unmapped."""
    config = write_config(tmp_path, base_url="127.0.0.1:8080")

    result = stepd_cli("check", "-c", str(config))

    assert result.returncode == EX_CONFIG
    assert findings(result.stdout) == [
        (
            f"{config}#/http/base_url",
            "INVALID_BASE_URL",
            "'127.0.0.1:8080' needs http:// or https:// (such as 'http://127.0.0.1:8080')",
        )
    ]


def test_a_misspelt_endpoint_is_named_with_what_it_may_mean(stepd_cli, tmp_path):
    """An endpoint key no Task state goes by is a warning naming the key and the Task state
    it may have meant; the Task left without an endpoint is the error."""
    endpoints = {k: v for k, v in ENDPOINTS.items() if k != "SendLivePing"}
    config = write_config(tmp_path, endpoints=endpoints | {"SendLivePign": "/recording/ping"})

    result = stepd_cli("check", "-c", str(config))

    assert result.returncode == EX_CONFIG
    assert [(where.rsplit("#", 1)[1], code) for where, code, _ in findings(result.stdout)] == [
        ("/States/SendLivePing", "UNMAPPED_TASK"),
        ("/machines/0/endpoints/SendLivePign", "UNUSED_ENDPOINT"),
    ]
    assert findings(result.stdout)[1][2].endswith('did you mean "SendLivePing"?')


def test_an_extra_endpoint_is_only_a_warning(stepd_cli, tmp_path):
    """With every Task mapped, an endpoint nothing uses is a warning: check passes."""
    config = write_config(tmp_path, endpoints=ENDPOINTS | {"Recording": "/recording"})

    result = stepd_cli("check", "-c", str(config))

    assert result.returncode == EX_OK, result.stdout
    ((where, code, message),) = findings(result.stdout)
    assert (where, code) == (f"{config}#/machines/0/endpoints/Recording", "UNUSED_ENDPOINT")
    assert '"Recording" is neither a Task state nor a Task Resource' in message
    assert "removing the line does not stop them" in message


def test_an_unknown_key_is_named_with_its_section_and_the_known_keys(stepd_cli, tmp_path):
    """A misspelt key: where it is, the keys its section knows, and the closest one."""
    config = write_config(tmp_path, http_extra="timeout = 3")

    result = stepd_cli("check", "-c", str(config))

    assert result.returncode == EX_CONFIG
    assert findings(result.stdout) == [
        (
            str(config),
            "CONFIG",
            (
                "http.timeout: unknown key in [http] (known keys: base_url, timeout_seconds, "
                "max_concurrency, signing_secret_file); did you mean timeout_seconds?"
            ),
        )
    ]


@pytest.mark.parametrize("command", ["check", "run"])
def test_a_bad_environment_override_names_the_variable(stepd_cli, tmp_path, command):
    """`STEPD_HTTP__TIMEOUT_SECONDS=abc`: the variable is named, not the file, which is fine."""
    config = write_config(tmp_path)

    result = stepd_cli(
        command, "-c", str(config), env={"STEPD_HTTP__TIMEOUT_SECONDS": "abc"}, timeout=30
    )

    assert result.returncode == EX_CONFIG
    said = result.stdout if command == "check" else result.stderr
    assert said.startswith("STEPD_HTTP__TIMEOUT_SECONDS: " if command == "check" else "stepd: ")
    assert "STEPD_HTTP__TIMEOUT_SECONDS: " in said
    assert "sets http.timeout_seconds: Input should be a valid number" in said
    assert str(config) not in said


@pytest.mark.parametrize(
    ("output", "where", "code", "exit_code"),
    [
        pytest.param(
            "{% $states.input.a + %}",
            "/States/Show/Output",
            "SCHEMA_VALIDATION_FAILED",
            EX_CONFIG,
            id="bad-expression",
        ),
        pytest.param(
            "{% $greeting %}", "/States/Show/Output", "UNASSIGNED_VARIABLE", EX_OK, id="unknown"
        ),
    ],
)
def test_a_jsonata_mistake_is_one_finding(  # noqa: PLR0917 - fixtures and the table's columns
    stepd_cli, tmp_path, output, where, code, exit_code
):
    """A JSONata expression that does not compile is one finding at the field, and check exits
    78; one that reads a variable no Assign sets is a warning there (AWS accepts the definition
    and the read fails when it runs)."""
    definition = tmp_path / "hello.asl.json"
    definition.write_text(
        '{"QueryLanguage": "JSONata", "StartAt": "Show", "States": {"Show": {"Type": "Pass", '
        f'"Output": "{output}", "End": true}}}}}}',
        encoding="utf-8",
    )
    config = tmp_path / "stepd.toml"
    config.write_text(
        '[store]\npath = "stepd.db"\n[http]\nbase_url = "http://127.0.0.1:8080"\n'
        f'[[machines]]\nname = "hello"\ndefinition = "{definition}"\n',
        encoding="utf-8",
    )

    result = stepd_cli("check", "-c", str(config))

    assert result.returncode == exit_code
    assert [(w.rsplit("#", 1)[1], c) for w, c, _ in findings(result.stdout)] == [(where, code)]


def test_an_open_api_without_key_pairs_fails_the_check_as_it_fails_the_daemon(stepd_cli, tmp_path):
    """`listen = "0.0.0.0:…"` and no key pairs: `stepd run` exits 78, so `stepd check` must
    not say OK. `check --offline` (a check elsewhere than where the daemon runs: its keys may
    be loaded there) says so without failing."""
    assert not any(  # no key pairs where the shipped unit would load them on this machine
        (Path(store) / "stepd.api_credentials").exists() for store in CREDENTIAL_STORES
    )
    config = write_config(tmp_path)
    config.write_text(
        '[api]\nlisten = "0.0.0.0:18399"\n' + config.read_text(encoding="utf-8"), encoding="utf-8"
    )
    env = {"CREDENTIALS_DIRECTORY": str(tmp_path / "none")}
    for offline, exit_code in (([], EX_CONFIG), (["--offline"], EX_OK)):
        result = stepd_cli("check", *offline, "-c", str(config), env=env)
        assert result.returncode == exit_code, result.stdout + result.stderr
        [(where, code, message)] = findings(result.stdout)
        assert (where, code) == (str(config), "API_NEEDS_KEYS")
        assert "0.0.0.0:18399 is reachable from other hosts" in message
    ran = stepd_cli("run", "-c", str(config), env=env)
    assert ran.returncode == EX_CONFIG
    assert "is reachable from other hosts" in ran.stderr + ran.stdout
