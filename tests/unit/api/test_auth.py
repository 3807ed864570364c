"""API access: SigV4 verification against botocore's signer, key files, listen rules, config."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from stepd.access import ApiAccess, KeyPair, check_listen, is_loopback, parse_key_pairs
from stepd.api.auth import (
    MAX_CLOCK_SKEW_SECONDS,
    Authenticator,
    Request,
    canonical_request,
    check_local_origin,
    sign,
)
from stepd.client import Client
from stepd.config import api_access, client_key, load_settings
from stepd.errors import (
    AccessDeniedException,
    AuthError,
    ConfigError,
    IncompleteSignatureException,
    InvalidSignatureException,
    MissingAuthenticationTokenException,
    UnrecognizedClientException,
)

REGION = "us-east-1"
KEY = KeyPair(
    access_key_id="AKIDSTEPDTEST0001", secret_access_key="s3cr3t/Key+ForTests0000000000000000000"
)
OTHER = KeyPair(
    access_key_id="AKIDSTEPDTEST0002", secret_access_key="another-secret-of-enough-length"
)
METRICS_TOKEN = "metrics-token-for-the-tests-0123456789"
ENDPOINT = "http://127.0.0.1:8300/"
FIXED_DATE = "20270115T080000Z"
FIXED_NOW = 1_800_000_000.0  # 2027-01-15T08:00:00Z
JSON_HEADERS = {
    "Content-Type": "application/x-amz-json-1.0",
    "X-Amz-Target": "AWSStepFunctions.ListStateMachines",
}


def authenticator(
    *keys: KeyPair, clock: Callable[[], float] = time.time, token: str | None = None
) -> Authenticator:
    return Authenticator(
        ApiAccess(keys=keys or (KEY,), metrics_token=token), region=REGION, clock=clock
    )


def botocore_signed(
    method: str = "POST",
    url: str = ENDPOINT,
    headers: dict[str, str] | None = None,
    body: bytes = b"{}",
    *,
    key: KeyPair = KEY,
    region: str = REGION,
    service: str = "states",
    token: str | None = None,
) -> Request:
    """A request as botocore signs it and an HTTP client sends it."""
    aws = AWSRequest(method=method, url=url, headers=dict(headers or JSON_HEADERS), data=body)
    credentials = Credentials(key.access_key_id, key.secret_access_key, token)
    SigV4Auth(credentials, service, region).add_auth(aws)
    prepared = aws.prepare()
    split = urlsplit(prepared.url)
    sent = [*prepared.headers.items(), ("Host", split.netloc)]
    return Request(
        method=method, path=split.path or "/", query=split.query, headers=sent, body=body
    )


def replace_header(request: Request, name: str, value: str) -> Request:
    headers = [(n, v) for n, v in request.headers if n.lower() != name.lower()]
    return Request(
        method=request.method,
        path=request.path,
        query=request.query,
        headers=[*headers, (name, value)],
        body=request.body,
    )


def without_header(request: Request, name: str) -> Request:
    headers = [(n, v) for n, v in request.headers if n.lower() != name.lower()]
    return Request(
        method=request.method,
        path=request.path,
        query=request.query,
        headers=headers,
        body=request.body,
    )


def stepd_signed(
    *, key: KeyPair = KEY, now: float, body: bytes = b"{}", region: str = REGION
) -> Request:
    headers = {"Host": "127.0.0.1:8300", **JSON_HEADERS}
    added = sign(
        key=key,
        method="POST",
        path="/",
        query="",
        headers=headers,
        body=body,
        region=region,
        now=now,
    )
    return Request(
        method="POST", path="/", query="", headers=[*headers.items(), *added.items()], body=body
    )


# -- botocore signs, stepd verifies ---------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "url", "headers", "body"),
    [
        pytest.param("POST", ENDPOINT, JSON_HEADERS, b'{"maxResults": 10}', id="json-1.0-call"),
        pytest.param("GET", "http://127.0.0.1:8300/metrics", {}, b"", id="get-metrics"),
        pytest.param(
            "POST",
            "http://stepd.example:8300/classes/start?name=class%2042&tag=a~b&empty=",
            {"Content-Type": "application/json"},
            b'{"start": "2027-01-15T08:00:00Z"}',
            id="route-with-query",
        ),
        pytest.param(
            "POST",
            "http://127.0.0.1:8300/rooms/blue%20room/./start/../start",
            {"Content-Type": "application/json"},
            b"{}",
            id="encoded-path-with-dot-segments",
        ),
        pytest.param(
            "POST",
            ENDPOINT,
            {**JSON_HEADERS, "X-Custom": "  spaced    out  value "},
            '{"name": "Raum 1.01 läuft"}'.encode(),
            id="spaces-in-a-header-and-utf8-body",
        ),
    ],
)
def test_requests_signed_by_botocore_verify(
    method: str, url: str, headers: dict[str, str], body: bytes
) -> None:
    """Whatever botocore signs with a configured key verifies, and names that key."""
    request = botocore_signed(method, url, headers, body)

    assert authenticator().verify(request) == KEY.access_key_id


def test_a_session_token_is_accepted_and_ignored() -> None:
    """X-Amz-Security-Token (temporary credentials in AWS) does not stand in the way."""
    request = botocore_signed(token="FwoGZXIvYXdzEXAMPLETOKEN")

    assert request.header("X-Amz-Security-Token") is not None
    assert authenticator().verify(request) == KEY.access_key_id


def test_any_configured_key_verifies() -> None:
    """With several key pairs (rotation), each one signs acceptably."""
    auth = authenticator(KEY, OTHER)

    assert auth.verify(botocore_signed(key=OTHER)) == OTHER.access_key_id
    assert auth.verify(botocore_signed(key=KEY)) == KEY.access_key_id


def test_execute_api_scope_is_accepted() -> None:
    """A request signed for API Gateway (execute-api), as `events.http` callers sign, verifies."""
    request = botocore_signed(service="execute-api")

    assert authenticator().verify(request) == KEY.access_key_id


# -- stepd signs as botocore does ------------------------------------------------------------


def test_canonical_request_matches_botocore() -> None:
    """The canonical request of a signed path, query and headers is byte for byte botocore's."""
    url = "http://127.0.0.1:8300/rooms/blue%20room/start?b=2&a=1&a=0"
    aws = AWSRequest(method="POST", url=url, headers={**JSON_HEADERS, "X-Amz-Date": FIXED_DATE})
    aws.data = b'{"x": 1}'
    aws.context["timestamp"] = FIXED_DATE
    signer = SigV4Auth(Credentials(KEY.access_key_id, KEY.secret_access_key), "states", REGION)
    expected = signer.canonical_request(aws)
    names = sorted(["content-type", "x-amz-target", "x-amz-date", "host"])

    actual = canonical_request(
        method="POST",
        path="/rooms/blue%20room/start",
        query="b=2&a=1&a=0",
        headers=[*aws.headers.items(), ("Host", "127.0.0.1:8300")],
        signed_headers=names,
        payload_hash=signer.payload(aws),
    )

    assert expected == actual


