"""Log lines under journald: `<N>` priority prefixes, only when stdout is the journal stream."""

from __future__ import annotations

import asyncio
import json
import os
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import structlog

from stepd import logs


@pytest.fixture(autouse=True)
def _restore_structlog() -> Iterator[None]:
    yield
    structlog.reset_defaults()


def _journal_stream(path: Path) -> str:
    stat = path.stat()
    return f"{stat.st_dev}:{stat.st_ino}"


def test_lines_to_the_journal_carry_their_priority(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With JOURNAL_STREAM naming stdout, each JSON line starts with its syslog priority."""
    out_path = tmp_path / "stdout"
    with out_path.open("w", encoding="utf-8") as out:
        monkeypatch.setenv("JOURNAL_STREAM", _journal_stream(out_path))
        logs.configure("debug", "json", stream=out)
        log = structlog.get_logger("test")
        log.debug("a.debug")
        log.info("a.info")
        log.warning("a.warning")
        log.error("a.error")

    lines = out_path.read_text(encoding="utf-8").splitlines()
    assert [line[:3] for line in lines] == ["<7>", "<6>", "<4>", "<3>"]
    assert [json.loads(line[3:])["event"] for line in lines] == [
        "a.debug",
        "a.info",
        "a.warning",
        "a.error",
    ]


def test_another_stream_gets_plain_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """JOURNAL_STREAM naming some other file (an inherited variable) adds no prefix."""
    other = tmp_path / "other"
    other.write_text("", encoding="utf-8")
    out_path = tmp_path / "stdout"
    with out_path.open("w", encoding="utf-8") as out:
        monkeypatch.setenv("JOURNAL_STREAM", _journal_stream(other))
        logs.configure("info", "json", stream=out)
        structlog.get_logger("test").error("a.error")

    assert json.loads(out_path.read_text(encoding="utf-8"))["event"] == "a.error"


def _events(path: Path) -> list[str]:
    return [json.loads(line)["event"] for line in path.read_text(encoding="utf-8").splitlines()]


def test_lines_logged_on_the_loop_are_all_written_in_order_by_the_next_turn(
    tmp_path: Path,
) -> None:
    """A burst of lines from the event loop reaches the stream whole, in order, as soon as the
    loop turns; a line logged off the loop is written at once."""
    out_path = tmp_path / "stdout"
    seen: list[list[str]] = []

    async def burst() -> None:
        log = structlog.get_logger("test")
        for event in ("line.0", "line.1", "line.2"):
            log.info(event)
        await asyncio.sleep(0)
        seen.append(_events(out_path))
        log.info("line.last")  # the loop ends right after: still written

    with out_path.open("w", encoding="utf-8") as out:
        logs.configure("info", "json", stream=out)
        asyncio.run(burst())
        seen.append(_events(out_path))
        structlog.get_logger("test").info("off.the.loop")
        seen.append(_events(out_path))

    assert seen == [
        ["line.0", "line.1", "line.2"],
        ["line.0", "line.1", "line.2", "line.last"],
        ["line.0", "line.1", "line.2", "line.last", "off.the.loop"],
    ]


def test_a_json_line_carries_the_context_its_level_and_a_utc_timestamp(tmp_path: Path) -> None:
    """Each line has the bound context (its own keys win), the level by its standard name and
    an ISO 8601 UTC timestamp of when it was logged; an exception's line keeps its traceback,
    without the local variables of its frames (one may hold a secret)."""
    out_path = tmp_path / "stdout"
    with out_path.open("w", encoding="utf-8") as out:
        logs.configure("debug", "json", stream=out)
        log = structlog.get_logger("test")
        token = logs.bind(machine="classroom", state="Wait")
        try:
            before = datetime.now(UTC)
            log.warn("a.warn", state="Start")  # noqa: G010 - the alias is mapped too
            password = "s3cret-in-a-frame"  # a local of the failing frame
            try:
                raise ValueError("bad")  # noqa: TRY301 - the line an exception leaves
            except ValueError:
                log.exception("a.exception")
            after = datetime.now(UTC)
        finally:
            logs.reset(token)
        log.info("a.info")

    warned, failed, plain = (json.loads(line) for line in out_path.read_text().splitlines())
    assert (warned["level"], warned["state"]) == ("warning", "Start")
    assert warned["machine"] == "classroom"
    assert (failed["level"], failed["state"]) == ("error", "Wait")
    assert failed["exception"][0]["exc_type"] == "ValueError"
    assert failed["exception"][0]["frames"]  # where it came from, without the frames' locals
    assert password not in out_path.read_text()
    assert "machine" not in plain
    for line in (warned, failed, plain):
        assert line["timestamp"].endswith("Z")
    stamps = [datetime.fromisoformat(line["timestamp"]) for line in (warned, failed)]
    slack = timedelta(milliseconds=1)  # the stamp is cut to whole microseconds
    assert before - slack <= stamps[0] <= stamps[1] <= after + slack


def test_a_module_logger_follows_each_new_configuration(tmp_path: Path) -> None:
    """A module's logger writes at the level, to the stream, of the configuration in force at
    each line (a reload that changes `[log] level`), and a test's capture_logs sees its lines."""
    log = logs.get_logger("test")
    first, second = tmp_path / "first", tmp_path / "second"
    with first.open("w", encoding="utf-8") as out:
        logs.configure("info", "json", stream=out)
        log.debug("hidden")
        log.info("shown.first")
    with second.open("w", encoding="utf-8") as out:
        logs.configure("debug", "json", stream=out)
        log.debug("shown.debug")
        with structlog.testing.capture_logs() as captured:
            log.warning("captured", n=1)
            log.info("captured.info", n=2)
        log.info("shown.second")

    assert _events(first) == ["shown.first"]
    assert _events(second) == ["shown.debug", "shown.second"]
    assert captured == [
        {"event": "captured", "n": 1, "log_level": "warning"},
        {"event": "captured.info", "n": 2, "log_level": "info"},
    ]


@pytest.mark.parametrize("journal", [False, True], ids=["json", "journal"])
def test_a_module_loggers_line_is_the_line_structlog_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, journal: bool
) -> None:
    """A module logger's info and debug lines (which skip structlog's dispatch) are written as
    structlog's own logger writes them: the same fields in the same order, the bound context
    after the line's own fields, the same priority prefix under journald."""
    out_path = tmp_path / "stdout"
    with out_path.open("w", encoding="utf-8") as out:
        if journal:
            stat = os.fstat(out.fileno())
            monkeypatch.setenv("JOURNAL_STREAM", f"{stat.st_dev}:{stat.st_ino}")
        logs.configure("debug", "json", stream=out)
        token = logs.bind(machine="classroom", state="Wait")
        try:
            for log in (logs.get_logger("test"), structlog.get_logger("test")):
                log.info("a.info", state="Start", n=1)
                log.debug("a.debug", url="http://x/ünïcode")
        finally:
            logs.reset(token)
    lines = out_path.read_text(encoding="utf-8").splitlines()
    ours, theirs = lines[:2], lines[2:]
    assert [_without_timestamp(line) for line in ours] == [
        _without_timestamp(line) for line in theirs
    ]
    assert ours[0].startswith("<6>" if journal else "{")
    assert json.loads(ours[0].removeprefix("<6>"))["machine"] == "classroom"


def _without_timestamp(line: str) -> str:
    return re.sub(r'"timestamp":"[^"]*"', "", line)
