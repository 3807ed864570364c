"""An activity worker, as a user writes one with boto3: `python activity_worker.py URL ARN
MODE`. It polls GetActivityTask until it gets a task and prints `taken <input>`; then with
MODE `complete` it answers SendTaskSuccess (output: {"worker": pid, "input": input}) and exits,
with MODE `hang` it sleeps until it is killed."""

from __future__ import annotations

import json
import os
import sys
import time

import boto3
from botocore.config import Config


def main(url: str, arn: str, mode: str) -> None:
    sfn = boto3.client(
        "stepfunctions",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="stepd",
        aws_secret_access_key="stepd",
        config=Config(read_timeout=70, retries={"max_attempts": 1}),
    )
    while True:
        task = sfn.get_activity_task(activityArn=arn, workerName=f"worker-{os.getpid()}")
        if task.get("taskToken"):
            break
    print("taken", task["input"], flush=True)
    if mode == "hang":
        while True:
            time.sleep(60)
    output = {"worker": os.getpid(), "input": json.loads(task["input"])}
    sfn.send_task_success(taskToken=task["taskToken"], output=json.dumps(output))
    print("done", flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:4])