def test_sign_gives_botocores_signature() -> None:
    """`sign` at a fixed instant produces the very Authorization header botocore computes."""
    body = b'{"stateMachineArn": "classroom"}'
    aws = AWSRequest(
        method="POST",
        url=ENDPOINT,
        headers={**JSON_HEADERS, "X-Amz-Date": FIXED_DATE},
        data=body,
    )
    aws.context["timestamp"] = FIXED_DATE
    signer = SigV4Auth(Credentials(KEY.access_key_id, KEY.secret_access_key), "states", REGION)
    botocore_signature = signer.signature(
        signer.string_to_sign(aws, signer.canonical_request(aws)), aws
    )

    added = sign(
        key=KEY,
        method="POST",
        path="/",
        query="",
        headers={"Host": "127.0.0.1:8300", **JSON_HEADERS},
        body=body,
        region=REGION,
        now=FIXED_NOW,
    )

    assert added["X-Amz-Date"] == FIXED_DATE
    assert added["Authorization"] == (
        f"AWS4-HMAC-SHA256 Credential={KEY.access_key_id}/20270115/{REGION}/states/aws4_request, "
        f"SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature={botocore_signature}"
    )


def test_the_client_signs_what_the_server_verifies() -> None:
    """stepd's own client, given a key, sends requests the authenticator accepts."""
    seen: list[str] = []
    auth = authenticator()

    def handler(request: httpx.Request) -> httpx.Response:
        path, _, query = request.url.raw_path.decode().partition("?")
        seen.append(
            auth.verify(
                Request(
                    method=request.method,
                    path=path,
                    query=query,
                    headers=list(request.headers.multi_items()),
                    body=request.content,
                )
            )
        )
        return httpx.Response(200, json={"stateMachines": []})

    client = Client(ENDPOINT, key=KEY, region=REGION, transport=httpx.MockTransport(handler))
    try:
        assert client.call("ListStateMachines", {}) == {"stateMachines": []}
    finally:
        client.close()

    assert seen == [KEY.access_key_id]


