"""stepd's own operations (`Stepd.*`) from boto3: a helper to import, or to copy.

boto3 knows only AWS's operations, so it cannot call `Stepd.UpdateExecution`; this sends the
same signed request boto3 would (AWS Signature Version 4 with the client's credentials,
endpoint and region, through botocore) and raises botocore's `ClientError` on a refusal, as a
boto3 call does. It needs botocore (boto3 brings it), nothing of stepd: copy this file into a
project that does not install stepd.

    import boto3
    from stepd.boto3_update import update_execution

    sfn = boto3.client("stepfunctions", endpoint_url="http://127.0.0.1:8300",
                       region_name="us-east-1",
                       aws_access_key_id="stepd", aws_secret_access_key="stepd")
    update_execution(sfn, "arn:aws:states:us-east-1:123456789012:execution:classroom:c1",
                     {"start": "2027-01-15T10:00:00Z"}, merge=True)
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.exceptions import ClientError

TIMEOUT_SECONDS = 30.0


def stepd_call(client: Any, operation: str, body: dict[str, Any]) -> dict[str, Any]:
    """Call `Stepd.<operation>` with `body` on the endpoint of the boto3 Step Functions
    `client`, signed with its credentials; the answer as a dict."""
    url = client.meta.endpoint_url.rstrip("/") + "/"
    content = json.dumps(body).encode()
    request = AWSRequest(
        method="POST",
        url=url,
        data=content,
        headers={
            "Content-Type": "application/x-amz-json-1.0",
            "X-Amz-Target": f"Stepd.{operation}",
        },
    )
    credentials = client._request_signer._credentials  # noqa: SLF001 - boto3 offers no getter
    if credentials is not None:
        SigV4Auth(credentials, "states", client.meta.region_name).add_auth(request)
    prepared = urllib.request.Request(  # noqa: S310 - the client's own endpoint
        url, data=content, headers=dict(request.headers.items()), method="POST"
    )
    try:
        with urllib.request.urlopen(prepared, timeout=TIMEOUT_SECONDS) as answer:  # noqa: S310
            return dict(json.loads(answer.read() or b"{}"))
    except urllib.error.HTTPError as exc:
        refusal = json.loads(exc.read() or b"{}")
        code = str(refusal.get("__type", exc.code)).rsplit("#", 1)[-1]
        error = {"Code": code, "Message": str(refusal.get("message", exc.reason))}
        raise ClientError(
            {"Error": error, "ResponseMetadata": {"HTTPStatusCode": exc.code}}, operation
        ) from None


def update_execution(
    client: Any, execution_arn: str, new_input: dict[str, Any], *, merge: bool = False
) -> dict[str, Any]:
    """`stepd update`: replace (or `merge` into) a running execution's input; a Wait it is
    in moves to the new time. Returns {executionArn, updateDate, input, state, dueAt,
    previousDueAt}."""
    return stepd_call(
        client,
        "UpdateExecution",
        {"executionArn": execution_arn, "input": json.dumps(new_input), "merge": merge},
    )
