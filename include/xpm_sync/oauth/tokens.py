"""The token store: one encrypted token set per grant (a consent at Xero), refreshed safely for every
practice that consent connected.

Airflow 3 task code cannot write connections, so the rotating tokens live in the practice
database, encrypted with Airflow's Fernet key, in `xpm_grants`; each practice's connection row points
at its grant, so two practices connected by one sign-in share one pair and one refresh.

A refresh is taken as a lease on the grant row: in one short locked transaction (PostgreSQL
`SELECT ... FOR UPDATE`, SQLite `BEGIN IMMEDIATE`) the token set is re-read and, if it still needs
refreshing and nobody holds the lease, the lease is taken. Xero is called with no transaction
open; the new pair is committed in a second short transaction, before anyone uses it. Other
workers wait for the lease rather than for a database lock, so a slow token endpoint never makes
them fail with "database is locked". Many workers at once cause a single refresh. A refresh
whose reply is lost is retried with the same refresh token, which Xero accepts once within 30
minutes; a lease left by a crashed worker runs out and the next worker does the same.
`invalid_grant` is final: every practice on the grant needs reconnecting, each with its alert.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import requests
from sqlalchemy import Engine
from sqlalchemy.orm import Session
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from xpm_sync import alerts
from xpm_sync.errors import RECONNECT_HINT, XpmAuthError, XpmConfigError, XpmReconnectRequired, XpmTransientError
from xpm_sync.oauth.connection_config import XpmSettings
from xpm_sync.store.locks import active_connection, locked_grant, sharing
from xpm_sync.store.models import ConnectionStatus, XpmConnection, XpmGrant
from xpm_sync.store.types import utcnow

log = logging.getLogger(__name__)

REFRESH_MARGIN = timedelta(minutes=2)
LEASE_POLL_SECONDS = 0.25
FERNET_HELP = (
    "Tokens are stored encrypted with Airflow's Fernet key, and none is configured. Set [core] fernet_key "
    "(or AIRFLOW__CORE__FERNET_KEY) on every Airflow component to the same key, made with: "
    "python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'"
)


def _mask(*secrets: str | None) -> None:
    from airflow.sdk.log import mask_secret

    for secret in secrets:
        if secret:
            mask_secret(secret)


@dataclass(frozen=True)
class TokenSet:
    """An access and refresh token pair. Neither appears in `repr`."""

    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    expires_at: datetime
    scope: str = ""

    @classmethod
    def from_reply(cls, reply: dict[str, Any], now: datetime) -> TokenSet:
        try:
            tokens = cls(
                access_token=str(reply["access_token"]),
                refresh_token=str(reply["refresh_token"]),
                expires_at=now + timedelta(seconds=int(reply.get("expires_in", 1800))),
                scope=str(reply.get("scope", "")),
            )
        except (KeyError, ValueError, TypeError):
            raise XpmAuthError("Xero's token reply lacked the access or refresh token") from None
        _mask(tokens.access_token, tokens.refresh_token)
        return tokens

    def fresh(self, now: datetime, margin: timedelta = REFRESH_MARGIN) -> bool:
        return now + margin < self.expires_at


def fernet() -> Any:
    """Airflow's Fernet, or a clear refusal when no key is configured."""
    from airflow.models.crypto import get_fernet

    f = get_fernet()
    if not f.is_encrypted:
        raise XpmConfigError(FERNET_HELP)
    return f


def encrypt_tokens(tokens: TokenSet) -> str:
    payload = {
        "access_token": tokens.access_token,
        "refresh_token": tokens.refresh_token,
        "expires_at": tokens.expires_at.isoformat(),
        "scope": tokens.scope,
    }
    return str(fernet().encrypt(json.dumps(payload).encode()).decode())


def decrypt_tokens(ciphertext: str) -> TokenSet:
    try:
        data = json.loads(fernet().decrypt(ciphertext.encode()))
    except XpmConfigError:
        raise
    except Exception:
        raise XpmConfigError(
            "The stored XPM tokens cannot be decrypted: Airflow's Fernet key changed. " + RECONNECT_HINT
        ) from None
    tokens = TokenSet(
        data["access_token"], data["refresh_token"], datetime.fromisoformat(data["expires_at"]), data["scope"]
    )
    _mask(tokens.access_token, tokens.refresh_token)
    return tokens


class TokenEndpointError(Exception):
    """Xero's token endpoint said no (HTTP 400); `error` is the OAuth error code."""

    def __init__(self, error: str) -> None:
        super().__init__(error)
        self.error = error


