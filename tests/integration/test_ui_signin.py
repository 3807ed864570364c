"""Signing in to the web pages with a key pair, as a browser does: the real API server (the
aiohttp app of `ApiServer`) over loopback, a real Engine on real SQLite, a fake clock.

Cookies are carried by hand (the client keeps none), so each test says exactly what the
browser sends; a browser's own headers (`Sec-Fetch-Site`, `Origin`) are sent as a browser
sends them for a form posted from the page itself.
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass
from http.cookies import Morsel, SimpleCookie
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
import httpx
import pytest
import structlog
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from tests.integration.harness import AMZ_JSON, Stepd, wait_until
from tests.integration.test_ui import CLASSROOM, T0, Clock, dom, machine, rows

from stepd.access import ApiAccess, KeyPair
from stepd.api.auth import sign
from stepd.api.server import ApiServer
from stepd.api.sessions import CSRF_COOKIE, SESSION_COOKIE, SESSION_SECONDS
from stepd.api.signin import SIGNIN_BURST
from stepd.engine.arns import Arns
from stepd.engine.executor import Engine
from stepd.store.sqlite import SqliteStore
from stepd.testing import FakeCaller

KEY = KeyPair(access_key_id="AKIDSIGNIN0001", secret_access_key="signin-Secret/0123456789+abc")
OTHER = KeyPair(access_key_id="AKIDSIGNIN0002", secret_access_key="the-other-secret-0123456789")
WRONG_SECRET = "not-the-secret-0123456789abcdef"
REGION = "us-east-1"
# What Chromium sends with a form posted from the page itself.
SAME_ORIGIN = {"Sec-Fetch-Site": "same-origin"}
OK = 200
SEE_OTHER = 303
FORBIDDEN = 403
NOT_FOUND = 404
TOO_MANY = 429
EXECUTION_PAGE = "/ui/executions/classroom/c1"


@dataclass
class Site:
    """The API server with two key pairs, one execution (`c1`), and its clock."""

    server: ApiServer
    client: TestClient[web.Request, web.Application]
    clock: Clock
    origin: str  # as a browser names this site: http://127.0.0.1:PORT

    async def get(self, path: str, session: str | None = None, **headers: str) -> Any:
        cookies = {SESSION_COOKIE: session} if session is not None else {}
        return await self.client.get(
            path, allow_redirects=False, headers={**headers, **_cookie_header(cookies)}
        )

    async def form(self) -> tuple[str, str]:
        """Open the sign-in form: (its CSRF token, the CSRF cookie's value)."""
        response = await self.get("/ui/signin")
        assert response.status == OK, await response.text()
        (field,) = dom(await response.text()).find_all("input", name="csrf")
        return field.attrs["value"], response.cookies[CSRF_COOKIE].value

    async def post_form(
        self,
        key: KeyPair = KEY,
        *,
        secret: str | None = None,
        headers: dict[str, str] | None = None,
        csrf: str | None = None,
        nonce: str | None = None,
        next_page: str | None = None,
        with_csrf: bool = True,
    ) -> Any:
        """Post the sign-in form as a browser does after opening it."""
        token, cookie = await self.form()
        fields = {
            "access_key_id": key.access_key_id,
            "secret_access_key": secret if secret is not None else key.secret_access_key,
        }
        if with_csrf:
            fields["csrf"] = csrf if csrf is not None else token
        if next_page is not None:
            fields["next"] = next_page
        cookies = {CSRF_COOKIE: nonce if nonce is not None else cookie}
        return await self.client.post(
            "/ui/signin",
            data=fields,
            allow_redirects=False,
            headers={**(SAME_ORIGIN if headers is None else headers), **_cookie_header(cookies)},
        )

    async def sign_in(self, key: KeyPair = KEY) -> str:
        """Sign in with `key`; the session cookie's value."""
        response = await self.post_form(key)
        assert response.status == SEE_OTHER, await response.text()
        return str(response.cookies[SESSION_COOKIE].value)


def _cookie_header(cookies: dict[str, str]) -> dict[str, str]:
    return {"Cookie": "; ".join(f"{k}={v}" for k, v in cookies.items())} if cookies else {}


def set_cookie(response: Any, name: str) -> Morsel[str]:
    """The `Set-Cookie` of `name` in `response`, attributes and all."""
    jar: SimpleCookie = SimpleCookie()
    for header in response.headers.getall("Set-Cookie", []):
        jar.load(header)
    return jar[name]


async def health() -> dict[str, Any]:
    return {"status": "ok"}


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[Site]:
    """Key pairs KEY and OTHER configured; the classroom machine with execution c1."""
    async with _site(tmp_path, ApiAccess(keys=(KEY, OTHER))) as running:
        yield running


class _site:  # noqa: N801 - reads as a function
    def __init__(self, tmp_path: Path, access: ApiAccess) -> None:
        self.tmp_path, self.access = tmp_path, access

    async def __aenter__(self) -> Site:
        self.store = SqliteStore(self.tmp_path / "stepd.db")
        await self.store.open()
        self.caller = FakeCaller()
        clock = Clock()
        engine = Engine(store=self.store, caller=self.caller, machines={}, arns=Arns(), clock=clock)
        await engine.register({"classroom": machine("classroom", CLASSROOM)})
        engine.set_timer(lambda _id, _due: None)
        start, end = "2027-01-15T08:00:10Z", "2027-01-15T09:00:00Z"
        await engine.start_execution("classroom", "c1", json.dumps({"start": start, "end": end}))
        server = ApiServer(engine, "127.0.0.1:0", health, access=self.access, clock=clock)
        self.client = TestClient(TestServer(server.app()), cookie_jar=aiohttp.DummyCookieJar())
        await self.client.start_server()
        origin = f"http://127.0.0.1:{self.client.port}"
        return Site(server=server, client=self.client, clock=clock, origin=origin)

    async def __aexit__(self, *_: object) -> None:
        await self.client.close()
        await self.caller.aclose()
        await self.store.close()


# -- without a session ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "location"),
    [
        ("/ui/", "/ui/signin"),
        (EXECUTION_PAGE, "/ui/signin?next=%2Fui%2Fexecutions%2Fclassroom%2Fc1"),
        ("/ui/?status=RUNNING", "/ui/signin?next=%2Fui%2F%3Fstatus%3DRUNNING"),
        ("/ui/nosuchpage", "/ui/signin?next=%2Fui%2Fnosuchpage"),
    ],
    ids=["list", "execution", "filtered-list", "unknown-page"],
)
async def test_a_page_without_a_session_sends_the_browser_to_the_form(
    site: Site, path: str, location: str
):
    """Without a session a page answers 303 to the form, naming the page to come back to."""
    response = await site.get(path)

    assert (response.status, response.headers["Location"]) == (SEE_OTHER, location)


