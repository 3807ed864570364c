"""Signing in to the web pages from a browser, which cannot sign requests with SigV4.

    GET  /ui/signin?next=PATH   the form: access key id and secret access key
    POST /ui/signin             check the pair; on success set the session cookie and go to PATH
    GET  /ui/signout            end the session, clear the cookie, back to the form

Served only when key pairs are configured (without them, browsers on this host see the pages
as they are). A page under /ui/ then opens for a valid session cookie or a SigV4-signed
request; a browser with neither is sent to the form. The cookie opens the pages only (GET and
HEAD of the /ui/ routes): never the AWS JSON API at `/`, `/metrics` or the serverless routes.

The session cookie is HttpOnly, SameSite=Strict, Path=/ui, lasts SESSION_SECONDS, and is
Secure when the browser reached stepd over HTTPS. The tokens, the CSRF token and the
cross-site rules are in `stepd.api.sessions`; this module is the HTTP side of them.

Who is asking (`Client`): the peer's address, whether the browser used HTTPS, and the host it
addressed. The headers a reverse proxy adds (`X-Forwarded-For`, `-Proto`, `-Host`) are
believed only from a peer on this host (a loopback address, or the unix socket), where a TLS
proxy in front of stepd runs; from any other peer they are ignored, since any client can send
them.

Failed sign-ins are logged as `ui.signin_failed` with a `reason` (cross-site, csrf,
throttled, wrong-key-pair) and the client's address, never with the secret; the key id only
when it is a configured one (a secret typed into the key id field is not logged). Each
address may fail SIGNIN_BURST times at once and once more every SIGNIN_REFILL_SECONDS.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from urllib.parse import urlencode

from aiohttp import web

from stepd import logs
from stepd.api.auth import Authenticator
from stepd.api.sessions import (
    CSRF_COOKIE,
    SESSION_COOKIE,
    SESSION_SECONDS,
    Session,
    Sessions,
    cross_site,
    safe_next,
)
from stepd.api.throttle import Throttle
from stepd.errors import MissingAuthenticationTokenException, SessionRefused, SignInRefused
from stepd.ui import PAGE_ROUTE_PREFIX
from stepd.ui.pages import ACTION_CSRF, ACTION_ROUTE_PREFIX, NO_CACHE, SIGNED_IN, render
from stepd.ui.views import SIGNIN_PATH, SIGNOUT_PATH, UI_PATH

log = logs.get_logger("stepd.api")

SIGNIN_BURST = 5  # failed sign-ins an address may make in a row
SIGNIN_REFILL_SECONDS = 12.0  # then one more every this long (five a minute)
MAX_THROTTLED_CLIENTS = 10_000  # addresses remembered by the throttle (the most recent)
COOKIE_PATH = UI_PATH.rstrip("/")  # "/ui": the pages, and nothing else
SIGNIN_ROUTE = PAGE_ROUTE_PREFIX + "signin"
SIGNOUT_ROUTE = PAGE_ROUTE_PREFIX + "signout"
PAGE_METHODS = frozenset({"GET", "HEAD"})
UNIX_SOCKET_PEER = "unix-socket"
FORWARDED_FOR = "X-Forwarded-For"
FORWARDED_PROTO = "X-Forwarded-Proto"
FORWARDED_HOST = "X-Forwarded-Host"
MAX_LOGGED_CHARS = 200  # of a header's value in the log

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, kw_only=True)
class Client:
    """Who sent a request, as far as stepd can tell."""

    address: str  # counted by the throttle, and logged
    https: bool  # the browser reached us over HTTPS (directly, or through a proxy on this host)
    host: str  # the host (and port) the browser addressed


def client_of(request: web.Request, *, unix: bool) -> Client:
    """Who sent `request`; a proxy's `X-Forwarded-*` headers count from this host only."""
    peer = request.remote or ""
    client = Client(
        address=peer or UNIX_SOCKET_PEER,
        https=request.secure,
        host=request.headers.get("Host", ""),
    )
    if not (unix or _is_loopback(peer)):
        return client
    forwarded_for = _last(request, FORWARDED_FOR)
    forwarded_host = _last(request, FORWARDED_HOST)
    return Client(
        address=forwarded_for or client.address,
        https=client.https or (_last(request, FORWARDED_PROTO) or "").lower() == "https",
        host=forwarded_host or client.host,
    )


def _is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def _last(request: web.Request, header: str) -> str | None:
    """The last value of a comma-separated header: the one the nearest proxy added."""
    values = [v.strip() for line in request.headers.getall(header, ()) for v in line.split(",")]
    values = [v for v in values if v]
    return values[-1] if values else None


