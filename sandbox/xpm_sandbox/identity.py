"""Xero identity as the sandbox plays it: apps, users, consent, codes, grants and tokens.

Rules kept from the real service: authorization codes are single use and short lived, bound to
the redirect URI and the PKCE challenge (S256); every refresh rotates the refresh token, and the
previous one may be replayed once within a 30-minute grace; a refresh token unused for 60 days
expires; a revoked or rotated-away token gives `invalid_grant`. Only users who are XPM
administrators with "Authorise 3rd Party Full Access" can connect a practice.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import jwt

from xpm_sandbox import scopes

AUTH_CODE_LIFETIME = timedelta(minutes=5)
REFRESH_GRACE = timedelta(minutes=30)


class OAuthError(Exception):
    """A token endpoint error: `error` is the OAuth error code."""

    def __init__(self, error: str, description: str = "") -> None:
        super().__init__(error)
        self.error = error
        self.description = description


@dataclass
class App:
    client_id: str
    client_secret: str
    redirect_uris: list[str]
    name: str = "xpm-sync"
    # The XPM scopes Xero's review let this app ask for (all of them unless a test narrows it).
    allowed_scopes: frozenset[str] = scopes.XPM_SCOPES


@dataclass
class User:
    email: str
    name: str
    xero_user_id: str
    # tenant id -> (is XPM administrator, has "Authorise 3rd Party Full Access")
    practices: dict[str, tuple[bool, bool]] = field(default_factory=dict)
    staff_uuid: str = ""

    def can_connect(self, tenant_id: str) -> bool:
        admin, third_party = self.practices.get(tenant_id, (False, False))
        return admin and third_party


@dataclass
class Connection:
    id: str
    tenant_id: str
    tenant_name: str | None
    auth_event_id: str
    created: datetime
    updated: datetime


@dataclass
class Grant:
    """What one consent gave one app for one user."""

    id: str
    client_id: str
    user: User
    scopes: str
    auth_event_id: str
    connections: dict[str, Connection] = field(default_factory=dict)
    revoked: bool = False


@dataclass
class RefreshToken:
    grant: Grant
    issued: datetime
    rotated_at: datetime | None = None
    grace_used: bool = False
    successor: str | None = None
    dead: bool = False


@dataclass
class AccessToken:
    grant: Grant
    expires: datetime


@dataclass
class AuthCode:
    client_id: str
    redirect_uri: str
    challenge: str | None
    method: str | None
    scopes: str
    user: User
    tenant_ids: list[str]
    issued: datetime
    used: bool = False


@dataclass
class PendingAuthorize:
    client_id: str
    redirect_uri: str
    scope: str
    state: str | None
    challenge: str | None
    method: str | None


def pkce_challenge(verifier: str) -> str:
    """S256: base64url of SHA-256 of the verifier, unpadded."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


