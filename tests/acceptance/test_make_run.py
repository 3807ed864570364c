"""`make run`, the README's way to try the daemon, works for a user who is not root: its store
goes to a state folder of the user's, never to /var/lib/stepd.

As root the test takes /var/lib away (a read-only, empty /var/lib in a mount namespace of its
own), which is what a user who is not root sees of it: nothing there can be written."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import httpx

from stepd.testing import free_port

REPO = Path(__file__).resolve().parents[2]
READY_SECONDS = 30.0
STOP_SECONDS = 20.0


def test_make_run_works_for_a_normal_user(tmp_path: Path) -> None:
    """As a user who cannot write /var/lib, `make run STATE=folder` starts the example
    config's daemon with its store in that folder, and stops cleanly on SIGTERM."""
    state = tmp_path / "state"
    port = free_port()
    # the checkout (and its .venv) is the tester's: bring .venv up to date as its owner would
    subprocess.run(["make", "--no-print-directory", ".venv/.installed"], cwd=REPO, check=True)
    command = ["make", "--no-print-directory", "run", f"STATE={state}"]
    if os.geteuid() == 0:  # /var/lib as a user who is not root sees it: not writable
        script = 'mount -t tmpfs -o ro tmpfs /var/lib && exec "$@"'
        command = ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh"]
        command += ["make", "--no-print-directory", "run", f"STATE={state}"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("STEPD_")}
    env |= {"STEPD_API__LISTEN": f"127.0.0.1:{port}", "STEPD_LOG__FORMAT": "json", "HOME": "/"}
    process = subprocess.Popen(
        command,
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + READY_SECONDS
        answered = None
        while time.monotonic() < deadline and process.poll() is None:
            try:
                answered = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1.0)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        assert process.poll() is None, (process.stdout.read() if process.stdout else b"").decode()
        assert answered is not None, "the daemon did not answer"
        assert answered.json()["status"] == "ok"
        assert (state / "stepd.db").is_file()
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(STOP_SECONDS)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(STOP_SECONDS)
        if process.stdout is not None:
            process.stdout.close()
