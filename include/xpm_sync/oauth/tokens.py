"""The token store: one encrypted token set per connection and practice, refreshed safely.

Airflow 3 task code cannot write connections, so the rotating tokens live in the practice
database, encrypted with Airflow's Fernet key. A refresh happens under a row lock (PostgreSQL
`SELECT ... FOR UPDATE`, SQLite `BEGIN IMMEDIATE`): the token set is re-read inside the lock,
refreshed only if still needed, and the new pair is committed before anyone uses it, so many
workers at once cause a single refresh. A refresh whose reply is lost is retried with the same
refresh token, which Xero accepts once within 30 minutes. `invalid_grant` is final.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import requests
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from xpm_sync.errors import RECONNECT_HINT, XpmAuthError, XpmConfigError, XpmReconnectRequired, XpmTransientError
from xpm_sync.oauth.settings import XpmSettings
from xpm_sync.store.models import ConnectionStatus, XpmConnection
from xpm_sync.store.types import utcnow

log = logging.getLogger(__name__)

REFRESH_MARGIN = timedelta(minutes=2)
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
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.http = http or requests.Session()
        self.clock = clock
        self.timeout = timeout
        self.refresh_attempts = refresh_attempts
        self.retry_wait = retry_wait or wait_exponential(multiplier=1, min=1, max=10)
        self._cached: tuple[TokenSet, int] | None = None

    # --- reading ------------------------------------------------------------------------------

    def connection(self, session: Session) -> XpmConnection | None:
        """The active connection row of this conn id, if any."""
        query = select(XpmConnection).where(
            XpmConnection.conn_id == self.settings.conn_id, XpmConnection.active.is_(True)
        )
        return session.scalars(query).first()

    def tenant_id(self) -> str:
        with Session(self.engine) as session:
            row = self._usable(self.connection(session))
            return row.tenant_id

    def _usable(self, row: XpmConnection | None) -> XpmConnection:
        if row is None or row.status == ConnectionStatus.DISCONNECTED.value or not row.token_ciphertext:
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
                row = self._usable(self.connection(session))
                tokens = decrypt_tokens(row.token_ciphertext or "")
                if tokens.fresh(now):
                    self._cached = (tokens, row.version)
                    return tokens.access_token
        stale = None
        if force_refresh:
            # Refresh unless someone else already replaced the token we hold (or that is stored).
            if self._cached:
                stale = self._cached[0].access_token
            else:
                with Session(self.engine) as session:
                    row = self._usable(self.connection(session))
                    stale = decrypt_tokens(row.token_ciphertext or "").access_token
        return self._refresh_locked(stale)

    @contextmanager
    def _locked(self) -> Iterator[tuple[Session, XpmConnection]]:
        with self._locked_any() as (session, row):
            yield session, self._usable(row)

    def _refresh_locked(self, stale_access: str | None) -> str:
        failure: XpmAuthError | None = None
        with self._locked() as (_session, row):
            now = self.clock()
            tokens = decrypt_tokens(row.token_ciphertext or "")
            # Someone else may have refreshed while we waited for the lock.
            if tokens.fresh(now) and tokens.access_token != stale_access:
                self._cached = (tokens, row.version)
                return tokens.access_token
            try:
                reply = self._post_refresh(tokens.refresh_token)
            except TokenEndpointError as exc:
                failure = self._refusal(exc.error)
                if isinstance(failure, XpmReconnectRequired):
                    row.status = ConnectionStatus.NEEDS_RECONNECT.value
                    row.last_error, row.last_error_at = str(failure), now
                    row.version += 1
            else:
                new = TokenSet.from_reply(reply, self.clock())
                row.token_ciphertext = encrypt_tokens(new)
                row.access_expires_at = new.expires_at
                row.refresh_issued_at = row.last_refresh_at = self.clock()
                row.version += 1
                version = row.version
            # Leaving the block commits: the new pair, or the reconnect mark, before anything else.
        if failure is not None:
            self._cached = None
            raise failure
        log.info("Refreshed the XPM access token for %s (version %s)", self.settings.conn_id, version)
        self._cached = (new, version)
        return new.access_token

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
        """Record that XPM refused us; True if this changed the status (the first failure)."""
        with self._locked_any() as (session, row):
            if row is None or row.status == ConnectionStatus.NEEDS_RECONNECT.value:
                return False
            row.status = ConnectionStatus.NEEDS_RECONNECT.value
            row.last_error, row.last_error_at = reason, self.clock()
            row.version += 1
        self._cached = None
        return True

    @contextmanager
    def _locked_any(self) -> Iterator[tuple[Session, XpmConnection | None]]:
        with locked_connection(self.engine, self.settings.conn_id) as locked:
            yield locked


@contextmanager
def locked_connection(engine: Engine, conn_id: str) -> Iterator[tuple[Session, XpmConnection | None]]:
    """The active connection row, locked for writing until the block ends (and commits)."""
    if engine.dialect.name == "sqlite":
        engine = engine.execution_options(sqlite_begin="IMMEDIATE")
    with Session(engine, expire_on_commit=False) as session, session.begin():
        query = (
            select(XpmConnection)
            .where(XpmConnection.conn_id == conn_id, XpmConnection.active.is_(True))
            .with_for_update()
        )
        yield session, session.scalars(query).first()
