"""The package as `make install` builds it: no build warnings, and every file the daemon reads
at run time is in the wheel."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BUILD_TIMEOUT_SECONDS = 300


def test_the_wheel_builds_without_warnings_and_carries_its_data(tmp_path: Path) -> None:
    """`pip wheel` of the source prints no warning, and the wheel holds the page templates,
    the style sheet, the example definition and the type marker."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--wheel-dir",
            str(tmp_path),
            str(REPO),
        ],
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT_SECONDS,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    warnings = [
        line
        for line in (result.stdout + result.stderr).splitlines()
        if "warning" in line.lower() and "pip version" not in line.lower()
    ]
    assert warnings == [], "\n".join(warnings)
    (wheel,) = tmp_path.glob("stepd-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    wanted = {
        "stepd/py.typed",
        "stepd/examples/classroom.asl.yaml",
        "stepd/ui/static/stepd.css",
        "stepd/ui/templates/base.html",
        "stepd/ui/templates/execution.html",
    }
    assert wanted <= names, sorted(wanted - names)