async def test_the_form_shows_nothing_of_the_pages_and_sets_its_csrf_cookie(site: Site):
    """The form carries a CSRF token; its cookie is HttpOnly, SameSite=Strict, for the form
    only; the page links to no machine or list."""
    response = await site.get("/ui/signin?next=/ui/machines/classroom")
    page = await response.text()
    cookie = set_cookie(response, CSRF_COOKIE)
    hidden = {i.attrs["name"]: i.attrs["value"] for i in dom(page).find_all("input", type="hidden")}

    assert response.status == OK
    assert (cookie["httponly"], cookie["samesite"], cookie["path"]) == (
        True,
        "Strict",
        "/ui/signin",
    )
    assert response.headers["Referrer-Policy"] == "same-origin"  # its form sends its Origin
    assert hidden["next"] == "/ui/machines/classroom"
    assert len(hidden["csrf"]) == 64
    assert [a.attrs["href"] for a in dom(page).find_all("a")] == ["/ui/"]


# -- signing in -------------------------------------------------------------------------------


async def test_the_right_pair_sets_a_strict_http_only_session_cookie(site: Site):
    """The session cookie: HttpOnly, SameSite=Strict, Path=/ui, 12 hours, not Secure over
    plain HTTP; the browser goes on to the list."""
    response = await site.post_form()
    cookie = set_cookie(response, SESSION_COOKIE)

    assert (response.status, response.headers["Location"]) == (SEE_OTHER, "/ui/")
    assert (cookie["httponly"], cookie["samesite"], cookie["path"]) == (True, "Strict", "/ui")
    assert (cookie["max-age"], cookie["secure"]) == (str(SESSION_SECONDS), "")
    assert KEY.secret_access_key not in cookie.value


