"""`stepd backup FILE`: a copy of the configured store, what it holds, and clear refusals."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from stepd import __version__
from stepd.cli import main
from stepd.store.formats import FORMAT_VERSION
from stepd.store.records import NewEvent, NewExecution, Progress
from stepd.store.schema import SCHEMA_VERSION
from stepd.store.sqlite import SqliteStore, count_by_status

EX_OK = 0
EX_FAILURE = 1
EX_CONFIG = 78
STATUSES = {"first": "RUNNING", "second": "RUNNING", "third": "SUCCEEDED", "fourth": "ABORTED"}


def run_backup(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> tuple[int, str, str]:
    code = main(["backup", *map(str, argv)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def fields(text: str) -> dict[str, str]:
    """The command's `key: value` lines as a dict."""
    pairs = (line.strip().partition(": ") for line in text.splitlines())
    return {key: value for key, sep, value in pairs if sep}


async def make_store(path: Path, statuses: dict[str, str]) -> None:
    """A store at `path` holding one execution of each name in `statuses`, in that status."""
    store = SqliteStore(path)
    await store.open()
    try:
        definition_id = await store.put_definition("m", '{"StartAt":"A"}')
        for name, status in statuses.items():
            running = status == "RUNNING"
            await store.create_execution(
                NewExecution(
                    machine="m",
                    name=name,
                    definition_id=definition_id,
                    input="{}",
                    start_date=1.0,
                    uid=f"uid-{name}",
                    progress=Progress(
                        status=status,
                        state="A",
                        phase="enter",
                        data="{}",
                        due_at=100.0 if running else None,
                        stop_date=None if running else 2.0,
                    ),
                    events=(NewEvent(type="ExecutionStarted", details={}, ts=1.0),),
                )
            )
    finally:
        await store.close()


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A config whose store is tmp_path/stepd.db (not created), with no STEPD_* override."""
    monkeypatch.delenv("STEPD_STORE__PATH", raising=False)
    path = tmp_path / "stepd.toml"
    path.write_text('[store]\npath = "stepd.db"\n', encoding="utf-8")
    return path


def test_the_copy_is_written_and_described(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, config: Path
):
    """The backup is written, and the command prints its path, size, schema and the number
    of executions in each status, as read from the copy."""
    asyncio.run(make_store(tmp_path / "stepd.db", STATUSES))
    target = tmp_path / "copy.db"

    code, out, err = run_backup(capsys, target, "-c", config)

    assert (code, err) == (EX_OK, "")
    assert fields(out) == {
        "backup": str(target),
        "of": str(tmp_path / "stepd.db"),
        "size": f"{target.stat().st_size} bytes",
        "schema": f"{SCHEMA_VERSION} (record format {FORMAT_VERSION}, written by stepd "
        f"{__version__})",
        "executions": "4",
        "RUNNING": "2",
        "SUCCEEDED": "1",
        "FAILED": "0",
        "TIMED_OUT": "0",
        "ABORTED": "1",
    }


def test_each_backup_holds_what_the_store_held_when_it_was_taken(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, config: Path
):
    """An execution added after a backup is in the next backup and not in the first one."""
    asyncio.run(make_store(tmp_path / "stepd.db", {"first": "RUNNING"}))
    code, first, _ = run_backup(capsys, tmp_path / "one.db", "-c", config)
    asyncio.run(make_store(tmp_path / "stepd.db", {"later": "SUCCEEDED"}))
    code_two, second, _ = run_backup(capsys, tmp_path / "two.db", "-c", config)

    assert (code, code_two) == (EX_OK, EX_OK)
    assert (fields(first)["executions"], fields(first)["SUCCEEDED"]) == ("1", "0")
    assert (fields(second)["executions"], fields(second)["SUCCEEDED"]) == ("2", "1")
    assert count_by_status(tmp_path / "one.db") == {"RUNNING": 1}


def test_an_existing_file_is_refused_and_left_as_it_was(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, config: Path
):
    """FILE exists: exit 1, the message names it, and it keeps its content."""
    asyncio.run(make_store(tmp_path / "stepd.db", STATUSES))
    target = tmp_path / "taken.db"
    target.write_text("mine", encoding="utf-8")

    code, out, err = run_backup(capsys, target, "-c", config)

    assert (code, out) == (EX_FAILURE, "")
    assert err == f"stepd: {target}: exists; a backup never overwrites a file\n"
    assert target.read_text(encoding="utf-8") == "mine"


def test_a_missing_store_is_a_config_problem(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, config: Path
):
    """No store at [store] path: exit 78, naming the path and the setting; nothing written."""
    target = tmp_path / "copy.db"

    code, out, err = run_backup(capsys, target, "-c", config)

    assert (code, out) == (EX_CONFIG, "")
    assert err == (
        f"stepd: {tmp_path / 'stepd.db'}: no store there: check [store] path in {config}"
        " (or STEPD_STORE__PATH)\n"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["stepd.toml"]


def test_an_unreadable_config_exits_78(capsys: pytest.CaptureFixture[str], tmp_path: Path):
    """A config file that is missing or not TOML: exit 78 with the config's message."""
    missing = tmp_path / "missing.toml"
    broken = tmp_path / "broken.toml"
    broken.write_text("[store\n", encoding="utf-8")

    code, out, err = run_backup(capsys, tmp_path / "copy.db", "-c", missing)
    assert (code, out, err) == (EX_CONFIG, "", f"stepd: {missing}: config file not found\n")
    code, out, err = run_backup(capsys, tmp_path / "copy.db", "-c", broken)
    assert (code, out) == (EX_CONFIG, "")
    assert err.startswith(f"stepd: {broken}: not valid TOML")
    assert not (tmp_path / "copy.db").exists()


def test_a_missing_folder_is_refused(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, config: Path
):
    """FILE in a folder that does not exist: exit 1, naming the folder."""
    asyncio.run(make_store(tmp_path / "stepd.db", STATUSES))
    target = tmp_path / "nowhere" / "copy.db"

    code, out, err = run_backup(capsys, target, "-c", config)

    assert (code, out, err) == (EX_FAILURE, "", f"stepd: {target}: no folder {target.parent}\n")


def test_the_environment_overrides_the_store_path(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    config: Path,
    monkeypatch: pytest.MonkeyPatch,
):
    """STEPD_STORE__PATH names the store to copy, as it does for every command."""
    elsewhere = tmp_path / "elsewhere.db"
    asyncio.run(make_store(elsewhere, {"first": "RUNNING"}))
    monkeypatch.setenv("STEPD_STORE__PATH", str(elsewhere))

    code, out, _ = run_backup(capsys, tmp_path / "copy.db", "-c", config)

    assert code == EX_OK
    assert (fields(out)["of"], fields(out)["executions"]) == (str(elsewhere), "1")
