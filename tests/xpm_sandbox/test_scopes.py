"""The sandbox grants the scopes asked for, and answers a call outside them as Xero does."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest
import requests
import yaml

from tests.xpm_sandbox.conftest import authorize_url, connect, control
from xpm_sandbox import api, scopes
from xpm_sandbox.server import SandboxServer
from xpm_sandbox.state import USERS

SPEC = Path(__file__).parents[1] / "fixtures" / "xpm" / "openapi-practicemanager-3.1.yaml"
READ_ONLY = "offline_access openid profile email practicemanager.client.read practicemanager.job.read"


def _documented() -> dict[tuple[str, str], frozenset[str]]:
    spec = yaml.safe_load(SPEC.read_text())
    return {
        (method.upper(), path): frozenset(s for need in op["security"] for listed in need.values() for s in listed)
        for path, ops in spec["paths"].items()
        for method, op in ops.items()
        if isinstance(op, dict) and "security" in op
    }


@pytest.mark.parametrize(("method", "path"), sorted(_documented()))
def test_each_endpoint_takes_the_scopes_xeros_description_lists(method: str, path: str):
    assert scopes.accepted(path, writes=method != "GET") == _documented()[(method, path)]


def test_every_route_the_sandbox_serves_is_described():
    """Or, for a path XPM's documentation names beside the description, takes its sibling's scopes."""
    served = {(r.method, r.spec_path) for r in api.ROUTES if r.spec_path not in api.UNLISTED}
    assert served <= set(_documented())
    for path, (sibling, _why) in api.UNLISTED.items():
        assert scopes.accepted(path, writes=False) == _documented()[("GET", sibling)], path


def test_a_token_holds_what_was_asked_and_a_call_outside_it_is_401_insufficient_scope(srv: SandboxServer):
    conn = connect(srv, scope=READ_ONLY)
    assert conn.tokens["scope"] == READ_ONLY
    assert conn.get("client.api/list").status_code == 200
    assert conn.get("job.api/current").status_code == 200
    for path in ("staff.api/list", "category.api/list", "customfield.api/definition"):
        reply = conn.get(path)
        assert reply.status_code == 401, path
        assert reply.json()["Detail"] == "AuthorizationUnsuccessful"
        assert 'error="insufficient_scope"' in reply.headers["WWW-Authenticate"]
    assert 'scope="practicemanager.staff.read"' in conn.get("staff.api/list").headers["WWW-Authenticate"]
    client = next(iter(srv.sandbox.main.clients))
    write = conn.put(f"client.api/update/{client}/customfield", "<CustomFields />")
    assert write.status_code == 401
    assert 'scope="practicemanager.client"' in write.headers["WWW-Authenticate"]
    assert srv.sandbox.gateway.writes == []
    # A refresh gives the same scopes: only a new consent widens them.
    refreshed = requests.post(
        f"{srv.url}/connect/token",
        auth=(srv.client_id, srv.client_secret),
        data={"grant_type": "refresh_token", "refresh_token": conn.tokens["refresh_token"]},
        timeout=10,
    ).json()
    assert refreshed["scope"] == READ_ONLY
    again = requests.get(conn.api + "staff.api/list", headers=conn.headers(token=refreshed["access_token"]), timeout=10)
    assert again.status_code == 401


def test_a_consent_asking_for_a_scope_the_app_may_not_have_is_refused(srv: SandboxServer):
    control(srv, "apps", {"client_id": "granular-app", "client_secret": "s", "redirect_uris": ["http://localhost:1/cb"],
                          "allowed_scopes": sorted(scopes.XPM_SCOPES - {scopes.BROAD, scopes.BROAD_READ})})  # fmt: skip
    url = authorize_url(srv, verifier=secrets.token_urlsafe(48), redirect="http://localhost:1/cb")
    url = url.replace(f"client_id={srv.client_id}", "client_id=granular-app")
    page = requests.get(url, timeout=10)
    assert page.status_code == 400
    assert "invalid_scope" in page.text
    refused = requests.post(f"{srv.url}/_sandbox/consent", json={"authorize_url": url, "user": USERS.admin}, timeout=10)
    assert refused.status_code == 400
    said = "Invalid scope for client: practicemanager"
    assert refused.json() == {"error": "invalid_scope", "error_description": said}