# -- refusals --------------------------------------------------------------------------------


def refusal(auth: Authenticator, request: Request) -> AuthError:
    with pytest.raises(AuthError) as caught:
        auth.verify(request)
    return caught.value


def test_an_unsigned_request_is_missing_its_token() -> None:
    """No Authorization header: MissingAuthenticationTokenException, HTTP 403."""
    request = without_header(botocore_signed(), "Authorization")

    error = refusal(authenticator(), request)

    assert isinstance(error, MissingAuthenticationTokenException)
    assert (error.status, error.message) == (403, "Request is missing Authentication Token")


def test_a_wrong_secret_is_an_invalid_signature() -> None:
    """A known key id signed with another secret: InvalidSignatureException, HTTP 400."""
    forged = KeyPair(
        access_key_id=KEY.access_key_id, secret_access_key="not-the-right-secret-at-all"
    )

    error = refusal(authenticator(), botocore_signed(key=forged))

    assert isinstance(error, InvalidSignatureException)
    assert error.status == 400
    assert error.message.startswith("The request signature we calculated does not match")


def test_an_unknown_key_is_unrecognized() -> None:
    """A key id that is not configured: UnrecognizedClientException, HTTP 400."""
    error = refusal(authenticator(KEY), botocore_signed(key=OTHER))

    assert isinstance(error, UnrecognizedClientException)
    assert (error.status, error.message) == (
        400,
        "The security token included in the request is invalid.",
    )


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        pytest.param(
            lambda r: Request(
                method=r.method, path=r.path, query=r.query, headers=r.headers, body=b'{"a": 2}'
            ),
            InvalidSignatureException,
            id="body-changed",
        ),
        pytest.param(
            lambda r: replace_header(r, "X-Amz-Target", "AWSStepFunctions.StopExecution"),
            InvalidSignatureException,
            id="operation-changed",
        ),
        pytest.param(
            lambda r: Request(
                method="PUT", path=r.path, query=r.query, headers=r.headers, body=r.body
            ),
            InvalidSignatureException,
            id="method-changed",
        ),
        pytest.param(
            lambda r: replace_header(r, "Host", "other.example:8300"),
            InvalidSignatureException,
            id="host-changed",
        ),
        pytest.param(
            lambda r: without_header(r, "X-Amz-Date"),
            IncompleteSignatureException,
            id="no-x-amz-date",
        ),
        pytest.param(
            lambda r: replace_header(r, "X-Amz-Date", "2027-01-15T08:00:00Z"),
            IncompleteSignatureException,
            id="x-amz-date-malformed",
        ),
        pytest.param(
            lambda r: replace_header(r, "Authorization", "Bearer abc"),
            IncompleteSignatureException,
            id="not-sigv4",
        ),
        pytest.param(
            lambda r: replace_header(
                r, "Authorization", "AWS4-HMAC-SHA256 Credential=AKID/20270115/us-east-1/states"
            ),
            IncompleteSignatureException,
            id="parts-missing",
        ),
        pytest.param(
            lambda r: replace_header(
                r,
                "Authorization",
                r.header("Authorization").replace("x-amz-target", "x-amz-user-agent"),  # type: ignore[union-attr]
            ),
            IncompleteSignatureException,
            id="operation-not-signed",
        ),
    ],
)
def test_tampered_or_malformed_requests_are_refused(
    mutate: Callable[[Request], Request], expected: type[AuthError]
) -> None:
    """Changing what was signed, or sending a malformed signature, is refused as AWS does."""
    request = mutate(botocore_signed(body=b'{"a": 1}'))

    assert isinstance(refusal(authenticator(), request), expected)


