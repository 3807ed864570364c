"""The config file: TOML, STEPD_ overrides, paths relative to the file, clear refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from stepd.alerts import Target
from stepd.catalog import MachineSpec
from stepd.config import MachineSettings, load_settings, machine_specs, read_notify
from stepd.errors import ConfigError

MINIMAL = """
[store]
path = "data/stepd.db"
[http]
base_url = "http://127.0.0.1:8080"
[[machines]]
name = "classroom"
definition = "classroom.asl.yaml"
[machines.endpoints]
StartRecording = "/recording/start"
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "stepd.toml"
    path.write_text(text)
    return path


def test_relative_paths_are_relative_to_the_config_file(tmp_path: Path):
    """store.path and machine definitions resolve against the file's folder, not the cwd."""
    settings = load_settings(_write(tmp_path, MINIMAL))
    assert (settings.store.path, settings.machines[0].definition) == (
        tmp_path / "data" / "stepd.db",
        tmp_path / "classroom.asl.yaml",
    )


def test_machines_are_handed_on_as_plain_specs(tmp_path: Path):
    """Each [[machines]] table becomes a MachineSpec, its definition path resolved."""
    text = MINIMAL.replace('.yaml"\n', '.yaml"\nlate_policy = "fail"\n')
    settings = load_settings(_write(tmp_path, text))
    assert machine_specs(settings) == (
        MachineSpec(
            name="classroom",
            definition=tmp_path / "classroom.asl.yaml",
            endpoints={"StartRecording": "/recording/start"},
            late_policy="fail",
        ),
    )


def test_environment_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """STEPD_SECTION__KEY wins over the file."""
    monkeypatch.setenv("STEPD_HTTP__BASE_URL", "http://10.0.0.5:9000")
    monkeypatch.setenv("STEPD_HTTP__TIMEOUT_SECONDS", "3")
    settings = load_settings(_write(tmp_path, MINIMAL))
    assert (settings.http.base_url, settings.http.timeout_seconds) == ("http://10.0.0.5:9000", 3)


@pytest.mark.parametrize(
    ("text", "named"),
    [
        pytest.param(MINIMAL + "\n[store2]\nx = 1\n", "store2", id="unknown-section"),
        pytest.param(MINIMAL.replace("[http]", "[http]\ntimeout = 3"), "http.timeout", id="typo"),
        pytest.param(MINIMAL.replace('path = "', 'path = ["'), "stepd.toml", id="bad-toml"),
        pytest.param(
            MINIMAL.replace('base_url = "http://127.0.0.1:8080"', "timeout_seconds = -1"),
            "http.timeout_seconds",
            id="negative-timeout",
        ),
        pytest.param(
            MINIMAL.replace("[store]", '[api]\nlisten = "nowhere"\n[store]'),
            "api.listen",
            id="bad-listen",
        ),
    ],
)
def test_bad_config_is_refused_naming_the_key(tmp_path: Path, text: str, named: str):
    """An unknown key, a typo, bad TOML or a bad value is refused, and the message names it."""
    with pytest.raises(ConfigError, match=named.replace(".", r"\.")):
        load_settings(_write(tmp_path, text))


