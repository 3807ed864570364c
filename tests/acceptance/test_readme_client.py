"""The README's boto3 example, run as written (only its endpoint pointed at the session
daemon) by a Python with no AWS credentials anywhere, starts a classroom execution."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
README_ENDPOINT = "http://127.0.0.1:8300"
RUN_TIMEOUT_SECONDS = 60


def readme_boto3_example() -> str:
    text = README.read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, re.DOTALL)
    (example,) = [b for b in blocks if "boto3.client(" in b and "start_execution" in b]
    return example


def test_the_readme_boto3_example_works_without_aws_credentials(
    daemon: Any, sfn: Any, tmp_path: Path
) -> None:
    """With no AWS_* variables and no ~/.aws, the example as printed starts the execution."""
    class_id = f"readme-{uuid.uuid4().hex[:8]}"
    start = datetime.now(UTC) + timedelta(days=1)
    prelude = (
        "import json\nimport boto3\n"
        f"class_id = {class_id!r}\n"
        f"start = {start.strftime('%Y-%m-%dT%H:%M:%SZ')!r}\n"
        f"end = {(start + timedelta(hours=1)).strftime('%Y-%m-%dT%H:%M:%SZ')!r}\n"
    )
    example = readme_boto3_example()
    assert README_ENDPOINT in example
    script = prelude + example.replace(README_ENDPOINT, daemon.url)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env |= {
        "HOME": str(tmp_path),
        "AWS_CONFIG_FILE": str(tmp_path / "no-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_SECONDS,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    described = sfn.describe_execution(
        executionArn=f"arn:aws:states:us-east-1:123456789012:execution:classroom:{class_id}"
    )
    assert described["status"] == "RUNNING"
    assert json.loads(described["input"])["start"] == start.strftime("%Y-%m-%dT%H:%M:%SZ")
