"""Who may use the control API: AWS Signature Version 4, exactly as the AWS SDKs and CLI sign.

A client configured with an access key id and secret access key (boto3, aws-sdk, the AWS CLI,
`stepd`'s own client) sends every request with

    X-Amz-Date: 20270115T080000Z
    Authorization: AWS4-HMAC-SHA256 Credential=AKID/20270115/<region>/states/aws4_request,
                   SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature=<hex>

and the server recomputes the signature over the method, path, query, the signed headers and a
SHA-256 of the body, with the secret it holds for that key id. `X-Amz-Security-Token` is
accepted and ignored (there are no temporary credentials here). Refusals have AWS's shapes:

    MissingAuthenticationTokenException  403  no Authorization header
    IncompleteSignatureException         400  not SigV4, or a part of it is missing or malformed
    UnrecognizedClientException          400  an access key id (or metrics token) not configured
    InvalidSignatureException            400  the signature does not match; the credential scope
                                              names another region or service; the date is more
                                              than MAX_CLOCK_SKEW_SECONDS away from ours
    AccessDeniedException                403  an unauthenticated API on loopback was reached
                                              through another host name, or from a web page

The canonical-request code here is the one `stepd.client` signs with. What requests are checked
against (`ApiAccess`, `KeyPair`) is in `stepd.access`; the refusals are in `stepd.errors`.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote, unquote

from stepd.access import ApiAccess, KeyPair, is_local_host
from stepd.api.sessions import cross_site
from stepd.errors import (
    AccessDeniedException,
    IncompleteSignatureException,
    InvalidSignatureException,
    MissingAuthenticationTokenException,
    UnrecognizedClientException,
)

ALGORITHM = "AWS4-HMAC-SHA256"
TERMINATOR = "aws4_request"
SERVICE = "states"  # the signing name of AWS Step Functions
SERVICES = frozenset({SERVICE, "execute-api"})  # execute-api: API Gateway's, for `events.http`
AMZ_DATE_FORMAT = "%Y%m%dT%H%M%SZ"
MAX_CLOCK_SKEW_SECONDS = 15 * 60  # AWS's limit, either way
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
BEARER = "Bearer "
DATE_HEADER = "x-amz-date"
TARGET_HEADER = "x-amz-target"
REQUIRED_SIGNED_HEADERS = ("host", DATE_HEADER)
_NO_DIGEST = bytes(hashlib.sha256().digest_size)  # what an unknown key id's secret is compared to


# -- Signature Version 4 ------------------------------------------------------------------


def canonical_path(raw_path: str) -> str:
    """CanonicalURI of a path as sent (already percent-encoded).

    Dot segments and empty segments are removed, then the path is URI-encoded once more, as
    AWS does for every service but S3.
    """
    segments: list[str] = []
    for segment in raw_path.split("/"):
        if segment in {"", "."}:
            continue
        if segment == "..":
            if segments:
                segments.pop()
            continue
        segments.append(segment)
    path = "/" + "/".join(segments)
    if segments and raw_path.endswith("/"):
        path += "/"
    return quote(path, safe="/~")


def _uri_encode(text: str) -> str:
    return quote(text, safe="-_.~")


def canonical_query(raw_query: str) -> str:
    """CanonicalQueryString: each name and value decoded, encoded the AWS way, then sorted."""
    pairs = []
    for pair in raw_query.split("&") if raw_query else ():
        name, _, value = pair.partition("=")
        pairs.append((_uri_encode(unquote(name)), _uri_encode(unquote(value))))
    return "&".join(f"{name}={value}" for name, value in sorted(pairs))


def canonical_request(
    *,
    method: str,
    path: str,
    query: str,
    headers: Iterable[tuple[str, str]],
    signed_headers: Sequence[str],
    payload_hash: str,
) -> str:
    """The CanonicalRequest: `headers` are (name, value) pairs as sent, repeated names allowed."""
    values: dict[str, list[str]] = {}
    for name, value in headers:
        values.setdefault(name.lower(), []).append(" ".join(value.split()))
    header_lines = "".join(f"{name}:{','.join(values.get(name, []))}\n" for name in signed_headers)
    return "\n".join(
        (
            method.upper(),
            canonical_path(path),
            canonical_query(query),
            header_lines,
            ";".join(signed_headers),
            payload_hash,
        )
    )


def string_to_sign(amz_date: str, scope: str, request: str) -> str:
    digest = hashlib.sha256(request.encode()).hexdigest()
    return f"{ALGORITHM}\n{amz_date}\n{scope}\n{digest}"


def signature(secret: str, scope: str, text: str) -> str:
    """HMAC-SHA256 of `text` under the key derived from `secret` and `scope`
    (date/region/service/aws4_request), in hex."""
    key = f"AWS4{secret}".encode()
    for part in scope.split("/"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()


def sign(
    *,
    key: KeyPair,
    method: str,
    path: str,
    query: str,
    headers: Mapping[str, str],
    body: bytes,
    region: str,
    now: float,
    service: str = SERVICE,
) -> dict[str, str]:
    """The `X-Amz-Date` and `Authorization` headers that sign a request.

    Every header in `headers` is signed; it must include `Host`.
    """
    amz_date = datetime.fromtimestamp(now, UTC).strftime(AMZ_DATE_FORMAT)
    scope = f"{amz_date[:8]}/{region}/{service}/{TERMINATOR}"
    signed = {name.lower(): value for name, value in headers.items()}
    signed[DATE_HEADER] = amz_date
    names = sorted(signed)
    request = canonical_request(
        method=method,
        path=path,
        query=query,
        headers=signed.items(),
        signed_headers=names,
        payload_hash=hashlib.sha256(body).hexdigest(),
    )
    proof = signature(key.secret_access_key, scope, string_to_sign(amz_date, scope, request))
    authorization = (
        f"{ALGORITHM} Credential={key.access_key_id}/{scope}, "
        f"SignedHeaders={';'.join(names)}, Signature={proof}"
    )
    return {"X-Amz-Date": amz_date, "Authorization": authorization}


@dataclass(frozen=True, kw_only=True)
class Request:
    """What the verifier reads of an HTTP request."""

    method: str
    path: str  # as sent: percent-encoded, without the query
    query: str  # as sent, without the `?`
    headers: Sequence[tuple[str, str]]  # as sent, repeated names allowed
    body: bytes

    def header(self, name: str) -> str | None:
        name = name.lower()
        return next((v for n, v in self.headers if n.lower() == name), None)


@dataclass(frozen=True, kw_only=True)
class _Authorization:
    key_id: str
    scope: str
    date: str
    region: str
    service: str
    terminator: str
    signed_headers: tuple[str, ...]
    signature: str


def _parse_authorization(value: str) -> _Authorization:
    algorithm, _, rest = value.strip().partition(" ")
    if algorithm != ALGORITHM:
        raise IncompleteSignatureException(
            f"Authorization header must use {ALGORITHM} (AWS Signature Version 4)"
        )
    fields: dict[str, str] = {}
    for part in rest.split(","):
        name, sep, content = part.strip().partition("=")
        if sep:
            fields[name] = content
    missing = [f for f in ("Credential", "SignedHeaders", "Signature") if not fields.get(f)]
    if missing:
        raise IncompleteSignatureException(
            " ".join(f"Authorization header requires '{f}' parameter." for f in missing)
        )
    credential = fields["Credential"].split("/")
    if len(credential) != 5:  # key id, date, region, service, terminator
        raise IncompleteSignatureException(
            "Credential must have exactly 5 slash-delimited elements, e.g. "
            f"keyid/date/region/service/term, got '{fields['Credential'][:200]}'"
        )
    key_id, date, region, service, terminator = credential
    return _Authorization(
        key_id=key_id,
        scope="/".join(credential[1:]),
        date=date,
        region=region,
        service=service,
        terminator=terminator,
        signed_headers=tuple(fields["SignedHeaders"].split(";")),
        signature=fields["Signature"],
    )


class Authenticator:
    """Checks requests against `access`; the one place that holds the secrets at run time."""

    def __init__(
        self, access: ApiAccess, *, region: str, clock: Callable[[], float] = time.time
    ) -> None:
        self._secrets = {k.access_key_id: k.secret_access_key for k in access.keys}
        self._metrics_token = access.metrics_token
        self._region = region
        self._clock = clock

    def verify(self, request: Request) -> str:
        """The access key id that signed `request`. Raises an AuthError subclass otherwise."""
        header = request.header("Authorization")
        if header is None:
            raise MissingAuthenticationTokenException
        auth = _parse_authorization(header)
        amz_date = (request.header(DATE_HEADER) or "").strip()
        if not amz_date:
            raise IncompleteSignatureException(
                "Authorization header requires existence of a 'X-Amz-Date' header."
            )
        self._check_date(amz_date, auth)
        self._check_scope(auth, request)
        secret = self._secrets.get(auth.key_id)
        if secret is None:
            raise UnrecognizedClientException
        canonical = canonical_request(
            method=request.method,
            path=request.path,
            query=request.query,
            headers=request.headers,
            signed_headers=auth.signed_headers,
            payload_hash=hashlib.sha256(request.body).hexdigest(),
        )
        expected = signature(secret, auth.scope, string_to_sign(amz_date, auth.scope, canonical))
        if not hmac.compare_digest(expected, auth.signature):
            raise InvalidSignatureException
        return auth.key_id

    def _check_date(self, amz_date: str, auth: _Authorization) -> None:
        try:
            signed_at = datetime.strptime(amz_date, AMZ_DATE_FORMAT).replace(tzinfo=UTC)
        except ValueError:
            raise IncompleteSignatureException(
                f"X-Amz-Date must have the form YYYYMMDD'T'HHMMSS'Z', got '{amz_date[:32]}'"
            ) from None
        now = datetime.fromtimestamp(self._clock(), UTC)
        skew = (now - signed_at).total_seconds()
        minutes = MAX_CLOCK_SKEW_SECONDS // 60
        if skew > MAX_CLOCK_SKEW_SECONDS:
            earliest = now.timestamp() - MAX_CLOCK_SKEW_SECONDS
            raise InvalidSignatureException(
                f"Signature expired: {amz_date} is now earlier than {_stamp(earliest)} "
                f"({_stamp(now.timestamp())} - {minutes} min.)"
            )
        if -skew > MAX_CLOCK_SKEW_SECONDS:
            latest = now.timestamp() + MAX_CLOCK_SKEW_SECONDS
            raise InvalidSignatureException(
                f"Signature not yet current: {amz_date} is still later than {_stamp(latest)} "
                f"({_stamp(now.timestamp())} + {minutes} min.)"
            )
        if auth.date != amz_date[:8]:
            raise InvalidSignatureException(
                "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date "
                f"from HTTP: '{auth.date[:16]}' != '{amz_date[:8]}', from '{amz_date}'."
            )

    def _check_scope(self, auth: _Authorization, request: Request) -> None:
        if auth.region != self._region:
            raise InvalidSignatureException(
                f"Credential should be scoped to a valid region, not '{auth.region[:64]}'. "
                f"This API's region is '{self._region}'."
            )
        if auth.service not in SERVICES:
            raise InvalidSignatureException(
                f"Credential should be scoped to correct service: '{SERVICE}'. "
            )
        if auth.terminator != TERMINATOR:
            raise InvalidSignatureException(
                f"Credential should be scoped with a valid terminator: '{TERMINATOR}', "
                f"not '{auth.terminator[:64]}'."
            )
        required = list(REQUIRED_SIGNED_HEADERS)
        if request.header(TARGET_HEADER) is not None:
            required.append(TARGET_HEADER)
        unsigned = [h for h in required if h not in auth.signed_headers]
        if unsigned:
            raise IncompleteSignatureException(
                "SignedHeaders must include " + ", ".join(f"'{h}'" for h in unsigned)
            )

    def check_pair(self, key_id: str, secret: str) -> bool:
        """Whether `secret` is the secret access key of `key_id` (a browser signing in).

        The secrets are compared in constant time, as digests of one length; an unknown key id
        costs the same comparison.
        """
        configured = self._secrets.get(key_id)
        expected = _digest(configured) if configured is not None else _NO_DIGEST
        return hmac.compare_digest(_digest(secret), expected) and configured is not None

    def fingerprint(self, key_id: str) -> bytes | None:
        """A digest of `key_id`'s secret (sessions are bound to it); None for an unknown key."""
        secret = self._secrets.get(key_id)
        return None if secret is None else _digest(secret)

    def verify_metrics_token(self, authorization: str | None) -> bool:
        """Whether `authorization` is `Bearer <the metrics token>`; False without a token set.

        Raises UnrecognizedClientException for a bearer token that is not the one configured.
        """
        if self._metrics_token is None or authorization is None:
            return False
        if not authorization.startswith(BEARER):
            return False
        given = authorization.removeprefix(BEARER).strip().encode()
        if not hmac.compare_digest(given, self._metrics_token.encode()):
            raise UnrecognizedClientException
        return True


