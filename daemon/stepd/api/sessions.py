"""Browser sessions for the web pages: session tokens, CSRF tokens, and what a form may be.

A browser cannot sign requests with SigV4, so a person signs in once with an access key id
and secret access key, and the browser keeps a session cookie:

    <access key id>:<expires, unix seconds>:<session id>:<HMAC-SHA256, hex>

The HMAC is keyed by a random key drawn when the daemon starts (so a restart signs everyone
out) and covers the key id, the expiry, the session id and a digest of that key pair's secret
(so a key pair removed from the configuration, or given a new secret, ends its sessions at
the next reload). Nothing is stored per session but the ids of sessions signed out, until
they expire.

The sign-in form is protected against cross-site requests twice: the browser's own word
(`Sec-Fetch-Site`, else `Origin`, checked as Go's net/http CrossOriginProtection does) and a
CSRF token in the form that is an HMAC of a random nonce kept in a cookie (a signed double
submit): a page of another site can neither read the token nor set the cookie.

Pure code: no I/O; the clock is passed in.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeGuard
from urllib.parse import urlsplit

from stepd.access import MAX_ACCESS_KEY_ID_CHARS
from stepd.errors import SessionRefused
from stepd.ui.views import UI_PATH

SESSION_COOKIE = "stepd_session"
CSRF_COOKIE = "stepd_csrf"
SESSION_SECONDS = 12 * 3600  # how long a sign-in lasts
SERVER_KEY_BYTES = 32
SESSION_ID_BYTES = 12
CSRF_NONCE_BYTES = 16
MAX_SIGNED_OUT = 10_000  # session ids remembered as signed out (each until it expires)
MAC_HEX_CHARS = 64
SAME_ORIGIN_FETCHES = frozenset({"same-origin", "none"})  # `none`: the person's own action
_TOKEN_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.")
_HEX = frozenset("0123456789abcdef")


@dataclass(frozen=True, kw_only=True)
class Session:
    """A signed-in browser: the key pair it signed in with, until when, and its id."""

    key_id: str
    expires: int  # unix seconds
    session_id: str


Fingerprints = Callable[[str], bytes | None]  # key id -> digest of its secret, None if unknown


class Sessions:
    """Issues and checks session and CSRF tokens under a key drawn at construction."""

    def __init__(
        self, *, clock: Callable[[], float] = time.time, server_key: bytes | None = None
    ) -> None:
        self._key = server_key if server_key is not None else secrets.token_bytes(SERVER_KEY_BYTES)
        self._clock = clock
        self._signed_out: dict[str, int] = {}  # session id -> expires

    # -- sessions --------------------------------------------------------------------------

    def issue(self, key_id: str, fingerprint: bytes) -> tuple[str, Session]:
        """A new session for `key_id` (whose secret has digest `fingerprint`): its token."""
        session = Session(
            key_id=key_id,
            expires=int(self._clock()) + SESSION_SECONDS,
            session_id=secrets.token_urlsafe(SESSION_ID_BYTES),
        )
        mac = self._mac(session, fingerprint)
        return f"{session.key_id}:{session.expires}:{session.session_id}:{mac}", session

    def verify(self, token: str, fingerprints: Fingerprints) -> Session:
        """The session `token` stands for. Raises SessionRefused saying why it is not valid."""
        session, mac = _parse(token)
        fingerprint = fingerprints(session.key_id)
        if fingerprint is None:
            raise SessionRefused("the key pair is not configured (any more)")
        if not hmac.compare_digest(mac, self._mac(session, fingerprint)):
            raise SessionRefused("the session token does not match its signature")
        if session.expires <= self._clock():
            raise SessionRefused("the session has expired")
        if session.session_id in self._signed_out:
            raise SessionRefused("the session was signed out")
        return session

    def sign_out(self, session: Session) -> None:
        """End `session` before it expires."""
        now = self._clock()
        self._signed_out = {s: e for s, e in self._signed_out.items() if e > now}
        if len(self._signed_out) >= MAX_SIGNED_OUT:  # the one closest to expiring goes first
            del self._signed_out[min(self._signed_out, key=self._signed_out.__getitem__)]
        self._signed_out[session.session_id] = session.expires

    def _mac(self, session: Session, fingerprint: bytes) -> str:
        text = f"stepd-session\n{session.key_id}\n{session.expires}\n{session.session_id}\n"
        return hmac.new(self._key, text.encode() + fingerprint, hashlib.sha256).hexdigest()

    # -- the sign-in form's CSRF token -----------------------------------------------------

    @staticmethod
    def new_nonce() -> str:
        """A random value for the CSRF cookie."""
        return secrets.token_urlsafe(CSRF_NONCE_BYTES)

    @staticmethod
    def usable_nonce(nonce: str | None) -> TypeGuard[str]:
        """Whether a CSRF cookie's value can be used as it is (else a new one is set)."""
        return nonce is not None and _is_token_text(nonce)

    def csrf_token(self, nonce: str) -> str:
        """The form's token for the cookie's `nonce`."""
        return hmac.new(self._key, f"stepd-csrf\n{nonce}".encode(), hashlib.sha256).hexdigest()

    def csrf_valid(self, nonce: str | None, token: str | None) -> bool:
        """Whether the form's `token` belongs to the cookie's `nonce`."""
        if not token or not self.usable_nonce(nonce):
            return False
        return hmac.compare_digest(token.encode(), self.csrf_token(nonce).encode())


def _parse(token: str) -> tuple[Session, str]:
    parts = token.split(":")
    if len(parts) != 4:
        raise SessionRefused("the session token is malformed")
    key_id, expires, session_id, mac = parts
    if not (
        _is_token_text(key_id)
        and expires.isascii()
        and expires.isdigit()
        and _is_token_text(session_id)
        and len(mac) == MAC_HEX_CHARS
        and set(mac) <= _HEX
    ):
        raise SessionRefused("the session token is malformed")
    return Session(key_id=key_id, expires=int(expires), session_id=session_id), mac


def _is_token_text(text: str) -> bool:
    return 0 < len(text) <= MAX_ACCESS_KEY_ID_CHARS and set(text) <= _TOKEN_CHARS


def safe_next(value: str | None) -> str:
    """Where to send a browser after it signs in: `value` when it is a page of this site
    (a path under /ui/), else the list of executions. Never another site: no scheme, no
    `//host`, no backslash, nothing but printable ASCII."""
    if (
        value
        and (value == UI_PATH.rstrip("/") or value.startswith(UI_PATH))
        and all("!" <= c <= "~" for c in value)
        and "\\" not in value
    ):
        split = urlsplit(value)
        if not split.scheme and not split.netloc:
            return value
    return UI_PATH


def cross_site(*, fetch_site: str | None, origin: str | None, host: str) -> str | None:
    """Why a form sent with these headers comes from another site, or None if it does not.

    `Sec-Fetch-Site` (every current browser sends it, and a page cannot forge it) must say
    `same-origin` (or `none`, the person's own action). Without it, an `Origin` must name
    `host`, the host the browser addressed. With neither, the request is not from a browser
    that can be tricked into sending it, or from one too old to say: the CSRF token decides.
    """
    if fetch_site is not None:
        if fetch_site.strip().lower() in SAME_ORIGIN_FETCHES:
            return None
        return f"Sec-Fetch-Site is {fetch_site[:32]!r}"
    if origin is None:
        return None
    netloc = urlsplit(origin.strip()).netloc if origin.strip() != "null" else ""
    if netloc and host and netloc.lower() == host.strip().lower():
        return None
    return f"Origin {origin[:100]!r} is not {host[:100]!r}"