@pytest.mark.parametrize(
    ("region", "service", "message"),
    [
        pytest.param("eu-west-1", "states", "scoped to a valid region", id="other-region"),
        pytest.param(REGION, "dynamodb", "scoped to correct service", id="other-service"),
    ],
)
def test_a_credential_scoped_elsewhere_is_refused(region: str, service: str, message: str) -> None:
    """A signature for another region or service is an InvalidSignatureException saying which."""
    error = refusal(authenticator(), botocore_signed(region=region, service=service))

    assert isinstance(error, InvalidSignatureException)
    assert message in error.message


def test_a_stale_signature_has_expired() -> None:
    """Signed more than 15 minutes ago: InvalidSignatureException with AWS's wording."""
    request = stepd_signed(now=FIXED_NOW)
    later = authenticator(clock=lambda: FIXED_NOW + MAX_CLOCK_SKEW_SECONDS + 1)

    error = refusal(later, request)

    assert isinstance(error, InvalidSignatureException)
    assert error.message == (
        "Signature expired: 20270115T080000Z is now earlier than 20270115T080001Z "
        "(20270115T081501Z - 15 min.)"
    )


def test_a_signature_from_the_future_is_not_yet_current() -> None:
    """Signed more than 15 minutes ahead of our clock: refused as not yet current."""
    request = stepd_signed(now=FIXED_NOW)
    earlier = authenticator(clock=lambda: FIXED_NOW - MAX_CLOCK_SKEW_SECONDS - 1)

    error = refusal(earlier, request)

    assert isinstance(error, InvalidSignatureException)
    assert error.message.startswith("Signature not yet current: 20270115T080000Z")


@pytest.mark.parametrize("skew", [-MAX_CLOCK_SKEW_SECONDS, 0, MAX_CLOCK_SKEW_SECONDS])
def test_clock_skew_within_the_limit_is_accepted(skew: float) -> None:
    """Up to 15 minutes either way between the client's clock and ours is fine."""
    request = stepd_signed(now=FIXED_NOW)

    assert authenticator(clock=lambda: FIXED_NOW + skew).verify(request) == KEY.access_key_id


# -- the metrics token ------------------------------------------------------------------------


def test_the_metrics_token_is_accepted_as_a_bearer() -> None:
    """`Authorization: Bearer <metrics token>` passes the metrics check."""
    assert authenticator(token=METRICS_TOKEN).verify_metrics_token(f"Bearer {METRICS_TOKEN}")


def test_a_wrong_metrics_token_is_unrecognized() -> None:
    """Another bearer token is refused, not passed on to the SigV4 check."""
    with pytest.raises(UnrecognizedClientException):
        authenticator(token=METRICS_TOKEN).verify_metrics_token("Bearer guess")


@pytest.mark.parametrize(
    ("token", "authorization"),
    [
        pytest.param(None, f"Bearer {METRICS_TOKEN}", id="no-token-configured"),
        pytest.param(METRICS_TOKEN, None, id="no-header"),
        pytest.param(METRICS_TOKEN, "AWS4-HMAC-SHA256 Credential=...", id="sigv4-header"),
    ],
)
def test_other_requests_leave_the_metrics_token_aside(
    token: str | None, authorization: str | None
) -> None:
    """Without a token configured or a bearer header, the request goes to the SigV4 check."""
    assert not authenticator(token=token).verify_metrics_token(authorization)


# -- where the API may listen -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("listen", "loopback"),
    [
        ("127.0.0.1:8300", True),
        ("127.0.0.53:8300", True),
        ("localhost:8300", True),
        ("[::1]:8300", True),
        ("unix:/run/stepd/api.sock", True),
        ("0.0.0.0:8300", False),
        ("[::]:8300", False),
        ("10.0.0.5:8300", False),
        ("stepd.example:8300", False),
    ],
)
def test_is_loopback(listen: str, loopback: bool) -> None:
    """Loopback addresses, localhost and unix sockets are local; anything else is not."""
    assert is_loopback(listen) is loopback