async def test_signed_in_the_pages_load_and_say_who_is_signed_in(site: Site):
    """With the cookie the list and an execution's page load, with `signed in as KEY`."""
    session = await site.sign_in()

    listing = await site.get("/ui/", session)
    execution = await site.get(EXECUTION_PAGE, session)
    text = await listing.text()
    (line,) = dom(text).find_all("span", id="session")

    assert (listing.status, execution.status) == (OK, OK)
    assert list(rows(text)) == ["c1"]
    assert line.all_text() == f"signed in as {KEY.access_key_id} · sign out"
    assert [a.attrs["href"] for a in line.find_all("a")] == ["/ui/signout"]


async def test_signing_in_returns_to_the_page_asked_for(site: Site):
    """After signing in, the browser is sent to the page it first asked for."""
    response = await site.post_form(next_page=EXECUTION_PAGE)

    assert (response.status, response.headers["Location"]) == (SEE_OTHER, EXECUTION_PAGE)


@pytest.mark.parametrize(
    "asked",
    [
        "//evil.example",
        "//evil.example/ui/",
        "https://evil.example/ui/",
        "/\\evil.example",
        "/ui\\..\\evil",
        "javascript:alert(1)",
        "/metrics",
        "/ui/\r\nSet-Cookie: x=y",
        "",
    ],
    ids=[
        "protocol-relative",
        "protocol-relative-ui",
        "absolute",
        "backslash",
        "ui-backslash",
        "javascript",
        "not-a-page",
        "header-injection",
        "empty",
    ],
)
async def test_next_never_leads_off_the_pages(site: Site, asked: str):
    """`next` names a page of this site or is ignored: no open redirect, in the form or after."""
    form = await site.get("/ui/signin?" + urlencode({"next": asked}))
    (field,) = dom(await form.text()).find_all("input", name="next")
    response = await site.post_form(next_page=asked)

    assert field.attrs["value"] == "/ui/"
    assert (response.status, response.headers["Location"]) == (SEE_OTHER, "/ui/")


# -- refusals ---------------------------------------------------------------------------------


async def test_a_wrong_pair_is_refused_and_logged_without_the_secret(site: Site):
    """A wrong secret or an unknown key id: 403, the form again, no cookie; the log says why
    and names a configured key id only, never the secret typed."""
    with structlog.testing.capture_logs() as logs:
        wrong_secret = await site.post_form(secret=WRONG_SECRET)
        unknown_key = await site.post_form(
            KeyPair(access_key_id=WRONG_SECRET, secret_access_key=KEY.secret_access_key)
        )
    failures = [e for e in logs if e["event"] == "ui.signin_failed"]

    for response in (wrong_secret, unknown_key):
        assert response.status == FORBIDDEN
        assert SESSION_COOKIE not in response.cookies
        assert (
            "is wrong" in dom(await response.text()).find_all("p", id="signin-error")[0].all_text()
        )
    assert [(e["reason"], e["key"], e["remote"]) for e in failures] == [
        ("wrong-key-pair", KEY.access_key_id, "127.0.0.1"),
        ("wrong-key-pair", None, "127.0.0.1"),
    ]
    assert WRONG_SECRET not in repr(logs)
    assert KEY.secret_access_key not in repr(logs)


