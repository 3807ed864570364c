"""Read-only web pages about executions and state machines, served beside the API.

    /ui/                              the executions: status, current state, next due time and
                                      lateness; `?machine=NAME&status=STATUS` filter them,
                                      `?before=ID` shows older ones
    /ui/executions/<machine>/<name>   one execution: the diagram with the states it passed
                                      coloured (done, failed, current, not reached), and its
                                      history as a timeline
    /ui/machines/<name>               one state machine: its diagram and validation findings
    /ui/nodes                         the nodes sharing a PostgreSQL store: their leases, how
                                      many executions each holds, definitions that differ
    /ui/signin, /ui/signout           with key pairs configured, a browser signs in here (the
                                      routes and the session cookie are stepd.api.signin's)

    handlers.py   the routes: read through the engine's read interface, pick a page
    views.py      what a page shows of an execution (next step, lateness, timeline), and paths
    format.py     durations, instants and JSON as text (the templates' filters)
    pages.py      the Jinja environment (autoescaping on), the inlined style sheet, the headers
    templates/    base.html (the layout) and one template per page
    static/       stepd.css

Plain HTML: no script, nothing fetched from anywhere else (the Content-Security-Policy says so),
and a page about a running execution reloads itself. Everything shown from an execution or a
definition is escaped. The pages only read, and sit behind the same access middleware as the
API; every page's route is named `ui.<page>` (PAGE_ROUTE_PREFIX), which is how that middleware
knows a page from any other route.
"""

from stepd.ui.handlers import PAGE_ROUTE_PREFIX, PAGE_SIZE, Nodes, add_ui_routes
from stepd.ui.pages import REFRESH_SECONDS

__all__ = ["PAGE_ROUTE_PREFIX", "PAGE_SIZE", "REFRESH_SECONDS", "Nodes", "add_ui_routes"]
