"""`stepd apply` of a 10,000-row timetable against the real daemon, end to end.

Starts the daemon (bench/harness.py: real SQLite, every transition durably committed) and
times the `stepd apply` command line, from process start to exit, for:

- the first apply: 10,000 new executions started (each a Wait until its class);
- the same file again: nothing to do (the comparison alone);
- the file with 1,000 classes moved by ten minutes: 1,000 updates, each Wait moved;
- a dry run of a file with 1,000 more rows and 1,000 fewer (the plan alone, with --prune).

Prints the figures and appends them, with the commit, to bench/RESULTS.md.

    .venv/bin/python bench/timetable.py [ROWS]
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from harness import Bench, rfc3339

ROWS = 10_000
MOVED = 1_000
RESULTS = Path(__file__).with_name("RESULTS.md")


def write(path: Path, rows: list[tuple[str, float]]) -> Path:
    path.write_text("name,at\n" + "".join(f"{n},{rfc3339(at)}\n" for n, at in rows))
    return path


def apply(api: str, table: Path, *flags: str) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "stepd", "apply", "--api", api, "ping", str(table), *flags],
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(done.stderr)
    return seconds, done.stdout.strip().splitlines()[-1]


async def main(rows: int) -> list[str]:
    folder = Path(tempfile.mkdtemp(prefix="stepd-bench-timetable-"))
    bench = Bench(folder)
    await bench.setup()
    bench.start_daemon()
    await bench.wait_ready()
    api = f"http://127.0.0.1:{bench.port}"
    try:
        base = time.time() + 7200
        timetable = [(f"class-{n:05d}", base + 60 * (n % 600)) for n in range(rows)]
        table = write(folder / "week.csv", timetable)
        figures = []
        for label, path, flags in (
            (f"first apply, {rows} to start", table, ()),
            ("same file again, nothing to do", table, ()),
        ):
            seconds, summary = await asyncio.to_thread(apply, api, path, *flags)
            figures.append(f"- **{label}**: {seconds:.2f} s ({summary})")
        moved = [(n, at + 600 if i < MOVED else at) for i, (n, at) in enumerate(timetable)]
        seconds, summary = await asyncio.to_thread(apply, api, write(folder / "m.csv", moved))
        figures.append(f"- **{MOVED} classes moved**: {seconds:.2f} s ({summary})")
        changed = moved[MOVED:] + [(f"new-{n:05d}", base) for n in range(MOVED)]
        seconds, summary = await asyncio.to_thread(
            apply, api, write(folder / "d.csv", changed), "--dry-run", "--prune"
        )
        figures.append(f"- **dry run with --prune**: {seconds:.2f} s ({summary})")
        return figures
    finally:
        await bench.close()


if __name__ == "__main__":
    count = int(sys.argv[1]) if len(sys.argv) > 1 else ROWS
    lines = asyncio.run(main(count))
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    text = (
        f"\n## {stamp}, commit {commit}, `bench/timetable.py`\n\n"
        f"`stepd apply` of a {count}-row CSV timetable (the `ping` machine: a Wait until `at`,"
        " then one Task) to the real daemon over loopback, timed from the command's start to"
        " its exit (a Python start of about 0.5 s included), on the shared 2-core machine:\n\n"
        + "\n".join(lines)
        + "\n"
    )
    print(text)
    with RESULTS.open("a") as out:
        out.write(text)
