"""boto3 and the AWS CLI pointed at a test daemon, with dummy credentials and no ~/.aws."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

REGION = "us-east-1"
CLI_TIMEOUT_SECONDS = 60.0


def sfn(url: str, *, read_timeout: float = 70.0) -> Any:
    """A boto3 Step Functions client for the daemon at `url` (a long read timeout, for
    GetActivityTask's long poll)."""
    return boto3.client(
        "stepfunctions",
        endpoint_url=url,
        region_name=REGION,
        aws_access_key_id="stepd",
        aws_secret_access_key="stepd",
        # StartSyncExecution and TestState go to "sync-" + the host, which 127.0.0.1 cannot be
        config=Config(
            read_timeout=read_timeout, retries={"max_attempts": 1}, inject_host_prefix=False
        ),
    )


def aws_cli(url: str, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`aws stepfunctions ARGS --endpoint-url URL --output json`, with `home` as its HOME."""
    executable = Path(sys.executable).with_name("aws")
    command = [str(executable)] if executable.exists() else [shutil.which("aws") or "aws"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "STEPD_"))}
    env.update(
        HOME=str(home),
        AWS_ACCESS_KEY_ID="stepd",
        AWS_SECRET_ACCESS_KEY="stepd",
        AWS_DEFAULT_REGION=REGION,
        AWS_CONFIG_FILE=str(home / "config"),
        AWS_SHARED_CREDENTIALS_FILE=str(home / "credentials"),
        AWS_MAX_ATTEMPTS="1",
        AWS_PAGER="",
        AWS_DISABLE_HOST_PREFIX_INJECTION="true",  # TestState goes to "sync-" + the host
    )
    return subprocess.run(
        [*command, "stepfunctions", *args, "--endpoint-url", url, "--output", "json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_SECONDS,
        check=False,
    )
