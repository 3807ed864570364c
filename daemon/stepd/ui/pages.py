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
from stepd.ui.views import UI_PATH, execution_path, list_path, machine_path

REFRESH_SECONDS = 2  # how often a page about a running execution reloads itself
STYLE_SHEET = (files("stepd.ui") / "static" / "stepd.css").read_text(encoding="utf-8")


def _style_hash(css: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(css.encode()).digest()).decode() + "'"


CONTENT_SECURITY_POLICY = (
    f"default-src 'none'; style-src {_style_hash(STYLE_SHEET)} {_style_hash(SVG_CSS)}; "
    "img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}

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
    version=__version__,
    style_sheet=Markup(STYLE_SHEET),  # noqa: S704 - our own file, placed in <style> as it is
    refresh_seconds=REFRESH_SECONDS,
)


def render(template: str, *, status: int = 200, **context: Any) -> web.Response:
    """The page `template` filled with `context`, as a response with the pages' headers.

    Every page gets `title`, `machine_names` (the navigation), `now` and `refresh` (reload
    itself every REFRESH_SECONDS) besides its own values.
    """
    text = _ENVIRONMENT.get_template(template).render(**context)
    return web.Response(
        text=text, status=status, content_type="text/html", charset="utf-8", headers=HEADERS
    )
