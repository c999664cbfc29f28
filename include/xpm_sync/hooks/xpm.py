"""XpmHook: the one door to Xero Practice Manager."""

from __future__ import annotations

from typing import Any

from airflow.providers.http.hooks.http import HttpHook


class XpmHook(HttpHook):
    """Talks to XPM through an Airflow connection of type `xpm`.

    The connection holds the Xero app's client id (login) and secret (password); its extras hold
    the scopes, redirect URI, pinned practice and base URLs. Tokens are not kept on the
    connection: Airflow 3 task code cannot write connections, so they live, encrypted, in the
    practice database.
    """

    conn_name_attr = "xpm_conn_id"
    default_conn_name = "xpm_default"
    conn_type = "xpm"
    hook_name = "Xero Practice Manager"

    def __init__(self, xpm_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(method="GET", http_conn_id=xpm_conn_id, **kwargs)
        self.xpm_conn_id = xpm_conn_id
