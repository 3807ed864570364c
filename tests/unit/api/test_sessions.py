"""Browser sessions: session and CSRF tokens, where a browser may be sent after signing in,
which forms are cross-site, and who a request comes from."""

from __future__ import annotations

import hashlib

import pytest
from aiohttp.test_utils import make_mocked_request

from stepd.access import ApiAccess, KeyPair
from stepd.api.auth import Authenticator
from stepd.api.sessions import SESSION_SECONDS, Sessions, cross_site, safe_next
from stepd.api.signin import UNIX_SOCKET_PEER, client_of
from stepd.errors import SessionRefused

T0 = 1_800_000_000.0  # 2027-01-15T08:00:00Z
KEY_ID = "AKIDSESSIONS01"
FINGERPRINT = hashlib.sha256(b"one secret").digest()
OTHER_FINGERPRINT = hashlib.sha256(b"another secret").digest()
KEY = KeyPair(access_key_id=KEY_ID, secret_access_key="the-secret-of-the-key-0123")


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


def known(key_id: str) -> bytes | None:
    return FINGERPRINT if key_id == KEY_ID else None


# -- session tokens ---------------------------------------------------------------------------


def test_a_token_names_its_key_and_expiry_and_verifies():
    """A token issued for a key verifies as that key's session, expiring SESSION_SECONDS on."""
    sessions = Sessions(clock=Clock())
    token, issued = sessions.issue(KEY_ID, FINGERPRINT)

    verified = sessions.verify(token, known)

    assert verified == issued
    assert (verified.key_id, verified.expires) == (KEY_ID, int(T0) + SESSION_SECONDS)
    assert token.startswith(f"{KEY_ID}:{int(T0) + SESSION_SECONDS}:")


def test_two_sign_ins_get_different_tokens():
    """Each sign-in is a session of its own."""
    sessions = Sessions(clock=Clock())

    first, _ = sessions.issue(KEY_ID, FINGERPRINT)
    second, _ = sessions.issue(KEY_ID, FINGERPRINT)

    assert first != second


def _replace(token: str, index: int, value: str) -> str:
    parts = token.split(":")
    parts[index] = value
    return ":".join(parts)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda t: _replace(t, 1, str(int(t.split(":")[1]) + 1)), "does not match"),
        (lambda t: _replace(t, 2, "x" + t.split(":")[2][1:]), "does not match"),
        (lambda t: _replace(t, 3, "0" * 64), "does not match"),
        (lambda t: _replace(t, 0, "AKIDUNKNOWN"), "not configured"),
        (lambda t: t + ":more", "malformed"),
        (lambda t: _replace(t, 1, "-5"), "malformed"),
        (lambda t: _replace(t, 3, "Z" * 64), "malformed"),
        (lambda t: _replace(t, 0, "AKID SPACE"), "malformed"),
        (lambda _: "", "malformed"),
    ],
    ids=[
        "expiry",
        "session-id",
        "signature",
        "unknown-key",
        "extra-part",
        "negative-expiry",
        "signature-not-hex",
        "key-with-space",
        "empty",
    ],
)
def test_a_changed_token_is_refused(change, reason: str):
    """Any change to a token is refused, saying why."""
    sessions = Sessions(clock=Clock())
    token, _ = sessions.issue(KEY_ID, FINGERPRINT)

    with pytest.raises(SessionRefused, match=reason):
        sessions.verify(change(token), known)


def test_a_token_of_another_daemon_is_refused():
    """A restart draws a new key: the old daemon's tokens are refused."""
    token, _ = Sessions(clock=Clock()).issue(KEY_ID, FINGERPRINT)

    with pytest.raises(SessionRefused, match="does not match"):
        Sessions(clock=Clock()).verify(token, known)


def test_a_token_expires():
    """A session opens nothing from its expiry on."""
    clock = Clock()
    sessions = Sessions(clock=clock)
    token, _ = sessions.issue(KEY_ID, FINGERPRINT)
    clock.now = T0 + SESSION_SECONDS - 1
    sessions.verify(token, known)
    clock.now = T0 + SESSION_SECONDS

    with pytest.raises(SessionRefused, match="expired"):
        sessions.verify(token, known)


def test_a_new_secret_for_the_key_ends_its_sessions():
    """Tokens are bound to the key pair's secret: the same key id with another secret fails."""
    sessions = Sessions(clock=Clock())
    token, _ = sessions.issue(KEY_ID, FINGERPRINT)

    with pytest.raises(SessionRefused, match="does not match"):
        sessions.verify(token, lambda _: OTHER_FINGERPRINT)


def test_a_signed_out_session_is_refused_and_others_go_on():
    """Signing out ends that session only."""
    sessions = Sessions(clock=Clock())
    token, session = sessions.issue(KEY_ID, FINGERPRINT)
    other, _ = sessions.issue(KEY_ID, FINGERPRINT)

    sessions.sign_out(session)

    with pytest.raises(SessionRefused, match="signed out"):
        sessions.verify(token, known)
    assert sessions.verify(other, known).key_id == KEY_ID


# -- CSRF tokens ------------------------------------------------------------------------------


def test_the_csrf_token_belongs_to_its_cookie_only():
    """The form's token matches the nonce it was made for, and no other nonce or daemon."""
    sessions = Sessions()
    nonce = Sessions.new_nonce()
    token = sessions.csrf_token(nonce)

    assert sessions.csrf_valid(nonce, token)
    assert not sessions.csrf_valid(Sessions.new_nonce(), token)
    assert not Sessions().csrf_valid(nonce, token)
    assert not sessions.csrf_valid(nonce, None)
    assert not sessions.csrf_valid(None, token)
    assert not sessions.csrf_valid("bad nonce;", sessions.csrf_token("bad nonce;"))