async def test_failed_sign_ins_are_throttled_per_address(site: Site):
    """After SIGNIN_BURST failures an address gets 429 with Retry-After, even for the right
    pair; another address (named by a proxy on this host) is not held back."""
    failures = [(await site.post_form(secret=WRONG_SECRET)).status for _ in range(SIGNIN_BURST)]
    with structlog.testing.capture_logs() as logs:
        throttled = await site.post_form()
    elsewhere = await site.post_form(headers={**SAME_ORIGIN, "X-Forwarded-For": "192.0.2.7"})

    assert failures == [FORBIDDEN] * SIGNIN_BURST
    assert (throttled.status, SESSION_COOKIE in throttled.cookies) == (TOO_MANY, False)
    assert int(throttled.headers["Retry-After"]) > 0
    assert [(e["event"], e["reason"]) for e in logs] == [("ui.signin_failed", "throttled")]
    assert elsewhere.status == SEE_OTHER


@pytest.mark.parametrize(
    "headers",
    [
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
        {"Sec-Fetch-Site": "cross-site", "Origin": "ORIGIN"},
        {"Origin": "https://evil.example"},
        {"Origin": "null"},
    ],
    ids=["cross-site", "same-site", "cross-site-own-origin", "other-origin", "null-origin"],
)
async def test_a_sign_in_from_another_site_is_refused(site: Site, headers: dict[str, str]):
    """A form posted from another site (as the browser says) gets 403 and no cookie, with the
    right pair; it costs the person's address nothing."""
    sent = {k: v.replace("ORIGIN", site.origin) for k, v in headers.items()}
    refused = [(await site.post_form(headers=sent)) for _ in range(SIGNIN_BURST + 1)]
    own = await site.post_form()

    assert {r.status for r in refused} == {FORBIDDEN}
    assert not any(SESSION_COOKIE in r.cookies for r in refused)
    assert own.status == SEE_OTHER


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "ORIGIN"},
        {"Sec-Fetch-Site": "same-origin", "Origin": "ORIGIN"},
        {},
    ],
    ids=["own-origin", "fetch-metadata", "no-browser-headers"],
)
async def test_a_sign_in_from_the_site_itself_is_accepted(site: Site, headers: dict[str, str]):
    """The site's own Origin, `Sec-Fetch-Site: same-origin`, or neither (not a browser, or an
    old one: the CSRF token decides) sign in."""
    sent = {k: v.replace("ORIGIN", site.origin) for k, v in headers.items()}

    assert (await site.post_form(headers=sent)).status == SEE_OTHER


@pytest.mark.parametrize(
    "tampering",
    [
        {"with_csrf": False},
        {"csrf": "0" * 64},
        {"nonce": "another-nonce-0123456789"},
        {"nonce": ""},
    ],
    ids=["missing-token", "wrong-token", "another-cookie", "no-cookie"],
)
async def test_a_form_without_its_csrf_token_is_refused(site: Site, tampering: dict[str, Any]):
    """The form's token must match the CSRF cookie: missing, wrong or unpaired, 403."""
    response = await site.post_form(**tampering)

    assert (response.status, SESSION_COOKIE in response.cookies) == (FORBIDDEN, False)
    assert "sign in again" in await response.text()


# -- sessions -------------------------------------------------------------------------------


def _tamper(token: str, part: int, value: str) -> str:
    parts = token.split(":")
    parts[part] = value
    return ":".join(parts)


@pytest.mark.parametrize(
    "change",
    [
        lambda t: _tamper(t, 0, OTHER.access_key_id),
        lambda t: _tamper(t, 1, str(int(t.split(":")[1]) + 86_400)),
        lambda t: _tamper(t, 2, "another-session-id"),
        lambda t: t[:-1] + ("0" if t[-1] != "0" else "1"),
        lambda t: t.rpartition(":")[0],
        lambda t: "garbage",
    ],
    ids=["other-key", "longer-expiry", "other-session", "signature", "no-signature", "garbage"],
)
async def test_a_tampered_session_is_refused(site: Site, change: Any):
    """A session token changed in any part sends the browser to the form and is cleared."""
    session = await site.sign_in()

    response = await site.get("/ui/", change(session))
    cleared = set_cookie(response, SESSION_COOKIE)

    assert (response.status, response.headers["Location"]) == (SEE_OTHER, "/ui/signin")
    assert (cleared.value, cleared["max-age"], cleared["path"]) == ("", "0", "/ui")


