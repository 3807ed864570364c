"""Rendering a page: the Jinja environment (autoescaping on), the style sheet inlined in every
page, and the headers every page goes out with.

Templates live in `templates/` (`base.html` is the layout, one template per page) and the style
sheet in `static/stepd.css`. The sheet is inlined, as is the diagram's own style, so a page is
one request and the Content-Security-Policy allows no script and exactly those two styles (by
hash). Anything passed to a template is escaped unless it is `Markup`; the one piece that is, the
SVG diagram, is escaped by `stepd.graph.svg` as it is drawn.
"""

from __future__ import annotations

import base64
import hashlib
from importlib.resources import files
from typing import Any

from aiohttp import web
from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup

from stepd import __version__
from stepd.graph import SVG_CSS
from stepd.ui.format import FILTERS
from stepd.ui.views import (
    SIGNIN_PATH,
    SIGNOUT_PATH,
    UI_PATH,
    execution_path,
    list_path,
    machine_path,
)

REFRESH_SECONDS = 2  # how often a page about a running execution reloads itself
STYLE_SHEET = (files("stepd.ui") / "static" / "stepd.css").read_text(encoding="utf-8")


def _style_hash(css: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(css.encode()).digest()).decode() + "'"


CONTENT_SECURITY_POLICY = (
    f"default-src 'none'; style-src {_style_hash(STYLE_SHEET)} {_style_hash(SVG_CSS)}; "
    "img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
NO_CACHE = {"Cache-Control": "no-store"}
HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    **NO_CACHE,
}
# The access key id a browser signed in with (stepd.api.signin sets it; the layout shows it).
SIGNED_IN = web.RequestKey("stepd.signed_in", str)
# the token a signed-in browser's action forms (a POST under /ui/) carry against CSRF
ACTION_CSRF = web.RequestKey("stepd.action_csrf", str)
ACTION_ROUTE_PREFIX = "ui.action."  # the name of every action's route begins so

_ENVIRONMENT = Environment(
    loader=PackageLoader("stepd.ui", "templates"),
    autoescape=True,
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
_ENVIRONMENT.filters.update(FILTERS)
_ENVIRONMENT.globals.update(
    ui_path=UI_PATH,
    list_path=list_path,
    execution_path=execution_path,
    machine_path=machine_path,
    signin_path=SIGNIN_PATH,
    signout_path=SIGNOUT_PATH,
    version=__version__,
    style_sheet=Markup(STYLE_SHEET),  # noqa: S704 - our own file, placed in <style> as it is
    refresh_seconds=REFRESH_SECONDS,
)


def render(
    template: str,
    *,
    status: int = 200,
    signed_in: str | None = None,
    navigation: bool = True,
    **context: Any,
) -> web.Response:
    """The page `template` filled with `context`, as a response with the pages' headers.

    Every page gets `title`, `machine_names` (the navigation), `now` and `refresh` (reload
    itself every REFRESH_SECONDS) besides its own values. `signed_in` is the access key id a
    browser signed in with (the layout offers to sign out); `navigation` False leaves out the
    links to the pages (the sign-in form shows nothing of what is behind it).
    """
    text = _ENVIRONMENT.get_template(template).render(
        signed_in=signed_in, navigation=navigation, **context
    )
    return web.Response(
        text=text, status=status, content_type="text/html", charset="utf-8", headers=HEADERS
    )