def check_local_origin(request: Request) -> None:
    """For an API without authentication on loopback: refuse a request that names another
    host (DNS rebinding) or comes from a web page (it carries `Origin`)."""
    if request.header("Origin") is not None:
        raise AccessDeniedException("Requests from web pages are not accepted")
    host = request.header("Host") or ""
    name = host.rpartition(":")[0] if host.rpartition(":")[2].isdigit() else host
    if not is_local_host(name.strip("[]")):
        raise AccessDeniedException(
            "Without authentication the API answers only requests addressed to localhost or a "
            "loopback address; configure API credentials to reach it by another name"
        )


def check_local_action(request: Request) -> None:
    """For an API without authentication on loopback: refuse a web page's action form (a
    POST under /ui/) unless it was sent from the pages' own site, addressed to a loopback
    name (never from another site, nor through DNS rebinding)."""
    host = request.header("Host") or ""
    name = host.rpartition(":")[0] if host.rpartition(":")[2].isdigit() else host
    if not is_local_host(name.strip("[]")):
        raise AccessDeniedException(
            "Without authentication the pages answer only requests addressed to localhost or "
            "a loopback address"
        )
    why = cross_site(
        fetch_site=request.header("Sec-Fetch-Site"), origin=request.header("Origin"), host=host
    )
    if why is not None:
        raise AccessDeniedException(f"Forms are accepted only from this site's pages ({why})")


def _digest(secret: str) -> bytes:
    return hashlib.sha256(f"stepd-key-pair\n{secret}".encode()).digest()


def _stamp(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime(AMZ_DATE_FORMAT)