async def test_an_expired_session_is_refused(site: Site):
    """SESSION_SECONDS after signing in, the session no longer opens the pages."""
    session = await site.sign_in()
    site.clock.now = T0 + SESSION_SECONDS - 1
    before = await site.get("/ui/", session)
    site.clock.now = T0 + SESSION_SECONDS
    after = await site.get("/ui/", session)

    assert (before.status, after.status) == (OK, SEE_OTHER)


async def test_signing_out_clears_the_cookie_and_ends_the_session(site: Site):
    """`/ui/signout` clears the cookie, and the token it held opens nothing afterwards."""
    session = await site.sign_in()

    response = await site.get("/ui/signout", session)
    cleared = set_cookie(response, SESSION_COOKIE)
    again = await site.get("/ui/", session)

    assert (response.status, response.headers["Location"]) == (SEE_OTHER, "/ui/signin")
    assert (cleared.value, cleared["max-age"]) == ("", "0")
    assert again.status == SEE_OTHER


@pytest.mark.parametrize(
    ("kept", "opens"),
    [
        ((OTHER,), False),
        (
            (KeyPair(access_key_id=KEY.access_key_id, secret_access_key=WRONG_SECRET), OTHER),
            False,
        ),
        ((KEY, OTHER), True),
    ],
    ids=["key-removed", "secret-changed", "unchanged"],
)
async def test_new_key_pairs_end_the_sessions_of_a_pair_removed_or_changed(
    site: Site, kept: tuple[KeyPair, ...], opens: bool
):
    """Once the key pairs change (a reload), a session of a pair removed, or given another
    secret, is refused; the other pair's sessions go on."""
    session = await site.sign_in()
    other = await site.sign_in(OTHER)

    assert site.server.set_access(ApiAccess(keys=kept))
    mine = await site.get("/ui/", session)
    theirs = await site.get("/ui/", other)

    assert (mine.status == OK, theirs.status) == (opens, OK)


# -- what the cookie does not open ------------------------------------------------------------


async def test_the_session_cookie_does_not_authorize_the_api(site: Site):
    """`POST /` with a valid session cookie and no signature: 403 MissingAuthenticationToken."""
    session = await site.sign_in()

    response = await site.client.post(
        "/",
        data=b"{}",
        headers={
            "Content-Type": AMZ_JSON,
            "X-Amz-Target": "AWSStepFunctions.ListExecutions",
            **SAME_ORIGIN,
            **_cookie_header({SESSION_COOKIE: session}),
        },
    )

    assert response.status == FORBIDDEN
    assert (await response.json(content_type=None))["__type"] == (
        "MissingAuthenticationTokenException"
    )


async def test_the_session_cookie_opens_no_writes_under_the_pages(site: Site):
    """A POST under /ui/ other than the form, with the cookie, is refused as unsigned."""
    session = await site.sign_in()

    response = await site.client.post(
        "/ui/", data=b"", headers={**SAME_ORIGIN, **_cookie_header({SESSION_COOKIE: session})}
    )

    assert response.status == FORBIDDEN


async def test_a_sigv4_signed_request_still_reads_the_pages(site: Site):
    """Pages also answer a request signed with SigV4, as before, without a session."""
    headers = {"Host": f"127.0.0.1:{site.client.port}"}
    headers |= sign(
        key=KEY,
        method="GET",
        path="/ui/",
        query="",
        headers=headers,
        body=b"",
        region=REGION,
        now=site.clock(),
    )

    response = await site.get("/ui/", **headers)

    assert response.status == OK
    assert dom(await response.text()).find_all("span", id="session") == []


async def test_https_through_a_local_proxy_makes_the_cookie_secure(site: Site):
    """`X-Forwarded-Proto: https` from a proxy on this host marks the session cookie Secure."""
    response = await site.post_form(headers={**SAME_ORIGIN, "X-Forwarded-Proto": "https"})

    assert set_cookie(response, SESSION_COOKIE)["secure"] is True


