"""Who is asking, and what Airflow's auth manager lets them do on the XPM page.

Every route needs a signed-in Airflow user (the same token Airflow's own UI and API use). Reading
needs read access to the XPM DAGs; syncing needs to create runs of `xpm_manual_sync`; connecting,
disconnecting and changing settings need edit rights on the XPM connection. State-changing requests
are POSTs carrying a token tied to the user (and the browser's Origin must be this server).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from fastapi import HTTPException, Request

from xpm_sync import catalog, config
from xpm_sync.airflow_runs import RestApi

CSRF_LIFETIME = 12 * 3600


class NotSignedIn(Exception):
    """No valid Airflow session: a browser is sent to Airflow's login."""


@dataclass(frozen=True)
class Visitor:
    user: Any
    name: str
    may_read: bool
    may_sync: bool
    may_admin: bool
    token: str = field(default="", repr=False)  # the Airflow token the request carried; never shown

    def airflow(self) -> RestApi:
        """Airflow's REST API as this person: Airflow's own rules decide what they may start."""
        return RestApi(self.token)

    def require(self, what: str) -> None:
        allowed = {"read": self.may_read, "sync": self.may_sync, "admin": self.may_admin}[what]
        if not allowed:
            raise HTTPException(403, forbidden(what))


FORBIDDEN = {
    "read": "Your Airflow role may not read the XPM DAGs, so it may not see the XPM page.",
    "sync": "Your Airflow role may not start runs of {manual}.",
    "admin": "Connecting XPM and changing its settings needs edit rights on the XPM connection in Airflow.",
}


def forbidden(what: str) -> str:
    """Why a role may not do `what` ("read", "sync", "admin"), naming the practice's DAG where one decides."""
    return FORBIDDEN[what].format(manual=catalog.dag_id("manual_sync"))


async def visitor(request: Request) -> Visitor:
    """The signed-in Airflow user and what they may do; `NotSignedIn` without a valid session."""
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.base_auth_manager import COOKIE_NAME_JWT_TOKEN
    from airflow.api_fastapi.auth.managers.models.resource_details import (
        ConnectionDetails,
        DagAccessEntity,
        DagDetails,
    )
    from airflow.api_fastapi.core_api.security import get_user
    from fastapi.security import HTTPAuthorizationCredentials

    header = request.headers.get("authorization", "")
    credentials = None
    token = request.cookies.get(COOKIE_NAME_JWT_TOKEN, "")  # the browser's session, as Airflow reads it
    if header.lower().startswith("bearer "):
        credentials = HTTPAuthorizationCredentials(scheme="Bearer", credentials=header[7:])
        token = header[7:]  # an explicit credential wins, as in Airflow
    try:
        user = await get_user(request, None, credentials)
    except HTTPException as exc:
        raise NotSignedIn from exc
    manager = get_auth_manager()
    # The practice's own DAGs and connection: Airflow's per-DAG rights can give each branch its people.
    readable = (catalog.dag_id("overnight_sync"), catalog.dag_id("manual_sync"))
    may_read = all(manager.is_authorized_dag(method="GET", details=DagDetails(id=dag), user=user) for dag in readable)
    may_sync = manager.is_authorized_dag(
        method="POST",
        access_entity=DagAccessEntity.RUN,
        details=DagDetails(id=catalog.dag_id("manual_sync")),
        user=user,
    )
    may_admin = manager.is_authorized_connection(
        method="PUT", details=ConnectionDetails(conn_id=config.get("conn_id")), user=user
    )
    return Visitor(user, str(user.get_name()), may_read, may_sync and may_read, may_admin and may_read, token)


def login_url(request: Request) -> str:
    """Airflow's login page, coming back here afterwards."""
    from urllib.parse import quote

    from airflow.api_fastapi.app import get_auth_manager

    return f"{get_auth_manager().get_url_login()}?next={quote(str(request.url), safe='')}"


def _secret() -> bytes:
    from airflow.configuration import conf

    # Shared by every API server process of the installation (Airflow signs its own tokens with it).
    secret = conf.get("api_auth", "jwt_secret", fallback="") or conf.get("api", "secret_key", fallback="")
    return hashlib.sha256(f"xpm-sync csrf:{secret}".encode()).digest()


def csrf_token(visitor: Visitor, now: float | None = None) -> str:
    """A token for this user's forms, valid for 12 hours."""
    expires = int((now or time.time()) + CSRF_LIFETIME)
    mac = hmac.new(_secret(), f"{visitor.name}|{expires}".encode(), hashlib.sha256).hexdigest()
    return f"{expires}.{mac}"


def check_post(request: Request, visitor: Visitor, token: str | None) -> None:
    """Refuse a state-changing request from another site, or without this user's token."""
    origin = request.headers.get("origin") or request.headers.get("referer")
    if origin and urlsplit(origin).netloc != request.url.netloc:
        raise HTTPException(403, "This request came from another site and was refused.")
    expires, _, mac = (token or "").partition(".")
    if not expires.isdigit() or int(expires) < time.time():
        raise HTTPException(403, "The page was open too long; reload it and try again.")
    want = hmac.new(_secret(), f"{visitor.name}|{expires}".encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(mac, want):
        raise HTTPException(403, "This request did not come from your XPM page and was refused.")