def test_a_public_listen_without_keys_is_refused() -> None:
    """Listening beyond loopback without key pairs is a config error naming the fix."""
    with pytest.raises(ConfigError) as caught:
        check_listen("0.0.0.0:8300", ApiAccess())

    assert "api_credentials" in caught.value.message
    assert "credentials_file" in caught.value.message


def test_a_public_listen_with_keys_is_allowed() -> None:
    """With a key pair, any listen address is acceptable."""
    check_listen("0.0.0.0:8300", ApiAccess(keys=(KEY,)))


@pytest.mark.parametrize(
    ("headers", "refused"),
    [
        pytest.param({"Host": "127.0.0.1:8300"}, False, id="ipv4-loopback"),
        pytest.param({"Host": "localhost:8300"}, False, id="localhost"),
        pytest.param({"Host": "[::1]:8300"}, False, id="ipv6-loopback"),
        pytest.param({"Host": "attacker.example:8300"}, True, id="rebound-name"),
        pytest.param({"Host": "192.168.1.2:8300"}, True, id="lan-address"),
        pytest.param({}, True, id="no-host"),
        pytest.param(
            {"Host": "127.0.0.1:8300", "Origin": "http://attacker.example"}, True, id="web-page"
        ),
    ],
)
def test_an_open_loopback_api_answers_local_names_only(
    headers: dict[str, str], refused: bool
) -> None:
    """Without authentication, another Host (DNS rebinding) or an Origin is refused."""
    request = Request(method="POST", path="/", query="", headers=list(headers.items()), body=b"")

    if refused:
        with pytest.raises(AccessDeniedException):
            check_local_origin(request)
    else:
        check_local_origin(request)


# -- key files ------------------------------------------------------------------------------


def test_key_pairs_are_read_from_lines() -> None:
    """One ACCESS_KEY_ID:SECRET_ACCESS_KEY per line; comments and blank lines are skipped."""
    text = f"""# rotated 2027-01
{KEY.access_key_id}:{KEY.secret_access_key}

  {OTHER.access_key_id} : {OTHER.secret_access_key}
"""
    assert parse_key_pairs(text, "keys") == (KEY, OTHER)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("", "no ACCESS_KEY_ID:SECRET_ACCESS_KEY line", id="empty"),
        pytest.param("# only a comment\n", "no ACCESS_KEY_ID:SECRET_ACCESS_KEY line", id="comment"),
        pytest.param("AKID only-a-secret-value-x", "line 1: expected", id="no-colon"),
        pytest.param("AKID:short-secret", "line 1: the secret access key", id="short"),
        pytest.param("AK/ID:long-enough-secret-value", "line 1: an access key id", id="bad-id"),
        pytest.param(
            "AKID:long-enough-secret-value\nAKID:another-long-secret-value",
            "line 2: the access key id AKID appears twice",
            id="duplicate",
        ),
    ],
)
def test_a_malformed_key_file_is_refused_without_its_content(text: str, message: str) -> None:
    """Each mistake names its line; no secret from the file appears in the message."""
    with pytest.raises(ConfigError) as caught:
        parse_key_pairs(text, "keys")

    assert message in caught.value.message
    for secret in ("only-a-secret-value-x", "short-secret", "long-enough-secret-value"):
        assert secret not in caught.value.message


def test_reprs_hide_secrets() -> None:
    """A key pair or an access object printed or logged by accident shows no secret."""
    access = ApiAccess(keys=(KEY,), metrics_token=METRICS_TOKEN)

    for text in (repr(KEY), repr(access), str(access)):
        assert KEY.secret_access_key not in text
        assert METRICS_TOKEN not in text
    assert KEY.access_key_id in repr(KEY)


# -- configuration --------------------------------------------------------------------------


def write_config(folder: Path, extra: str = "", *, listen: str = "127.0.0.1:8300") -> Path:
    config = folder / "stepd.toml"
    config.write_text(f'[api]\nlisten = "{listen}"\n{extra}', encoding="utf-8")
    return config