# -- without key pairs --------------------------------------------------------------------------


async def test_without_key_pairs_the_pages_need_no_sign_in(tmp_path: Path):
    """With no key pair configured, a browser on this host reads the pages; there is no form."""
    async with _site(tmp_path, ApiAccess()) as open_site:
        listing = await open_site.get("/ui/")
        form = await open_site.get("/ui/signin")

        assert (listing.status, form.status) == (OK, NOT_FOUND)
        assert list(rows(await listing.text())) == ["c1"]


# -- the real daemon: a reload that removes a key pair ------------------------------------------


async def test_a_reload_that_removes_a_key_pair_signs_its_browsers_out(stepd: Stepd):
    """`stepd run` with two key pairs in `[api] credentials_file`: a browser signed in with one,
    the file rewritten without it, SIGHUP: that browser is sent to the form, the other key's
    browser reads on."""
    keys = stepd.config.parent / "api.keys"
    keys.write_text(
        f"{KEY.access_key_id}:{KEY.secret_access_key}\n"
        f"{OTHER.access_key_id}:{OTHER.secret_access_key}\n"
    )
    keys.chmod(0o600)
    text = stepd.config.read_text(encoding="utf-8")
    stepd.config.write_text(
        text.replace("[api]\n", f'[api]\ncredentials_file = "{keys.name}"\n', 1), encoding="utf-8"
    )
    await stepd.start()
    mine = await _browser_sign_in(stepd.url, KEY)
    theirs = await _browser_sign_in(stepd.url, OTHER)
    before = await _browser_get(stepd.url, "/ui/", mine)

    keys.write_text(f"{OTHER.access_key_id}:{OTHER.secret_access_key}\n")
    assert stepd.process is not None
    os.kill(stepd.process.pid, signal.SIGHUP)

    async def reloaded() -> bool:
        return bool(stepd.log_events("config.api_keys_applied"))

    await wait_until(reloaded, timeout=10.0, what="the reload to apply the key pairs")
    after = await _browser_get(stepd.url, "/ui/", mine)
    other = await _browser_get(stepd.url, "/ui/", theirs)

    (applied,) = stepd.log_events("config.api_keys_applied")
    assert (before.status_code, after.status_code, other.status_code) == (OK, SEE_OTHER, OK)
    assert after.headers["Location"] == "/ui/signin"
    assert applied["removed"] == [KEY.access_key_id]
    assert stepd.log_events("config.restart_needed") == []
    assert KEY.secret_access_key not in stepd.log_text()


def _browser(url: str) -> httpx.AsyncClient:
    """A fresh browser-like client: it keeps no cookie between the calls of a test."""
    return httpx.AsyncClient(base_url=url, timeout=10.0, trust_env=False)


async def _browser_get(url: str, path: str, session: str) -> httpx.Response:
    async with _browser(url) as browser:
        return await browser.get(path, headers=_cookie_header({SESSION_COOKIE: session}))


async def _browser_sign_in(url: str, key: KeyPair) -> str:
    """Open the form and post it as a browser does; the session cookie's value."""
    async with _browser(url) as browser:
        form = await browser.get("/ui/signin")
        (field,) = dom(form.text).find_all("input", name="csrf")
        nonce = form.cookies[CSRF_COOKIE]
        browser.cookies.clear()
        response = await browser.post(
            "/ui/signin",
            data={
                "access_key_id": key.access_key_id,
                "secret_access_key": key.secret_access_key,
                "csrf": field.attrs["value"],
            },
            headers={**SAME_ORIGIN, **_cookie_header({CSRF_COOKIE: nonce})},
        )
    assert response.status_code == SEE_OTHER, response.text
    return response.cookies[SESSION_COOKIE]


# -- the redrive form ------------------------------------------------------------------------


