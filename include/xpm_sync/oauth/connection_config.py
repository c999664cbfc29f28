"""The `xpm` Airflow connection, read once: the app's client, scopes, redirect URI and base URLs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from xpm_sync import provider
from xpm_sync.errors import XpmConfigError, XpmLegacyConnectionError

LEGACY_KEYS = {"apikey", "api_key", "accountkey", "account_key"}

LEGACY_MESSAGE = (
    "The XPM connection {conn_id!r} still holds an API key and account key. XPM switched that "
    "connection method off in 2020; it now accepts only Xero's OAuth 2.0, through a Xero app and an "
    "XPM user. To move: (1) create a Web app at developer.xero.com and register the redirect URI "
    "you will use (e.g. http://localhost:8765/callback); (2) in Airflow, edit the connection: type "
    "'Xero Practice Manager', Client ID and Client secret from the app, and delete apiKey and "
    "accountKey from the extras; (3) run `xpm-sync connect` and sign in as an XPM Administrator "
    "with the staff privilege 'Authorise 3rd Party Full Access'."
)


def _extra(extras: dict[str, Any], key: str, default: str) -> str:
    value = extras.get(key)
    return str(value).strip() if value not in (None, "") else default


@dataclass(frozen=True)
class XpmSettings:
    """Static connection data. The client secret never appears in `repr`."""

    conn_id: str
    client_id: str
    client_secret: str = field(repr=False)
    scopes: str | None  # the exact scopes, when the connection names them; else from `scope_style`
    redirect_uri: str
    pinned_tenant_id: str | None
    identity_url: str
    authorize_url: str
    connections_url: str
    api_url: str
    scope_style: str = "least"

    @property
    def token_url(self) -> str:
        return f"{self.identity_url.rstrip('/')}/connect/token"

    @property
    def revocation_url(self) -> str:
        return f"{self.identity_url.rstrip('/')}/connect/revocation"

    @property
    def is_xero(self) -> bool:
        """True when pointed at Xero's real services (not the sandbox)."""
        return self.identity_url.rstrip("/") == provider.XERO_IDENTITY_URL

    @classmethod
    def from_connection(cls, conn: Any) -> XpmSettings:
        """Read an Airflow connection; refuse legacy API-key connections with the way forward."""
        extras: dict[str, Any] = dict(conn.extra_dejson or {})
        lowered = {k.lower() for k in extras}
        host = (conn.host or "").lower()
        if lowered & LEGACY_KEYS or "workflowmax" in host or "workflowmax" in str(extras.get("api_url", "")).lower():
            raise XpmLegacyConnectionError(LEGACY_MESSAGE.format(conn_id=conn.conn_id))
        if not conn.login or not conn.password:
            raise XpmConfigError(
                f"The XPM connection {conn.conn_id!r} needs the Xero app's client id (login) and client "
                "secret (password). Create the app at developer.xero.com, then edit the connection."
            )
        api_url = _extra(extras, "api_url", provider.XPM_API_URL)
        return cls(
            conn_id=conn.conn_id,
            client_id=conn.login,
            client_secret=conn.password,
            scopes=_extra(extras, "scopes", "") or None,
            redirect_uri=_extra(extras, "redirect_uri", "http://localhost:8765/callback"),
            pinned_tenant_id=_extra(extras, "tenant_id", "") or None,
            identity_url=_extra(extras, "identity_url", provider.XERO_IDENTITY_URL),
            authorize_url=_extra(extras, "authorize_url", provider.XERO_LOGIN_URL),
            connections_url=_extra(extras, "connections_url", provider.XERO_CONNECTIONS_URL),
            api_url=api_url if api_url.endswith("/") else api_url + "/",
            scope_style=_style(conn.conn_id, _extra(extras, "scope_style", "least")),
        )


def _style(conn_id: str, style: str) -> str:
    from xpm_sync.oauth import scopes

    if style.lower() not in scopes.STYLES:
        raise XpmConfigError(
            f"The XPM connection {conn_id!r} has scope_style {style!r}; it takes {', '.join(scopes.STYLES)}: "
            "least (read access, and write access only where the settings push), granular (granular scopes "
            "only; job categories and custom fields are then not synced), broad (practicemanager)."
        )
    return style.lower()


def load(conn_id: str) -> XpmSettings:
    """Look the connection up in Airflow and read it."""
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        conn = BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        raise XpmConfigError(
            f"There is no Airflow connection {conn_id!r}. Add one of type 'Xero Practice Manager' with the "
            "Xero app's client id and secret, then run `xpm-sync connect`."
        ) from None
    from airflow.sdk.log import mask_secret

    mask_secret(conn.password)
    return XpmSettings.from_connection(conn)
