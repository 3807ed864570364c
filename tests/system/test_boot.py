"""stepd under a real systemd: the installed unit, booted in systemd-nspawn, through its life.

The container runs the host's own /usr on a throwaway root (`--volatile=yes`), so nothing is
written to the host. `systemd/install.sh` stages the program, the unit, the config and the
signing secret in a folder (DESTDIR), and each piece is bind-mounted where the installer puts
it on a real host. The test then works the service as an operator would, with systemctl and
the stepd command line, from inside the container.

One drop-in shortens the watchdog and restart delays so that a watchdog restart takes seconds.
Needs root and systemd-nspawn (Debian's systemd-container package, which `make test` installs
as root: tests/setup.sh); skipped, saying so, for anyone else.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
INSTALL = REPO / "systemd" / "install.sh"
NETWORK_SCRIPT = REPO / "systemd" / "network.sh"
UNIT = "stepd.service"
VENV = Path("/opt/stepd/venv")
API = "http://127.0.0.1:8300"  # the shipped config's [api] listen
CLASSROOM_PORT = 8080  # the shipped config's [http] base_url
EXPOSURE_THRESHOLD = 15  # systemd-analyze security score x10: at most 1.5
INSTALL_TIMEOUT_SECONDS = 300.0
BOOT_TIMEOUT_SECONDS = 60.0
COMMAND_TIMEOUT_SECONDS = 60.0
STATE_TIMEOUT_SECONDS = 30.0  # for the service to reach a state it should reach soon
POWEROFF_TIMEOUT_SECONDS = 30.0
POLL_SECONDS = 0.2
WATCHDOG_SECONDS = 3  # the drop-in's WatchdogSec=
RESTART_SECONDS = 1  # the drop-in's RestartSec=
CONTAINER_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DROP_IN = f"""[Service]
WatchdogSec={WATCHDOG_SECONDS}s
RestartSec={RESTART_SECONDS}s
"""
SECOND_MACHINE = """
[[machines]]
name = "second"
definition = "classroom.asl.yaml"
[machines.endpoints]
StartRecording = "/second/start"
SendLivePing = "/second/ping"
StopRecording = "/second/stop"
StopAfterFailure = "/second/stop"
"""
TOMORROW = {
    "start": (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
    "end": (datetime.now(UTC) + timedelta(days=1, hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
}
NSPAWN_RUNTIME = (Path("/run/systemd/nspawn"), Path("/run/systemd/nspawn-root"))

pytestmark = pytest.mark.slow


class Container:
    """A booted systemd in systemd-nspawn, and commands run inside it."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.log = folder / "nspawn.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.pid1 = 0

    def boot(self, binds: dict[Path, str], writable: dict[Path, str]) -> None:
        preset = self.folder / "ci.preset"
        preset.write_text("disable *\n", encoding="utf-8")
        command = [
            "systemd-nspawn",
            "--directory=/",
            "--volatile=yes",
            "--private-network",
            "--register=no",
            "--keep-unit",
            "--boot",
            "--console=pipe",
            f"--bind-ro={preset}:/etc/systemd/system-preset/00-ci.preset",
            "--bind-ro=/dev/null:/etc/systemd/system/systemd-firstboot.service",
            "--bind-ro=/dev/null:/etc/systemd/system/systemd-networkd-wait-online.service",
            *(f"--bind-ro={source}:{target}" for source, target in binds.items()),
            *(f"--bind={source}:{target}" for source, target in writable.items()),
        ]
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + BOOT_TIMEOUT_SECONDS
        while not self.pid1:
            assert self.process.poll() is None, f"nspawn exited\n{self.log.read_text()}"
            assert time.monotonic() < deadline, f"no systemd in the container\n{self.log_text()}"
            found = subprocess.run(
                ["pgrep", "-P", str(self.process.pid), "-x", "systemd"],
                capture_output=True,
                text=True,
                check=False,
            )
            self.pid1 = int(found.stdout.split()[0]) if found.stdout.strip() else 0
            time.sleep(POLL_SECONDS)
        while True:
            state = self.run("systemctl", "is-system-running", "--wait", check=False).stdout
            if state.strip():
                break
            assert time.monotonic() < deadline, f"the container did not boot\n{self.log_text()}"
            time.sleep(POLL_SECONDS)

    def run(
        self, *args: str, check: bool = True, timeout: float = COMMAND_TIMEOUT_SECONDS
    ) -> subprocess.CompletedProcess[str]:
        """Run a command in the container, in its namespaces, with a clean environment."""
        result = subprocess.run(
            ["nsenter", "-t", str(self.pid1), "-a", "env", "-i", f"PATH={CONTAINER_PATH}", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"{' '.join(args)} exited {result.returncode}\n{result.stdout}\n{result.stderr}"
                f"\n{self.journal()}"
            )
        return result

    def show(self, prop: str, unit: str = UNIT) -> str:
        return self.run("systemctl", "show", "--property", prop, "--value", unit).stdout.strip()

    def wait(self, what: str, predicate: Callable[[], bool]) -> float:
        """Poll until `predicate` holds; the seconds it took."""
        started = time.monotonic()
        while not predicate():
            if time.monotonic() - started > STATE_TIMEOUT_SECONDS:
                raise AssertionError(f"timed out waiting for {what}\n{self.journal()}")
            time.sleep(POLL_SECONDS)
        return time.monotonic() - started

    def stepd(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run(str(VENV / "bin" / "stepd"), *args, "--api", API, check=check)

    def journal(self, *args: str) -> str:
        if not self.pid1:
            return self.log_text()
        result = subprocess.run(
            [
                "nsenter",
                *("-t", str(self.pid1), "-a"),
                *("journalctl", "--no-pager", "-o", "cat"),
                *(args or ("-u", UNIT, "-n", "80")),
            ],
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT_SECONDS,
            check=False,
        )
        return result.stdout

    def log_text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def poweroff(self) -> None:
        process = self.process
        if process is None or process.poll() is not None:
            return
        if self.pid1:
            self.run("systemctl", "poweroff", check=False)
        else:
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(POWEROFF_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(POWEROFF_TIMEOUT_SECONDS)


@pytest.fixture
def staged(tmp_path_factory: pytest.TempPathFactory, figures: Callable[[str], None]) -> Path:
    """What `make install` puts on a host, staged in a folder by the real installer."""
    root = tmp_path_factory.mktemp("root")
    started = time.monotonic()
    result = subprocess.run(
        ["bash", str(INSTALL)],
        env=os.environ | {"DESTDIR": str(root)},
        capture_output=True,
        text=True,
        timeout=INSTALL_TIMEOUT_SECONDS,
        check=False,
    )
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    figures(f"install.sh into DESTDIR: {time.monotonic() - started:.1f} s")
    return root


@pytest.fixture
def container(tmp_path: Path) -> Iterator[Container]:
    """A container, powered off after the test, leaving no runtime folders on the host."""
    if os.geteuid() != 0:
        pytest.skip("booting systemd in a container needs root: run `make test` as root")
    assert shutil.which("systemd-nspawn"), (
        "systemd-nspawn is missing: apt-get install systemd-container (`make test` does)"
    )
    leftovers = [path for path in NSPAWN_RUNTIME if not path.exists()]
    container = Container(tmp_path)
    yield container
    container.poweroff()
    for path in leftovers:
        _remove_empty_folders(path)


def _remove_empty_folders(top: Path) -> None:
    if not top.is_dir():
        return
    for folder, _, _ in sorted(os.walk(top), key=lambda entry: -len(entry[0])):
        try:
            Path(folder).rmdir()
        except OSError:
            return


def _instant(offset: timedelta) -> str:
    return (datetime.now(UTC) + offset).strftime("%Y-%m-%dT%H:%M:%SZ")


def _history(container: Container, machine: str, name: str) -> list[dict[str, Any]]:
    answer = container.stepd("history", machine, name, "--json").stdout
    events: list[dict[str, Any]] = json.loads(answer)["events"]
    return events


def test_the_installed_unit_through_its_life(
    container: Container, staged: Path, figures: Callable[[str], None]
) -> None:
    """Start, status, reload good and bad, watchdog restart, SIGKILL restart, stop."""
    drop_in = container.folder / "timing.conf"
    drop_in.write_text(DROP_IN, encoding="utf-8")
    secret = (staged / "etc" / "credstore" / "stepd.signing_secret").read_text().strip()
    boot_started = time.monotonic()
    container.boot(
        binds={
            staged / "opt" / "stepd": "/opt/stepd",
            staged / "etc" / "credstore": "/etc/credstore",
            staged / "etc" / "systemd" / "system" / UNIT: f"/etc/systemd/system/{UNIT}",
            drop_in: f"/etc/systemd/system/{UNIT}.d/timing.conf",
        },
        writable={staged / "etc" / "stepd": "/etc/stepd"},
    )
    figures(f"container boot: {time.monotonic() - boot_started:.1f} s")

    _start(container, figures)
    _task_calls_leave_the_sandbox_signed(container, secret)
    _reloads(container, staged / "etc" / "stepd" / "stepd.toml", figures)
    _watchdog_restart(container, figures)
    _sigkill_restart(container)
    assert secret not in container.journal("-u", UNIT)
    _stop(container, figures)
    _bad_config_is_not_restarted(container, staged / "etc" / "stepd" / "stepd.toml")


def _start(container: Container, figures: Callable[[str], None]) -> None:
    """Type=notify: `systemctl start` returns once READY=1 was sent; STATUS= shows."""
    started = time.monotonic()
    container.run("systemctl", "start", UNIT)
    figures(f"systemctl start (to READY=1): {time.monotonic() - started:.2f} s")
    assert container.show("ActiveState") == "active"
    assert container.show("WatchdogUSec") == f"{WATCHDOG_SECONDS}s"
    assert container.show("StatusText").startswith("0 running, 0 timers armed, 0 calls in flight")
    database = container.run("test", "-f", "/var/lib/private/stepd/stepd.db", check=False)
    assert database.returncode == 0, "DynamicUser= keeps the state in /var/lib/private"
    ready = [
        json.loads(line)
        for line in container.journal("-u", UNIT, "-o", "json").splitlines()
        if '"daemon.ready' in line
    ]
    assert [entry["PRIORITY"] for entry in ready] == ["6"], "journald reads the <6> prefix"
    gate = container.run(
        "systemd-analyze", "security", f"--threshold={EXPOSURE_THRESHOLD}", UNIT, check=False
    )
    assert gate.returncode == 0, gate.stdout
    figures(f"online {gate.stdout.strip().splitlines()[-1]}")


def _task_calls_leave_the_sandbox_signed(container: Container, secret: str) -> None:
    """A Task call reaches a classroom server on loopback, and its signature verifies."""
    container.run(
        "systemd-run",
        "--unit=classroom",
        f"--setenv=STEPD_CLASSROOM_SECRET={secret}",
        str(VENV / "bin" / "python"),
        *("-m", "stepd.classroom", f"--port={CLASSROOM_PORT}"),
    )
    container.wait(
        "the classroom server",
        lambda: (
            container.run(
                "bash", "-c", f"exec 3<>/dev/tcp/127.0.0.1/{CLASSROOM_PORT}", check=False
            ).returncode
            == 0
        ),
    )
    now = {"start": _instant(timedelta()), "end": _instant(timedelta(hours=1))}
    container.stepd("start", "classroom", "now", "--input", json.dumps(now))
    container.stepd("start", "classroom", "tomorrow", "--input", json.dumps(TOMORROW))

    def recorded() -> bool:
        types = [e["type"] for e in _history(container, "classroom", "now")]
        assert "LambdaFunctionFailed" not in types, container.journal()
        return "LambdaFunctionSucceeded" in types

    container.wait("StartRecording to succeed", recorded)


def _reloads(container: Container, config: Path, figures: Callable[[str], None]) -> None:
    """A bad file is refused and the old config stays; a good one is applied synchronously."""
    good = config.read_text(encoding="utf-8")
    config.write_text(good + "\n[http2]\nbase_url = 1\n", encoding="utf-8")
    assert container.run("systemctl", "reload", UNIT, check=False).returncode != 0
    assert container.show("ActiveState") == "active"
    assert "config loaded" in container.show("StatusText")
    container.run("systemctl", "kill", "--signal=SIGHUP", UNIT)
    container.wait(
        "the daemon's own rejection, at priority err",
        lambda: "config.reload_rejected" in container.journal("-u", UNIT, "-p", "err"),
    )
    assert "reload rejected" in container.show("StatusText")
    assert container.stepd("start", "second", "too-soon", check=False).returncode != 0

    config.write_text(good + SECOND_MACHINE, encoding="utf-8")
    started = time.monotonic()
    container.run("systemctl", "reload", UNIT)
    figures(f"systemctl reload (check, then apply): {time.monotonic() - started:.2f} s")
    assert "config reloaded" in container.show("StatusText")
    container.stepd("start", "second", "after-reload", "--input", json.dumps(TOMORROW))


def _watchdog_restart(container: Container, figures: Callable[[str], None]) -> None:
    """A stopped event loop misses its pings: systemd aborts the process and restarts it."""
    main_pid = container.show("MainPID")
    container.run("kill", "-STOP", main_pid)
    took = container.wait(
        "a watchdog restart",
        lambda: container.show("NRestarts") == "1" and container.show("SubState") == "running",
    )
    figures(f"SIGSTOP to running again (WatchdogSec={WATCHDOG_SECONDS}s): {took:.1f} s")
    assert "Failed with result 'watchdog'" in container.journal()
    assert container.show("MainPID") != main_pid


def _sigkill_restart(container: Container) -> None:
    """SIGKILL: Restart= brings the daemon back with every execution as it was."""
    before = _history(container, "classroom", "now")
    container.run("systemctl", "kill", "--signal=SIGKILL", "--kill-whom=main", UNIT)
    container.wait(
        "a restart after SIGKILL",
        lambda: container.show("NRestarts") == "2" and container.show("SubState") == "running",
    )
    listed = json.loads(container.stepd("list", "--json").stdout)["executions"]
    assert sorted((e["name"], e["status"]) for e in listed) == [
        ("after-reload", "RUNNING"),
        ("now", "RUNNING"),
        ("tomorrow", "RUNNING"),
    ]
    assert _history(container, "classroom", "now")[: len(before)] == before
    assert container.show("StatusText").startswith("3 running")


def _stop(container: Container, figures: Callable[[str], None]) -> None:
    """`systemctl stop`: SIGTERM, drain, exit 0."""
    started = time.monotonic()
    container.run("systemctl", "stop", UNIT)
    figures(f"systemctl stop: {time.monotonic() - started:.2f} s")
    assert container.show("Result") == "success"
    assert container.show("ExecMainStatus") == "0"
    assert container.show("ActiveState") == "inactive"


def _bad_config_is_not_restarted(container: Container, config: Path) -> None:
    """A bad config at start: exit 78, and RestartPreventExitStatus= keeps it down."""
    config.write_text('[http]\ntimeout_seconds = "soon"\n', encoding="utf-8")
    assert container.run("systemctl", "start", UNIT, check=False).returncode != 0
    time.sleep(RESTART_SECONDS * 2)
    assert container.show("ExecMainStatus") == "78"
    assert container.show("NRestarts") == "0"
    assert container.show("ActiveState") == "failed"


EVERYWHERE = "0.0.0.0/0 ::/0"
THIS_HOST = "127.0.0.0/8 ::1/128"


@pytest.fixture(scope="module")
def staged_once(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`make install` staged in a folder once, for tests that only read what it installed."""
    root = tmp_path_factory.mktemp("root")
    subprocess.run(
        ["bash", str(INSTALL)],
        env=os.environ | {"DESTDIR": str(root)},
        capture_output=True,
        timeout=INSTALL_TIMEOUT_SECONDS,
        check=True,
    )
    return root


@pytest.mark.parametrize(
    ("network", "expected"),
    [
        pytest.param("loopback", (EVERYWHERE, THIS_HOST), id="loopback"),
        pytest.param("any", ("", THIS_HOST), id="any"),
        pytest.param(
            "192.0.2.0/24 10.0.0.5",
            (EVERYWHERE, f"{THIS_HOST} 10.0.0.5/32 192.0.2.0/24"),
            id="addresses",
        ),
    ],
)
def test_the_network_chosen_at_install_is_what_systemd_enforces(
    container: Container,
    staged_once: Path,
    tmp_path: Path,
    network: str,
    expected: tuple[str, str],
) -> None:
    """`make install NETWORK=...` writes a drop-in that systemd reads as the address filter
    asked for: this host only, no filter, or this host and the given addresses."""
    drop_ins = tmp_path / "stepd.service.d"
    subprocess.run(["bash", str(NETWORK_SCRIPT), network, str(drop_ins)], check=True)
    binds = {
        staged_once / "opt" / "stepd": "/opt/stepd",
        staged_once / "etc" / "credstore": "/etc/credstore",
        staged_once / "etc" / "systemd" / "system" / UNIT: f"/etc/systemd/system/{UNIT}",
    }
    if (drop_ins / "network.conf").exists():
        binds[drop_ins / "network.conf"] = f"/etc/systemd/system/{UNIT}.d/network.conf"
    container.boot(binds=binds, writable={staged_once / "etc" / "stepd": "/etc/stepd"})
    deny, allow = container.show("IPAddressDeny"), container.show("IPAddressAllow")
    assert (set(deny.split()), set(allow.split())) == tuple(set(e.split()) for e in expected)