async def _stopped_page(site: Site, session: str) -> str:
    """Stop c1 and open its page signed in: the redrive form's CSRF token."""
    await site.server.engine.stop_execution("classroom", "c1", None, None)
    response = await site.get(EXECUTION_PAGE, session)
    assert response.status == OK, await response.text()
    (field,) = dom(await response.text()).find_all("input", name="csrf")
    return field.attrs["value"]


async def _redrive(site: Site, session: str | None, fields: dict[str, str], **headers: str) -> Any:
    cookies = {SESSION_COOKIE: session} if session is not None else {}
    return await site.client.post(
        EXECUTION_PAGE + "/redrive",
        data=fields,
        allow_redirects=False,
        headers={**headers, **_cookie_header(cookies)},
    )


async def test_a_signed_in_browser_redrives_from_the_execution_page(site: Site):
    """The stopped execution's page posts its redrive form with the session's CSRF token; the
    execution runs again and its page shows the redrive count."""
    session = await site.sign_in()
    token = await _stopped_page(site, session)
    response = await _redrive(site, session, {"csrf": token}, **SAME_ORIGIN)
    assert (response.status, response.headers["Location"]) == (SEE_OTHER, EXECUTION_PAGE)
    execution = await site.server.engine.find_execution("classroom", "c1")
    assert execution is not None
    assert (execution.status, execution.redrive_count) == ("RUNNING", 1)
    page = await (await site.get(EXECUTION_PAGE, session)).text()
    assert "1 time" in dom(page).find_all("dd", id="redrive-count")[0].all_text()


@pytest.mark.parametrize(
    ("fields", "headers"),
    [
        ({}, SAME_ORIGIN),
        ({"csrf": "0" * 64}, SAME_ORIGIN),
        ({"csrf": "TOKEN"}, {"Sec-Fetch-Site": "cross-site"}),
        ({"csrf": "TOKEN"}, {"Origin": "http://evil.example"}),
    ],
    ids=["no-token", "wrong-token", "cross-site", "other-origin"],
)
async def test_a_redrive_form_not_from_the_page_itself_is_refused(
    site: Site, fields: dict[str, str], headers: dict[str, str]
):
    """Without the session's CSRF token, or from another site, the redrive is refused."""
    session = await site.sign_in()
    token = await _stopped_page(site, session)
    fields = {k: token if v == "TOKEN" else v for k, v in fields.items()}
    response = await _redrive(site, session, fields, **headers)
    execution = await site.server.engine.find_execution("classroom", "c1")
    assert execution is not None
    assert (response.status, execution.status) == (FORBIDDEN, "ABORTED")


async def test_a_redrive_form_without_a_session_is_refused(site: Site):
    """Without a session the redrive form is refused as unsigned."""
    await site.server.engine.stop_execution("classroom", "c1", None, None)
    response = await _redrive(site, None, {}, **SAME_ORIGIN)
    assert response.status == FORBIDDEN


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"Sec-Fetch-Site": "same-origin"}, SEE_OTHER),
        ({"Origin": "ORIGIN"}, SEE_OTHER),
        ({"Sec-Fetch-Site": "cross-site"}, FORBIDDEN),
        ({"Origin": "http://evil.example"}, FORBIDDEN),
        ({"Host": "evil.example", "Sec-Fetch-Site": "same-origin"}, FORBIDDEN),
    ],
    ids=["same-origin", "own-origin", "cross-site", "other-origin", "rebinding"],
)
async def test_without_key_pairs_the_redrive_form_follows_the_loopback_rules(
    tmp_path: Path, headers: dict[str, str], status: int
):
    """Without key pairs the redrive form is accepted from the pages' own site on a loopback
    name only."""
    async with _site(tmp_path, ApiAccess()) as running:
        await running.server.engine.stop_execution("classroom", "c1", None, None)
        headers = {k: running.origin if v == "ORIGIN" else v for k, v in headers.items()}
        response = await _redrive(running, None, {}, **headers)
        execution = await running.server.engine.find_execution("classroom", "c1")
    assert execution is not None
    assert (response.status, execution.redrive_count) == (status, int(status == SEE_OTHER))
