"""Earlier releases of stepd, installed from this repository's history to run beside the code
under test.

A release is taken from its commit with `git archive` (its tag may be missing in a clone; the
commit is not). It runs on this interpreter, its source first on PYTHONPATH, when the packages
installed here are the exact versions it pins; otherwise it gets a virtualenv of its own with
its pins installed by pip.
"""

from __future__ import annotations

import io
import subprocess
import sys
import tarfile
import tomllib
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.version import Version

from stepd import __version__

REPO = Path(__file__).resolve().parents[2]
RELEASES = Path(__file__).with_name("releases.toml")
GIT_TIMEOUT_SECONDS = 60
PIP_TIMEOUT_SECONDS = 600


@dataclass(frozen=True, kw_only=True)
class Release:
    version: str
    commit: str


@dataclass(frozen=True, kw_only=True)
class Installed:
    """A release ready to run: `python -m stepd` with `env` runs it."""

    release: Release
    python: str
    env: dict[str, str]


def releases() -> list[Release]:
    """Every recorded release, oldest first."""
    with RELEASES.open("rb") as file:
        table = tomllib.load(file)
    found = [Release(version=r["version"], commit=r["commit"]) for r in table["release"]]
    return sorted(found, key=lambda r: Version(r.version))


def previous_release(current: str = __version__) -> Release:
    """The newest recorded release older than `current`."""
    older = [r for r in releases() if Version(r.version) < Version(current)]
    if not older:
        raise LookupError(f"no release older than {current} in {RELEASES}")
    return older[-1]


def install(release: Release, folder: Path) -> Installed:
    """Put `release`'s source in `folder` and make it runnable."""
    source = folder / f"stepd-{release.version}"
    if not (source / "pyproject.toml").exists():
        _extract(release, source)
    pins = _pins(source / "pyproject.toml")
    unmet = [pin for pin in pins if not _installed_here(pin)]
    if not unmet:
        return Installed(
            release=release,
            python=sys.executable,
            env={"PYTHONPATH": str(source / "daemon")},
        )
    venv = folder / f"venv-{release.version}"
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", str(source)],
            check=True,
            timeout=PIP_TIMEOUT_SECONDS,
        )
    return Installed(release=release, python=str(python), env={})


def _extract(release: Release, source: Path) -> None:
    try:
        archive = subprocess.run(
            ["git", "-C", str(REPO), "archive", "--format=tar", release.commit],
            check=True,
            capture_output=True,
            timeout=GIT_TIMEOUT_SECONDS,
        ).stdout
    except subprocess.CalledProcessError as exc:
        raise RuntimeError(
            f"stepd {release.version} is commit {release.commit}, which this clone lacks "
            f"(a shallow clone? `git fetch --unshallow`): {exc.stderr.decode().strip()}"
        ) from None
    source.mkdir(parents=True)
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(source, filter="data")


def _pins(pyproject: Path) -> list[Requirement]:
    with pyproject.open("rb") as file:
        project = tomllib.load(file)["project"]
    return [Requirement(text) for text in project.get("dependencies", [])]


def _installed_here(pin: Requirement) -> bool:
    try:
        version = metadata.version(pin.name)
    except metadata.PackageNotFoundError:
        return False
    return pin.specifier.contains(version, prereleases=True)
