"""Which practice a request to the XPM page or its JSON API is for: its path says.

`/xpm/...` is the primary practice (the one of a single-practice install, so its addresses never
change); `/xpm/practices/<name>/...` is the practice of that name, for the page and the JSON API
alike (`/xpm/practices/north/api/v1/jobs`). The prefix becomes part of the request's root path, so
every link and form the page makes stays with its practice, and the request runs acting for it
(`practices.using`). An unknown name is a 404 that lists the practices.

Xero's sign-in returns to one address for every practice (`/xpm/oauth/callback`, the redirect URI
registered with the Xero app); that route finds its practice from the sign-in it completes.
"""

from __future__ import annotations

import re
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from xpm_sync import practices
from xpm_sync.plain_errors import XpmConfigError

PREFIX = re.compile(r"^/practices/([^/]+)(?=/|$)")
BASE_ROOT = "xpm.base_root_path"  # the scope key keeping the root path without the practice


class PracticePaths:
    """ASGI middleware: act for the practice the path names."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        root = scope.get("root_path", "")
        path = scope["path"]
        inner = path[len(root) :] if root and path.startswith(root) else path
        found = PREFIX.match(inner)
        name = found.group(1) if found else None
        try:
            practice = await run_in_threadpool(practices.find, name)
        except XpmConfigError as exc:
            await JSONResponse({"detail": str(exc)}, 404)(scope, receive, send)
            return
        scope = dict(scope)
        scope[BASE_ROOT] = root
        if found:  # routing reads root_path (the addresses the page makes: `url_for` below)
            scope["root_path"] = root + found.group(0)
        with practices.using(practice):
            await self.app(scope, receive, send)


def base_root(request: Any) -> str:
    """The root path of the XPM page without any practice in it (`/xpm`)."""
    return str(request.scope.get(BASE_ROOT, request.scope.get("root_path", "")))


def url_for(request: Any, route: str, **params: Any) -> str:
    """The address of one of the page's routes for the practice the request is for (Starlette's own
    `url_for` builds it from the root app's routes, which know no practice)."""
    from urllib.parse import urlsplit, urlunsplit

    built = urlsplit(str(request.url_for(route, **params)))
    base, own = base_root(request), practice_root(request, practices.current())
    path = own + built.path[len(base) :] if built.path.startswith(base) else built.path
    return urlunsplit(built._replace(path=path))


def practice_root(request: Any, practice: practices.Practice) -> str:
    """Where a practice's page lives, from this request."""
    return base_root(request) + ("" if practice.primary else f"/practices/{practice.name}")