class SignIn:
    """The sign-in form, sessions and sign-out, checked against the current key pairs."""

    def __init__(
        self,
        authenticator: Callable[[], Authenticator],
        *,
        unix: bool,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._authenticator = authenticator  # the current one: a reload may replace it
        self._unix = unix
        self._clock = clock
        self.sessions = Sessions(clock=clock)
        self.throttle = Throttle(
            burst=SIGNIN_BURST,
            refill_seconds=SIGNIN_REFILL_SECONDS,
            max_clients=MAX_THROTTLED_CLIENTS,
            clock=monotonic,
        )

    def add_routes(self, app: web.Application) -> None:
        signin = app.router.add_resource(SIGNIN_PATH, name=SIGNIN_ROUTE)
        signin.add_route("GET", self.form)
        signin.add_route("POST", self.submit)
        app.router.add_get(SIGNOUT_PATH, self.sign_out, name=SIGNOUT_ROUTE)

    # -- the access check for pages ----------------------------------------------------

    async def admit(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Serve a request under /ui/ that carries no SigV4 signature: the form to anyone, a
        page to a signed-in browser; a browser without a session goes to the form.

        Raises MissingAuthenticationTokenException for anything else (a POST, or a route
        that is not a page).
        """
        if request.path in {SIGNIN_PATH, SIGNOUT_PATH}:
            return await handler(request)
        if request.method == "POST" and is_action(request):
            return await self._act(request, handler)
        if request.method not in PAGE_METHODS:
            raise MissingAuthenticationTokenException
        session = self.session(request)
        if session is None:
            return self._to_signin(request)
        if not _is_page(request):
            raise MissingAuthenticationTokenException
        request[SIGNED_IN] = session.key_id
        request[ACTION_CSRF] = self.sessions.csrf_token(session.session_id)
        return await handler(request)

    async def _act(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """An action form (a POST under /ui/): only from a signed-in browser, from this site's
        own page, with the session's CSRF token."""
        session = self.session(request)
        if session is None:
            raise MissingAuthenticationTokenException
        client = client_of(request, unix=self._unix)
        why = cross_site(
            fetch_site=request.headers.get("Sec-Fetch-Site"),
            origin=request.headers.get("Origin"),
            host=client.host,
        )
        if why is None:
            fields = await request.post()
            token = fields.get("csrf")
            if not self.sessions.csrf_valid(
                session.session_id, token if isinstance(token, str) else None
            ):
                why = "csrf"
        if why is not None:
            log.info(
                "ui.action_refused",
                reason=why,
                path=request.path,
                key=session.key_id,
                remote=client.address,
            )
            return render(
                "problem.html",
                status=403,
                title="Refused",
                now=self._clock(),
                refresh=False,
                machine_names=[],
                signed_in=session.key_id,
                message="The form was not sent from this site's own page: reload the page "
                "and try again.",
            )
        request[SIGNED_IN] = session.key_id
        return await handler(request)

    def session(self, request: web.Request) -> Session | None:
        """The valid session `request`'s cookie stands for, if any (a refused one is logged)."""
        token = request.cookies.get(SESSION_COOKIE)
        if token is None:
            return None
        try:
            return self.sessions.verify(token, self._authenticator().fingerprint)
        except SessionRefused as exc:
            log.info(
                "ui.session_refused",
                reason=exc.message,
                remote=client_of(request, unix=self._unix).address,
            )
            return None

    def _to_signin(self, request: web.Request) -> web.Response:
        target = safe_next(request.raw_path)
        location = SIGNIN_PATH + ("" if target == UI_PATH else "?" + urlencode({"next": target}))
        response = web.Response(status=303, headers={"Location": location, **NO_CACHE})
        if SESSION_COOKIE in request.cookies:
            self._clear_session(response, request)
        return response

    # -- the handlers --------------------------------------------------------------------

    async def form(self, request: web.Request) -> web.Response:
        """GET /ui/signin: the form."""
        return self._form(request, target=safe_next(request.query.get("next")))

    async def submit(self, request: web.Request) -> web.Response:
        """POST /ui/signin: check the pair; sign in, or show the form again saying why not."""
        client = client_of(request, unix=self._unix)
        fields = await request.post()
        key_id = _field(fields, "access_key_id")
        target = safe_next(_field(fields, "next"))
        authenticator = self._authenticator()
        try:
            self._check(request, client, fields, authenticator)
        except SignInRefused as exc:
            log.warning(
                "ui.signin_failed",
                reason=exc.reason,
                remote=client.address,
                key=key_id if authenticator.fingerprint(key_id) is not None else None,
                sec_fetch_site=request.headers.get("Sec-Fetch-Site", "")[:MAX_LOGGED_CHARS],
                origin=request.headers.get("Origin", "")[:MAX_LOGGED_CHARS],
            )
            return self._form(
                request,
                target=target,
                status=exc.status,
                error=exc.message,
                key_id=key_id,
                retry_after=exc.retry_after,
            )
        fingerprint = authenticator.fingerprint(key_id)
        assert fingerprint is not None  # the pair was just found
        token, session = self.sessions.issue(key_id, fingerprint)
        response = web.Response(status=303, headers={"Location": target, **NO_CACHE})
        response.set_cookie(
            SESSION_COOKIE,
            token,
            max_age=SESSION_SECONDS,
            path=COOKIE_PATH,
            secure=client.https,
            httponly=True,
            samesite="Strict",
        )
        log.info("ui.signed_in", key=key_id, remote=client.address, expires=session.expires)
        return response

    def _check(
        self,
        request: web.Request,
        client: Client,
        fields: Mapping[str, object],
        authenticator: Authenticator,
    ) -> None:
        """Raise SignInRefused unless the form is this site's and names a configured pair.

        In this order: a cross-site form is refused (the person's address is not charged:
        another site sent it); an address out of tokens is refused without a look at the
        pair; a form without its CSRF token is refused; a wrong pair costs a token.
        """
        if cross_site(
            fetch_site=request.headers.get("Sec-Fetch-Site"),
            origin=request.headers.get("Origin"),
            host=client.host,
        ):
            raise SignInRefused(
                "Sign-in is only accepted from this site's own form.",
                status=403,
                reason="cross-site",
            )
        wait = self.throttle.wait_seconds(client.address)
        if wait:
            raise SignInRefused(
                f"Too many failed sign-ins from your address: try again in {wait} s.",
                status=429,
                reason="throttled",
                retry_after=wait,
            )
        if not self.sessions.csrf_valid(request.cookies.get(CSRF_COOKIE), _field(fields, "csrf")):
            raise SignInRefused(
                "The form had expired or was not this site's: please sign in again.",
                status=403,
                reason="csrf",
            )
        key_id, secret = _field(fields, "access_key_id"), _field(fields, "secret_access_key")
        if not authenticator.check_pair(key_id, secret):
            self.throttle.spend(client.address)
            raise SignInRefused(
                "The access key id or the secret access key is wrong.",
                status=403,
                reason="wrong-key-pair",
            )

    async def sign_out(self, request: web.Request) -> web.Response:
        """GET /ui/signout: end the session (its token is refused from now on), clear it."""
        session = self.session(request)
        if session is not None:
            self.sessions.sign_out(session)
            log.info(
                "ui.signed_out",
                key=session.key_id,
                remote=client_of(request, unix=self._unix).address,
            )
        response = web.Response(status=303, headers={"Location": SIGNIN_PATH, **NO_CACHE})
        self._clear_session(response, request)
        return response

    # -- answering ---------------------------------------------------------------------

    def _form(
        self,
        request: web.Request,
        *,
        target: str,
        status: int = 200,
        error: str | None = None,
        key_id: str = "",
        retry_after: int = 0,
    ) -> web.Response:
        client = client_of(request, unix=self._unix)
        nonce = request.cookies.get(CSRF_COOKIE, "")
        fresh = not Sessions.usable_nonce(nonce)
        if fresh:
            nonce = Sessions.new_nonce()
        session = self.session(request)
        response = render(
            "signin.html",
            status=status,
            title="Sign in",
            now=self._clock(),
            refresh=False,
            navigation=False,
            machine_names=[],
            signed_in=session.key_id if session is not None else None,
            next=target,
            csrf=self.sessions.csrf_token(nonce),
            error=error,
            key_id=key_id,
        )
        # The form's own page sends its origin with the form (under the pages' `no-referrer`,
        # a browser too old to send Sec-Fetch-Site would send `Origin: null`, and be refused).
        response.headers["Referrer-Policy"] = "same-origin"
        if retry_after:
            response.headers["Retry-After"] = str(retry_after)
        if fresh:
            response.set_cookie(
                CSRF_COOKIE,
                nonce,
                path=SIGNIN_PATH,
                secure=client.https,
                httponly=True,
                samesite="Strict",
            )
        return response

    def _clear_session(self, response: web.Response, request: web.Request) -> None:
        response.del_cookie(
            SESSION_COOKIE,
            path=COOKIE_PATH,
            secure=client_of(request, unix=self._unix).https,
            httponly=True,
            samesite="Strict",
        )


def _field(fields: Mapping[str, object], name: str) -> str:
    value = fields.get(name)
    return value.strip() if isinstance(value, str) else ""


def is_action(request: web.Request) -> bool:
    """Whether `request` reached an action's route (a form that changes something)."""
    route = request.match_info.route
    name = route.resource.name if route.resource is not None else None
    return name is not None and name.startswith(ACTION_ROUTE_PREFIX)


def _is_page(request: web.Request) -> bool:
    """Whether `request` reached one of the pages' routes (or none at all: a 404 page)."""
    route = request.match_info.route
    name = route.resource.name if route.resource is not None else None
    if name is not None:
        return name.startswith(PAGE_ROUTE_PREFIX)
    return request.match_info.http_exception is not None