def test_a_missing_file_is_a_clear_error(tmp_path: Path):
    """A config path that does not exist says so instead of running on defaults."""
    with pytest.raises(ConfigError, match="config file not found"):
        load_settings(tmp_path / "nope.toml")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param(
            MINIMAL.replace("[http]", "[http]\ntimeout = 3"),
            "stepd.toml: http.timeout: unknown key in [http] (known keys: base_url, "
            "timeout_seconds, max_concurrency, signing_secret_file); did you mean "
            "timeout_seconds?",
            id="key-in-a-section",
        ),
        pytest.param(
            MINIMAL + "\n[sotre]\nx = 1\n",
            "stepd.toml: sotre: unknown section (known sections: store, api, http, log, "
            "machines, connections, notify, testing, tracing); did you mean store?",
            id="section",
        ),
        pytest.param(
            MINIMAL.replace('name = "classroom"', 'name = "classroom"\nlate_polcy = "fail"'),
            "stepd.toml: machines.0.late_polcy: unknown key in [[machines]] number 1 (known "
            f"keys: {', '.join(MachineSettings.model_fields)}); did you mean late_policy?",
            id="key-in-a-machine",
        ),
        pytest.param(
            MINIMAL + "\n[log]\nverbose = true\n",
            "stepd.toml: log.verbose: unknown key in [log] (known keys: level, format)",
            id="nothing-close",
        ),
    ],
)
def test_an_unknown_key_is_named_with_its_section_and_the_known_keys(
    tmp_path: Path, text: str, message: str
) -> None:
    """An unknown key: its place, the keys that section knows, and the closest of them."""
    with pytest.raises(ConfigError) as refused:
        load_settings(_write(tmp_path, text))

    assert str(refused.value) == message.replace("stepd.toml", str(tmp_path / "stepd.toml"))


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        pytest.param(
            "STEPD_HTTP__TIMEOUT_SECONDS",
            "abc",
            "sets http.timeout_seconds: Input should be a valid number, unable to parse "
            "string as a number",
            id="bad-value",
        ),
        pytest.param(
            "stepd_http__timeout",
            "3",
            "sets http.timeout: unknown key in [http] (known keys: base_url, timeout_seconds, "
            "max_concurrency, signing_secret_file); did you mean timeout_seconds?",
            id="unknown-key-any-case",
        ),
        pytest.param(
            "STEPD_HTTP__SIGNING_SECRET",
            "whsec_x",
            "sets http.signing_secret: secrets are never read from the config file or the "
            "environment; put it in [http] signing_secret_file or the credential "
            "'signing_secret'",
            id="secret",
        ),
        pytest.param(
            "STEPD_HTTP",
            "not json",
            "not valid JSON for http; set one key at a time with STEPD_HTTP__KEY",
            id="section-not-json",
        ),
    ],
)
def test_a_bad_environment_override_is_blamed_on_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, variable: str, value: str, message: str
) -> None:
    """A bad STEPD_ override names the variable, not the file, which is fine."""
    monkeypatch.setenv(variable, value)

    with pytest.raises(ConfigError) as refused:
        load_settings(_write(tmp_path, MINIMAL))

    assert (refused.value.where, refused.value.message) == (variable, message)


def test_problems_in_the_file_and_the_environment_are_each_blamed_on_theirs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The file's problems name the file; the environment's name their variables."""
    monkeypatch.setenv("STEPD_STORE__RETENTION_DAYS", "-1")
    text = MINIMAL.replace("[http]", "[http]\ntimeout = 3")

    with pytest.raises(ConfigError) as refused:
        load_settings(_write(tmp_path, text))

    assert str(tmp_path / "stepd.toml") in str(refused.value)
    assert "STEPD_STORE__RETENTION_DAYS: sets store.retention_days:" in str(refused.value)
    assert "http.timeout: unknown key in [http]" in str(refused.value)


def test_notify_entries_become_targets_with_their_secret_or_the_task_calls_one(tmp_path: Path):
    (tmp_path / "hook.secret").write_text("whsec_aG9vay1zZWNyZXQ=\n")
    text = MINIMAL + (
        '[[notify]]\nurl = "https://ops.example/hook"\nmachines = ["classroom"]\n'
        'statuses = ["FAILED"]\nsecret_file = "hook.secret"\n'
        '[[notify]]\nurl = "http://10.0.0.9/all"\n'
    )
    settings = load_settings(_write(tmp_path, text))
    assert read_notify(settings, "task-secret") == (
        Target(
            url="https://ops.example/hook",
            machines=frozenset({"classroom"}),
            statuses=frozenset({"FAILED"}),
            secret="whsec_aG9vay1zZWNyZXQ=",
        ),
        Target(url="http://10.0.0.9/all", secret="task-secret"),
    )


@pytest.mark.parametrize(
    ("entry", "named"),
    [
        pytest.param('url = "ftp://x"', "notify.0.url", id="not-http"),
        pytest.param('url = "http://x"\nstatuses = ["SUCCEEDED"]', "notify.0.statuses", id="ok"),
        pytest.param('url = "http://x"\nsecret = "s"', "secret", id="inline-secret"),
    ],
)
def test_a_bad_notify_entry_is_refused_naming_it(tmp_path: Path, entry: str, named: str):
    with pytest.raises(ConfigError, match=named):
        load_settings(_write(tmp_path, MINIMAL + f"[[notify]]\n{entry}\n"))