class Identity:
    """All identity state; thread-safe (the server runs handlers on a thread pool)."""

    def __init__(self, clock: Callable[[], datetime], tenant_names: dict[str, str]) -> None:
        self.clock = clock
        self.tenant_names = tenant_names
        self.apps: dict[str, App] = {}
        self.users: dict[str, User] = {}
        self.codes: dict[str, AuthCode] = {}
        self.refresh_tokens: dict[str, RefreshToken] = {}
        self.access_tokens: dict[str, AccessToken] = {}
        self.grants: dict[str, Grant] = {}
        self.access_lifetime = timedelta(seconds=1800)
        self.refresh_idle_expiry = timedelta(days=60)
        self.id_token_key = secrets.token_hex(32)
        self.token_requests = 0
        self.refreshes = 0
        self._lock = threading.RLock()

    # --- authorize ------------------------------------------------------------------------------

    def check_authorize(self, params: dict[str, str]) -> PendingAuthorize:
        """Validate an authorize request as Xero does before showing consent."""
        if params.get("response_type") != "code":
            raise OAuthError("unsupported_response_type", "response_type must be code")
        app = self.apps.get(params.get("client_id", ""))
        if app is None:
            raise OAuthError("unauthorized_client", "Unknown client or client not enabled")
        redirect_uri = params.get("redirect_uri", "")
        if redirect_uri not in app.redirect_uris:
            raise OAuthError("invalid_request", "Invalid redirect_uri")
        if not params.get("scope"):
            raise OAuthError("invalid_scope", "scope is required")
        refused = scopes.unknown(params["scope"], app.allowed_scopes)
        if refused:
            raise OAuthError("invalid_scope", f"Invalid scope for client: {' '.join(refused)}")
        method = params.get("code_challenge_method")
        challenge = params.get("code_challenge")
        if challenge and method != "S256":
            raise OAuthError("invalid_request", "code_challenge_method must be S256")
        return PendingAuthorize(app.client_id, redirect_uri, params["scope"], params.get("state"), challenge, method)

    def consent(self, pending: PendingAuthorize, email: str, tenant_ids: list[str] | None) -> str:
        """The user logs in and allows access; return the authorization code.

        Practices the user may not connect are left out, as Xero's consent screen does.
        """
        with self._lock:
            user = self.users.get(email.lower())
            if user is None:
                raise OAuthError("access_denied", f"no sandbox user {email}")
            allowed = [t for t in user.practices if user.can_connect(t)]
            chosen = allowed if tenant_ids is None else [t for t in tenant_ids if t in allowed]
            code = secrets.token_urlsafe(32)
            self.codes[code] = AuthCode(
                pending.client_id,
                pending.redirect_uri,
                pending.challenge,
                pending.method,
                pending.scope,
                user,
                chosen,
                self.clock(),
            )
            return code

    # --- token endpoint -------------------------------------------------------------------------

    def authenticate_client(self, client_id: str, client_secret: str) -> App:
        app = self.apps.get(client_id)
        if app is None or not secrets.compare_digest(app.client_secret, client_secret):
            raise OAuthError("invalid_client")
        return app

    def exchange_code(self, app: App, code: str, redirect_uri: str, verifier: str | None) -> dict[str, Any]:
        with self._lock:
            self.token_requests += 1
            auth = self.codes.get(code)
            if auth is None or auth.used or auth.client_id != app.client_id:
                raise OAuthError("invalid_grant")
            if self.clock() - auth.issued > AUTH_CODE_LIFETIME:
                raise OAuthError("invalid_grant")
            auth.used = True
            if redirect_uri != auth.redirect_uri:
                raise OAuthError("invalid_grant")
            if auth.challenge is not None and (not verifier or pkce_challenge(verifier) != auth.challenge):
                raise OAuthError("invalid_grant")
            now = self.clock()
            grant = Grant(uuid.uuid4().hex, app.client_id, auth.user, auth.scopes, str(uuid.uuid4()))
            for tenant_id in auth.tenant_ids:
                existing = self._user_connection(app.client_id, auth.user, tenant_id)
                conn_id = existing.id if existing else str(uuid.uuid4())
                grant.connections[tenant_id] = Connection(
                    conn_id, tenant_id, self.tenant_names.get(tenant_id), grant.auth_event_id, now, now
                )
            self.grants[grant.id] = grant
            return self._issue(grant)

    def refresh(self, app: App, token: str) -> dict[str, Any]:
        with self._lock:
            self.token_requests += 1
            rt = self.refresh_tokens.get(token)
            now = self.clock()
            if rt is None or rt.dead or rt.grant.revoked or rt.grant.client_id != app.client_id:
                raise OAuthError("invalid_grant")
            if now - rt.issued > self.refresh_idle_expiry:
                rt.dead = True
                raise OAuthError("invalid_grant")
            if rt.rotated_at is not None:
                if rt.grace_used or now - rt.rotated_at > REFRESH_GRACE:
                    raise OAuthError("invalid_grant")
                rt.grace_used = True
                if rt.successor and rt.successor in self.refresh_tokens:
                    self.refresh_tokens[rt.successor].dead = True
            rt.rotated_at = rt.rotated_at or now
            self.refreshes += 1
            reply = self._issue(rt.grant)
            rt.successor = reply["refresh_token"]
            return reply

    def revoke(self, app: App, token: str) -> None:
        with self._lock:
            rt = self.refresh_tokens.get(token)
            if rt is not None and rt.grant.client_id == app.client_id:
                rt.grant.revoked = True

    def _issue(self, grant: Grant) -> dict[str, Any]:
        now = self.clock()
        # Like Xero's, the access token is a JWT that names the sign-in's auth event.
        access = jwt.encode(
            {
                "nbf": int(now.timestamp()),
                "exp": int((now + self.access_lifetime).timestamp()),
                "iss": "https://identity.xero.com",
                "aud": "https://identity.xero.com/resources",
                "client_id": grant.client_id,
                "sub": grant.user.xero_user_id,
                "xero_userid": grant.user.xero_user_id,
                "authentication_event_id": grant.auth_event_id,
                "jti": secrets.token_hex(16),
                "scope": grant.scopes.split(),
            },
            self.id_token_key,
            algorithm="HS256",
        )
        refresh = secrets.token_urlsafe(40)
        self.access_tokens[access] = AccessToken(grant, now + self.access_lifetime)
        self.refresh_tokens[refresh] = RefreshToken(grant, now)
        id_token = jwt.encode(
            {
                "sub": grant.user.xero_user_id,
                "xero_userid": grant.user.xero_user_id,
                "email": grant.user.email,
                "name": grant.user.name,
                "given_name": grant.user.name.split()[0],
                "family_name": grant.user.name.split()[-1],
                "aud": grant.client_id,
                "iat": int(now.timestamp()),
                "exp": int((now + timedelta(minutes=5)).timestamp()),
                "iss": "https://identity.xero.com",
                "global_session_id": grant.auth_event_id,
            },
            self.id_token_key,
            algorithm="HS256",
        )
        return {
            "id_token": id_token,
            "access_token": access,
            "expires_in": int(self.access_lifetime.total_seconds()),
            "token_type": "Bearer",
            "refresh_token": refresh,
            "scope": grant.scopes,
        }

    # --- tokens at the gateway ------------------------------------------------------------------

    def access(self, token: str) -> tuple[AccessToken | None, str]:
        """Look up a bearer token: (token, "") or (None, why) with why "expired" or "invalid"."""
        with self._lock:
            at = self.access_tokens.get(token)
            if at is None or at.grant.revoked:
                return None, "invalid"
            if self.clock() >= at.expires:
                return at, "expired"
            return at, ""

    def _user_connection(self, client_id: str, user: User, tenant_id: str) -> Connection | None:
        for g in self.grants.values():
            if g.client_id == client_id and g.user is user and not g.revoked and tenant_id in g.connections:
                return g.connections[tenant_id]
        return None

    def connections(self, grant: Grant) -> list[Connection]:
        """Every practice this user has connected to this app, by any live grant."""
        with self._lock:
            seen: dict[str, Connection] = {}
            for g in self.grants.values():
                if g.client_id == grant.client_id and g.user is grant.user and not g.revoked:
                    for tenant_id, conn in g.connections.items():
                        seen[tenant_id] = conn
            return list(seen.values())

    def delete_connection(self, grant: Grant, connection_id: str) -> bool:
        with self._lock:
            found = False
            for g in self.grants.values():
                if g.client_id == grant.client_id and g.user is grant.user:
                    for tenant_id, conn in list(g.connections.items()):
                        if conn.id == connection_id:
                            del g.connections[tenant_id]
                            found = True
            return found

    def tenant_allowed(self, grant: Grant, tenant_id: str) -> bool:
        """True while the grant reaches the practice and the user still may use it."""
        return tenant_id in grant.connections and grant.user.can_connect(tenant_id)

    def revoke_all(self, email: str | None = None) -> int:
        """Revoke every grant (of one user, when given): as if access were revoked in Xero."""
        with self._lock:
            count = 0
            for g in self.grants.values():
                if not g.revoked and (email is None or g.user.email == email.lower()):
                    g.revoked = True
                    count += 1
            return count
