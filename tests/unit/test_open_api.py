"""`stepd check` says what `stepd run` would refuse: an API open to other hosts without key
pairs, unless they are configured somewhere the daemon reads them."""

from __future__ import annotations

from pathlib import Path

import pytest

from stepd.config import Settings, load_settings, open_api_problem

MACHINE = """
[[machines]]
name = "m"
definition = "m.asl.json"
"""


def settings(folder: Path, api: str) -> Settings:
    (folder / "m.asl.json").write_text(
        '{"StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}}', encoding="utf-8"
    )
    config = folder / "stepd.toml"
    config.write_text(f"[api]\n{api}\n{MACHINE}", encoding="utf-8")
    return load_settings(config)


@pytest.mark.parametrize("listen", ["127.0.0.1:8300", "localhost:8300", "unix:/run/stepd.sock"])
def test_an_api_on_this_host_only_needs_no_key_pairs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, listen: str
) -> None:
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    assert open_api_problem(settings(tmp_path, f'listen = "{listen}"'), stores=()) is None


def test_an_open_api_without_key_pairs_is_what_run_refuses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    problem = open_api_problem(settings(tmp_path, 'listen = "0.0.0.0:8300"'), stores=())
    assert problem is not None
    assert problem.startswith("api.listen: 0.0.0.0:8300 is reachable from other hosts")


def test_key_pairs_in_a_file_the_service_credential_or_a_credential_store_will_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Wherever the daemon would read them from, even where this user cannot read them."""
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    in_file = settings(tmp_path, 'listen = "0.0.0.0:8300"\ncredentials_file = "/root/keys"')
    assert open_api_problem(in_file, stores=()) is None

    open_api = settings(tmp_path, 'listen = "0.0.0.0:8300"')
    store = tmp_path / "credstore"
    store.mkdir()
    (store / "stepd.api_credentials").write_text("AKID:secret\n", encoding="utf-8")
    assert open_api_problem(open_api, stores=(str(store),)) is None

    service = tmp_path / "credentials"
    service.mkdir()
    (service / "api_credentials").write_text("AKID:secret\n", encoding="utf-8")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(service))
    assert open_api_problem(open_api, stores=()) is None