@pytest.mark.parametrize(
    ("text", "named"),
    [
        pytest.param(
            '[http]\nsigning_secret = "whsec_c2VjcmV0LXZhbHVlLXZlcnktc2VjcmV0"\n',
            "signing_secret_file",
            id="signing-secret",
        ),
        pytest.param(
            '[api]\nsecret_access_key = "whsec_c2VjcmV0LXZhbHVlLXZlcnktc2VjcmV0"\n',
            "credentials_file",
            id="secret-access-key",
        ),
        pytest.param(
            'api_token = "whsec_c2VjcmV0LXZhbHVlLXZlcnktc2VjcmV0"\n',
            "credentials_file",
            id="top-level-token",
        ),
    ],
)
def test_a_secret_in_the_config_text_is_refused(tmp_path: Path, text: str, named: str) -> None:
    """An inline secret is refused, naming where it belongs, without repeating its value."""
    config = tmp_path / "stepd.toml"
    config.write_text(text, encoding="utf-8")

    with pytest.raises(ConfigError) as caught:
        load_settings(config)

    assert "never read from the config file" in caught.value.message
    assert named in caught.value.message
    assert "c2VjcmV0LXZhbHVlLXZlcnktc2VjcmV0" not in caught.value.message


def test_a_secret_in_the_environment_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """STEPD_HTTP__SIGNING_SECRET is refused like the same key in the file."""
    monkeypatch.setenv("STEPD_HTTP__SIGNING_SECRET", "whsec_c2VjcmV0LXZhbHVlLXZlcnktc2VjcmV0")

    with pytest.raises(ConfigError) as caught:
        load_settings(write_config(tmp_path))

    assert "signing_secret_file" in caught.value.message
    assert "c2VjcmV0LXZhbHVlLXZlcnktc2VjcmV0" not in caught.value.message


def test_keys_come_from_the_file_named_in_the_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`[api] credentials_file` (relative to the config) and `metrics_token_file` are read."""
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    (tmp_path / "api.keys").write_text(f"{KEY.access_key_id}:{KEY.secret_access_key}\n")
    (tmp_path / "metrics.token").write_text(f"{METRICS_TOKEN}\n")
    extra = 'credentials_file = "api.keys"\nmetrics_token_file = "metrics.token"\n'

    access = api_access(load_settings(write_config(tmp_path, extra, listen="0.0.0.0:8300")))

    assert access == ApiAccess(keys=(KEY,), metrics_token=METRICS_TOKEN)


def test_systemd_credentials_win_over_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """$CREDENTIALS_DIRECTORY/api_credentials and /metrics_token take precedence."""
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / "api_credentials").write_text(f"{OTHER.access_key_id}:{OTHER.secret_access_key}")
    (credentials / "metrics_token").write_text("from-systemd-credentials")
    (tmp_path / "api.keys").write_text(f"{KEY.access_key_id}:{KEY.secret_access_key}\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(credentials))

    access = api_access(load_settings(write_config(tmp_path, 'credentials_file = "api.keys"\n')))

    assert access == ApiAccess(keys=(OTHER,), metrics_token="from-systemd-credentials")


def test_no_keys_on_a_public_address_is_a_config_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`api_access` refuses a non-loopback listen when no key pair is configured anywhere."""
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)

    with pytest.raises(ConfigError, match="needs authentication"):
        api_access(load_settings(write_config(tmp_path, listen="0.0.0.0:8300")))


def test_a_missing_key_file_is_a_config_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A credentials_file that cannot be read stops the start with its path."""
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    config = write_config(tmp_path, 'credentials_file = "missing.keys"\n')

    with pytest.raises(ConfigError, match=r"missing\.keys"):
        api_access(load_settings(config))


def test_the_cli_prefers_the_aws_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """$AWS_ACCESS_KEY_ID/$AWS_SECRET_ACCESS_KEY win; else the daemon's first key pair."""
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    (tmp_path / "api.keys").write_text(
        f"{KEY.access_key_id}:{KEY.secret_access_key}\n{OTHER.access_key_id}:{OTHER.secret_access_key}\n"
    )
    settings = load_settings(write_config(tmp_path, 'credentials_file = "api.keys"\n'))
    monkeypatch.delenv("AWS_ACCESS_KEY_ID", raising=False)
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY", raising=False)

    assert client_key(settings) == KEY
    assert client_key(None) is None
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", OTHER.access_key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", OTHER.secret_access_key)
    assert client_key(settings) == OTHER
    assert client_key(None) == OTHER
