"""The config file: TOML, STEPD_ overrides, paths relative to the file, clear refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from stepd.catalog import MachineSpec
from stepd.config import load_settings, machine_specs
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