# -- where to go after signing in -------------------------------------------------------------


@pytest.mark.parametrize(
    ("asked", "expected"),
    [
        ("/ui/", "/ui/"),
        ("/ui", "/ui"),
        ("/ui/executions/classroom/c%201", "/ui/executions/classroom/c%201"),
        ("/ui/?machine=classroom&status=RUNNING", "/ui/?machine=classroom&status=RUNNING"),
        (None, "/ui/"),
        ("", "/ui/"),
        ("//evil.example", "/ui/"),
        ("//evil.example/ui/", "/ui/"),
        ("https://evil.example/ui/", "/ui/"),
        ("/\\evil.example", "/ui/"),
        ("/ui/\\evil.example", "/ui/"),
        ("/uix", "/ui/"),
        ("/metrics", "/ui/"),
        ("javascript:alert(1)", "/ui/"),
        ("/ui/\r\nLocation: https://evil.example", "/ui/"),
        ("/ui/ x", "/ui/"),
        ("/ui/é", "/ui/"),
    ],
)
def test_next_is_a_page_of_this_site_or_the_list(asked: str | None, expected: str):
    """Only paths of the pages are followed; anything else sends the browser to the list."""
    assert safe_next(asked) == expected


# -- cross-site forms -------------------------------------------------------------------------

HOST = "stepd.example:8300"


@pytest.mark.parametrize(
    ("fetch_site", "origin", "refused"),
    [
        ("same-origin", None, False),
        ("same-origin", "http://stepd.example:8300", False),
        ("none", None, False),
        ("cross-site", None, True),
        ("same-site", None, True),
        ("cross-site", "http://stepd.example:8300", True),
        (None, "http://stepd.example:8300", False),
        (None, "https://STEPD.example:8300", False),
        (None, "http://evil.example", True),
        (None, "http://stepd.example:8301", True),
        (None, "http://stepd.example", True),
        (None, "null", True),
        (None, "", True),
        (None, None, False),
    ],
    ids=[
        "same-origin",
        "same-origin-with-origin",
        "typed-by-the-person",
        "cross-site",
        "same-site",
        "cross-site-whatever-the-origin",
        "own-origin",
        "own-origin-any-case",
        "other-host",
        "other-port",
        "no-port",
        "null-origin",
        "empty-origin",
        "no-browser-headers",
    ],
)
def test_which_forms_are_cross_site(fetch_site: str | None, origin: str | None, refused: bool):
    """Sec-Fetch-Site decides when sent; else Origin must name the host; else nothing does."""
    reason = cross_site(fetch_site=fetch_site, origin=origin, host=HOST)

    assert (reason is not None) == refused


# -- who is asking ----------------------------------------------------------------------------


class _Transport:
    def __init__(self, peer: object) -> None:
        self.peer = peer

    def get_extra_info(self, name: str, default: object = None) -> object:
        return self.peer if name == "peername" else default


def _request(peer: object, headers: dict[str, str]):
    return make_mocked_request("POST", "/ui/signin", headers=headers, transport=_Transport(peer))


PROXY_HEADERS = {
    "Host": "127.0.0.1:8300",
    "X-Forwarded-For": "198.51.100.1, 203.0.113.9",
    "X-Forwarded-Proto": "https",
    "X-Forwarded-Host": "stepd.example",
}


@pytest.mark.parametrize(
    ("peer", "unix", "expected"),
    [
        (("127.0.0.1", 50000), False, ("203.0.113.9", True, "stepd.example")),
        (("::1", 50000, 0, 0), False, ("203.0.113.9", True, "stepd.example")),
        ("", True, ("203.0.113.9", True, "stepd.example")),
        (("192.0.2.10", 50000), False, ("192.0.2.10", False, "127.0.0.1:8300")),
    ],
    ids=["loopback-proxy", "ipv6-loopback-proxy", "unix-socket-proxy", "remote-peer"],
)
def test_a_proxys_headers_count_only_from_this_host(
    peer: object, unix: bool, expected: tuple[str, bool, str]
):
    """X-Forwarded-For (its last address), -Proto and -Host are believed from a peer on this
    host only; from another peer they are ignored."""
    client = client_of(_request(peer, PROXY_HEADERS), unix=unix)

    assert (client.address, client.https, client.host) == expected


def test_a_unix_socket_peer_without_a_proxy_is_counted_as_one_client():
    """Without X-Forwarded-For, everyone on the unix socket is one client."""
    client = client_of(_request("", {"Host": "localhost"}), unix=True)

    assert (client.address, client.https) == (UNIX_SOCKET_PEER, False)


# -- checking a key pair ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key_id", "secret", "expected"),
    [
        (KEY.access_key_id, KEY.secret_access_key, True),
        (KEY.access_key_id, KEY.secret_access_key + "x", False),
        (KEY.access_key_id, "", False),
        ("AKIDUNKNOWN", KEY.secret_access_key, False),
        ("", "", False),
    ],
    ids=["right", "longer", "empty-secret", "unknown-key", "empty"],
)
def test_check_pair_accepts_only_the_configured_secret(key_id: str, secret: str, expected: bool):
    """A browser's pair is accepted only when both halves are configured together."""
    authenticator = Authenticator(ApiAccess(keys=(KEY,)), region="us-east-1")

    assert authenticator.check_pair(key_id, secret) is expected
