"""Standard Webhooks v1 signatures (HMAC-SHA256) on outbound task calls.

The signed content is ``"{webhook-id}.{webhook-timestamp}.{body}"`` over the exact bytes sent;
the header value is ``v1,<base64 digest>``. A receiver may be given several space-separated
signatures (key rotation) and accepts the request when any ``v1`` one matches.
Spec: standard-webhooks/standard-webhooks ``spec/standard-webhooks.md`` v1.0.0.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from typing import TYPE_CHECKING

from stepd.errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Mapping

SECRET_PREFIX = "whsec_"  # noqa: S105 - the spec's prefix, not a secret
SIGNATURE_VERSION = "v1"
DEFAULT_TOLERANCE_SECONDS = 300  # the spec's suggested window for webhook-timestamp

ID_HEADER = "webhook-id"
TIMESTAMP_HEADER = "webhook-timestamp"
SIGNATURE_HEADER = "webhook-signature"


def secret_key(secret: str) -> bytes:
    """The HMAC key of `secret`: base64-decoded after ``whsec_``, else its UTF-8 bytes.

    Raises ConfigError for an empty secret or a ``whsec_`` secret that is not base64.
    """
    if secret.startswith(SECRET_PREFIX):
        try:
            key = base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
        except binascii.Error as exc:
            raise ConfigError("signing secret: whsec_ secret is not valid base64") from exc
    else:
        key = secret.encode()
    if not key:
        raise ConfigError("signing secret: must not be empty")
    return key


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value, ``v1,<base64 HMAC-SHA256>``, for one request."""
    return _sign_with_key(secret_key(secret), msg_id, str(timestamp), body)


def verify(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: float,
    tolerance_seconds: float = DEFAULT_TOLERANCE_SECONDS,
) -> bool:
    """Whether `headers` carry a valid signature of `body` made no further than the tolerance
    from `now` (unix seconds). Header names are matched case-insensitively."""
    lowered = {name.lower(): value for name, value in headers.items()}
    msg_id = lowered.get(ID_HEADER)
    timestamp = lowered.get(TIMESTAMP_HEADER)
    signatures = lowered.get(SIGNATURE_HEADER)
    if msg_id is None or timestamp is None or signatures is None:
        return False
    try:
        sent_at = int(timestamp)
    except ValueError:
        return False
    if abs(now - sent_at) > tolerance_seconds:
        return False
    expected = _sign_with_key(secret_key(secret), msg_id, timestamp, body).encode()
    return any(
        hmac.compare_digest(expected, candidate.encode())
        for candidate in signatures.split()
        if candidate.startswith(f"{SIGNATURE_VERSION},")
    )


def _sign_with_key(key: bytes, msg_id: str, timestamp: str, body: bytes) -> str:
    content = b"%s.%s.%s" % (msg_id.encode(), timestamp.encode(), body)
    digest = hmac.new(key, content, hashlib.sha256).digest()
    return f"{SIGNATURE_VERSION},{base64.b64encode(digest).decode()}"