def post_token(
    settings: XpmSettings, form: dict[str, str], *, http: requests.Session, timeout: float
) -> dict[str, Any]:
    """One call to Xero's token endpoint, client authenticated by HTTP Basic."""
    try:
        reply = http.post(
            settings.token_url, data=form, auth=(settings.client_id, settings.client_secret), timeout=timeout
        )
    except (requests.Timeout, requests.ConnectionError) as exc:
        raise XpmTransientError(f"Xero's token endpoint did not answer ({type(exc).__name__})") from None
    if reply.status_code >= 500:
        raise XpmTransientError(f"Xero's token endpoint answered {reply.status_code}")
    if reply.status_code != 200:
        try:
            error = str(reply.json().get("error", f"http_{reply.status_code}"))
        except ValueError:
            error = f"http_{reply.status_code}"
        raise TokenEndpointError(error)
    body: dict[str, Any] = reply.json()
    return body


class TokenStore:
    """Hands out a valid access token for one connection's pinned practice."""

    def __init__(
        self,
        settings: XpmSettings,
        engine: Engine,
        *,
        http: requests.Session | None = None,
        clock: Callable[[], datetime] = utcnow,
        timeout: float = 30,
        refresh_attempts: int = 3,
        retry_wait: Any = None,
        sleep: Callable[[float], None] = time.sleep,
        actor: str | None = None,
        run_id: str | None = None,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.http = http or requests.Session()
        self.clock = clock
        self.timeout = timeout
        self.refresh_attempts = refresh_attempts
        self.retry_wait = retry_wait or wait_exponential(multiplier=1, min=1, max=10)
        self.sleep = sleep
        self._cached: tuple[TokenSet, int] | None = None
        self._owner = f"{socket.gethostname()[:30]}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
        # Who is acting, and in which Airflow run, for the alert an auth failure raises.
        self.actor = actor
        self.run_id = run_id

    @property
    def lease_time(self) -> timedelta:
        """Long enough for every try at the token endpoint, with their waits."""
        return timedelta(seconds=self.timeout * self.refresh_attempts + 30)

    # --- reading ------------------------------------------------------------------------------

    def connection(self, session: Session) -> XpmConnection | None:
        """The active connection row of this conn id, if any."""
        return session.scalars(active_connection(self.settings.conn_id)).first()

    def tenant_id(self) -> str:
        with Session(self.engine) as session:
            row = self._usable(self.connection(session))
            return row.tenant_id

    def _stored(self, session: Session) -> tuple[XpmConnection, XpmGrant]:
        """This practice's connection row, usable, and the grant holding its tokens."""
        row = self._usable(self.connection(session))
        grant = session.get(XpmGrant, row.grant_id)
        return row, self._holding(grant)

    def _holding(self, grant: XpmGrant | None) -> XpmGrant:
        if grant is None or not grant.token_ciphertext:
            raise XpmAuthError(f"XPM is not connected for {self.settings.conn_id!r}. Run `xpm-sync connect`.")
        return grant

    def _usable(self, row: XpmConnection | None) -> XpmConnection:
        if row is None or row.status == ConnectionStatus.DISCONNECTED.value or row.grant_id is None:
            raise XpmAuthError(f"XPM is not connected for {self.settings.conn_id!r}. Run `xpm-sync connect`.")
        if row.status == ConnectionStatus.NEEDS_RECONNECT.value:
            raise XpmReconnectRequired(
                row.last_error or f"XPM needs to reconnect: authentication failed. {RECONNECT_HINT}"
            )
        return row

    # --- the token ----------------------------------------------------------------------------

    def access_token(self, *, force_refresh: bool = False) -> str:
        """A valid access token, refreshing (once, under the lock) when it is about to expire."""
        now = self.clock()
        if not force_refresh and self._cached and self._cached[0].fresh(now):
            return self._cached[0].access_token
        if not force_refresh:
            with Session(self.engine) as session:
                _row, grant = self._stored(session)
                tokens = decrypt_tokens(grant.token_ciphertext or "")
                if tokens.fresh(now):
                    self._cached = (tokens, grant.version)
                    return tokens.access_token
        stale = None
        if force_refresh:
            # Refresh unless someone else already replaced the token we hold (or that is stored).
            if self._cached:
                stale = self._cached[0].access_token
            else:
                with Session(self.engine) as session:
                    _row, grant = self._stored(session)
                    stale = decrypt_tokens(grant.token_ciphertext or "").access_token
        return self._refresh_locked(stale)

    @contextmanager
    def _locked(self) -> Iterator[tuple[Session, XpmGrant]]:
        with self._locked_any() as (session, row, grant):
            self._usable(row)
            yield session, self._holding(grant)

    def _take_lease(self, stale_access: str | None) -> tuple[str | None, str | None]:
        """(a fresh access token someone else got, None) or (None, the refresh token to use under our lease)."""
        give_up = time.monotonic() + self.lease_time.total_seconds() + 30
        while True:
            with self._locked() as (_session, grant):
                now = self.clock()
                tokens = decrypt_tokens(grant.token_ciphertext or "")
                # Someone else (for this practice or another on the grant) may have refreshed meanwhile.
                if tokens.fresh(now) and tokens.access_token != stale_access:
                    self._cached = (tokens, grant.version)
                    return tokens.access_token, None
                lease = grant.refresh_lease_until
                if lease is None or lease <= now or grant.refresh_lease_owner == self._owner:
                    grant.refresh_lease_owner, grant.refresh_lease_until = self._owner, now + self.lease_time
                    return None, tokens.refresh_token
            if time.monotonic() > give_up:
                raise XpmTransientError("Another worker has been refreshing the XPM token for too long; try again")
            self.sleep(LEASE_POLL_SECONDS)

    def _refresh_locked(self, stale_access: str | None) -> str:
        fresh, refresh_token = self._take_lease(stale_access)
        if fresh is not None:
            return fresh
        assert refresh_token is not None
        try:
            reply = self._post_refresh(refresh_token)
        except TokenEndpointError as exc:
            failure = self._refusal(exc.error)
            self._release_lease()
            self._cached = None
            if isinstance(failure, XpmReconnectRequired):
                self.grant_refused(str(failure))
            raise failure from None
        except BaseException:
            self._release_lease()
            raise
        new = TokenSet.from_reply(reply, self.clock())
        with self._locked_any() as (_session, _row, grant):
            kept = grant is not None and grant.refresh_lease_owner == self._owner
            if kept and grant is not None:
                grant.token_ciphertext = encrypt_tokens(new)
                grant.access_expires_at = new.expires_at
                grant.refresh_issued_at = grant.last_refresh_at = self.clock()
                grant.refresh_lease_owner = grant.refresh_lease_until = None
                grant.version += 1
                version = grant.version
        if not kept:
            # Our lease ran out while Xero was slow and another worker refreshed with the same token;
            # Xero retired our pair when it accepted theirs. Theirs is the one stored: use it.
            log.warning("An XPM token refresh outlived its lease; using the pair another worker stored")
            self._cached = None
            return self.access_token()
        log.info("Refreshed the XPM access token for %s (version %s)", self.settings.conn_id, version)
        self._cached = (new, version)
        return new.access_token

    def _release_lease(self) -> None:
        with self._locked_any() as (_session, _row, grant):
            if grant is not None and grant.refresh_lease_owner == self._owner:
                grant.refresh_lease_owner = grant.refresh_lease_until = None

    @staticmethod
    def _refusal(error: str) -> XpmAuthError:
        if error == "invalid_client":
            return XpmAuthError(
                "Xero rejected the app's client id or secret (invalid_client). Check the XPM connection's "
                "Client ID and Client secret against the app at developer.xero.com."
            )
        reason = (
            "Xero refused the refresh token (invalid_grant): it expired after 60 idle days, was revoked, "
            "or the connecting user lost access"
            if error == "invalid_grant"
            else f"Xero refused the token refresh ({error})"
        )
        return XpmReconnectRequired(f"XPM needs to reconnect: {reason}. " + RECONNECT_HINT)

    def _post_refresh(self, refresh_token: str) -> dict[str, Any]:
        # The same refresh token on every try: if a reply was lost, Xero's grace accepts one replay.
        for attempt in Retrying(
            retry=retry_if_exception_type(XpmTransientError),
            stop=stop_after_attempt(self.refresh_attempts),
            wait=self.retry_wait,
            reraise=True,
        ):
            with attempt:
                return post_token(
                    self.settings,
                    {"grant_type": "refresh_token", "refresh_token": refresh_token},
                    http=self.http,
                    timeout=self.timeout,
                )
        raise AssertionError("unreachable")  # pragma: no cover

    def mark_needs_reconnect(self, reason: str) -> bool:
        """XPM or Xero refused us: mark the connection and raise the alert (once per outage).

        Whoever meets the failure (a DAG task, the command line, the XPM page, a push) comes here,
        so the Practice Activity entry and the email are the same for all of them. True when this
        call raised the alert.
        """
        self._cached = None
        return alerts.raise_auth_alert(
            reason,
            engine=self.engine,
            conn_id=self.settings.conn_id,
            actor=self.actor,
            run_id=self.run_id,
            clock=self.clock,
        )

    def grant_refused(self, reason: str) -> bool:
        """Xero refused the grant itself (`invalid_grant`): every practice on it needs reconnecting, each
        with its own Practice Activity entry and email; practices on other grants go on."""
        with Session(self.engine) as session:
            row = self.connection(session)
            others = [r.conn_id for r in sharing(session, row.grant_id)] if row and row.grant_id else []
        raised = self.mark_needs_reconnect(reason)
        for conn_id in others:
            if conn_id != self.settings.conn_id:
                alerts.raise_auth_alert(
                    reason, engine=self.engine, conn_id=conn_id, actor=self.actor, run_id=self.run_id, clock=self.clock
                )
        return raised

    @contextmanager
    def _locked_any(self) -> Iterator[tuple[Session, XpmConnection | None, XpmGrant | None]]:
        with locked_grant(self.engine, self.settings.conn_id) as locked:
            yield locked
