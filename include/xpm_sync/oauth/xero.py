"""Xero's side of the sign-in: PKCE, the authorize URL, the code exchange, the practices a sign-in
connected, and revoking a grant. No database here: `flow` keeps the attempts and the connection."""

from __future__ import annotations

import base64
import hashlib
import logging
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
import requests

from xpm_sync.errors import XpmOAuthError, XpmTransientError
from xpm_sync.oauth.connection_config import XpmSettings
from xpm_sync.oauth.tokens import TokenEndpointError, post_token

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Practice:
    tenant_id: str
    name: str
    connection_id: str


def pkce_pair() -> tuple[str, str]:
    """A PKCE verifier (86 characters) and its S256 challenge."""
    verifier = secrets.token_urlsafe(64)
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def authorize_url(settings: XpmSettings, redirect_uri: str, state: str, challenge: str, scope: str) -> str:
    """The URL the administrator opens to sign in at Xero and allow access."""
    query = {
        "response_type": "code",
        "client_id": settings.client_id,
        "redirect_uri": redirect_uri,
        "scope": scope,
        "state": state,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    return f"{settings.authorize_url}?{urlencode(query)}"


def callback_params(redirect_url: str) -> dict[str, str]:
    params = {k: v[0] for k, v in parse_qs(urlsplit(redirect_url.strip()).query).items()}
    if "error" in params:
        if params["error"] == "access_denied":
            raise XpmOAuthError("Access was not allowed at Xero (the sign-in was cancelled). Start again.")
        raise XpmOAuthError(f"Xero ended the sign-in with {params['error']}: {params.get('error_description', '')}")
    if "code" not in params or "state" not in params:
        raise XpmOAuthError("That is not the address Xero sent you back to: it has no code and state. Start again.")
    return params


def exchange(
    settings: XpmSettings, http: requests.Session, code: str, verifier: str, redirect_uri: str
) -> dict[str, Any]:
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri, "code_verifier": verifier}
    try:
        return post_token(settings, form, http=http, timeout=30)
    except TokenEndpointError as exc:
        if exc.error == "invalid_client":
            raise XpmOAuthError(
                "Xero rejected the app's client id or secret (invalid_client). Copy the Client ID and Client "
                "secret from the app at developer.xero.com into the XPM connection, then connect again."
            ) from None
        if exc.error == "invalid_grant":
            raise XpmOAuthError(
                "Xero refused the sign-in code (invalid_grant): it was used already, expired, or the redirect "
                f"URI differs from the one registered on the app (this connection uses {redirect_uri}). "
                "Check the app's redirect URIs and start again."
            ) from None
        raise XpmOAuthError(f"Xero refused the sign-in code ({exc.error}). Start again.") from None
    except XpmTransientError as exc:
        raise XpmOAuthError(f"{exc}. Start again.") from None


def claims(token: str) -> dict[str, Any]:
    """Read a JWT's claims without checking its signature: for display and filtering only."""
    try:
        claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return {}
    return claims


def practices_of(settings: XpmSettings, http: requests.Session, access_token: str) -> list[Practice]:
    """The XPM practices this sign-in connected."""
    reply = http.get(settings.connections_url, headers={"Authorization": f"Bearer {access_token}"}, timeout=30)
    if reply.status_code != 200:
        raise XpmOAuthError(f"Xero's connections list answered {reply.status_code}. Start again.")
    event = claims(access_token).get("authentication_event_id")
    found = []
    for row in reply.json():
        if row.get("tenantType") != "PRACTICEMANAGER":
            continue
        if event and row.get("authEventId") not in (None, event):
            continue
        found.append(Practice(row["tenantId"], row.get("tenantName") or "(unnamed XPM practice)", row["id"]))
    return found


def revoke_quietly(settings: XpmSettings, http: requests.Session, refresh_token: str) -> None:
    try:
        http.post(
            settings.revocation_url,
            data={"token": refresh_token},
            auth=(settings.client_id, settings.client_secret),
            timeout=15,
        )
    except requests.RequestException:
        log.warning("Could not revoke an unused XPM grant; it will expire unused in 60 days")
