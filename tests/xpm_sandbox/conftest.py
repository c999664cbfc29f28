"""A sandbox on a loopback port per test, and a helper that connects to it like a real app."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests

from xpm_sandbox.identity import pkce_challenge
from xpm_sandbox.server import SandboxServer, connection_extras
from xpm_sandbox.state import USERS

REDIRECT = "http://localhost:8765/callback"
SCOPES = "offline_access openid profile email practicemanager"


@dataclass
class Connected:
    srv: SandboxServer
    tokens: dict[str, Any]
    tenant_id: str

    @property
    def api(self) -> str:
        return connection_extras(self.srv.url)["api_url"]

    def headers(self, tenant_id: str | None = None, token: str | None = None) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {token or self.tokens['access_token']}",
            "xero-tenant-id": tenant_id or self.tenant_id,
        }

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return requests.get(self.api + path, headers=self.headers(), timeout=30, **kwargs)

    def put(self, path: str, body: str) -> requests.Response:
        headers = {**self.headers(), "Content-Type": "application/xml"}
        return requests.put(self.api + path, data=body.encode(), headers=headers, timeout=30)


def authorize_url(
    srv: SandboxServer, *, verifier: str, redirect: str = REDIRECT, state: str = "s1", scope: str = SCOPES
) -> str:
    query = {
        "response_type": "code",
        "client_id": srv.client_id,
        "redirect_uri": redirect,
        "scope": scope,
        "state": state,
        "code_challenge": pkce_challenge(verifier),
        "code_challenge_method": "S256",
    }
    return f"{connection_extras(srv.url)['authorize_url']}?{urlencode(query)}"


def consent(
    srv: SandboxServer, url: str, user: str = USERS.admin, tenant_ids: list[str] | None = None
) -> dict[str, str]:
    reply = requests.post(
        f"{srv.url}/_sandbox/consent", json={"authorize_url": url, "user": user, "tenant_ids": tenant_ids}, timeout=10
    )
    reply.raise_for_status()
    return {k: v[0] for k, v in parse_qs(urlsplit(reply.json()["redirect"]).query).items()}


def token(srv: SandboxServer, secret: str | None = None, **form: str) -> requests.Response:
    return requests.post(
        f"{srv.url}/connect/token", auth=(srv.client_id, secret or srv.client_secret), data=form, timeout=10
    )


def connect(srv: SandboxServer, user: str = USERS.admin, scope: str = SCOPES) -> Connected:
    verifier = secrets.token_urlsafe(48)
    params = consent(srv, authorize_url(srv, verifier=verifier, scope=scope), user)
    reply = token(
        srv, grant_type="authorization_code", code=params["code"], redirect_uri=REDIRECT, code_verifier=verifier
    )
    reply.raise_for_status()
    tokens = reply.json()
    conns = requests.get(
        f"{srv.url}/connections", headers={"Authorization": f"Bearer {tokens['access_token']}"}, timeout=10
    ).json()
    return Connected(srv, tokens, conns[0]["tenantId"] if conns else "")


def control(srv: SandboxServer, path: str, payload: dict[str, Any] | None = None) -> Any:
    reply = requests.post(f"{srv.url}/_sandbox/{path}", json=payload or {}, timeout=10)
    reply.raise_for_status()
    return reply.json()


@pytest.fixture
def srv() -> Iterator[SandboxServer]:
    with SandboxServer(clients=60, jobs=200, staff=8) as server:
        yield server


@pytest.fixture
def conn(srv: SandboxServer) -> Connected:
    return connect(srv)
