"""Standard Webhooks v1 signing and verification."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from stepd.errors import ConfigError
from stepd.tasks.signing import secret_key, sign, verify

SPEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SPEC_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SPEC_TIMESTAMP = 1614265330
SPEC_BODY = b'{"test": 2432232314}'
SPEC_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def spec_headers(
    signature: str = SPEC_SIGNATURE, timestamp: int = SPEC_TIMESTAMP
) -> dict[str, str]:
    return {
        "webhook-id": SPEC_ID,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature,
    }


def test_sign_matches_the_spec_test_vector() -> None:
    """The official Standard Webhooks example signs to the published value."""
    assert sign(SPEC_SECRET, SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY) == SPEC_SIGNATURE


def test_a_raw_secret_is_used_as_its_utf8_bytes() -> None:
    """A secret without the whsec_ prefix is the HMAC key as UTF-8 text."""
    digest = hmac.new("klé".encode(), b"id.1.{}", hashlib.sha256).digest()
    assert sign("klé", "id", 1, b"{}") == "v1," + base64.b64encode(digest).decode()


@pytest.mark.parametrize(
    "secret",
    [
        pytest.param("whsec_not*base64", id="whsec-not-base64"),
        pytest.param("whsec_", id="whsec-empty"),
        pytest.param("", id="empty"),
    ],
)
def test_an_unusable_secret_is_a_config_error(secret: str) -> None:
    """Secrets that give no key are refused as configuration errors."""
    with pytest.raises(ConfigError):
        secret_key(secret)


def test_verify_accepts_the_spec_test_vector() -> None:
    """The published signature verifies at its own timestamp."""
    assert verify(SPEC_SECRET, spec_headers(), SPEC_BODY, now=SPEC_TIMESTAMP)


def test_verify_matches_header_names_case_insensitively() -> None:
    """Header names as an HTTP library hands them over (any case) are accepted."""
    headers = {name.title(): value for name, value in spec_headers().items()}
    assert verify(SPEC_SECRET, headers, SPEC_BODY, now=SPEC_TIMESTAMP)


def test_verify_accepts_any_matching_signature_of_several() -> None:
    """During key rotation the header holds several signatures; one match is enough."""
    header = f"v1,bm9wZQ== {SPEC_SIGNATURE}"
    assert verify(SPEC_SECRET, spec_headers(header), SPEC_BODY, now=SPEC_TIMESTAMP)


@pytest.mark.parametrize(
    ("headers", "body", "now"),
    [
        pytest.param(spec_headers(), b'{"test": 2432232315}', SPEC_TIMESTAMP, id="body-changed"),
        pytest.param(spec_headers(), SPEC_BODY, SPEC_TIMESTAMP + 301, id="too-old"),
        pytest.param(spec_headers(), SPEC_BODY, SPEC_TIMESTAMP - 301, id="too-new"),
        pytest.param(
            spec_headers(timestamp=SPEC_TIMESTAMP + 1), SPEC_BODY, SPEC_TIMESTAMP, id="ts-changed"
        ),
        pytest.param(
            spec_headers(SPEC_SIGNATURE.replace("v1,", "v2,")),
            SPEC_BODY,
            SPEC_TIMESTAMP,
            id="other-version",
        ),
        pytest.param(
            {"webhook-id": SPEC_ID, "webhook-timestamp": str(SPEC_TIMESTAMP)},
            SPEC_BODY,
            SPEC_TIMESTAMP,
            id="no-signature",
        ),
        pytest.param(
            {**spec_headers(), "webhook-timestamp": "yesterday"},
            SPEC_BODY,
            SPEC_TIMESTAMP,
            id="timestamp-not-a-number",
        ),
    ],
)
def test_verify_rejects(headers: dict[str, str], body: bytes, now: int) -> None:
    """Changed content, stale timestamps, other versions and missing headers do not verify."""
    assert not verify(SPEC_SECRET, headers, body, now=now)


def test_verify_rejects_another_secret() -> None:
    """A signature made with another key does not verify."""
    assert not verify("whsec_" + "A" * 32, spec_headers(), SPEC_BODY, now=SPEC_TIMESTAMP)
